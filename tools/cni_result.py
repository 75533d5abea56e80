"""The real CNI plugins' result JSON the toolbox chapter shows: notebooks/data/cni-result.json.

    sudo .venv/bin/python tools/cni_result.py           # compare a fresh run with the stored file
    sudo .venv/bin/python tools/cni_result.py --write   # store a fresh run

Runs Debian's containernetworking-plugins (`loopback`, then `bridge` with `host-local`, given
the configuration flannel's CNI plugin hands `bridge`) for node1's pods of netsim's reference
cluster, in the lab's namespaces (netsim.lab.cni), and keeps the configuration and each pod's
result. A notebook cannot run the plugins (no root on Binder or in the page), so the chapter
loads this file; tests/test_lab_cni.py fails when it no longer matches what the plugins produce
(random MACs and veth names aside). Exits 1 if the stored file differs, 2 if the plugins cannot
run here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from netsim import reference_cluster  # noqa: E402
from netsim.lab import unavailable_reason  # noqa: E402
from netsim.lab.cni import chapter_record, masked, plugins_reason, real_cni_node  # noqa: E402

STORED = ROOT / "notebooks" / "data" / "cni-result.json"
NODE = "node1"


def fresh() -> dict:
    """A new run of the plugins for node1's pods of the reference cluster."""
    cluster = reference_cluster()
    return chapter_record(real_cni_node(cluster, NODE, f"nsl-{os.getpid()}-cni-"), NODE)


def text(record: dict) -> str:
    return json.dumps(record, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"store a fresh run in {STORED.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    reason = unavailable_reason() or plugins_reason()
    if reason:
        print(f"cni_result: the plugins cannot run here: {reason}", file=sys.stderr)
        return 2
    record = fresh()
    if args.write:
        STORED.parent.mkdir(parents=True, exist_ok=True)
        STORED.write_text(text(record))
        print(f"wrote {STORED.relative_to(ROOT)}: {record['plugins']}, {len(record['pods'])} pods")
        return 0
    stored = json.loads(STORED.read_text())
    if masked(stored) != masked(record):
        print(f"{STORED.relative_to(ROOT)} differs from a fresh run; regenerate with --write", file=sys.stderr)
        return 1
    print(f"{STORED.relative_to(ROOT)} matches a fresh run ({record['plugins']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
