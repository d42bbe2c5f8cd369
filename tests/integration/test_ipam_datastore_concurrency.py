# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Both datastores under real concurrency: 8 writer processes, and a writer killed mid-run.

Each writer is ``tests/support/ipam_worker.py``: a CNI-like allocator on the real IPAM objects, in
its own process with its own datastore client. 8 x 250 addresses nearly fill a /21 pool
(2048 addresses in 32 blocks of /26), so the writers race for the last unclaimed blocks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.ipam_worker import audit, make_store

WORKER = os.path.join(os.path.dirname(os.path.dirname(__file__)), "support", "ipam_worker.py")
WRITERS, EACH, POOL, BLOCKS = 8, 250, "10.44.0.0/21", 32


@pytest.fixture(params=["etcd", "file"])
def target(request, tmp_path):
    if request.param == "etcd":
        return "etcd", request.getfixturevalue("etcd")
    return "file", str(tmp_path / "l3tetcd-state.json")


def _spawn(kind, where, node, *extra):
    return subprocess.Popen(
        [sys.executable, WORKER, "--store", kind, "--target", where, "--node", node, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait(procs, timeout=600):
    deadline = time.monotonic() + timeout
    outs = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        assert proc.returncode == 0, err
        outs.append(out)
    return outs


def _addresses(state):
    return [block.address(o) for block in state.blocks.values() for o, a in enumerate(block.allocations) if a is not None]


@pytest.mark.parametrize("allocator", ["cni", "planner"])
def test_eight_writers_never_share_or_lose_an_address(target, allocator):
    """cni: tests.support.ipam_worker.allocate; planner: the real IPAM planner, each writer its own node
    (module option node), its inventory growing by 20 workloads per run."""
    kind, where = target
    start = f"{time.time() + 2:.3f}"
    extra = ["--planner"] if allocator == "planner" else []
    procs = [_spawn(kind, where, f"node-{i}", "--count", str(EACH), "--batch", "20", "--pool", POOL, "--start-at", start, *extra) for i in range(WRITERS)]
    outs = _wait(procs)
    if kind == "etcd":  # the writers really raced: some transactions lost and were re-planned
        conflicts = sum(int(out.split()[3]) for out in outs)
        print(f"etcd: {conflicts} conflicting transactions re-planned")
        assert conflicts > 0
    state = make_store(kind, where).load()
    assert audit(state) == []
    addresses = _addresses(state)
    tunnels = WRITERS if allocator == "planner" else 0  # the planner adds each node's IPIP address
    assert len(addresses) == WRITERS * EACH + tunnels  # none lost
    assert len(set(addresses)) == len(addresses)  # none twice
    expected = {f"l3-workload.default.node-{i}-{j:04d}" for i in range(WRITERS) for j in range(EACH)}
    expected |= {f"ipip-tunnel-addr-node-{i}" for i in range(tunnels)}
    assert set(state.handles) == expected
    assert all(sum(h.block.values()) == 1 for h in state.handles.values())
    assert len(state.blocks) == BLOCKS  # every block of the pool claimed once
    for node, cidr in state.affinities:
        assert state.blocks[cidr].node == node


def _handle_count(kind, where):
    try:
        return len(make_store(kind, where).load().handles)
    except Exception:  # the file does not exist yet
        return 0


@pytest.mark.parametrize("allocator", ["cni", "planner"])
def test_a_writer_killed_mid_run_leaves_a_consistent_state(target, allocator):
    kind, where = target
    # etcd: ONE plan of 2000 addresses = 32 block units, one transaction each (slowed so we
    # can kill between two); file: plans of 20, killed while it writes.
    # (the planner: 1200, as one node holds at most 20 blocks of 64 addresses, Calico's default limit)
    count = "1200" if allocator == "planner" else "2000"
    args = ["--count", count, "--batch", count, "--slow-txn", "0.05"] if kind == "etcd" else ["--count", count, "--batch", "20"]
    extra = ["--planner"] if allocator == "planner" else []
    proc = _spawn(kind, where, "node-k", *args, *extra)
    deadline = time.monotonic() + 120
    while _handle_count(kind, where) < 300 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the writer finished before it could be killed"
    state = make_store(kind, where).load()
    assert audit(state) == []
    assert 300 <= len(state.handles) < int(count)
    # the next run completes the work
    _wait([_spawn(kind, where, "node-k", "--count", count, "--batch", count, *extra)])
    state = make_store(kind, where).load()
    assert audit(state) == []
    total = int(count) + (1 if allocator == "planner" else 0)  # + the node's IPIP tunnel address
    assert len(state.handles) == total and len(set(_addresses(state))) == total
