"""The stepper's stylesheet and the static page's script, as data the stepper fills in.

Colours are CSS variables with light and dark values (PALETTE; every TEXT_PAIRS pair at least
4.5:1). The level switch sets the stepper root's `data-level` (minimal, summary, detailed) and the rules below show or hide the parts of the panel each level leaves out.

The script (`JS`, with ROOT standing for the stepper's DOM id) reads the trace from the
page: a base64 string of deflate-compressed JSON, so no answer to a question is in the page's
text before the reader answers. It decompresses it with the browser's DecompressionStream,
then draws every panel exactly as `stepper_panel.panel_html` does, and marks the stepper
`data-state="ready"`.
"""

from __future__ import annotations

from .diagram import dark_css

# Colours as data: every colour the stepper draws text or a background with, light and dark.
PALETTE = {
    "fg": ("#1f2328", "#e6edf3"), "bg": ("#ffffff", "#161b22"), "muted": ("#57606a", "#9ba6b1"),
    "line": ("#c8ccd4", "#3d444d"), "btn": ("#f4f6fa", "#21262d"), "on": ("#ffe0b2", "#5a3a12"),
    "chg": ("#fff3e0", "#33240f"), "pick": ("#dbeafe", "#0c2d48"), "badge": ("#b33c00", "#b33c00"),
    "added": ("#a23a29", "#a23a29"), "hexon": ("#1565c0", "#1a5fc9"), "white": ("#ffffff", "#ffffff"),
    "rm": ("#a8321f", "#ff9b8a"), "quiz": ("#f3f0ff", "#231d3b"), "qline": ("#b9a7f5", "#5b4a9e"),
    "right": ("#c8e6c9", "#1f4d22"), "wrong": ("#ffcdd2", "#5c1f24"), "focus": ("#0b5fff", "#79b8ff"),
    "mark": ("#e65100", "#ff8a3d"), "req": ("#1f77b4", "#58a6ff"), "rep": ("#2ca02c", "#3fb950"),
    "dropbg": ("#fdecea", "#3a1618"), "link": ("#0a58ca", "#79b8ff"),
    "b0": ("#dfe8fd", "#1d2c4d"), "b1": ("#dcf0dd", "#1c3a22"), "b2": ("#ffe9cc", "#44300f"),
    "b3": ("#eedcf3", "#3a2344"), "b4": ("#d5efec", "#123b37"), "b5": ("#fbdad9", "#4a1f1f"),
    "b6": ("#e9e1de", "#3a2c26"), "b7": ("#e1e7ea", "#27343b"),
}
# (text, background) pairs the CSS below puts together; each must reach 4.5:1 (WCAG AA).
TEXT_PAIRS = (
    ("fg", "bg"), ("muted", "bg"), ("fg", "btn"), ("fg", "on"), ("fg", "chg"), ("muted", "chg"),
    ("fg", "pick"), ("muted", "pick"), ("white", "badge"), ("white", "added"), ("white", "hexon"),
    ("rm", "bg"), ("fg", "quiz"), ("fg", "right"), ("fg", "wrong"), ("fg", "dropbg"), ("rm", "dropbg"),
    ("link", "bg"),
    *((("fg", f"b{i}")) for i in range(8)), *((("muted", f"b{i}")) for i in range(8)),
)
DARK_SCOPES = ('html[data-theme="dark"] #ROOT', 'body[data-jp-theme-light="false"] #ROOT')
LEVELS = ("minimal", "summary", "detailed")


def _vars(mode: int) -> str:
    return ";".join(f"--ns-{k}:{v[mode]}" for k, v in PALETTE.items())


