"""Write the diagram's font metrics table (netsim/views/dejavu_sans.json) from DejaVu Sans.

The diagram labels its boxes in DejaVu Sans and sizes the boxes from the labels' widths. It
measures text with this table (each character's advance width, regular and bold, in font
units) instead of a font library, so the same labels give the same picture in CPython and in
the browser's Pyodide, which has no compiled font code to call.

The fonts are Debian's (package fonts-dejavu-core, DejaVu 2.37); fontTools reads them.

Usage: python tools/font_metrics.py [--check] [--regular TTF] [--bold TTF]
--check exits 1 if the committed table differs from what the fonts give.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "netsim" / "views" / "dejavu_sans.json"
FONTS = Path("/usr/share/fonts/truetype/dejavu")
# Printable ASCII and Latin-1, and the few other marks the views write (arrows, dashes, dots).
CHARS = [chr(c) for c in range(0x20, 0x7F)] + [chr(c) for c in range(0xA0, 0x100)] + list("‐–—…·→←↔×")


def metrics(regular: Path, bold: Path) -> dict:
    from fontTools.pens.boundsPen import BoundsPen
    from fontTools.ttLib import TTFont

    table: dict = {"family": "DejaVu Sans"}
    for weight, path in (("normal", regular), ("bold", bold)):
        font = TTFont(str(path))
        cmap, hmtx = font.getBestCmap(), font["hmtx"]
        if weight == "normal":
            glyphs = font.getGlyphSet()
            pen = BoundsPen(glyphs)
            glyphs[cmap[ord("H")]].draw(pen)
            table["version"] = font["name"].getDebugName(5)
            table["units_per_em"] = font["head"].unitsPerEm
            table["cap_height"] = pen.bounds[3]           # the top of "H"
        widths = {c: hmtx[cmap[ord(c)]][0] for c in CHARS if ord(c) in cmap}
        table[weight] = widths
        table[f"{weight}_fallback"] = hmtx[cmap[ord("M")]][0]  # a character the table lacks
    return table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--regular", type=Path, default=FONTS / "DejaVuSans.ttf")
    ap.add_argument("--bold", type=Path, default=FONTS / "DejaVuSans-Bold.ttf")
    ap.add_argument("--check", action="store_true", help="compare with the committed table")
    args = ap.parse_args(argv)
    text = json.dumps(metrics(args.regular, args.bold), ensure_ascii=False, indent=0, sort_keys=True) + "\n"
    if args.check:
        same = TABLE.read_text(encoding="utf-8") == text
        print(f"{TABLE.relative_to(ROOT)}: {'matches' if same else 'differs from'} the fonts")
        return 0 if same else 1
    TABLE.write_text(text, encoding="utf-8")
    print(f"wrote {TABLE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
