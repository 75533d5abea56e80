"""The stepper as a reader meets it in the built book, offline: keys, the ARP toggle, dark mode,
phones, contrast, the live region and a hovered field beside its bytes. Each check waits for
the condition it reads (the page loaded, the steppers ready), never for a quiet network.

The chapter pages store the stepper output of their last execution, so each page here is the
built chapter (theme, page CSS, sticky header) with its stepper re-rendered by this netsim:
written next to links to the built book's assets, so it loads exactly like the original.
Run `make html` first; a missing build fails, never skips.
"""

from __future__ import annotations

import re

import pytest

import netsim
from netsim.views import Stepper
from tools import pagecheck
from tools.pagecheck import HTML, MAIN_CONTENT
from tools.toc import toc_files

CHAPTERS = [name for name in toc_files() if name.startswith("notebooks/")]
PAGE = "notebooks/05-vxlan-across-nodes"
OLD = re.compile(r'<div class="netsim-stepper".*?\}\)\(\);</script></div>', re.S)


@pytest.fixture(scope="module")
def scenario4():
    cluster = netsim.reference_cluster()
    return cluster, netsim.scenarios.pod_to_pod_cross_node(cluster=cluster)


@pytest.fixture(scope="module")
def chapter(tmp_path_factory, scenario4):
    """The VXLAN chapter with its first stepper re-rendered (predict=True, as the chapter asks)."""
    src = HTML / f"{PAGE}.html"
    assert src.is_file(), f"{src} is missing: build the book first (make html)"
    root = tmp_path_factory.mktemp("book")
    for entry in HTML.iterdir():
        if entry.name != "notebooks":
            (root / entry.name).symlink_to(entry)
    (root / "notebooks").mkdir()
    cluster, trace = scenario4
    stepper = Stepper(trace, cluster, predict=True)
    html = src.read_text(encoding="utf-8")
    assert OLD.search(html), "the chapter has no stepper"
    page = root / f"{PAGE}.html"
    page.write_text(OLD.sub(lambda _: stepper.to_html(), html, count=1), encoding="utf-8")
    return page, stepper


def _open(browser, path, width=1366, height=900, theme="light"):
    context = browser.new_context(viewport={"width": width, "height": height})
    context.add_init_script(f"localStorage.setItem('theme','{theme}');localStorage.setItem('mode','{theme}')")
    requests, errors = [], []

    def route(r):
        if r.request.url.startswith(pagecheck.LOCAL_SCHEMES):
            r.continue_()
        else:
            requests.append(r.request.url)
            r.abort()
    context.route("**/*", route)
    pg = context.new_page()
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(path.as_uri(), wait_until="load")
    pg.wait_for_function(pagecheck.READY)          # the page loaded and its steppers are ready
    return context, pg, requests, errors


@pytest.fixture
def page(browser, chapter):
    path, stepper = chapter
    context, pg, requests, errors = _open(browser, path)
    uid = pg.get_attribute(f"{MAIN_CONTENT} .netsim-stepper", "id")
    yield pg, f"#{uid}", stepper
    assert requests == [] and errors == []
    context.close()


def test_arrow_keys_step_when_the_stepper_has_focus(page):
    pg, st, _ = page
    pg.focus(st)
    pg.keyboard.press("ArrowRight")
    assert pg.get_attribute(st, "data-hop") == "1"
    pg.keyboard.press("ArrowRight")
    pg.keyboard.press("ArrowLeft")
    assert pg.get_attribute(st, "data-hop") == "1"
    pg.focus(f"{st} ol.hops li[data-i='5']")        # a hop row works with Enter
    pg.keyboard.press("Enter")
    assert pg.get_attribute(st, "data-hop") == "5"
    outline = pg.eval_on_selector(f"{st} ol.hops li[data-i='5']", "e => getComputedStyle(e).outlineStyle")
    assert outline != "none"


def test_the_live_region_announces_the_hop(page, scenario4):
    _, trace = scenario4
    pg, st, _ = page
    live = f"{st} [aria-live=polite]"
    before = pg.text_content(live)
    pg.click(f"{st} button[data-a=next]")
    after = pg.text_content(live)
    assert before != after and after.startswith(f"Hop 1 of {len(trace) - 1}: {trace[1].where} {trace[1].direction}")


