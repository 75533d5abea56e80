"""The steppers of the built book explain each hop, ask before they show, and offer the trace.

On the book `make html` built, offline, in Debian's Chromium: the port meanings on a reply hop,
the owner of every address at the VXLAN hop, the headers before and after with the rule at
the NodePort DNAT hop, the level switch, no answer in the page before its question is
answered, enough questions across the book, the troubleshooting chapter's steps to the drop,
and the pcapng download, dissected by tshark. What a page should show is read from the data
the stepper carries (decoded here with netsim's own decoder), never typed in twice. Each check
waits for the element it reads, never for a time.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from netsim.views.stepper import decode_payload
from tools import pagecheck
from tools.pagecheck import HTML, MAIN_CONTENT
from tools.toc import toc_files

CHAPTERS = [name for name in toc_files() if name.startswith("notebooks/")]
# The chapters whose steppers ask questions.
ASKING = ["notebooks/02-containers-in-a-pod", "notebooks/03-pod-to-pod-same-node", "notebooks/04-host-to-pod",
          "notebooks/05-vxlan-across-nodes", "notebooks/06-backends", "notebooks/07-nodeport",
          "notebooks/08-pod-to-outside", "notebooks/10-troubleshooting", "notebooks/12-other-backends",
          "notebooks/15-when-packets-die", "notebooks/16-mtu", "notebooks/17-kube-proxy-modes"]
STEPPER = re.compile(r'<div class="netsim-stepper".*?\}\)\(\);</script></div>', re.S)
NODEPORT = "notebooks/07-nodeport"
TROUBLE = "notebooks/10-troubleshooting"
BACKENDS = "notebooks/12-other-backends"


def steppers_of(name: str) -> list[dict]:
    """The data of every stepper on a built page, in page order."""
    path = HTML / f"{name}.html"
    assert path.is_file(), f"{path} is missing: build the book first (make html)"
    return [decode_payload(m.group(0)) for m in STEPPER.finditer(path.read_text(encoding="utf-8"))]


@pytest.fixture
def page_of(browser):
    opened = []

    def open_(name: str, width: int = 1366, height: int = 900):
        context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
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
        pg.goto((HTML / f"{name}.html").as_uri(), wait_until="load")
        pg.wait_for_function(pagecheck.READY)
        opened.append((context, requests, errors))
        return pg

    yield open_
    for context, requests, errors in opened:
        context.close()
        assert requests == [] and errors == []


def _hop(data: dict, where: str, direction: str, role: str) -> int:
    (i,) = [h["i"] for h in data["hops"] if (h["w"], h["dir"], h["r"]) == (where, direction, role)]
    return i


def _answer_up_to(pg, st, data: dict, hop: int) -> None:
    """Answer (with the first choice) every question before `hop`, so that `hop` is reachable."""
    for q in sorted(int(k) for k in data["q"]):
        if q <= hop:
            pg.click(f"{st} ol.hops li[data-i='{q}']")
            pg.click(f"{st} .panel .quiz .ch >> nth=0")
            pg.wait_for_selector(f"{st} .panel .reveal")


def _go(pg, st, data: dict, hop: int) -> None:
    _answer_up_to(pg, st, data, hop)
    pg.click(f"{st} ol.hops li[data-i='{hop}']")
    pg.wait_for_selector(f"{st}[data-hop='{hop}'] .panel .reveal")


def _meaning(pg, st, layer: str, field: str) -> str:
    return pg.inner_text(f"{st} .panel .ly[data-l='{layer}'] tr.fld:has(td.fn:text-is('{field}')) td.fm")


def _first(pg, name: str) -> str:
    uid = pg.get_attribute(f"{MAIN_CONTENT} .netsim-stepper >> nth=0", "id")
    return f"#{uid}"


def test_a_reply_hop_says_which_side_each_port_is(page_of):
    data = steppers_of(NODEPORT)[0]
    pg = page_of(NODEPORT)
    st = _first(pg, NODEPORT)
    hop = _hop(data, "node1/eth0", "tx", "reply")
    _go(pg, st, data, hop)
    assert pg.inner_text(f"{st} .panel .ly[data-l='tcp'] tr.fld:has(td.fn:text-is('Source port')) td.fv") == "30080"
    assert _meaning(pg, st, "tcp", "Source port").startswith("the NodePort, the server side of this reply")
    assert _meaning(pg, st, "tcp", "Destination port").startswith("the client's port, the client side of this reply")


def test_the_vxlan_hop_names_the_owner_of_every_address(page_of):
    data = steppers_of(NODEPORT)[0]
    pg = page_of(NODEPORT)
    st = _first(pg, NODEPORT)
    _go(pg, st, data, _hop(data, "node1/eth0", "tx", "request"))
    owners = {("outer-ethernet", "Destination MAC"): "node2's eth0", ("outer-ethernet", "Source MAC"): "node1's eth0",
              ("outer-ipv4", "Source address"): "node1's eth0", ("outer-ipv4", "Destination address"): "node2's eth0",
              ("ethernet", "Destination MAC"): "node2's flannel.1 (VTEP)",
              ("ethernet", "Source MAC"): "node1's flannel.1 (VTEP)",
              ("ipv4", "Source address"): "node1's flannel.1 /32", ("ipv4", "Destination address"): "pod-c's eth0"}
    for (layer, field), owner in owners.items():
        assert _meaning(pg, st, layer, field).startswith(owner), (layer, field)


def test_the_nodeport_dnat_hop_shows_before_and_after_with_the_rule(page_of):
    data = steppers_of(NODEPORT)[0]
    pg = page_of(NODEPORT)
    st = _first(pg, NODEPORT)
    hop = _hop(data, "node1/eth0", "rx", "request")
    _go(pg, st, data, hop)
    head = pg.eval_on_selector_all(f"{st} .panel .ba th", "els => els.map(e => e.textContent)")
    assert head == ["Field", f"Before: hop {hop} node1/eth0 rx", f"After: hop {hop + 1} node1/flannel.1 tx", "Changed by"]
    row = pg.locator(f"{st} .panel .ba tr.chg:has(td:text-is('Destination address'))")
    assert row.is_visible()
    cells = row.locator("td").all_inner_texts()
    assert cells[1].startswith("192.168.50.11") and cells[2].startswith("10.244.1.2") and cells[3].endswith("DNAT")
    n = int(row.locator(".n").inner_text())
    rule = pg.locator(f"{st} .panel .ba ol.rw li").nth(n - 1)
    assert rule.is_visible()
    text = rule.inner_text()
    assert re.search(r"table nat, PREROUTING, chain KUBE-SEP-[A-Z0-9]{16}, rule 2", text), text
    assert 'match: -p tcp -m comment --comment "default/web" -m tcp' in text
    assert "action: DNAT --to-destination 10.244.1.2:8080" in text
    port = pg.locator(f"{st} .panel .ba tr.chg:has(td:text-is('Destination port'))").locator("td").all_inner_texts()
    assert port[1:3] == ["30080", "8080"] and port[3] == cells[3]


def test_the_level_switch_chooses_minimal_summary_or_detailed(page_of):
    data = steppers_of(NODEPORT)[0]
    pg = page_of(NODEPORT)
    st = _first(pg, NODEPORT)
    _go(pg, st, data, _hop(data, "node1/eth0", "rx", "request"))
    assert pg.get_attribute(st, "data-level") == "summary"
    assert pg.is_visible(f"{st} .panel ul.why") and not pg.is_visible(f"{st} .panel pre.dl")
    pg.click(f"{st} [data-lv=minimal]")
    pg.wait_for_selector(f"{st}[data-level=minimal]")
    assert pg.is_visible(f"{st} .panel .ba tr.chg") and not pg.is_visible(f"{st} .panel .ba tr.same")
    assert not pg.is_visible(f"{st} .panel ul.why") and not pg.is_visible(f"{st} .panel .hex")
    assert not pg.locator(f"{st} .panel td.fm").first.is_visible()
    assert pg.get_attribute(f"{st} [data-lv=minimal]", "aria-pressed") == "true"
    pg.click(f"{st} [data-lv=detailed]")
    pg.wait_for_selector(f"{st}[data-level=detailed] .panel pre.dl", state="visible")
    detail = pg.inner_text(f"{st} .panel pre.dl")
    assert re.search(r"table nat, PREROUTING, chain KUBE-SEP-\w+, rule 2 \(via PREROUTING > KUBE-SERVICES", detail)
    assert not pg.is_visible(f"{st} .panel ul.why") and pg.locator(f"{st} .panel .ba .via").first.is_visible()
    pg.click(f"{st} button[data-a=prev]")                         # the level stays as the reader steps
    pg.wait_for_selector(f"{st}[data-hop='{_hop(data, 'node1/eth0', 'rx', 'request') - 1}'] .panel ul.why",
                         state="attached")
    assert pg.get_attribute(st, "data-level") == "detailed" and not pg.is_visible(f"{st} .panel ul.why")


# JavaScript: the text a reader sees above an element (rendered text nodes that precede it).
TEXT_ABOVE = """(el) => { const main = document.querySelector('main#main-content article'); const out = [];
  const walk = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    if (!(el.compareDocumentPosition(n) & Node.DOCUMENT_POSITION_PRECEDING)) break;
    const p = n.parentElement; if (p && p.checkVisibility({visibilityProperty: true})) out.push(n.textContent); }
  return out.join(' '); }"""


@pytest.mark.parametrize("name", ASKING)
def test_no_answer_is_in_the_page_before_its_question_is_answered(page_of, name):
    found = steppers_of(name)
    assert any(d["q"] for d in found), f"{name} asks no question"
    pg = page_of(name)
    els = pg.locator(f"{MAIN_CONTENT} .netsim-stepper")
    assert els.count() == len(found)
    for k, data in enumerate(found):
        if not data["q"]:
            continue
        el = els.nth(k)
        dom = el.evaluate("e => e.textContent")          # every text node, hidden or not, scripts included
        above = el.evaluate(TEXT_ABOVE)
        gate = min(int(h) for h in data["q"])
        assert el.locator("ol.hops li").count() == gate + 1, "rows after the first question are in the page"
        assert el.locator(f"ol.hops li[data-i='{gate}'] .s").count() == 0
        # a tool's walk (Cluster.traceroute, ...) has no outcome line: nothing to give away
        assert el.locator("p.out").inner_text() == "" and (not data["out"] or data["out"] not in dom)
        for hop, q in data["q"].items():
            quotes = re.findall(r"«(.*?)»", q["x"])
            assert quotes, f"the feedback at hop {hop} quotes no decision"
            assert q["x"] not in dom
            for quote in quotes:
                assert quote not in dom, (name, hop, quote)
                assert quote not in above, (name, hop, quote)


def test_the_book_asks_enough_questions_of_enough_kinds_in_enough_chapters():
    per_chapter = {name: [q for d in steppers_of(name) for q in d["q"].values()] for name in CHAPTERS}
    asked = [q for qs in per_chapter.values() for q in qs]
    assert len(asked) >= 24
    assert len({q["k"] for q in asked}) >= 5
    assert sum(1 for qs in per_chapter.values() if qs) >= 8


def test_the_troubleshooting_chapter_steps_to_the_drop(page_of):
    found = steppers_of(TROUBLE)
    data = found[0]
    (gate,) = [int(h) for h in data["q"]]
    assert data["q"][str(gate)]["k"] == "drop" and data["drop"] > gate
    pg = page_of(TROUBLE)
    st = _first(pg, TROUBLE)
    above = pg.locator(st).evaluate(TEXT_ABOVE)
    assert "ping statistics" in above and "100% packet loss" in above       # it starts from the symptom
    pg.click(f"{st} [data-a=drop]")                     # unanswered: the way stops at the question
    pg.wait_for_selector(f"{st}[data-hop='{gate}'] .panel .quiz")
    q = data["q"][str(gate)]
    pg.click(f"{st} .panel .quiz .ch[data-c='{q['a']}']")
    pg.wait_for_selector(f"{st} .panel .quiz .qx:text-matches('^Right\\\\. ')")
    pg.click(f"{st} [data-a=drop]")
    drop = data["drop"]
    pg.wait_for_selector(f"{st}[data-hop='{drop}'] .panel .drop")
    assert pg.inner_text(f"{st} .panel .drop") == f"✕ Dropped here {data['hops'][drop]['y']}"
    assert pg.is_visible(f"{st} ol.hops li[data-i='{drop}'] b.x")
    uid = st[1:]
    assert pg.is_visible(f"#{uid}-x") and not pg.is_visible(f"#{uid}-pkt")
    assert sum(1 for d in found if d["drop"] >= 0) >= 6


def _answer_wrongly(pg, st: str, hop: int, q: dict) -> None:
    """Go to the question's hop, pick a wrong choice, and read that the stepper names the right one."""
    wrong = next(i for i in range(len(q["c"])) if i != q["a"])
    pg.click(f"{st} ol.hops li[data-i='{hop}']")
    pg.wait_for_selector(f"{st}[data-hop='{hop}'] .panel .quiz")
    pg.click(f"{st} .panel .quiz .ch[data-c='{wrong}']")
    pg.wait_for_selector(f"{st} .panel .quiz .qx:text-matches('^Not quite: the answer is ')")
    assert pg.inner_text(f"{st} .panel .quiz .qx").startswith(f"Not quite: the answer is {q['c'][q['a']]}.")


