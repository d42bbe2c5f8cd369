"""Run every benchmark of the project, one after the other, and say how long each took.

Each benchmark is a plain script in this folder that measures one hot path against the plain
alternative in the same run and prints the ratio. ``make bench`` runs them all;
``python benchmarks/run.py ipam bgp`` runs the named ones. Extra arguments after ``--`` go to each.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Cheapest first; the lab benchmark builds and tears down a lab of its own.
ORDER = ("ipam", "ipam_result", "bird_conf", "policy", "dataplane", "policy_rules", "bgp", "etcd", "fleet", "lab")


def main(argv: list[str]) -> int:
    names, extra = argv, []
    if "--" in argv:
        cut = argv.index("--")
        names, extra = argv[:cut], argv[cut + 1 :]
    available = [n for n in ORDER if (HERE / f"{n}.py").exists()]
    unknown = sorted(set(names) - set(available))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    failed = []
    for name in names or available:
        print(f"=== benchmarks/{name}.py", flush=True)
        start = time.monotonic()
        rc = subprocess.call([sys.executable, str(HERE / f"{name}.py"), *extra])
        print(f"=== benchmarks/{name}.py: exit {rc} after {time.monotonic() - start:.1f} s\n", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