def test_hide_arp_removes_arp_rows_and_steps_over_them(page, scenario4):
    _, trace = scenario4
    pg, st, _ = page
    arp = [h.index for h in trace.hops if h.role == "arp"]
    assert pg.is_visible(f"{st} ol.hops li[data-i='{arp[0]}']")
    pg.click(f"{st} button[data-a=arp]")
    assert pg.get_attribute(f"{st} button[data-a=arp]", "aria-pressed") == "true"
    assert not any(pg.is_visible(f"{st} ol.hops li[data-i='{i}']") for i in arp)
    first = next(h.index for h in trace.hops if h.role != "arp")
    assert pg.get_attribute(st, "data-hop") == str(first)       # hop 0 is ARP: the stepper moved on
    pg.click(f"{st} button[data-a=next]")
    assert int(pg.get_attribute(st, "data-hop")) not in arp


def test_an_unanswered_question_hides_the_rows_and_path_after_it(page, scenario4):
    cluster, trace = scenario4
    pg, st, stepper = page
    q = stepper.challenges[0]
    assert pg.is_visible(f"{st} ol.hops li[data-i='{q.hop}']")
    assert not pg.is_visible(f"{st} ol.hops li[data-i='{q.hop + 1}']")
    assert q.correct not in pg.inner_text(f"{st} ol.hops")
    pg.click(f"{st} ol.hops li[data-i='{q.hop}']")
    pg.click(f"{st} button[data-a=next]")                     # Next past it reveals it, skipped
    assert pg.get_attribute(st, "data-hop") == str(q.hop)
    assert pg.inner_text(f"{st} .quiz .qx").startswith(f"Skipped: the answer is {q.correct}.")
    assert pg.is_visible(f"{st} ol.hops li[data-i='{q.hop + 1}']")


def test_a_hovered_field_and_its_bytes_are_both_in_view_at_1366(page, scenario4):
    _, trace = scenario4
    pg, st, stepper = page
    (hop,) = trace.where("node1/eth0", "tx", "request")
    for c in stepper.challenges:
        if c.hop <= hop.index:
            pg.click(f"{st} ol.hops li[data-i='{c.hop}']")
            pg.click(f"{st} .quiz .ch >> nth=0")
    pg.click(f"{st} ol.hops li[data-i='{hop.index}']")
    for field in ("VNI", "Time to live"):
        row = pg.locator(f"{st} .panel tr.fld:has(td.fn:text-is('{field}'))").last
        row.hover()
        boxes = [row.bounding_box()] + pg.eval_on_selector_all(
            f"{st} .hex .b.on", "els => els.map(e => { const r = e.getBoundingClientRect();"
            " return {x: r.x, y: r.y, width: r.width, height: r.height}; })")
        assert len(boxes) > 1
        for b in boxes:
            # (a pixel of slack: Playwright scrolls a hovered row just into view, at sub-pixel offsets)
            assert -1 <= b["y"] and b["y"] + b["height"] <= 901 and 0 <= b["x"] and b["x"] + b["width"] <= 1366, (field, b)
    # beside each other, not stacked
    hdr = pg.locator(f"{st} .panel .hdr").bounding_box()
    hexd = pg.locator(f"{st} .panel .hex").bounding_box()
    assert hexd["x"] >= hdr["x"] + hdr["width"] - 1


def _luminance_js():
    return """(c) => { const m = c.match(/\\d+(\\.\\d+)?/g).map(Number);
      const f = v => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
      return 0.2126 * f(m[0]) + 0.7152 * f(m[1]) + 0.0722 * f(m[2]); }"""


