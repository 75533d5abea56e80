"""The hop stepper: diagram, headers, hex dump and the kernel's reasons for one hop at a time.

One object, two faces. Live (Jupyter with a kernel), `Stepper` is an ipywidgets widget whose
Python callbacks re-render the panels. In the published static book no Python runs, so the
same object also renders self-contained HTML: one SVG diagram (the current hop is highlighted
by a CSS rule the script rewrites), the trace as compact JSON (each distinct frame once, with
its layers and fields; per hop only what changed), and a small inline script that draws the
header tree and hex dump. No CDN, no network, and DOM ids derived from the content, so the
same trace renders byte-identical HTML every run.

For reading: the controls stick to the top while the panel scrolls; in a stepper at least
680 px wide the hex dump sits beside a bounded, collapsible header tree; "Hide ARP" drops ARP
hops from the list and from stepping; arrow keys step, hop rows, layer titles and header rows
take Enter/Space; a polite live region announces each hop; colours are CSS variables with
light and dark values (PALETTE, every TEXT_PAIRS pair at least 4.5:1). Until a question is
answered, nothing from its hop on shows the answer (`predict.gate`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from html import escape

from ..errors import UsageError
from ..trace import Trace
from . import headers as H
from .args import check_hop, check_trace
from .diagram import HIGHLIGHT, dark_css, diagram_model, dom_ids, marker_xy, min_width_px, render_svg, walked_css
from .hexdump import byte_map
from .predict import Challenge, auto_challenges, best_challenge, gate
from .sentences import heading, outcome_text, sentence

_SEEN: dict[str, int] = {}


def _uid(payload: str) -> str:
    """`ns<hash>-<n>`: the content's hash and how many steppers of that content came before."""
    digest = hashlib.sha1(payload.encode()).hexdigest()[:10]
    n = _SEEN.get(digest, 0)
    _SEEN[digest] = n + 1
    return f"ns{digest}-{n}"


def _short(hop) -> str:
    ip = hop.inner_ip
    if hop.is_arp:
        return hop.frame.payload.summary()
    if hop.encapsulated and hop.ip is not None and ip is not None:
        return f"outer {hop.ip.summary()}; inner {ip.summary()}"
    if ip is not None:
        return ip.summary()
    return hop.frame.summary()


def _row(hop, on: bool, gate_at: float) -> str:
    """One hop-list row; an encapsulated hop shows the outer and the inner packet on two lines.

    Rows from an unanswered question on give nothing away: the question's own row hides its
    summary (`ask`), later rows are not shown (`later`)."""
    if hop.encapsulated and hop.ip is not None and hop.inner_ip is not None:
        summary = f'outer {escape(hop.ip.summary())}<span class="in">inner {escape(hop.inner_ip.summary())}</span>'
    else:
        summary = escape(_short(hop))
    cls = f"r-{escape(hop.role)}" + (" on" if on else "") + (
        " ask" if hop.index == gate_at else (" later" if hop.index > gate_at else ""))
    return (f'<li data-i="{hop.index}" class="{cls}" tabindex="0">{hop.index:>2} {escape(hop.where)} '
            f'{hop.direction} <span class="s">{summary}</span></li>')


def _guess_cluster(trace: Trace):
    """The reference cluster the trace most likely ran on, if every capture point exists in it."""
    from ..cluster import reference_cluster
    names = {h.device for h in trace.hops}
    backend = "udp" if "flannel0" in names else ("vxlan" if "flannel.1" in names else "host-gw")
    cluster = reference_cluster(backend)
    ok = all(h.netns in cluster.network.namespaces and h.device in cluster.network.namespaces[h.netns].devices
             for h in trace.hops)
    return cluster if ok else None


@dataclass(frozen=True)
class HopView:
    """Everything shown for one hop."""

    index: int
    title: str
    decisions: tuple[str, ...]
    layers: tuple[H.Layer, ...]
    data: bytes
    diff: H.HopDiff

    def changed_flat(self) -> list[int]:
        out, flat = [], 0
        for layer in self.layers:
            for f in layer.fields:
                if self.diff.is_changed(layer, f.name):
                    out.append(flat)
                flat += 1
        return out


def hop_views(trace: Trace) -> list[HopView]:
    diffs = H.trace_diffs(trace)
    last = len(trace.hops) - 1
    out = []
    for hop in trace.hops:
        title = f"Hop {hop.index} of {last}: {hop.where} {hop.direction} · {hop.role}"
        if hop.verdict:
            title += f" · {hop.verdict}"
        out.append(HopView(hop.index, title, tuple(map(sentence, hop.decisions)), tuple(H.hop_layers(hop)), hop.data,
                           diffs[hop.index]))
    return out


# ------------------------------------------------------------------ the panel (Python side)
def _quiz_html(ch: Challenge) -> str:
    buttons = "".join(f'<button class="ch" data-c="{i}">{escape(c)}</button>' for i, c in enumerate(ch.choices))
    return (f'<div class="quiz"><p class="qq">Predict: {escape(ch.question)}</p>'
            f'<div class="qc">{buttons}</div><p class="qx"></p></div>')


