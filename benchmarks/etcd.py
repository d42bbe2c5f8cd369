# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Benchmark: IPAM allocations per second on etcd v3 vs the state file, 1 writer and 8 writers.

Starts its own etcd (Debian's etcd-server) on 127.0.0.1 with a temporary data directory.
Every writer is a separate process (tests/support/ipam_worker.py) allocating addresses CNI-style:
one transaction (read the state, plan, compare-and-swap write) per batch of BATCH addresses,
so the figures include the whole read-plan-write cycle. Both datastores run the same worker
in the same run; the ratio etcd/file is printed.

    python benchmarks/etcd.py [--total 2000] [--batch 1,20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # tests.support
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from tests.support.etcd_server import EtcdServer, missing_reason  # noqa: E402
from tests.support.ipam_worker import audit, make_store  # noqa: E402

WORKER = os.path.join(ROOT, "tests", "support", "ipam_worker.py")


def run(kind: str, target: str, writers: int, total: int, batch: int) -> tuple[float, int]:
    """(wall seconds, conflicts) for ``writers`` processes allocating ``total`` addresses together."""
    each = total // writers
    start = time.time() + 1.5  # every writer imported and connected before the barrier
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                WORKER,
                "--store",
                kind,
                "--target",
                target,
                "--node",
                f"bench-{i}",
                "--count",
                str(each),
                "--batch",
                str(batch),
                "--start-at",
                f"{start:.3f}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(writers)
    ]
    elapsed, conflicts = 0.0, 0
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"writer failed: {err}")
        _node, _count, seconds, conf = out.split()
        elapsed = max(elapsed, float(seconds))
        conflicts += int(conf)
    state = make_store(kind, target).load()
    assert not audit(state) and len(state.handles) == each * writers, "inconsistent state after the run"
    return elapsed, conflicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=2000, help="addresses per measurement (default 2000)")
    parser.add_argument("--batch", default="1,20", help="addresses per transaction, comma-separated")
    args = parser.parse_args()
    reason = missing_reason()
    if reason:
        print(f"SKIP: {reason}")
        return 0
    batches = [int(b) for b in args.batch.split(",")]
    rows = []
    with EtcdServer(name="l3tetcd-bench") as etcd, tempfile.TemporaryDirectory(prefix="l3tetcd-bench-") as tmp:
        from ansible_collections.l3.calico.plugins.module_utils import etcd_kv as kv
        from ansible_collections.l3.calico.plugins.module_utils.ipam_etcd import EtcdSettings

        wiper = kv.EtcdKV(EtcdSettings(endpoints=[etcd.endpoint]))
        for batch in batches:
            for writers in (1, 8):
                figures = {}
                for kind in ("file", "etcd"):
                    if kind == "etcd":
                        wiper.wipe("/")
                        target = etcd.endpoint
                    else:
                        target = os.path.join(tmp, f"state-{batch}-{writers}.json")
                    seconds, conflicts = run(kind, target, writers, args.total, batch)
                    figures[kind] = args.total / seconds
                    rows.append((kind, writers, batch, args.total, seconds, args.total / seconds, conflicts))
                    print(
                        f"{kind:4}  writers={writers}  batch={batch:3}  {args.total} addresses in {seconds:7.2f} s"
                        f"  = {args.total / seconds:8.1f} allocations/s  (conflicts re-planned: {conflicts})",
                        flush=True,
                    )
                print(f"      etcd/file ratio, {writers} writer(s), batch {batch}: {figures['etcd'] / figures['file']:.2f}", flush=True)
    print("\n| datastore | writers | addresses/transaction | allocations/s | conflicts re-planned |")
    print("|---|---|---|---|---|")
    for kind, writers, batch, _total, _seconds, rate, conflicts in rows:
        print(f"| {kind} | {writers} | {batch} | {rate:.0f} | {conflicts} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