CONTRAST_JS = """(sel) => { const L = %s;
  const bgOf = e => { for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor;
      if (!/rgba\\(.*, 0\\)$/.test(c) && c !== 'transparent') return c; } return 'rgb(255, 255, 255)'; };
  return [...document.querySelectorAll(sel)].filter(e => e.offsetParent !== null).slice(0, 40).map(e => {
    const a = L(getComputedStyle(e).color), b = L(bgOf(e)); const hi = Math.max(a, b), lo = Math.min(a, b);
    return (hi + 0.05) / (lo + 0.05); }); }""" % _luminance_js()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_stepper_follows_the_theme_and_keeps_its_contrast(browser, chapter, theme):
    path, _ = chapter
    context, pg, requests, errors = _open(browser, path, theme=theme)
    try:
        assert pg.get_attribute("html", "data-theme") == theme
        st = f"{MAIN_CONTENT} .netsim-stepper"
        bg = pg.eval_on_selector(st, "e => getComputedStyle(e).backgroundColor")
        lum = pg.evaluate(_luminance_js(), bg)
        assert (lum < 0.05) if theme == "dark" else (lum > 0.9), bg
        pg.click(f"{st} button[data-a=next]")
        for sel in (".off", "ol.hops li.r-arp", "ol.hops li.on", "td.fm", "td.fv", ".pos", ".rng", ".title",
                    "ul.why li", "button", "a.pcap", ".tools"):
            ratios = pg.evaluate(CONTRAST_JS, f"{st} {sel}")
            assert ratios and min(ratios) >= 4.5, (sel, min(ratios))
        # answered, the outcome shows; a routing hop lines up its headers before and after
        stepper = chapter[1]
        for q in stepper.challenges:
            pg.click(f"{st} ol.hops li[data-i='{q.hop}']")
            pg.click(f"{st} .quiz .ch >> nth=0")
        pg.click(f"{st} ol.hops li[data-i='{stepper.challenges[0].hop}']")
        for sel in (".out", ".ba td", ".ba th", "ol.rw li", ".quiz .qx", ".quiz button"):
            ratios = pg.evaluate(CONTRAST_JS, f"{st} {sel}")
            assert ratios and min(ratios) >= 4.5, (sel, min(ratios))
        # diagram labels: at least 11 px as rendered
        px = pg.eval_on_selector(f"{st} .dia svg", """s => { const k = s.getBoundingClientRect().width / s.viewBox.baseVal.width;
            return Math.min(...[...s.querySelectorAll('text')].map(t => parseFloat(getComputedStyle(t).fontSize) * k)); }""")
        assert px >= 11.0
        assert requests == [] and errors == []
    finally:
        context.close()


@pytest.mark.parametrize("name", toc_files())
def test_no_sideways_page_scroll_on_a_phone(browser, name):
    """Every page in the toc, the appendix's tables and long test paths included."""
    path = HTML / f"{name}.html"
    assert path.is_file(), f"{path} is missing: build the book first (make html)"
    context, pg, requests, _ = _open(browser, path, 390, 844)
    try:
        width = pg.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert width[0] <= width[1], width
        assert requests == []
    finally:
        context.close()


def test_the_new_stepper_on_a_phone_scrolls_inside_its_own_box(browser, chapter):
    path, _ = chapter
    context, pg, _, errors = _open(browser, path, 390, 844, theme="dark")
    try:
        sw, cw = pg.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert sw <= cw
        dia = pg.eval_on_selector(f"{MAIN_CONTENT} .netsim-stepper .dia",
                                  "d => [d.scrollWidth, d.clientWidth, getComputedStyle(d).overflowX]")
        assert dia[2] == "auto" and dia[0] > dia[1]       # the whole diagram is there, scrolled inside
        assert errors == []
    finally:
        context.close()


def test_the_controls_stay_in_view_while_the_panel_scrolls(page):
    pg, st, _ = page
    pg.evaluate(f"document.querySelector('{st} .panel').scrollIntoView({{block: 'end'}})")
    ctl = pg.locator(f"{st} .ctl").bounding_box()
    panel = pg.locator(f"{st} .panel").bounding_box()
    assert panel["y"] < 0 or ctl["y"] > pg.locator(st).bounding_box()["y"] + 1     # really scrolled past its place
    assert 0 <= ctl["y"] <= 100 and pg.is_visible(f"{st} button[data-a=next]")
    height = pg.locator(st).bounding_box()["height"]
    assert height < 2200, height                                                    # the header tree scrolls inside