def _why_html(view: HopView) -> str:
    items = [f"<li>{escape(d)}</li>" for d in view.decisions] or [
        '<li class="none">no decision recorded here: the frame just passes this point</li>']
    return '<ul class="why">' + "".join(items) + "</ul>"


def panel_html(view: HopView, quiz: Challenge | None = None) -> str:
    """One hop's panel. The inline script builds exactly the same markup from the JSON.

    With a question, the decisions move into the part revealed by answering: they can name
    the very value asked for."""
    out = [f'<div class="title">{escape(view.title)}</div>']
    out.append(_quiz_html(quiz) if quiz is not None else _why_html(view))
    out.append(f'<div class="reveal{" hidden" if quiz is not None else ""}">'
               f'{_why_html(view) if quiz is not None else ""}<div class="hdr">')
    flat = 0
    changed = set(view.changed_flat())
    for li, layer in enumerate(view.layers):
        added = layer.id in view.diff.added
        out.append(f'<div class="ly L{li}{" added" if added else ""}" data-l="{escape(layer.id)}"><div class="lt" '
                   f'tabindex="0" role="button" aria-expanded="true">{escape(layer.title)} '
                   f'<span class="rng">bytes {layer.start}-{layer.end - 1}</span>'
                   f'{" <b>added</b>" if added else ""}</div><table>')
        for f in layer.fields:
            chg = " chg" if flat in changed else ""
            out.append(f'<tr class="fld{chg}" data-f="{flat}" tabindex="0"><td class="fn">{escape(f.title)}</td>'
                       f'<td class="fv">{escape(f.value)}</td><td class="fm">{escape(f.meaning)}</td></tr>')
            flat += 1
        out.append("</table></div>")
    if view.diff.removed:
        out.append(f'<div class="rm">Removed since hop {view.diff.previous}: {escape(", ".join(view.diff.removed))}</div>')
    out.append('</div><div class="hex" aria-label="the frame&#x27;s bytes">')
    cells = byte_map(list(view.layers), len(view.data))
    # bytes of a changed field get an outline; an added layer's are all new and not outlined
    added_layers = {li for li, layer in enumerate(view.layers) if layer.id in view.diff.added}
    for off in range(0, len(view.data), 16):
        out.append(f'<div class="hrow"><span class="off">{off:04x}</span>')
        for b in range(off, min(off + 16, len(view.data))):
            li, fi = cells[b]
            c = " c" if fi in changed and li not in added_layers else ""
            out.append(f'<span class="b L{li}{c}" data-f="{fi}">{view.data[b]:02x}</span>')
        out.append("</div>")
    out.append("</div></div>")
    return "".join(out)


# Colours as data: every colour the stepper draws text or a background with, light and dark.
PALETTE = {
    "fg": ("#1f2328", "#e6edf3"), "bg": ("#ffffff", "#161b22"), "muted": ("#57606a", "#9ba6b1"),
    "line": ("#c8ccd4", "#3d444d"), "btn": ("#f4f6fa", "#21262d"), "on": ("#ffe0b2", "#5a3a12"),
    "chg": ("#fff3e0", "#33240f"), "pick": ("#dbeafe", "#0c2d48"), "badge": ("#b33c00", "#b33c00"),
    "added": ("#a23a29", "#a23a29"), "hexon": ("#1565c0", "#1a5fc9"), "white": ("#ffffff", "#ffffff"),
    "rm": ("#a8321f", "#ff9b8a"), "quiz": ("#f3f0ff", "#231d3b"), "qline": ("#b9a7f5", "#5b4a9e"),
    "right": ("#c8e6c9", "#1f4d22"), "wrong": ("#ffcdd2", "#5c1f24"), "focus": ("#0b5fff", "#79b8ff"),
    "mark": ("#e65100", "#ff8a3d"), "req": ("#1f77b4", "#58a6ff"), "rep": ("#2ca02c", "#3fb950"),
    "b0": ("#dfe8fd", "#1d2c4d"), "b1": ("#dcf0dd", "#1c3a22"), "b2": ("#ffe9cc", "#44300f"),
    "b3": ("#eedcf3", "#3a2344"), "b4": ("#d5efec", "#123b37"), "b5": ("#fbdad9", "#4a1f1f"),
    "b6": ("#e9e1de", "#3a2c26"), "b7": ("#e1e7ea", "#27343b"),
}
# (text, background) pairs the CSS below puts together; each must reach 4.5:1 (WCAG AA).
TEXT_PAIRS = (
    ("fg", "bg"), ("muted", "bg"), ("fg", "btn"), ("fg", "on"), ("fg", "chg"), ("muted", "chg"),
    ("fg", "pick"), ("muted", "pick"), ("white", "badge"), ("white", "added"), ("white", "hexon"),
    ("rm", "bg"), ("fg", "quiz"), ("fg", "right"), ("fg", "wrong"),
    *((("fg", f"b{i}")) for i in range(8)), *((("muted", f"b{i}")) for i in range(8)),
)
DARK_SCOPES = ('html[data-theme="dark"] #ROOT', 'body[data-jp-theme-light="false"] #ROOT')


def _vars(mode: int) -> str:
    return ";".join(f"--ns-{k}:{v[mode]}" for k, v in PALETTE.items())


