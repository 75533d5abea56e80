"""A chapter reads the same in the built book and in JupyterLab: no cross-page role, every link lands.

jupyterlab-myst resolves `{term}`, `{ref}`, `{numref}`, `{eq}` and `{doc}` only within the
notebook it renders; a role whose target is on another page shows there as an unresolved
reference. So a chapter's Markdown may use such a role only for a target the chapter itself
defines (a `(label)=` or a glossary in the same file), and links to other pages with plain
Markdown links, which both front ends follow. The strict build resolves those links
(netsim.views.booklinks); this test checks the same from the sources, without building: every
relative link's file exists, and its anchor is a glossary term's id or a `(label)=` there.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sphinx.util.nodes import _make_id

from tools.book_notebooks import book_notebooks
from tools.toc import REPO

ROLE = re.compile(r"\{(term|ref|numref|doc|eq|download)\}`([^`]*)`")
LINK = re.compile(r"(?<!!)\[(?:[^\[\]]|\\[\[\]]|\[[^\[\]]*\])*\]\(([^)\s]+)\)")
CHAPTERS = [REPO / nb.replace(".ipynb", ".md") for nb in book_notebooks()]


def markdown_text(path: Path) -> str:
    """A MyST notebook's Markdown: the file without its front matter and code cells."""
    text = path.read_text(encoding="utf-8").split("\n---\n", 1)[-1]
    return re.sub(r"^```\{code-cell\}.*?^```\s*$", "", text, flags=re.S | re.M)


def glossary_ids() -> set[str]:
    """The ids Sphinx gives the glossary's terms (`term-VXLAN`, `term-neighbour-table`)."""
    body = (REPO / "book" / "glossary.md").read_text().split("```{glossary}", 1)[1].split("```", 1)[0]
    return {_make_id("term-" + line.strip()) for line in body.splitlines()
            if line.strip() and not line[0].isspace() and not line.startswith(":")}


def labels(path: Path) -> set[str]:
    return set(re.findall(r"^\(([\w-]+)\)=\s*$", path.read_text(encoding="utf-8"), re.M))


def own_targets(text: str) -> set[str]:
    """What a role may point at inside the same page: its labels and its glossary's terms."""
    found = set(re.findall(r"^\(([\w-]+)\)=\s*$", text, re.M))
    if "```{glossary}" in text:
        body = text.split("```{glossary}", 1)[1].split("```", 1)[0]
        found |= {line.strip().lower() for line in body.splitlines() if line.strip() and not line[0].isspace()}
    return found


def cross_page_roles(text: str) -> list[str]:
    """The roles whose target the page does not define itself."""
    mine = own_targets(text)
    out = []
    for kind, body in ROLE.findall(text):
        target = re.sub(r"^.*<([^>]+)>$", r"\1", body).strip()
        if kind == "doc" or kind == "download" or target.lower() not in mine:
            out.append(f"{{{kind}}}`{body}`")
    return out


def bad_links(path: Path, text: str) -> list[str]:
    """Relative links whose file, glossary term or label does not exist."""
    bad = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue                                  # a URL, or a place in this page
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve()
        if not dest.is_file():
            bad.append(f"{target}: no file {file}")
        elif anchor:
            ids = glossary_ids() if dest == (REPO / "book" / "glossary.md") else labels(dest)
            if anchor not in ids:
                bad.append(f"{target}: {dest.name} has no {anchor!r}")
    return bad


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_a_chapter_uses_no_role_jupyterlab_cannot_resolve(path):
    assert cross_page_roles(markdown_text(path)) == []


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_every_link_of_a_chapter_lands_on_a_file_term_or_label(path):
    assert bad_links(path, markdown_text(path)) == []


def test_the_checks_catch_a_cross_page_role_and_a_dangling_link(tmp_path):
    page = "(here)=\n## Here\n\nSee {ref}`here`, {term}`VXLAN`, {doc}`05-vxlan-across-nodes`, {ref}`ref-f`.\n"
    assert cross_page_roles(page) == ["{term}`VXLAN`", "{doc}`05-vxlan-across-nodes`", "{ref}`ref-f`"]
    chapter = REPO / "notebooks" / "05-vxlan-across-nodes.md"
    text = ("[a](../book/glossary.md#term-VXLAN) [b](../book/glossary.md#term-VXLAM) [c](06-backends.ipynb) "
            "[d](07-nodeport.ipynb#x) [e](../book/references.md#ref-f) [f](../book/references.md#ref-g) "
            "[g](no-such.ipynb) [\\[F\\]](../book/references.md#ref-kp) [h](https://example.org/x.md)")
    assert bad_links(chapter, text) == [
        "../book/glossary.md#term-VXLAM: glossary.md has no 'term-VXLAM'",
        "07-nodeport.ipynb#x: 07-nodeport.ipynb has no 'x'",
        "../book/references.md#ref-g: references.md has no 'ref-g'",
        "no-such.ipynb: no file no-such.ipynb"]


def test_the_glossary_ids_are_sphinxs():
    assert {"term-VXLAN", "term-neighbour-table", "term-host-gw"} <= glossary_ids()