_LAYOUT = """
#ROOT{font:13px/1.35 system-ui,sans-serif;border:1px solid var(--ns-line);border-radius:6px;padding:0 8px 8px;margin:8px 0;color:var(--ns-fg);background:var(--ns-bg);text-align:left;container-type:inline-size;max-width:100%;box-sizing:border-box}
#ROOT :focus-visible{outline:2px solid var(--ns-focus);outline-offset:1px}
#ROOT .ctl{display:flex;gap:6px;align-items:center;padding:6px 0;flex-wrap:wrap;position:sticky;top:var(--ns-sticky,0);z-index:3;background:var(--ns-bg);border-bottom:1px solid var(--ns-line)}
#ROOT button{font:inherit;padding:2px 10px;border:1px solid var(--ns-muted);border-radius:4px;background:var(--ns-btn);color:var(--ns-fg);cursor:pointer}
#ROOT button[aria-pressed="true"]{background:var(--ns-on)}
#ROOT .pos{color:var(--ns-muted);margin-left:6px}#ROOT p.out{color:var(--ns-muted);margin:4px 0 0}#ROOT p.out:empty{display:none}
#ROOT .tools{display:flex;gap:6px 12px;align-items:center;flex-wrap:wrap;margin-top:6px;font-size:12px;color:var(--ns-muted)}
#ROOT .tools .lvl{display:inline-flex}#ROOT .tools .lvl button{border-radius:0;margin-left:-1px;padding:1px 8px}
#ROOT .tools .lvl button:first-of-type{border-radius:4px 0 0 4px}#ROOT .tools .lvl button:last-of-type{border-radius:0 4px 4px 0}
#ROOT a.pcap{color:var(--ns-link)}
#ROOT .sr{position:absolute;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
#ROOT .top{display:flex;flex-wrap:wrap;gap:8px;margin-top:6px}
#ROOT .dia{flex:1 1 600px;min-width:0;overflow-x:auto}
#ROOT .dia svg{display:block;width:100%;min-width:MINWpx;height:auto;margin:0 auto}
#ROOT .dia .seg{transition:opacity .2s}#ROOT .dia .pkt{transition:transform .25s ease-out}
@media (prefers-reduced-motion:reduce){#ROOT .dia .pkt,#ROOT .dia .seg{transition:none}}
#ROOT ol.hops{flex:1 1 300px;contain:size;min-height:190px;overflow:auto;margin:0;padding:2px 0;list-style:none;font:11px/1.35 ui-monospace,monospace;border:1px solid var(--ns-line);border-radius:4px}
#ROOT ol.hops li{padding:1px 4px;margin:0;cursor:pointer;white-space:nowrap;border-left:3px solid transparent}
#ROOT ol.hops li .in{display:block;padding-left:3ch}#ROOT ol.hops li .q{color:var(--ns-muted)}#ROOT ol.hops li.on .q{color:var(--ns-fg)}
#ROOT ol.hops li b.x{color:var(--ns-rm);font-weight:700}
#ROOT ol.hops li.r-request{border-left-color:var(--ns-req)}#ROOT ol.hops li.r-reply{border-left-color:var(--ns-rep)}
#ROOT ol.hops li.r-arp{color:var(--ns-muted)}#ROOT ol.hops li.on{background:var(--ns-on);color:var(--ns-fg)}
#ROOT.noarp ol.hops li.r-arp{display:none}
#ROOT .title{font-weight:600;margin:8px 0 2px}
#ROOT .drop{border:1px solid var(--ns-rm);background:var(--ns-dropbg);border-radius:4px;padding:4px 6px;margin:2px 0;font-size:12px}
#ROOT .drop b{color:var(--ns-rm);margin-right:4px}
#ROOT ul.why{margin:2px 0 6px 18px;padding:0;font-size:12px}#ROOT ul.why li.none{color:var(--ns-muted);list-style:none}
#ROOT pre.dl{font:11px/1.4 ui-monospace,monospace;white-space:pre-wrap;overflow-wrap:anywhere;margin:2px 0 6px;padding:4px 6px;background:var(--ns-btn);color:var(--ns-fg);border:1px solid var(--ns-line);border-radius:4px}
#ROOT .ba{min-width:0;overflow-x:auto;font-size:12px}
#ROOT .ba table{border-collapse:collapse;width:auto;margin:0;border:0}
#ROOT .ba th,#ROOT .ba td{padding:1px 8px 1px 4px;text-align:left;border:0;border-bottom:1px solid var(--ns-line);background:none;color:inherit;white-space:nowrap;font-weight:400;vertical-align:top}
#ROOT .ba th{color:var(--ns-muted);font-weight:600}
#ROOT .ba td:nth-child(2),#ROOT .ba td:nth-child(3){font-family:ui-monospace,monospace}
#ROOT .ba tr.grp td{font-weight:600;color:var(--ns-muted);padding-top:4px}#ROOT .ba td:last-child{white-space:normal;min-width:7em}
@container (max-width:560px){#ROOT .ba thead{display:none}#ROOT .ba table,#ROOT .ba tbody{display:block}
#ROOT .ba tr{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);column-gap:8px;border-bottom:1px solid var(--ns-line)}
#ROOT .ba td{border:0;white-space:normal;overflow-wrap:anywhere}#ROOT .ba td:first-child,#ROOT .ba td:last-child{grid-column:1/-1}
#ROOT .ba td:nth-child(3)::before{content:"\\2192  ";color:var(--ns-muted)}#ROOT .ba tr.chg{background:var(--ns-chg)}}
#ROOT .ba tr.chg td{background:var(--ns-chg);font-weight:600}
#ROOT .ba .ow{display:block;font:400 11px/1.3 system-ui,sans-serif;color:var(--ns-muted)}#ROOT[data-level="minimal"] .ba .ow{display:none}
#ROOT .n{display:inline-block;min-width:1.4em;text-align:center;color:var(--ns-white);background:var(--ns-badge);border-radius:3px;font:600 10px/1.5 system-ui,sans-serif}
#ROOT ol.rw{margin:4px 0;padding:0;list-style:none}#ROOT ol.rw li{margin:0 0 3px}
#ROOT ol.rw .m{display:block;padding-left:2.2em;font-family:ui-monospace,monospace;font-size:11px;overflow-wrap:anywhere}
#ROOT ol.rw .via{color:var(--ns-muted)}#ROOT .ba p.note{margin:2px 0;color:var(--ns-muted)}
#ROOT .reveal{display:flex;flex-direction:column;gap:8px}
#ROOT .hdr{min-width:0;max-height:min(70vh,620px);overflow:auto;overscroll-behavior:contain}
#ROOT .ly{border-left:4px solid;margin:0 0 4px;padding:1px 0 1px 4px}
#ROOT .lt{font-weight:600;padding-left:5px;margin-bottom:1px;cursor:pointer}
#ROOT .lt::before{content:"\\25BE  ";color:var(--ns-muted)}#ROOT .ly.shut .lt::before{content:"\\25B8  "}#ROOT .ly.shut table{display:none}
#ROOT .ly.added .lt b{color:var(--ns-white);background:var(--ns-added);border-radius:3px;padding:0 5px;font:600 10px/1.5 system-ui,sans-serif;vertical-align:1px}
#ROOT .rng{font-weight:400;color:var(--ns-muted);font-size:11px}
#ROOT .hdr table{display:block;border:0;margin:0;font-size:12px;width:auto}#ROOT .hdr tbody{display:block}
#ROOT tr.fld,#ROOT tr.opt{display:grid;grid-template-columns:min(12em,36%) minmax(0,1fr);column-gap:8px;padding:1px 6px 1px 5px;border-left:3px solid transparent;background:none}
#ROOT tr.fld{cursor:pointer}#ROOT tr.opt td.fn{color:var(--ns-muted);padding-left:1em}
#ROOT td{padding:0;border:0;text-align:left;vertical-align:top;background:none;color:inherit}
#ROOT td.fv{font-family:ui-monospace,monospace;overflow-wrap:anywhere}
#ROOT td.fm{grid-column:2;color:var(--ns-muted);font-size:11px;line-height:1.3}
#ROOT td.fm .gm{display:none}
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
#ROOT[data-level="minimal"] ul.why,#ROOT[data-level="minimal"] pre.dl,#ROOT[data-level="minimal"] td.fm,#ROOT[data-level="minimal"] tr.opt,#ROOT[data-level="minimal"] .hex,#ROOT[data-level="minimal"] .ba tr.same,#ROOT[data-level="minimal"] ol.rw,#ROOT[data-level="minimal"] .ba p.note{display:none}
#ROOT[data-level="summary"] pre.dl,#ROOT[data-level="summary"] .via{display:none}
#ROOT[data-level="detailed"] ul.why{display:none}#ROOT[data-level="detailed"] td.fm .gm{display:block;font-style:italic}
@container (min-width:680px){#ROOT .reveal{display:grid;grid-template-columns:minmax(0,1fr) max-content;align-items:start;gap:8px 12px}
#ROOT .reveal>*{grid-column:1/-1}#ROOT .reveal>.hdr{grid-column:1}#ROOT .reveal>.hex{grid-column:2;position:sticky;top:calc(var(--ns-sticky,0px) + 48px)}}
@container (max-width:620px){#ROOT .top::before{content:"The diagram scrolls sideways.";flex-basis:100%;color:var(--ns-muted);font-size:12px}}
#ROOT .quiz{background:var(--ns-quiz);border:1px solid var(--ns-qline);border-radius:6px;padding:6px;margin:4px 0}
#ROOT .quiz .qq{margin:0 0 4px;font-weight:600}#ROOT .quiz .qc{display:flex;gap:6px;flex-wrap:wrap}
#ROOT .quiz button.right{background:var(--ns-right);border-color:var(--ns-rep)}#ROOT .quiz button.wrong{background:var(--ns-wrong);border-color:var(--ns-rm)}
#ROOT .quiz .qx{margin:4px 0 0}#ROOT .quiz .qx:empty{display:none}
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

# The static face's script: decodes the trace, then draws the panel stepper_panel.panel_html() draws.
JS = r"""(function(){
var R=document.getElementById("ROOT");if(!R||R.dataset.state)return;R.dataset.state="loading";
if(document.querySelector(".jp-LabShell")){var A=R.querySelector("a.pcap");if(A)A.parentNode.removeChild(A);}
if(!window.DecompressionStream){R.dataset.state="unsupported";return;}
var s=atob(document.getElementById("ROOT-data").textContent.trim()),u=new Uint8Array(s.length);
for(var i=0;i<s.length;i++)u[i]=s.charCodeAt(i);
new Response(new Blob([u]).stream().pipeThrough(new DecompressionStream("deflate-raw"))).text()
.then(function(t){run(JSON.parse(t));},function(){R.dataset.state="failed";});
function run(D){
var P=R.querySelector(".panel"),HL=document.getElementById("ROOT-hl"),OL=R.querySelector("ol.hops"),
LIVE=R.querySelector(".sr"),PK=document.getElementById("ROOT-pkt"),XM=document.getElementById("ROOT-x"),OUT=R.querySelector("p.out");
var cur=D.start,timer=null,ans={},noarp=false,shut={},drawn=null;
function e(s){return String(s).replace(/[&<>"]/g,function(c){return{"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c];});}
function gate(){var g=Infinity;for(var k in D.q){k=+k;if(k>=D.start&&!(k in ans)&&k<g)g=k;}return g;}
function feedback(q,c){return(c==q.a?"Right. ":c<0?"Skipped: the answer is "+q.c[q.a]+". ":"Not quite: the answer is "+q.c[q.a]+". ")+q.x;}
function quiz(q,c){var b="";q.c.forEach(function(t,i){var k=c===undefined?"":i==q.a?" right":i==c?" wrong":"";
b+='<button class="ch'+k+'" data-c="'+i+'"'+(c===undefined?"":" disabled")+'>'+e(t)+'</button>';});
return '<div class="quiz"><p class="qq">Predict: '+e(q.q)+'</p><div class="qc">'+b+'</div><p class="qx">'+(c===undefined?"":e(feedback(q,c)))+'</p></div>';}
function why(h){var o='<ul class="why">';if(h.k.length)h.k.forEach(function(d){o+='<li>'+e(d)+'</li>';});
else o+='<li class="none">no decision recorded here: the frame just passes this point</li>';return o+'</ul>';}
function ba(h){var b=h.b;if(!b)return"";var o=['<div class="ba"><table><thead><tr><th>Field</th><th>Before: hop '+h.i+' '+e(h.w+" "+h.dir)+'</th><th>After: '+e(b.n<0?"not captured again":"hop "+b.n+" "+D.hops[b.n].w+" "+D.hops[b.n].dir)+'</th><th>Changed by</th></tr></thead><tbody>'],g=null;
b.r.forEach(function(r){if(r[0]!==g){g=r[0];o.push('<tr class="grp"><td colspan="4">'+e(g)+'</td></tr>');}
function cell(v,w){return '<td>'+e(v||"\u2014")+(w?'<span class="ow">'+e(w)+'</span>':'')+'</td>';}
o.push('<tr class="'+(r[2]!==r[3]?"chg":"same")+'"><td>'+e(r[1])+'</td>'+cell(r[2],r[5])+cell(r[3],r[6])+'<td>'+(r[4]>=0?'<span class="n">'+(r[4]+1)+'</span> '+e(b.c[r[4]][4]):"")+'</td></tr>');});
o.push('</tbody></table><ol class="rw">');
b.c.forEach(function(c,i){var l='<li><span class="n">'+(i+1)+'</span> <b>'+e(c[0])+'</b>';if(c[1])l+='<span class="via"> via '+e(c[1])+'</span>';
if(c[5])l+='<span class="m">match: '+e(c[2]||"(every packet)")+'</span>';if(c[3])l+='<span class="m">action: '+e(c[3])+'</span>';
if(c[6])l+='<span class="m">'+e(c[6])+'</span>';o.push(l+'</li>');});
o.push('</ol>');b.t.forEach(function(n){o.push('<p class="note">'+e(n)+'</p>');});o.push('</div>');return o.join("");}
function panel(i){var h=D.hops[i],F=D.frames[h.f],q=D.q[i],o=[],flat=0,ch={},ad={},said={},op={};
if(q&&!(i in ans))return '<div class="title">'+e(h.t)+'</div>'+quiz(q);
h.c.forEach(function(k){ch[k]=1;});h.a.forEach(function(k){ad[k]=1;});h.x.forEach(function(x){said[x[0]]=x[1];});h.o.forEach(function(x){op[x[0]]=x[1];});
o.push('<div class="title">'+e(h.t+(h.v?" \u00b7 "+h.v:""))+'</div>');if(q)o.push(quiz(q,ans[i]));
o.push('<div class="reveal">');if(h.y)o.push('<div class="drop" role="note"><b>\u2715 Dropped here</b> '+e(h.y)+'</div>');
o.push(why(h));if(h.d.length)o.push('<pre class="dl">'+e(h.d.join("\n"))+'</pre>');o.push(ba(h));o.push('<div class="hdr">');
var map=[];for(var n=0;n<F.x.length/2;n++)map.push([-1,-1]);
F.L.forEach(function(l,li){var a=ad[li];for(var b=l[2];b<l[3];b++)map[b]=[li,-1];
o.push('<div class="ly L'+li+(a?' added':'')+'" data-l="'+e(l[1])+'"><div class="lt" tabindex="0" role="button" aria-expanded="true">'+e(l[0])+' <span class="rng">bytes '+l[2]+'-'+(l[3]-1)+'</span>'+(a?' <b>added</b>':'')+'</div><table>');
l[4].forEach(function(f){var m=D.fields[f[0]];for(var b=f[1];b<f[2];b++)map[b]=[li,flat];
o.push('<tr class="fld'+(ch[flat]?' chg':'')+'" data-f="'+flat+'" tabindex="0"><td class="fn">'+e(m[0])+'</td><td class="fv">'+e(f[3])+'</td><td class="fm">'+(flat in said?e(said[flat])+'<span class="gm">'+e(m[1])+'</span>':e(m[1]))+'</td></tr>');
(op[flat]||[]).forEach(function(p){o.push('<tr class="opt" data-f="'+flat+'"><td class="fn">option</td><td class="fv">'+e(p[0])+'</td><td class="fm">'+e(p[1])+'</td></tr>');});flat++;});
o.push('</table></div>');});
if(h.rm.length)o.push('<div class="rm">Removed since hop '+h.p+': '+e(h.rm.join(", "))+'</div>');
o.push('</div><div class="hex" aria-label="the frame\'s bytes">');
for(var off=0;off<map.length;off+=16){o.push('<div class="hrow"><span class="off">'+('000'+off.toString(16)).slice(-4)+'</span>');
for(var b=off;b<Math.min(off+16,map.length);b++)o.push('<span class="b L'+map[b][0]+(ch[map[b][1]]&&!ad[map[b][0]]?' c':'')+'" data-f="'+map[b][1]+'">'+F.x.substr(2*b,2)+'</span>');o.push('</div>');}
o.push('</div></div>');return o.join("");}
function row(k,g){var h=D.hops[k],c="r-"+h.r+(k==cur?" on":"")+(k==g?" ask":"");
var t=(k<10?" ":"")+k+" "+e(h.w)+" "+h.dir+" ";
if(k==g)t+='<span class="q">? predict first</span>';else{if(h.v=="dropped"&&h.r!="arp")t+='<b class="x" aria-label="dropped">\u2715</b> ';
t+='<span class="s">'+e(h.s)+(h.si?'<span class="in">inner '+e(h.si)+'</span>':'')+'</span>';}
return '<li data-i="'+k+'" class="'+c+'" tabindex="0">'+t+'</li>';}
function rows(){var g=gate(),L;if(g!==drawn){var o=[];for(var k=0;k<D.hops.length&&k<=g;k++)o.push(row(k,g));OL.innerHTML=o.join("");drawn=g;}
L=OL.querySelectorAll("li");for(var k=0;k<L.length;k++)L[k].classList.toggle("on",k==cur);
if(OUT&&g===Infinity&&!OUT.textContent)OUT.textContent=D.out;}
function show(i){cur=Math.max(0,Math.min(D.hops.length-1,i));var h=D.hops[cur],hid=D.q[cur]&&!(cur in ans);P.innerHTML=panel(cur);
for(var s in shut)if(shut[s]){var y=P.querySelector('.ly[data-l="'+s+'"]');if(y)fold(y,true);}
var g=[];D.seg.forEach(function(x){if(x[1]>cur)g.push("#ROOT-e"+x[0]);});
HL.textContent=h.e.map(function(n){return "#ROOT-e"+n+" path";}).join(",")+"{"+D.css+"}"+(g.length?g.join(",")+"{visibility:hidden}":"");
var dead=h.v=="dropped"&&!hid;if(PK&&h.m){PK.setAttribute("transform","translate("+h.m[0]+" "+h.m[1]+")");PK.style.display=dead?"none":"";}
if(XM&&h.m){XM.setAttribute("transform","translate("+h.m[0]+" "+h.m[1]+")");XM.style.display=dead?"":"none";}
rows();var it=OL.querySelector('li[data-i="'+cur+'"]');if(it&&OL.scrollHeight>OL.clientHeight){OL.scrollTop=it.offsetTop-OL.offsetTop-(OL.clientHeight-it.offsetHeight)/2;}
R.querySelector(".pos").textContent="hop "+cur+" of "+(D.hops.length-1);R.dataset.hop=cur;
LIVE.textContent=hid?h.t+". Predict: "+D.q[cur].q:h.t+(h.v?" \u00b7 "+h.v:"")+". "+(h.y?"Dropped: "+h.y:h.s);}
function mark(i,c){ans[i]=c;show(i);}
function go(i){var d=i<cur?-1:1;while(noarp&&i>=0&&i<D.hops.length&&D.hops[i].r=="arp")i+=d;
if(i<0||i>=D.hops.length)return false;var g=gate();
if(i>g){if(cur==g){mark(g,-1);LIVE.textContent="Skipped. "+feedback(D.q[g],-1);return false;}i=g;}
show(i);return true;}
function fold(y,s){y.classList.toggle("shut",s);y.querySelector(".lt").setAttribute("aria-expanded",s?"false":"true");}
function stop(){if(timer){clearInterval(timer);timer=null;R.querySelector('[data-a="play"]').textContent="Play";}}
function level(v){R.setAttribute("data-level",v);
var bs=R.querySelectorAll("[data-lv]");for(var k=0;k<bs.length;k++)bs[k].setAttribute("aria-pressed",bs[k].getAttribute("data-lv")==v?"true":"false");}
function act(t){var a=t.getAttribute&&t.getAttribute("data-a"),lv=t.getAttribute&&t.getAttribute("data-lv");
if(lv){level(lv);try{localStorage.setItem("netsim-level",lv);}catch(x){}}
else if(a=="next"){stop();go(cur+1);}else if(a=="prev"){stop();go(cur-1);}
else if(a=="drop"){stop();go(D.drop);}
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
if(f===null)return;s=P.querySelectorAll('tr.fld[data-f="'+f+'"],.hex [data-f="'+f+'"]');for(k=0;k<s.length;k++)s[k].classList.add("on");}
R.addEventListener("mouseover",function(ev){var t=ev.target.closest&&ev.target.closest("tr.fld,.hex .b");if(t&&t.getAttribute("data-f")!="-1")pick(t.getAttribute("data-f"));});
R.addEventListener("focusin",function(ev){var t=ev.target.closest&&ev.target.closest("tr.fld");if(t)pick(t.getAttribute("data-f"));});
try{var v=localStorage.getItem("netsim-level");if(v&&/^(minimal|summary|detailed)$/.test(v))level(v);}catch(x){}
show(cur);R.dataset.state="ready";}})();"""
