"""The stepper's static face in headless Chromium, offline: stepping, highlighting, predicting.

The page is generated here (into tmp_path), so this does not depend on the book build. Every
check waits for the element it reads (the stepper marks itself `data-state="ready"` once its
data is decoded), never for a time or a quiet network.
"""

from __future__ import annotations

import re

import pytest

import netsim
from netsim.views import Stepper, diagram_model
from netsim.views.diagram import dom_ids
from netsim.views.stepper import hop_views, panel_html


@pytest.fixture(scope="module")
def scenario4():
    cluster = netsim.reference_cluster()
    trace = netsim.scenarios.pod_to_pod_cross_node(cluster=cluster)
    return cluster, trace


@pytest.fixture
def page(browser, tmp_path, scenario4):
    cluster, trace = scenario4
    stepper = Stepper(trace, cluster, predict=True)
    html = stepper.to_html()
    path = tmp_path / "stepper.html"
    path.write_text(f'<!doctype html><html><head><meta charset="utf-8"><title>stepper</title></head>'
                    f'<body>{html}</body></html>', encoding="utf-8")
    context = browser.new_context()
    requests, errors = [], []

    def route(r):
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            requests.append(r.request.url)
            r.abort()
    context.route("**/*", route)
    pg = context.new_page()
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(path.as_uri())
    uid = re.search(r'class="netsim-stepper" id="([^"]+)"', html).group(1)
    pg.wait_for_selector(f"#{uid}[data-state=ready]")
    yield pg, uid, stepper
    assert requests == [], "the stepper asked the network for something"
    assert errors == []
    context.close()


def _normalised(pg, html: str) -> str:
    return pg.evaluate("h => { const d = document.createElement('div'); d.innerHTML = h; return d.innerHTML; }", html)


def test_next_walks_every_hop_and_the_views_follow(page, scenario4):
    pg, uid, stepper = page
    cluster, trace = scenario4
    quiz = {c.hop for c in stepper.challenges}
    views = hop_views(trace)
    where = stepper.where()
    for i, hop in enumerate(trace.hops):
        if i:
            pg.click(f"#{uid} button[data-a=next]")
        assert pg.get_attribute(f"#{uid}", "data-hop") == str(i)
        if i in quiz:       # only the question is in the page, then the hop once answered
            assert pg.locator(f"#{uid} .panel .reveal").count() == 0
            pg.click(f"#{uid} .quiz .ch >> nth=0")
            pg.wait_for_selector(f"#{uid} .panel .reveal")
        else:               # the script draws exactly what Python draws
            assert pg.inner_html(f"#{uid} .panel") == _normalised(pg, panel_html(views[i], where=where))
        assert pg.inner_text(f"#{uid} .panel .title").startswith(f"Hop {i} of {len(trace) - 1}: {hop.where} ")
        ids = dom_ids(diagram_model(cluster, trace), uid)
        style = pg.text_content(f"#{uid}-hl")
        assert f"#{ids[hop.where]} path" in style and f"#{ids[hop.netns]} path" in style
        changed = pg.eval_on_selector_all(f"#{uid} .panel tr.fld.chg td.fn", "els => els.map(e => e.textContent)")
        expected = [f.title for layer in views[i].layers for f in layer.fields
                    if views[i].diff.is_changed(layer, f.name)]
        assert changed == expected
        assert "on" in pg.get_attribute(f"#{uid} ol.hops li[data-i='{i}']", "class").split()
        assert pg.is_visible(f"#{uid} .panel .reveal")
    pg.click(f"#{uid} button[data-a=next]")
    assert pg.get_attribute(f"#{uid}", "data-hop") == str(len(trace) - 1)


def test_predict_mode_reveals_the_right_answer_and_quotes_the_decision(page, scenario4):
    pg, uid, stepper = page
    cluster, trace = scenario4
    q = stepper.challenges[0]
    assert pg.locator(f"#{uid} ol.hops li").count() == q.hop + 1          # nothing after the question
    pg.click(f"#{uid} ol.hops li[data-i='{q.hop}']")
    assert pg.inner_text(f"#{uid} .quiz .qq") == f"Predict: {q.question}"
    assert pg.locator(f"#{uid} .panel .reveal").count() == 0
    wrong = next(i for i in range(len(q.choices)) if i != q.answer)
    pg.click(f"#{uid} .quiz .ch[data-c='{wrong}']")
    pg.wait_for_selector(f"#{uid} .panel .reveal")
    assert "wrong" in pg.get_attribute(f"#{uid} .quiz .ch[data-c='{wrong}']", "class")
    assert "right" in pg.get_attribute(f"#{uid} .quiz .ch[data-c='{q.answer}']", "class")
    assert pg.inner_text(f"#{uid} .quiz .qx") == q.feedback(wrong)
    assert q.quote and q.quote in pg.inner_text(f"#{uid} .quiz .qx")
    assert pg.locator(f"#{uid} ol.hops li").count() > q.hop + 1            # the rows come back


def test_hovering_a_field_lights_its_bytes(page, scenario4):
    pg, uid, stepper = page
    _, trace = scenario4
    (hop,) = trace.where("node1/eth0", "tx", "request")
    for c in stepper.challenges:        # rows after an unanswered question are not in the page
        if c.hop <= hop.index:
            pg.click(f"#{uid} ol.hops li[data-i='{c.hop}']")
            pg.click(f"#{uid} .quiz .ch >> nth=0")
    pg.click(f"#{uid} ol.hops li[data-i='{hop.index}']")
    row = pg.locator(f"#{uid} .panel tr.fld:has(td.fn:text-is('VNI'))")
    row.hover()
    lit = pg.eval_on_selector_all(f"#{uid} .hex .b.on", "els => els.map(e => e.textContent)")
    assert lit == ["00", "00", "01"]
