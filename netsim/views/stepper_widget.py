"""The stepper's live face: ipywidgets driven by Python callbacks (needs a running kernel).

The same panels as the static page (stepper_panel.panel_html), the same level switch and the
same rule for questions: until a question is answered, its hop shows only the question, and the
hop picker, the diagram's path and the outcome stop there.
"""

from __future__ import annotations

import re
from html import escape

from .diagram import HIGHLIGHT, diagram_model, dom_ids, marker_xy, render_svg, walked_css, min_width_px
from .predict import Challenge, gate
from .sentences import outcome_text
from .stepper_assets import LEVELS, PICK, css
from .stepper_panel import panel_html, summaries


def build(st):
    """The widget for Stepper `st`: VBox([controls, hop picker, diagram, question, panel])."""
    import ipywidgets as W

    trace = st.trace
    n = len(trace)
    uid = f"{st._uid or 'live'}-w"
    base = diagram_model(st.cluster, trace) if st.cluster is not None else None
    svg = render_svg(base, uid) if base is not None else ""
    sheet = css(uid, min_width_px(base) if base is not None else 600)
    where = st.where()
    slider = W.IntSlider(value=st.start, min=0, max=n - 1, description="hop", continuous_update=False)
    play = W.Play(value=st.start, min=0, max=n - 1, interval=1200)
    W.jslink((play, "value"), (slider, "value"))
    prev, nxt = W.Button(description="Prev"), W.Button(description="Next")
    noarp = W.ToggleButton(description="Hide ARP", value=False)
    level = W.ToggleButtons(options=list(LEVELS), value=st.level, description="detail",
                            style={"button_width": "auto"})
    controls = [prev, nxt, play, slider, noarp, level]
    if st.drop is not None:
        to_drop = W.Button(description="Go to the drop")
        controls.append(to_drop)
    pick = W.Dropdown(options=[], layout=W.Layout(width="60%"))
    dia, panel, quiz, out = W.HTML(), W.HTML(), W.VBox(), W.HTML()
    answered: dict[int, int | None] = {}
    state = {"busy": False}

    def options() -> list:
        """The dropdown: no ARP hop when hidden, nothing after an unanswered question."""
        g = gate(st.challenges, answered, st.start)
        items = []
        for h in trace.hops:
            if (noarp.value and h.role == "arp") or h.index > g:
                continue
            label = f"{h.index:>2} {h.where} {h.direction}"
            mark = " ✕" if h.verdict == "dropped" and h.role != "arp" else ""
            items.append((label + (" ? predict first" if h.index == g else f"{mark} {summaries(h)[0]}"), h.index))
        return items

    def render(i: int) -> None:
        view = st.views[i]
        ch = st._quiz.get(i)
        hidden = ch is not None and i not in answered
        if base is not None:
            m = diagram_model(st.cluster, trace, i)
            ids = dom_ids(m, uid)
            marks = ",".join(f"#{ids[h]} path" for h in sorted(m.highlighted) if h in ids)
            x, y = marker_xy(base, trace.hops[i].where)
            dead = view.verdict == "dropped" and not hidden
            dot = (f"#{uid}-pkt{{transform:translate({x}px,{y}px)" + (";display:none" if dead else "") + "}")
            dia.value = (f'<div id="{uid}d"><style>{sheet.replace("#" + uid, "#" + uid + "d")}{marks}{{{HIGHLIGHT}}}'
                         f'{walked_css(m, uid, i)}{dot}</style><div class="dia">{svg}</div>'
                         + (f'<p style="color:#a8321f;font-weight:600">✕ dropped at {escape(view.title)}</p>' if dead else "")
                         + "</div>")
        html = panel_html(view, ch, where, answered=ch is not None and not hidden)
        html = re.sub(r'<div class="quiz">.*?<p class="qx"></p></div>', "", html, count=1, flags=re.S)
        hover = "".join(f'#{uid}:has([data-f="{k}"]:hover) [data-f="{k}"]{{{PICK}}}'
                        for k in range(sum(len(l.fields) for l in view.layers)))
        panel.value = (f'<div id="{uid}" data-level="{level.value}"><style>{sheet}{hover}</style>'
                       f'<div class="panel">{html}</div></div>')
        quiz.children = _quiz_widgets(ch, answered, lambda: refresh(i)) if ch is not None else ()
        done = gate(st.challenges, answered, st.start) == float("inf")
        out.value = f"<p>{escape(outcome_text(trace.outcome))}</p>" if done else ""

    def refresh(i: int) -> None:
        state["busy"] = True
        pick.options = options()
        pick.value = i if i in [v for _, v in pick.options] else None
        state["busy"] = False
        render(i)

    def go(i: int, step: int = 1) -> None:
        while noarp.value and 0 <= i < n and trace.hops[i].role == "arp":
            i += step
        g = gate(st.challenges, answered, st.start)
        if 0 <= i < n:
            slider.value = int(min(i, g))

    slider.observe(lambda change: refresh(change["new"]), "value")
    pick.observe(lambda change: None if state["busy"] or change["new"] is None else go(change["new"]), "value")
    prev.on_click(lambda _: go(slider.value - 1, -1))
    nxt.on_click(lambda _: go(slider.value + 1))
    level.observe(lambda _: render(slider.value), "value")
    if st.drop is not None:
        to_drop.on_click(lambda _: go(st.drop))

    def arp_toggled(_: object) -> None:
        refresh(slider.value)
        if trace.hops[slider.value].role == "arp":
            go(slider.value)

    noarp.observe(arp_toggled, "value")
    refresh(st.start)
    return W.VBox([W.HBox(controls, layout=W.Layout(flex_flow="row wrap")), pick, dia, quiz, panel, out])


def _quiz_widgets(ch: Challenge, answered: dict[int, int | None], refresh) -> tuple:
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
    items = [label, W.HBox(buttons, layout=W.Layout(flex_flow="row wrap"))]
    if ch.hop in answered:
        items.append(W.HTML(escape(ch.feedback(answered[ch.hop]))))
    return tuple(items)