def _step_to_the_end(pg, st: str, data: dict) -> None:
    """Next, hop by hop, answering each question with its right choice, to the last hop."""
    last = len(data["hops"]) - 1
    for _ in range(last + len(data["q"])):
        hop = int(pg.get_attribute(st, "data-hop"))
        q = data["q"].get(str(hop))
        if q is not None and pg.locator(f"{st} .panel .quiz .ch").count():
            pg.click(f"{st} .panel .quiz .ch[data-c='{q['a']}']")
            pg.wait_for_selector(f"{st} .panel .quiz .qx:text-matches('^Right\\\\. ')")
        if hop == last:
            break
        pg.click(f"{st} [data-a=next]")
        pg.wait_for_selector(f"{st}[data-hop='{hop + 1}']")
    assert pg.get_attribute(st, "data-hop") == str(last)
    assert pg.inner_text(f"{st} p.out") == data["out"]          # the outcome shows once all is answered


def test_the_other_backends_chapter_steps_to_the_end_and_draws_its_layouts(page_of):
    [data] = steppers_of(BACKENDS)
    assert {q["k"] for q in data["q"].values()} == {"encap", "ttl"}
    pg = page_of(BACKENDS)
    st = _first(pg, BACKENDS)
    _step_to_the_end(pg, st, data)
    tables = pg.locator(f"{MAIN_CONTENT} table.netsim-layout")
    assert tables.count() == 4                          # the overview and three layouts
    captions = tables.locator("caption").all_inner_texts()
    assert any(c.startswith("ipip: 20 bytes") and "not modelled" in c for c in captions)
    assert any(c.startswith("wireguard: 60-75 bytes") for c in captions)


