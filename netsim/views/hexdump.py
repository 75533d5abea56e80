"""Annotated hex dumps: every byte tied to its layer and field (the Illustrated TLS's idea).

`byte_map` says, for each byte of a frame, which layer and which field it belongs to;
`hexdump` prints it as text (`tcpdump -xx` layout plus a legend of layer byte ranges) and
`hexdump_html` as spans coloured by layer, each carrying its field number, so hovering a field
in the header view lights up its bytes (see stepper.py's CSS). The byte ranges are those of
the core's header tables (`netsim.packet`), as `headers.decompose` finds them in the frame;
a bit field covers only the bytes that hold its bits.
"""

from __future__ import annotations

from html import escape

from .headers import Layer

ROW = 16


def byte_map(layers: list[Layer], length: int) -> list[tuple[int, int]]:
    """(layer index, field index within the flat field list) for each byte; -1 if none."""
    out = [(-1, -1)] * length
    flat = 0
    for li, layer in enumerate(layers):
        for b in range(layer.start, min(layer.end, length)):
            out[b] = (li, -1)
        for field in layer.fields:
            for b in range(field.start, min(field.end, length)):
                out[b] = (li, flat)
            flat += 1
    return out


def layer_ranges(layers: list[Layer]) -> list[tuple[str, int, int]]:
    """(layer id, first byte, last byte + 1) of each layer, in wire order."""
    return [(layer.id, layer.start, layer.end) for layer in layers]


def hexdump(data: bytes, layers: list[Layer] | None = None) -> str:
    """`offset  hex bytes  ascii`, then one legend line per layer with its byte range."""
    lines = []
    for off in range(0, len(data), ROW):
        chunk = data[off:off + ROW]
        hexpart = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{off:04x}  {hexpart:<{ROW * 3 - 1}}  {text}")
    for layer in layers or []:
        lines.append(f"  {layer.start:04x}-{layer.end - 1:04x}  {layer.title}")
    return "\n".join(lines)


def hexdump_html(data: bytes, layers: list[Layer]) -> str:
    """Rows of `<span class="b Ln" data-f="k">xx</span>`; n = layer index, k = field index."""
    cells = byte_map(layers, len(data))
    rows = []
    for off in range(0, len(data), ROW):
        spans = []
        for b in range(off, min(off + ROW, len(data))):
            li, fi = cells[b]
            spans.append(f'<span class="b L{li}" data-f="{fi}">{data[b]:02x}</span>')
        rows.append(f'<div class="hrow"><span class="off">{off:04x}</span>{"".join(spans)}</div>')
    return f'<div class="hex">{"".join(rows)}</div>'


def legend_html(layers: list[Layer]) -> str:
    items = "".join(f'<span class="lg L{i}">{escape(l.title)} {l.start}-{l.end - 1}</span>'
                    for i, l in enumerate(layers))
    return f'<div class="legend">{items}</div>'
