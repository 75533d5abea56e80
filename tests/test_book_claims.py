"""The built book states each corrected claim of issue #14 the right way, and no longer the wrong way.

Each entry below names a page of the built HTML, phrases that must be on it and phrases that
must not. Pages are compared as normalised text of their main article (markup dropped,
whitespace collapsed, typographic quotes and dashes made plain, lower case), so a rewording
of markup cannot hide a claim and a claim cannot pass by sitting in an attribute.

The book used is _build/html (`make html`) when every checked page there is newer than its
source; otherwise the book is built into a temporary folder with the Makefile's command, so
a stale or missing build is never what passes or fails.
"""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

REPO = Path(__file__).resolve().parent.parent
BUILT = REPO / "_build" / "html"
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"
BUILD = [str(JUPYTER_BOOK), "build", "-W", "-n", "--keep-going", "--config", "book/_config.yml",
         "--toc", "book/_toc.yml"]
PLAIN = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2212": "-",
                       "\u2013": "-", "\u2014": "-", "\u00a0": " "})


@dataclass(frozen=True)
class Claim:
    """One corrected claim: where it is made, what the page must say and what it must not."""

    name: str
    page: str                      # repo-relative source path without extension
    right: tuple[str, ...]
    wrong: tuple[str, ...] = ()


CLAIMS = (
    Claim("1 restarting flanneld keeps an existing flannel.1's MTU", "notebooks/10-troubleshooting",
          right=("restarting flanneld does not change the mtu of an existing flannel.1",
                 "ensurelink reuses an existing device",
                 "it does not compare the mtu",
                 "the fix is to delete flannel.1 (ip link delete flannel.1)",
                 'or to set "mtu": 1400 in the backend section of net-conf.json'),
          wrong=("so restarting it (and the pods, whose mtu came from flannel_mtu) fixes it",)),
    Claim("2 flannel ships more backends (intro)", "book/intro",
          right=("describes the others flannel ships (wireguard, ipip, ipsec",),
          wrong=("flannel's other two backends",)),
    Claim("2 flannel ships more backends (ch06)", "notebooks/06-backends",
          right=("flannel v0.28.9 ships more than the three this book models",
                 "wireguard (encrypted tunnels", "ipip, ipsec"),
          wrong=("can cross the underlay in three ways",)),
    Claim("3+4 the oversize drop: MTU plus 4, rx_dropped and tx_dropped (ch05)", "notebooks/05-vxlan-across-nodes",
          right=("of up to the peer's mtu plus 14 (ethernet) plus 4 (vlan_hlen, room for a vlan tag)",
                 "ip packets of up to 1454 bytes get through",
                 "the drop shows in the host veth's rx_dropped counter and in the pod eth0's tx_dropped"),
          wrong=("a veth drops what exceeds its peer's mtu",
                 "the drop shows only in the host veth's rx_dropped")),
    Claim("3+4 the oversize drop: MTU plus 4, rx_dropped and tx_dropped (ch10)", "notebooks/10-troubleshooting",
          right=("the peer's mtu plus 14 bytes of ethernet header plus 4 (vlan_hlen",
                 "an ip packet of up to 1454 bytes passes a 1450-byte host veth",
                 "as rx_dropped on the host veth and as tx_dropped on the pod's eth0"),
          wrong=("a veth drops a frame bigger than the receiving end's mtu",
                 "counts it in that device's rx_dropped")),
    Claim("5 one join: 3(N-1) on the other nodes plus 3(N-1) on the joining node", "notebooks/11-scale",
          right=("3(n - 1) changes on the other nodes",
                 "another 3(n - 1) changes on the joining node",
                 "1000 nodes: 2,997,000 vxlan entries in the cluster; one node joining: 2,997 changes on the "
                 "other nodes plus 2,997 on the joining node"),
          wrong=("one join causes 3(n - 1) changes across the cluster",
                 "2,997 changes when one node joins")),
    Claim("6 NodePort and node-to-remote-pod traffic are encapsulated too", "notebooks/09-summary",
          right=("whatever a node routes to a pod on another node is encapsulated",
                 "the nodeport request once it has been dnated to pod-c (scenario 5)",
                 "a node's own packets to a remote pod"),
          wrong=("only traffic between pods on different nodes is encapsulated",)),
    Claim("7 the runtime creates the netns, pause joins it (ch02)", "notebooks/02-containers-in-a-pod",
          right=("the runtime (containerd, say) creates the pod's network namespace itself",
                 "a tiny pause container that joins the namespace"),
          wrong=("network namespace held open by a tiny pause container",)),
    Claim("7 the runtime creates the netns, pause joins it (glossary)", "book/glossary",
          right=("the network namespace the container runtime (containerd, cri-o) creates for a pod",
                 "the pause container joins it"),
          wrong=("held by the pause container",)),
    Claim("versions box in the intro", "book/intro",
          right=("versions where behaviour depends on a version, the chapters say so",
                 "linux 6.18", "flannel v0.28.9", "kube-proxy of kubernetes v1.37, in iptables mode",
                 "and its nftables mode (ga since v1.33)", "from v1.31 that drop counted by",
                 "flannel-io/cni-plugin at commit 092e6d2", "containernetworking/plugins at commit 3d27709")),
    Claim("the intro introduces the article", "book/intro",
          right=("the article this book answers", "kubernetes data access flow",
                 "a section where the article differs")),
    Claim("FLANNEL-POSTRTG's layout is versioned", "notebooks/08-pod-to-outside",
          right=("are what flannel v0.21.3 and later write", "v0.20.0 to v0.21.2 put the jump at the top",
                 "before v0.20 there was no flannel-postrtg chain")),
    Claim("kube-proxy's chains are versioned", "notebooks/07-nodeport",
          right=("kube-proxy, in its default iptables mode", "pr #109060 in v1.24", "since v1.31 each",
                 "nodeport has a second kube-nodeports rule")),
    Claim("kube-proxy's nftables mode is shown", "notebooks/07-nodeport",
          right=("the same nodeport in nftables mode", "numgen random mod n", "\"enablenftables\": true",
                 "ip kube-proxy prerouting: nat-prerouting -> services handle 54")),
    Claim("the default backend without Backend is udp", "notebooks/05-vxlan-across-nodes",
          right=("a net-conf.json with no backend at all gets udp instead",),
          wrong=("flannel's default backend is vxlan",)),
    Claim("br_netfilter check is versioned", "notebooks/03-pod-to-pod-same-node",
          right=("since v0.26.0 flanneld checks for it at start-up",)),
    Claim("the conformance appendix lists every lab family and every known deviation", "book/appendix/conformance",
          right=("lab families", "scenarios", "mtu and fragmentation", "state views", "iptables text",
                 "known deviations, with their evidence",
                 "found and fixed (the cause was in the lab, not in the model",
                 "the veth's limit: a 1454-byte packet (mtu + 4) passes the veth",
                 "the veth's limit: a 1455-byte packet (mtu + 5) is dropped", "rx_dropped", "tx_dropped"),
          wrong=("known deviation (second-fragment-ttl)",)),
    Claim("window scale, tcp_rmem and checksum offload are versioned", "book/appendix/real-cluster",
          right=("window scale 10 on linux 6.16 and later", "572be9bf9d0d",
                 "with transmit checksum offload on", "(incorrect)")),
)


