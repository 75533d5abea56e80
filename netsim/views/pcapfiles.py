"""The pcapng file beside each stepper in the published book, written when the book is built.

A stepper's notebook output carries its trace's pcapng (`trace.to_pcap`'s bytes, base64) and
the file's name in the output's metadata (`METADATA_KEY`), not as a display format: a notebook
front end and myst-nb ignore metadata, and nbval does not compare it (the name, which holds a
digest of the bytes, is in the compared HTML); the stepper's HTML links to `pcap/NAME` beside
the page. The book is built from the notebooks' stored outputs (no code runs), so
this module is also a small Sphinx extension: when the HTML build finishes it reads those
outputs from every notebook page and writes each file into `pcap/` next to the page's HTML,
then checks that every link a stepper makes has its file (a missing one is a build warning,
so the strict build fails). Names come from the trace's title and the first six hex digits
of the file's SHA-1: the same trace is the same file, two different traces never share a name.

Why at build time and not as a `data:` URI: a 60-hop pcapng with the decisions as packet
comments is 20-30 KB, which base64 would add to every stepper's page (the stepper must stay
within 150 KB), and a file keeps the link a plain download that Wireshark opens.

Wireshark (4.0 here) decodes VXLAN on the IANA port 4789 only; Flannel sends no port to the
kernel unless one is configured, so its VXLAN uses the kernel module's default, 8472
(flannel Documentation/backends.md; drivers/net/vxlan: `vxlan_port = 8472`). A pcapng cannot
carry a Decode As setting, so the link says how to decode it (`DECODE_HINT`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

from ..pcap import pcapng_bytes
from ..trace import Trace
from .sentences import sentence

METADATA_KEY = "netsim-pcapng"
FOLDER = "pcap"
DECODE_HINT = "Wireshark: Analyze > Decode As, UDP port 8472 as VXLAN (tshark -d udp.port==8472,vxlan)"
_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{0,120}\.pcapng$")
_LINK = re.compile(r'<a class="pcap" href="' + FOLDER + r'/([^"]+)"')


def pcap_bytes(trace: Trace) -> bytes:
    """The trace's pcapng, as `trace.to_pcap(path, explain=views.sentence)` writes it: each
    packet's comment tells its hop's decisions in the book's sentences."""
    return pcapng_bytes(trace, explain=sentence)


def pcap_name(trace: Trace, data: bytes, name: str | None = None) -> str:
    """`pod-a-to-pod-c-tcp-8080-1a2b3c.pcapng`: the trace's title (or `name`) as a file name,
    and six hex digits of the file's SHA-1."""
    stem = (name or trace.title or "trace").lower().replace("->", " to ")
    stem = re.sub(r"[^a-z0-9.]+", "-", stem).strip("-.")[:80] or "trace"
    return f"{stem}-{hashlib.sha1(data).hexdigest()[:6]}.pcapng"


def output_metadata(data: bytes, name: str) -> dict:
    """The display output's metadata that carries one pcapng."""
    return {METADATA_KEY: {"filename": name, "data": base64.b64encode(data).decode()}}


def notebook_pcaps(notebook: dict) -> list[tuple[str, bytes]]:
    """(file name, bytes) of every pcapng a notebook's stored outputs carry."""
    out = []
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            entry = output.get("metadata", {}).get(METADATA_KEY)
            if entry is None:
                continue
            name = entry.get("filename", "")
            if not _NAME.match(name):
                raise ValueError(f"pcapng output name {name!r} is not a plain file name ending in .pcapng")
            data = base64.b64decode(entry.get("data", ""))
            if not name.endswith(f"-{hashlib.sha1(data).hexdigest()[:6]}.pcapng"):
                raise ValueError(f"pcapng output {name!r} does not hold the bytes its name was made for")
            out.append((name, data))
    return out


def page_links(html: str) -> list[str]:
    """The pcapng files a built page's steppers link to."""
    return _LINK.findall(html)


# ----------------------------------------------------------------------------- Sphinx
def _write(app, exc) -> None:
    if exc is not None or app.builder.format != "html":
        return
    from sphinx.util import logging

    log = logging.getLogger(__name__)
    out = Path(app.outdir)
    for docname in sorted(app.env.found_docs):
        source = Path(app.env.doc2path(docname))
        page = out / f"{docname}.html"
        if source.suffix != ".ipynb" or not page.is_file():
            continue
        folder = page.parent / FOLDER
        written = set()
        for name, data in notebook_pcaps(json.loads(source.read_text(encoding="utf-8"))):
            folder.mkdir(exist_ok=True)
            (folder / name).write_bytes(data)
            written.add(name)
        for name in page_links(page.read_text(encoding="utf-8")):
            if name not in written:
                log.warning(f"{docname}: a stepper links to {FOLDER}/{name}, which no stored output provides "
                            f"(re-run the notebook)", location=docname)


def setup(app) -> dict:
    """Sphinx entry point: write the steppers' pcapng files into the built book."""
    app.connect("build-finished", _write)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
