"""Flannel's backends as tables: the overview, and each backend's headers byte by byte.

Both are drawn from the facts in netsim.flannel_backends; nothing here is typed by hand. Each
object prints as text (`print(...)`, `text/plain`) and displays as an HTML table in a notebook
and the book.
"""

from __future__ import annotations

from html import escape

from ..flannel_backends import BACKENDS, Backend

INNER = "the pod's IP packet"


def _html(head: list[str], rows: list[list[str]], caption: str) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (f'<div style="overflow-x: auto"><table class="netsim-layout"><caption>{escape(caption)}</caption>'
            f"<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>")


def _text(head: list[str], rows: list[list[str]], caption: str) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()   # noqa: E731
    return "\n".join([caption, line(head), line(["-" * w for w in widths]), *map(line, rows)])


class _Table:
    caption = ""

    def head(self) -> list[str]:
        raise NotImplementedError

    def rows(self) -> list[list[str]]:
        raise NotImplementedError

    def text(self) -> str:
        return _text(self.head(), self.rows(), self.caption)

    def __repr__(self) -> str:
        return self.text()        # the text/plain face, in Jupyter and in the page's runner alike

    def _repr_html_(self) -> str:
        return _html(self.head(), self.rows(), self.caption)


def _size(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}-{high}"


class BackendTable(_Table):
    """One row per backend: status, release, data path, what a capture sees, MTU."""

    def __init__(self, backends: tuple[Backend, ...] = BACKENDS, interface_mtu: int = 1500):
        self.backends = backends
        self.interface_mtu = interface_mtu
        self.caption = (f"Flannel's backends (flannel v0.28.9's pkg/backend, and the three removed in v0.20.0); "
                        f"FLANNEL_MTU on a {interface_mtu}-byte interface")

    def head(self) -> list[str]:
        return ["backend", "status", "since", "on the wire", "headers add", "flannel subtracts", "FLANNEL_MTU",
                "in netsim"]

    def rows(self) -> list[list[str]]:
        out = []
        for b in self.backends:
            low, high = b.added_bytes()
            mtu = b.flannel_mtu(self.interface_mtu)
            out.append([b.name, b.status + (f" in {b.removed}" if b.removed else ""), b.added, b.wire,
                        _size(low, high) if not b.removed else "",
                        str(b.overhead) if b.overhead is not None else "",
                        str(mtu) if mtu is not None else "", "modelled" if b.modelled else "source only"])
        return out


class HeaderLayout(_Table):
    """A backend's headers around the pod's packet, field by field, with offsets counted from the
    start of the outer IP header (the Ethernet header belongs to the link, not to the MTU)."""

    def __init__(self, backend: Backend, inner: int | None = None):
        self.backend = backend
        self.inner = inner          # the pod packet's size, if one is given
        low, high = backend.added_bytes()
        self.caption = (f"{backend.name}: {_size(low, high)} bytes around the pod's packet"
                        + (f"; flannel subtracts {backend.overhead}" if backend.overhead is not None else "")
                        + ("" if backend.modelled else " (from flannel's source, not modelled)"))

    def head(self) -> list[str]:
        return ["offset", "bytes", "header", "field", "value"]

    def rows(self) -> list[list[str]]:
        out: list[list[str]] = []
        offset, spread = 0, 0

        def at() -> str:
            return str(offset) if not spread else f"{offset}-{offset + spread}"

        for header in self.backend.headers:
            for f in header.fields:
                out.append(["" if header.on_link else at(), _size(f.size, f.largest), header.name, f.name, f.value])
                if not header.on_link:
                    offset += f.size
                    spread += f.largest - f.size
        size = str(self.inner) if self.inner is not None else "n"
        out.append([at(), size, INNER, "", self.backend.inner])
        if self.inner is not None:
            offset += self.inner
        for header in self.backend.trailer:
            for f in header.fields:
                out.append([at() if self.inner is not None else f"{at()} + n", _size(f.size, f.largest), header.name,
                            f.name, f.value])
                offset += f.size
                spread += f.largest - f.size
        return out


def backend_table(interface_mtu: int = 1500) -> BackendTable:
    """Every backend, one row each (netsim.flannel_backends)."""
    return BackendTable(BACKENDS, interface_mtu)


def header_layout(name: str, inner: int | None = None) -> HeaderLayout:
    """One backend's headers, byte by byte; `inner` fills in the pod packet's size."""
    from ..errors import UsageError
    from ..flannel_backends import BY_NAME
    if name not in BY_NAME:
        raise UsageError(f"no backend {name!r}; Flannel's are {', '.join(BY_NAME)}")
    return HeaderLayout(BY_NAME[name], inner)