_LAYOUT = """
#ROOT{font:13px/1.35 system-ui,sans-serif;border:1px solid var(--ns-line);border-radius:6px;padding:0 8px 8px;margin:8px 0;color:var(--ns-fg);background:var(--ns-bg);text-align:left;container-type:inline-size;max-width:100%;box-sizing:border-box}
#ROOT :focus-visible{outline:2px solid var(--ns-focus);outline-offset:1px}
#ROOT .ctl{display:flex;gap:6px;align-items:center;padding:6px 0;flex-wrap:wrap;position:sticky;top:var(--ns-sticky,0);z-index:3;background:var(--ns-bg);border-bottom:1px solid var(--ns-line)}
#ROOT button{font:inherit;padding:2px 10px;border:1px solid var(--ns-muted);border-radius:4px;background:var(--ns-btn);color:var(--ns-fg);cursor:pointer}
#ROOT button[aria-pressed="true"]{background:var(--ns-on)}
#ROOT .pos{color:var(--ns-muted);margin-left:6px}#ROOT p.out{color:var(--ns-muted);margin:4px 0 0}
#ROOT .sr{position:absolute;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
#ROOT .top{display:flex;flex-wrap:wrap;gap:8px;margin-top:6px}
#ROOT .dia{flex:1 1 600px;min-width:0;overflow-x:auto}
#ROOT .dia svg{display:block;width:100%;min-width:MINWpx;height:auto;margin:0 auto}
#ROOT .dia .seg{transition:opacity .2s}#ROOT .dia .pkt{transition:transform .25s ease-out}
@media (prefers-reduced-motion:reduce){#ROOT .dia .pkt,#ROOT .dia .seg{transition:none}}
#ROOT ol.hops{flex:1 1 300px;contain:size;min-height:190px;overflow:auto;margin:0;padding:2px 0;list-style:none;font:11px/1.35 ui-monospace,monospace;border:1px solid var(--ns-line);border-radius:4px}
#ROOT ol.hops li{padding:1px 4px;margin:0;cursor:pointer;white-space:nowrap;border-left:3px solid transparent}
#ROOT ol.hops li .in{display:block;padding-left:3ch}
#ROOT ol.hops li.r-request{border-left-color:var(--ns-req)}#ROOT ol.hops li.r-reply{border-left-color:var(--ns-rep)}
#ROOT ol.hops li.r-arp{color:var(--ns-muted)}#ROOT ol.hops li.on{background:var(--ns-on);color:var(--ns-fg)}
#ROOT.noarp ol.hops li.r-arp,#ROOT ol.hops li.later{display:none}
#ROOT ol.hops li.ask .s{display:none}#ROOT ol.hops li.ask::after{content:"? predict first";color:var(--ns-muted)}
#ROOT .title{font-weight:600;margin:8px 0 2px}
#ROOT ul.why{margin:2px 0 6px 18px;padding:0;font-size:12px}#ROOT ul.why li.none{color:var(--ns-muted);list-style:none}
#ROOT .reveal{display:flex;flex-direction:column;gap:8px}#ROOT .hidden,#ROOT .reveal.hidden{display:none}
#ROOT .hdr{min-width:0;max-height:min(70vh,620px);overflow:auto;overscroll-behavior:contain}
#ROOT .ly{border-left:4px solid;margin:0 0 4px;padding:1px 0 1px 4px}
#ROOT .lt{font-weight:600;padding-left:5px;margin-bottom:1px;cursor:pointer}
#ROOT .lt::before{content:"\\25BE  ";color:var(--ns-muted)}#ROOT .ly.shut .lt::before{content:"\\25B8  "}#ROOT .ly.shut table{display:none}
#ROOT .ly.added .lt b{color:var(--ns-white);background:var(--ns-added);border-radius:3px;padding:0 5px;font:600 10px/1.5 system-ui,sans-serif;vertical-align:1px}
#ROOT .rng{font-weight:400;color:var(--ns-muted);font-size:11px}
#ROOT .hdr table{display:block;border:0;margin:0;font-size:12px;width:auto}#ROOT .hdr tbody{display:block}
#ROOT tr.fld{display:grid;grid-template-columns:min(12em,36%) minmax(0,1fr);column-gap:8px;padding:1px 6px 1px 5px;border-left:3px solid transparent;background:none;cursor:pointer}
#ROOT td{padding:0;border:0;text-align:left;vertical-align:top;background:none;color:inherit}
#ROOT td.fv{font-family:ui-monospace,monospace;overflow-wrap:anywhere}
#ROOT td.fm{grid-column:2;color:var(--ns-muted);font-size:11px;line-height:1.3}
#ROOT tr.fld.chg{border-left-color:var(--ns-mark);background:var(--ns-chg)}
#ROOT tr.chg td.fn,#ROOT tr.chg td.fv{font-weight:600}
#ROOT tr.chg td.fv::after{content:"changed";font:600 10px/1.5 system-ui,sans-serif;color:var(--ns-white);background:var(--ns-badge);border-radius:3px;padding:0 5px;margin-left:8px;vertical-align:1px;white-space:nowrap}
#ROOT .ly.added tr.fld.chg{background:none}#ROOT .ly.added tr.chg td{font-weight:400}#ROOT .ly.added tr.chg td.fv::after{content:none}
#ROOT tr.fld.on{background:var(--ns-pick);box-shadow:inset 0 0 0 1px var(--ns-focus)}
#ROOT .rm{color:var(--ns-rm);font-size:12px}
#ROOT .hex{max-width:100%;overflow-x:auto;font:12px/1.7 ui-monospace,monospace;padding:2px 0}
#ROOT .hex .hrow{display:block;margin:0;white-space:nowrap}#ROOT .off{color:var(--ns-muted);margin-right:8px}
#ROOT .b{padding:1px 2px;margin-right:1px;border-radius:2px}#ROOT .hrow .b:nth-child(10){margin-left:8px}
#ROOT .hex .b.c{box-shadow:inset 0 0 0 1.5px var(--ns-mark);font-weight:700}
#ROOT .hex .b.on{background:var(--ns-hexon);color:var(--ns-white);cursor:pointer}
@container (min-width:680px){#ROOT .reveal{display:grid;grid-template-columns:minmax(0,1fr) max-content;align-items:start;gap:8px 12px}
#ROOT .reveal>ul.why{grid-column:1/-1}#ROOT .hex{position:sticky;top:calc(var(--ns-sticky,0px) + 48px)}}
@container (max-width:620px){#ROOT .top::before{content:"The diagram scrolls sideways.";flex-basis:100%;color:var(--ns-muted);font-size:12px}}
#ROOT .quiz{background:var(--ns-quiz);border:1px solid var(--ns-qline);border-radius:6px;padding:6px;margin:4px 0}
#ROOT .quiz .qq{margin:0 0 4px;font-weight:600}#ROOT .quiz .qc{display:flex;gap:6px;flex-wrap:wrap}
#ROOT .quiz button.right{background:var(--ns-right);border-color:var(--ns-rep)}#ROOT .quiz button.wrong{background:var(--ns-wrong);border-color:var(--ns-rm)}
#ROOT .quiz .qx{margin:4px 0 0}
#ROOT .L0{border-color:#5b8def}#ROOT .L1{border-color:#43a047}#ROOT .L2{border-color:#fb8c00}#ROOT .L3{border-color:#8e24aa}
#ROOT .L4{border-color:#00897b}#ROOT .L5{border-color:#e53935}#ROOT .L6{border-color:#6d4c41}#ROOT .L7{border-color:#546e7a}
#ROOT .b.L0{background:var(--ns-b0)}#ROOT .b.L1{background:var(--ns-b1)}#ROOT .b.L2{background:var(--ns-b2)}#ROOT .b.L3{background:var(--ns-b3)}
#ROOT .b.L4{background:var(--ns-b4)}#ROOT .b.L5{background:var(--ns-b5)}#ROOT .b.L6{background:var(--ns-b6)}#ROOT .b.L7{background:var(--ns-b7)}
"""

