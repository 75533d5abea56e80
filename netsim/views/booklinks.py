"""Plain Markdown links to another page's glossary term or labelled section, in the strict build.

A chapter is read in two places: the built book (Sphinx, myst-parser) and JupyterLab
(jupyterlab-myst), which resolves `{term}`, `{ref}` and `{doc}` only inside the notebook it
renders. So chapters link to other pages with plain Markdown links, which both render as
links: `[VXLAN](../book/glossary.md#term-VXLAN)`, `[[F]](../book/references.md#ref-f)`,
`[chapter title](05-vxlan-across-nodes.ipynb)`.

myst-parser accepts `page.md#id` only when `id` is one of its heading slugs for that page
(`env.metadata[doc]["myst_slugs"]`, myst_parser/sphinx_ext/myst_refs.py), and warns otherwise.
This Sphinx extension adds, when each page is read, the ids Sphinx gives the page's glossary
terms (`term-VXLAN`) and sections (a `(ref-f)=` label, a heading's own id), so such a link
resolves to the term or section, and a link to an id the page does not have still warns (the
strict build fails on it).
"""

from __future__ import annotations


def _register(app, doctree) -> None:
    from docutils import nodes  # type: ignore[import-untyped]

    env = app.env
    slugs = env.metadata[env.docname].setdefault("myst_slugs", {})
    for term in doctree.findall(nodes.term):
        for tid in term["ids"]:
            slugs.setdefault(tid, (term.line or 0, tid, term.astext()))
    for section in doctree.findall(nodes.section):
        title = section[0].astext() if section.children else ""
        for sid in section["ids"]:
            slugs.setdefault(sid, (section.line or 0, sid, title))


def setup(app) -> dict:
    """Sphinx entry point."""
    app.connect("doctree-read", _register)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