def normalise(html: str) -> str:
    """The main article's text: no markup, plain quotes and dashes, single spaces, lower case."""
    soup = BeautifulSoup(html, "html.parser")
    article = soup.select_one("main#main-content article") or soup
    for hidden in article.select("script, style, .headerlink"):
        hidden.decompose()
    text = unicodedata.normalize("NFKC", article.get_text()).translate(PLAIN)
    return re.sub(r"\s+", " ", text).strip().lower()


def _source(page: str) -> Path:
    for ext in (".ipynb", ".md"):
        if (REPO / f"{page}{ext}").is_file():
            return REPO / f"{page}{ext}"
    raise FileNotFoundError(page)


def _up_to_date(html: Path) -> bool:
    pages = {claim.page for claim in CLAIMS}
    return all((html / f"{p}.html").is_file()
               and (html / f"{p}.html").stat().st_mtime >= _source(p).stat().st_mtime for p in pages)


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, str]:
    html = BUILT
    if not _up_to_date(html):
        out = tmp_path_factory.mktemp("book")
        proc = subprocess.run([*BUILD, "--path-output", str(out), "."], cwd=REPO, capture_output=True,
                              text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        html = out / "_build" / "html"
    return {claim.page: normalise((html / f"{claim.page}.html").read_text(encoding="utf-8")) for claim in CLAIMS}


def test_normalise_drops_markup_and_typography():
    html = ('<main id="main-content"><article><p>The pod\u2019s <code><span class="pre">eth0</span></code>'
            '\n counts 3(N\u00a0\u2212\u00a01) <a class="headerlink" href="#x">#</a></p></article></main>')
    assert normalise(html) == "the pod's eth0 counts 3(n - 1)"


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.name)
def test_the_right_statement_is_in_the_built_page(pages, claim):
    text = pages[claim.page]
    missing = [phrase for phrase in claim.right if phrase not in text]
    assert missing == [], f"{claim.page}: missing {missing}"


@pytest.mark.parametrize("claim", [c for c in CLAIMS if c.wrong], ids=lambda c: c.name)
def test_the_wrong_statement_is_gone_from_the_built_page(pages, claim):
    text = pages[claim.page]
    present = [phrase for phrase in claim.wrong if phrase in text]
    assert present == [], f"{claim.page}: still says {present}"


def test_a_wrong_statement_would_be_caught():
    """The check is not vacuous: the old sentence of correction 1, put back, is found."""
    old = ('<main id="main-content"><article><p><code><span class="pre">flanneld</span></code> derives the MTU '
           'from the interface at start-up, so restarting it (and the pods, whose MTU came from '
           '<code><span class="pre">FLANNEL_MTU</span></code>) fixes it.</p></article></main>')
    claim = CLAIMS[0]
    assert any(phrase in normalise(old) for phrase in claim.wrong)