CSS = ("#ROOT{" + _vars(0) + "}" + ",".join(DARK_SCOPES) + "{" + _vars(1) + "}" + _LAYOUT
       + dark_css("#ROOT"))


def css(root: str, min_width: int = 600) -> str:
    """The stylesheet scoped to the DOM id `root`, the diagram never narrower than `min_width` px."""
    return CSS.replace("#ROOT", "#" + root).replace("MINW", str(min_width))


# How the live faces (no script) light a field and its bytes on hover.
PICK = "background:#bbdefb"

# The static face's script: draws the panel panel_html() draws, from the JSON.
JS = r"""(function(){
var R=document.getElementById("ROOT");if(!R||R.dataset.ready)return;R.dataset.ready="1";
var D=JSON.parse(document.getElementById("ROOT-data").textContent);
var P=R.querySelector(".panel"),HL=document.getElementById("ROOT-hl"),L=R.querySelectorAll("ol.hops li"),
LIVE=R.querySelector(".sr"),PK=document.getElementById("ROOT-pkt");
var cur=D.start,timer=null,ans={},noarp=false,shut={};
function e(s){return String(s).replace(/[&<>"]/g,function(c){return{"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c];});}
function quiz(q){var b="";q.c.forEach(function(c,i){b+='<button class="ch" data-c="'+i+'">'+e(c)+'</button>';});
return '<div class="quiz"><p class="qq">Predict: '+e(q.q)+'</p><div class="qc">'+b+'</div><p class="qx"></p></div>';}
function why(h){var o='<ul class="why">';if(h.k.length)h.k.forEach(function(d){o+='<li>'+e(d)+'</li>';});
else o+='<li class="none">no decision recorded here: the frame just passes this point</li>';return o+'</ul>';}
function panel(i){var h=D.hops[i],F=D.frames[h.f],o=[],flat=0,ch={},ad={},q=D.q[i];
h.c.forEach(function(k){ch[k]=1;});h.a.forEach(function(k){ad[k]=1;});
o.push('<div class="title">'+e(h.t)+'</div>');if(q)o.push(quiz(q));else o.push(why(h));
o.push('<div class="reveal'+(q?' hidden':'')+'">'+(q?why(h):'')+'<div class="hdr">');
var map=[];for(var n=0;n<F.x.length/2;n++)map.push([-1,-1]);
F.L.forEach(function(l,li){var a=ad[li];for(var b=l[2];b<l[3];b++)map[b]=[li,-1];
o.push('<div class="ly L'+li+(a?' added':'')+'" data-l="'+e(l[1])+'"><div class="lt" tabindex="0" role="button" aria-expanded="true">'+e(l[0])+' <span class="rng">bytes '+l[2]+'-'+(l[3]-1)+'</span>'+(a?' <b>added</b>':'')+'</div><table>');
l[4].forEach(function(f){var m=D.fields[f[0]];for(var b=f[1];b<f[2];b++)map[b]=[li,flat];
o.push('<tr class="fld'+(ch[flat]?' chg':'')+'" data-f="'+flat+'" tabindex="0"><td class="fn">'+e(m[0])+'</td><td class="fv">'+e(f[3])+'</td><td class="fm">'+e(m[1])+'</td></tr>');flat++;});
o.push('</table></div>');});
if(h.rm.length)o.push('<div class="rm">Removed since hop '+h.p+': '+e(h.rm.join(", "))+'</div>');
o.push('</div><div class="hex" aria-label="the frame\'s bytes">');
for(var off=0;off<map.length;off+=16){o.push('<div class="hrow"><span class="off">'+('000'+off.toString(16)).slice(-4)+'</span>');
for(var b=off;b<Math.min(off+16,map.length);b++)o.push('<span class="b L'+map[b][0]+(ch[map[b][1]]&&!ad[map[b][0]]?' c':'')+'" data-f="'+map[b][1]+'">'+F.x.substr(2*b,2)+'</span>');o.push('</div>');}
o.push('</div></div>');return o.join("");}
function gate(){var g=Infinity;for(var k in D.q){k=+k;if(k>=D.start&&!(k in ans)&&k<g)g=k;}return g;}
function rows(){var g=gate();for(var k=0;k<L.length;k++){var c=L[k].className.replace(/ (on|ask|later)/g,"");
if(k==cur)c+=" on";if(k==g)c+=" ask";else if(k>g)c+=" later";L[k].className=c;}}
function show(i){cur=Math.max(0,Math.min(D.hops.length-1,i));var h=D.hops[cur];P.innerHTML=panel(cur);
if(D.q[cur]&&(cur in ans))mark(cur,ans[cur]);
for(var s in shut)if(shut[s]){var y=P.querySelector('.ly[data-l="'+s+'"]');if(y)fold(y,true);}
var g=[];D.seg.forEach(function(x){if(x[1]>cur)g.push("#ROOT-e"+x[0]);});
HL.textContent=h.e.map(function(n){return "#ROOT-e"+n+" path";}).join(",")+"{"+D.css+"}"+(g.length?g.join(",")+"{visibility:hidden}":"");
if(PK&&h.m)PK.setAttribute("transform","translate("+h.m[0]+" "+h.m[1]+")");
rows();var O=L[cur]&&L[cur].parentNode;if(O&&O.scrollHeight>O.clientHeight){O.scrollTop=L[cur].offsetTop-O.offsetTop-(O.clientHeight-L[cur].offsetHeight)/2;}
R.querySelector(".pos").textContent="hop "+cur+" of "+(D.hops.length-1);R.dataset.hop=cur;
LIVE.textContent=h.t+(D.q[cur]&&!(cur in ans)?". Predict: "+D.q[cur].q:". "+h.s);}
function mark(i,c){var q=D.q[i],bs=P.querySelectorAll(".quiz .ch");ans[i]=c;
for(var k=0;k<bs.length;k++){bs[k].disabled=true;if(k==q.a)bs[k].className+=" right";else if(k==c)bs[k].className+=" wrong";}
P.querySelector(".quiz .qx").textContent=(c==q.a?"Right. ":c<0?"Skipped: the answer is "+q.c[q.a]+". ":"Not quite: the answer is "+q.c[q.a]+". ")+q.x;
P.querySelector(".reveal").className="reveal";rows();}
function go(i){var d=i<cur?-1:1;while(noarp&&i>=0&&i<D.hops.length&&D.hops[i].r=="arp")i+=d;
if(i<0||i>=D.hops.length)return false;var g=gate();
if(i>g){if(cur==g){mark(g,-1);LIVE.textContent="Skipped. "+P.querySelector(".quiz .qx").textContent;return false;}i=g;}
show(i);return true;}
function fold(y,s){y.classList.toggle("shut",s);y.querySelector(".lt").setAttribute("aria-expanded",s?"false":"true");}
function stop(){if(timer){clearInterval(timer);timer=null;R.querySelector('[data-a="play"]').textContent="Play";}}
function act(t){var a=t.getAttribute&&t.getAttribute("data-a");
if(a=="next"){stop();go(cur+1);}else if(a=="prev"){stop();go(cur-1);}
else if(a=="play"){if(timer)stop();else{t.textContent="Pause";timer=setInterval(function(){var g=gate();if(cur>=g||!go(cur+1)||cur>=g)stop();},900);}}
else if(a=="arp"){noarp=!noarp;t.setAttribute("aria-pressed",noarp?"true":"false");R.classList.toggle("noarp",noarp);
if(noarp&&D.hops[cur].r=="arp"&&!go(cur+1))go(cur-1);}
else if(t.closest&&t.closest("ol.hops li")){stop();go(+t.closest("ol.hops li").getAttribute("data-i"));}
else if(t.classList&&t.classList.contains("ch")&&!t.disabled){mark(cur,+t.getAttribute("data-c"));}
else if(t.closest&&t.closest(".lt")){var y=t.closest(".ly");shut[y.getAttribute("data-l")]=!y.classList.contains("shut");fold(y,shut[y.getAttribute("data-l")]);}
else if(t.closest&&t.closest("tr.fld")){pick(t.closest("tr.fld").getAttribute("data-f"));}}
R.addEventListener("click",function(ev){act(ev.target);});
R.addEventListener("keydown",function(ev){var t=ev.target;if(ev.altKey||ev.ctrlKey||ev.metaKey)return;
if(ev.key=="ArrowRight"||ev.key=="ArrowLeft"){stop();go(cur+(ev.key=="ArrowRight"?1:-1));ev.preventDefault();}
else if((ev.key=="Enter"||ev.key==" ")&&t.closest&&t.closest("ol.hops li,tr.fld,.lt")){act(t);ev.preventDefault();}});
function pick(f){var s=P.querySelectorAll(".on");for(var k=0;k<s.length;k++)s[k].classList.remove("on");
if(f===null)return;s=P.querySelectorAll('[data-f="'+f+'"]');for(k=0;k<s.length;k++)s[k].classList.add("on");}
R.addEventListener("mouseover",function(ev){var t=ev.target.closest&&ev.target.closest("tr.fld,.hex .b");if(t&&t.getAttribute("data-f")!="-1")pick(t.getAttribute("data-f"));});
R.addEventListener("focusin",function(ev){var t=ev.target.closest&&ev.target.closest("tr.fld");if(t)pick(t.getAttribute("data-f"));});
show(cur);})();"""


