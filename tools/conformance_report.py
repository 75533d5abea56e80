"""Write the book's conformance appendix: every scenario on netsim and on the running kernel.

    sudo .venv/bin/python tools/conformance_report.py [--out book/appendix/conformance.md] [--quick]

Builds each cluster shape with each backend in network namespaces (netsim.lab), runs every
scenario with TCP, UDP and ICMP, compares the kernel's frames with the model's and writes the
Markdown report. Exits 1 if any exchange differs (the report is written anyway), 2 if the lab
cannot run here (not root, not Linux, a tool missing).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from netsim.lab import BACKENDS, PROTOS, SHAPES, conformance, report, unavailable_reason  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "book" / "appendix" / "conformance.md"))
    parser.add_argument("--quick", action="store_true", help="the reference cluster only")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print(f"conformance_report: the lab cannot run here: {reason}", file=sys.stderr)
        return 2
    shapes = ("reference",) if args.quick else tuple(SHAPES)
    start = time.perf_counter()
    runs = conformance(shapes=shapes, backends=BACKENDS, protos=PROTOS,
                       progress=None if args.quiet else (lambda line: print(line, flush=True)))
    today = datetime.date.today().isoformat()
    Path(args.out).write_text(report(runs, generated=today))
    differing = [c for r in runs for c in r.comparisons if not c.ok]
    print(f"wrote {args.out}: {sum(len(r.comparisons) for r in runs)} exchanges, {len(differing)} differ, "
          f"{time.perf_counter() - start:.1f} s")
    for c in differing:
        print(c, file=sys.stderr)
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