@pytest.mark.parametrize("index, case", [(7, 8), (8, 9), (9, 10), (10, 12)])
def test_a_new_troubleshooting_case_steps_from_its_question_to_its_end(page_of, index, case):
    """Cases 8, 9, 10 and 12 of chapter 10 (the page's 8th to 11th steppers; case 11 has none):
    each answers its questions, steps to the last hop, and goes back to the drop."""
    data = steppers_of(TROUBLE)[index]
    assert data["q"], f"case {case}'s stepper asks nothing"
    pg = page_of(TROUBLE)
    st = "#" + pg.get_attribute(f"{MAIN_CONTENT} .netsim-stepper >> nth={index}", "id")
    _step_to_the_end(pg, st, data)
    assert data["drop"] >= 0
    pg.click(f"{st} [data-a=drop]")
    pg.wait_for_selector(f"{st}[data-hop='{data['drop']}'] .panel .drop")


def test_the_downloaded_pcap_is_the_trace_and_tshark_dissects_its_vxlan(page_of, tmp_path):
    data = steppers_of(NODEPORT)[0]
    pg = page_of(NODEPORT)
    st = _first(pg, NODEPORT)
    link = pg.locator(f"{st} a.pcap")
    assert link.is_visible()
    name = link.get_attribute("download")
    assert re.fullmatch(r"ext-to-192\.168\.50\.11-30080-tcp-30080-[0-9a-f]{6}\.pcapng", name)
    with pg.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == name
    path = tmp_path / name
    download.save_as(path)
    out = subprocess.run(["tshark", "-r", str(path), "-d", "udp.port==8472,vxlan", "-T", "fields",
                          "-e", "frame.protocols", "-e", "ip.dst"], capture_output=True, text=True, check=True)
    frames = out.stdout.splitlines()
    assert len(frames) == len(data["hops"])
    encapsulated = [f for f in frames if f.startswith("eth:ethertype:ip:udp:vxlan:eth:ethertype:ip:tcp")]
    assert len(encapsulated) == sum(1 for h in data["hops"] if h["s"].startswith("outer "))
    assert all(f.split("\t")[1] in ("192.168.50.12,10.244.1.2", "192.168.50.11,10.244.0.0") for f in encapsulated)