class Stepper:
    """Step through a trace hop by hop; displays as a widget live and as HTML in the static book.

    `predict=True` asks the reader to predict the header at a few telling hops first
    (`auto_challenges`); a list of hop indices asks there; a list of `Challenge`s is used as is.
    """

    def __init__(self, trace: Trace, cluster=None, predict: bool | list = False, start: int = 0):
        check_trace(trace, cluster, "Stepper")
        if isinstance(start, bool) or not isinstance(start, int):
            raise UsageError(f"Stepper: start {start!r} must be a hop index (an integer)")
        for p in (predict if isinstance(predict, list) else []):
            if not isinstance(p, Challenge):
                check_hop(trace, p, "Stepper(predict=...)")
        if not trace.hops:
            raise UsageError("the trace has no hops to step through")
        if not 0 <= start < len(trace.hops):
            raise UsageError(f"start {start} is outside 0..{len(trace.hops) - 1}")
        self.trace = trace
        self.cluster = cluster if cluster is not None else _guess_cluster(trace)
        self.start = start
        self.views = hop_views(trace)
        if predict is True:
            self.challenges = auto_challenges(trace, self.cluster)
        elif predict:
            self.challenges = [p if isinstance(p, Challenge) else best_challenge(trace, p, self.cluster)
                               for p in predict]
        else:
            self.challenges = []
        self._quiz = {c.hop: c for c in self.challenges}
        self._uid: str | None = None
        self._html: str | None = None

    # data ---------------------------------------------------------------------------------
    def model(self, index: int):
        """The diagram model at hop `index` (None without a cluster)."""
        return diagram_model(self.cluster, self.trace, index) if self.cluster is not None else None

    def payload(self) -> dict:
        """The JSON the static face carries: distinct frames once, per hop only what differs."""
        fields: dict[tuple[str, str], int] = {}
        frames: dict[bytes, int] = {}
        frame_list: list[dict[str, object]] = []
        hops: list[object] = []
        base = diagram_model(self.cluster, self.trace) if self.cluster is not None else None
        ids = {k: int(v.rsplit("-e", 1)[1]) for k, v in dom_ids(base, "x").items()} if base else {}
        for view in self.views:
            hop = self.trace.hops[view.index]
            if view.data not in frames:
                frames[view.data] = len(frame_list)
                layers = []
                for layer in view.layers:
                    fl = []
                    for f in layer.fields:
                        key = (f.title, f.meaning)
                        fields.setdefault(key, len(fields))
                        fl.append([fields[key], f.start, f.end, f.value])
                    layers.append([layer.title, layer.id, layer.start, layer.end, fl])
                frame_list.append({"x": view.data.hex(), "L": layers})
            marks, pos = [], None
            if base is not None:
                m = diagram_model(self.cluster, self.trace, view.index)
                marks = sorted(ids[h] for h in m.highlighted if h in ids)
                pos = list(marker_xy(base, hop.where))
            hops.append({"f": frames[view.data], "t": view.title, "k": list(view.decisions),
                         "c": view.changed_flat(),
                         "a": [i for i, l in enumerate(view.layers) if l.id in view.diff.added],
                         "rm": list(view.diff.removed), "p": -1 if view.diff.previous is None else view.diff.previous,
                         "e": marks, "w": hop.where, "r": hop.role, "s": _short(hop), "m": pos})
        quiz = {str(c.hop): {"q": c.question, "c": list(c.choices), "a": c.answer, "x": c.explanation}
                for c in self.challenges}
        segs = [[ids[f"seg:{s.frm}->{s.to}"], s.to] for s in base.segments] if base is not None else []
        return {"start": self.start, "fields": [list(k) for k in fields], "frames": frame_list, "hops": hops,
                "q": quiz, "css": HIGHLIGHT, "seg": segs}

    # the static face ----------------------------------------------------------------------------
    def to_html(self) -> str:
        """Self-contained HTML: markup, inline CSS, SVG, JSON and script; no network, no kernel."""
        if self._html is not None:
            return self._html
        data = json.dumps(self.payload(), separators=(",", ":"), sort_keys=True).replace("</", "<\\/")
        if self._uid is None:
            self._uid = _uid(data)
        uid = self._uid
        svg, minw = "", 600
        base = diagram_model(self.cluster, self.trace) if self.cluster is not None else None
        g = gate(self.challenges, {}, self.start)
        items = "".join(_row(h, h.index == self.start, g) for h in self.trace.hops)
        view = self.views[self.start]
        hop = self.trace.hops[self.start]
        marks = ""
        if base is not None:
            m = diagram_model(self.cluster, self.trace, self.start)
            svg = render_svg(m, uid)
            minw = min_width_px(base)
            ids = dom_ids(m, uid)
            marks = ",".join(f"#{ids[h]} path" for h in sorted(m.highlighted, key=lambda x: ids.get(x, "")) if h in ids)
            marks = f"{marks}{{{HIGHLIGHT}}}{walked_css(m, uid, self.start)}"
        title = escape(self.trace.title or "trace")
        outcome = escape(outcome_text(self.trace.outcome))
        quiz = self._quiz.get(self.start)
        live = view.title + (f". Predict: {quiz.question}" if quiz is not None else f". {_short(hop)}")
        self._html = (
            f'<div class="netsim-stepper" id="{uid}" data-hop="{self.start}" tabindex="0" role="group" '
            f'aria-label="{title}: hop stepper (arrow keys step)" aria-keyshortcuts="ArrowLeft ArrowRight">'
            f'<style>{css(uid, minw)}</style><style id="{uid}-hl">{marks}</style>'
            f'<div class="ctl"><b>{title}</b><button data-a="prev">Prev</button><button data-a="play">Play</button>'
            f'<button data-a="next">Next</button><span class="pos">hop {self.start} of {len(self.trace) - 1}</span>'
            f'<button data-a="arp" aria-pressed="false">Hide ARP</button></div>'
            f'<p class="out">{outcome}</p>'
            f'<p class="sr" aria-live="polite">{escape(live)}</p>'
            f'<div class="top"><div class="dia">{svg}</div><ol class="hops" aria-label="hops">{items}</ol></div>'
            f'<div class="panel">{panel_html(view, quiz)}</div>'
            f'<script type="application/json" id="{uid}-data">{data}</script>'
            f'<script>{JS.replace("ROOT", uid)}</script></div>')
        return self._html

    def text(self) -> str:
        view = self.views[self.start]
        lines = [heading(self.trace), view.title, *[f"  {d}" for d in view.decisions],
                 H.layer_tree(list(view.layers), view.diff)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Stepper {self.trace.title!r}: {len(self.trace)} hops, {len(self.challenges)} predictions>"

    # the live face ------------------------------------------------------------------------------
    def widget(self):
        """An ipywidgets view (needs a running kernel for its buttons)."""
        import ipywidgets as W

        n = len(self.trace)
        uid = f"{self._uid or 'live'}-w"
        base = diagram_model(self.cluster, self.trace) if self.cluster is not None else None
        svg = render_svg(base, uid) if base is not None else ""
        sheet = css(uid, min_width_px(base) if base is not None else 600)
        slider = W.IntSlider(value=self.start, min=0, max=n - 1, description="hop", continuous_update=False)
        play = W.Play(value=self.start, min=0, max=n - 1, interval=1200)
        W.jslink((play, "value"), (slider, "value"))
        prev, nxt = W.Button(description="Prev"), W.Button(description="Next")
        noarp = W.ToggleButton(description="Hide ARP", value=False)
        pick = W.Dropdown(options=[], layout=W.Layout(width="60%"))
        dia, panel, quiz = W.HTML(), W.HTML(), W.VBox()
        answered: dict[int, int] = {}
        state = {"busy": False}

        def options() -> list:
            """The dropdown: no ARP hop when hidden, nothing after an unanswered question."""
            g = gate(self.challenges, answered, self.start)
            out = []
            for h in self.trace.hops:
                if (noarp.value and h.role == "arp") or h.index > g:
                    continue
                label = f"{h.index:>2} {h.where} {h.direction}"
                out.append((label + (" ? predict first" if h.index == g else f" {_short(h)}"), h.index))
            return out

        def render(i: int) -> None:
            view = self.views[i]
            ch = self._quiz.get(i)
            hidden = ch is not None and i not in answered
            if base is not None:
                m = diagram_model(self.cluster, self.trace, i)
                ids = dom_ids(m, uid)
                marks = ",".join(f"#{ids[h]} path" for h in sorted(m.highlighted) if h in ids)
                x, y = marker_xy(base, self.trace.hops[i].where)
                dia.value = (f'<div id="{uid}d"><style>{sheet.replace("#" + uid, "#" + uid + "d")}{marks}{{{HIGHLIGHT}}}'
                             f'{walked_css(m, uid, i)}#{uid}-pkt{{transform:translate({x}px,{y}px)}}</style>'
                             f'<div class="dia">{svg}</div></div>')
            html = panel_html(view, ch)
            if not hidden:
                html = html.replace('<div class="reveal hidden">', '<div class="reveal">', 1)
            html = re.sub(r'<div class="quiz">.*?</p></div>', "", html, count=1, flags=re.S)
            hover = "".join(f'#{uid}:has([data-f="{k}"]:hover) [data-f="{k}"]{{{PICK}}}'
                            for k in range(sum(len(l.fields) for l in view.layers)))
            panel.value = (f'<div id="{uid}"><style>{sheet}{hover}</style>'
                           f'<div class="panel">{html}</div></div>')
            quiz.children = _quiz_widgets(ch, answered, lambda: refresh(i)) if ch is not None else ()

        def refresh(i: int) -> None:
            state["busy"] = True
            pick.options = options()
            pick.value = i if i in [v for _, v in pick.options] else None
            state["busy"] = False
            render(i)

        def go(i: int, step: int = 1) -> None:
            while noarp.value and 0 <= i < n and self.trace.hops[i].role == "arp":
                i += step
            g = gate(self.challenges, answered, self.start)
            if 0 <= i < n:
                slider.value = int(min(i, g))

        slider.observe(lambda change: refresh(change["new"]), "value")
        pick.observe(lambda change: None if state["busy"] or change["new"] is None else go(change["new"]), "value")
        prev.on_click(lambda _: go(slider.value - 1, -1))
        nxt.on_click(lambda _: go(slider.value + 1))
        def arp_toggled(_: object) -> None:
            refresh(slider.value)
            if self.trace.hops[slider.value].role == "arp":
                go(slider.value)

        noarp.observe(arp_toggled, "value")
        refresh(self.start)
        return W.VBox([W.HBox([prev, nxt, play, slider, noarp]), pick, dia, quiz, panel])

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = {"text/plain": self.text(), "text/html": self.to_html()}
        try:
            view = self.widget()._repr_mimebundle_()
        except ImportError:     # ipywidgets missing: the self-contained HTML face is enough
            view = None
        if view:
            bundle.update({k: v for k, v in view.items() if k != "text/plain"})
        return bundle


def _quiz_widgets(ch: Challenge, answered: dict[int, int], refresh) -> tuple:
    import ipywidgets as W

    label = W.HTML(f"<b>Predict:</b> {escape(ch.question)}")
    buttons = []
    for i, choice in enumerate(ch.choices):
        b = W.Button(description=choice, layout=W.Layout(width="auto"))
        if ch.hop in answered:
            b.disabled = True
            b.button_style = "success" if i == ch.answer else ("danger" if i == answered[ch.hop] else "")

        def click(_, i=i):
            answered[ch.hop] = i
            refresh()
        b.on_click(click)
        buttons.append(b)
    out = [label, W.HBox(buttons)]
    if ch.hop in answered:
        verdict = "Right. " if answered[ch.hop] == ch.answer else f"Not quite: the answer is {ch.correct}. "
        out.append(W.HTML(escape(verdict + ch.explanation)))
    return tuple(out)


def stepper(trace: Trace, cluster=None, predict: bool | list = False, start: int = 0) -> Stepper:
    """`Stepper(trace, cluster, predict, start)`."""
    return Stepper(trace, cluster, predict, start)


@dataclass(frozen=True)
class HeaderView:
    """One hop's header tree, changes and hex dump, without the diagram or controls."""

    view: HopView

    def text(self) -> str:
        from .hexdump import hexdump
        return "\n".join([self.view.title, H.layer_tree(list(self.view.layers), self.view.diff),
                          hexdump(self.view.data, list(self.view.layers))])

    def html(self) -> str:
        uid = "nshv" + hashlib.sha1(self.view.data + self.view.title.encode()).hexdigest()[:10]
        hover = "".join(f'#{uid}:has([data-f="{k}"]:hover) [data-f="{k}"]{{{PICK}}}'
                        for k in range(sum(len(l.fields) for l in self.view.layers)))
        return (f'<div id="{uid}"><style>{css(uid)}{hover}</style>'
                f'<div class="panel">{panel_html(self.view)}</div></div>')

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": self.text(), "text/html": self.html()}


def header_view(trace: Trace, index: int) -> HeaderView:
    """The header view of hop `index`, changed fields marked against the packet's previous hop."""
    index = check_hop(check_trace(trace, where="header_view"), index, "header_view")
    diff = H.hop_diff(trace, index)
    hop = trace.hops[index]
    last = len(trace.hops) - 1
    title = f"Hop {index} of {last}: {hop.where} {hop.direction} · {hop.role}" + (f" · {hop.verdict}" if hop.verdict else "")
    return HeaderView(HopView(index, title, tuple(map(sentence, hop.decisions)), tuple(H.hop_layers(hop)), hop.data,
                              diff))
