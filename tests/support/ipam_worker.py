# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""A CNI-like IPAM writer for the concurrency tests and the benchmark, and the state audit.

``allocate`` follows Calico's per-host path on the real objects of ``ipam_model``: take the
head of the ``unallocated`` FIFO of a block affine to the node; none with room => claim the
first unclaimed block walking the pool from FNV-32(node) (affinity + block, as Calico);
none left => borrow from any block with room. One handle per address. It only exercises
the datastores; the real planner is ``ipam_plan``.

Run as a script it is one writer process::

    python tests/support/ipam_worker.py --store etcd --target http://127.0.0.1:2379 --node n1 \
        --count 500 --batch 20 [--start-at EPOCH] [--prefix w1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from ansible_collections.l3.calico.plugins.module_utils.ipam_model import (  # noqa: E402
    Affinity,
    Block,
    Handle,
    fnv32,
    parse_cidr,
    workload_attribute,
)

POOL = "10.44.0.0/20"  # 64 blocks of /26 = 4096 addresses: 8 x 500 nearly fills it
BLOCK_PREFIX = 26


def allocate(state, node: str, handle_ids: list[str], pool: str = POOL, block_prefix: int = BLOCK_PREFIX) -> list[str]:
    """Give each handle not yet in the state one address; return the addresses given."""
    base, plen = parse_cidr(pool)
    count = 1 << (block_prefix - plen)
    step = 1 << (32 - block_prefix)
    given = []
    for hid in handle_ids:
        if hid in state.handles:
            continue
        block = _affine_with_room(state, node)
        if block is None:
            start = fnv32(node) % count
            for i in range(count):
                cidr = f"{_ip(base + ((start + i) % count) * step)}/{block_prefix}"
                if cidr not in state.blocks:
                    block = Block.new(base + ((start + i) % count) * step, block_prefix, node)
                    state.blocks[cidr] = block
                    state.affinities[(node, cidr)] = Affinity("confirmed")
                    state.touch_affinity((node, cidr))
                    break
        if block is None:
            block = next((b for b in state.blocks.values() if b.unallocated), None)
        if block is None:
            raise RuntimeError(f"pool {pool} exhausted")
        ordinal = block.unallocated.pop(0)
        block.assign(ordinal, workload_attribute(hid, node, "default", hid))
        state.touch_block(block.cidr)
        state.handles[hid] = Handle({block.cidr: 1})
        state.touch_handle(hid)
        given.append(block.address(ordinal))
    return given


def release(state, handle_ids: list[str]) -> None:
    for hid in handle_ids:
        handle = state.handles.pop(hid, None)
        if handle is None:
            continue
        state.touch_handle(hid)
        for cidr in handle.block:
            state.blocks[cidr].release_handle(hid)
            state.touch_block(cidr)


def _affine_with_room(state, node: str):
    for aff_node, cidr in state.affinities:
        if aff_node == node:
            block = state.blocks.get(cidr)
            if block is not None and block.unallocated:
                return block
    return None


def _ip(value: int) -> str:
    return ".".join(str((value >> s) & 255) for s in (24, 16, 8, 0))


def audit(state) -> list[str]:
    """Everything inconsistent in a state: empty means blocks, handles, affinities agree."""
    problems = []
    counts: dict[str, dict[str, int]] = {}
    owner: dict[str, str] = {}
    for cidr, block in state.blocks.items():
        size = block.size
        allocated = [o for o, a in enumerate(block.allocations) if a is not None]
        free = block.unallocated
        if len(set(free)) != len(free):
            problems.append(f"{cidr}: an ordinal is twice in unallocated")
        if set(free) & set(allocated) or len(free) + len(allocated) != size:
            problems.append(f"{cidr}: allocations and unallocated disagree")
        for ordinal in allocated:
            hid = block.attributes[block.allocations[ordinal]]["handle_id"]
            counts.setdefault(hid, {}).setdefault(cidr, 0)
            counts[hid][cidr] += 1
            addr = block.address(ordinal)
            if addr in owner:
                problems.append(f"{addr} held twice ({owner[addr]}, {hid})")
            owner[addr] = hid
        node = block.node
        if node is not None and (node, cidr) not in state.affinities:
            problems.append(f"{cidr}: affine to {node} without an affinity key")
    for (node, cidr), _aff in state.affinities.items():
        block = state.blocks.get(cidr)
        if block is None or block.node != node:
            problems.append(f"affinity {node} {cidr}: block missing or affine elsewhere")
    for hid, handle in state.handles.items():
        if counts.get(hid, {}) != handle.block:
            problems.append(f"handle {hid}: says {handle.block}, blocks hold {counts.get(hid, {})}")
    for hid in counts:
        if hid not in state.handles:
            problems.append(f"handle {hid}: addresses in blocks but no handle")
    return problems


def planner_pools(pool: str = POOL) -> list[dict]:
    return [{"name": "p", "cidr": pool, "block_size": BLOCK_PREFIX, "ipip_mode": "Always"}]


def planner_workloads(node: str, count: int) -> list[dict]:
    return [{"name": f"{node}-{i:04d}"} for i in range(count)]


def planner_plan(node: str, count: int, pool: str = POOL):
    """plan_fn running the real IPAM planner for ``node`` only, with ``count`` workloads, on ``pool``."""
    from ansible_collections.l3.calico.plugins.module_utils.ipam_inventory import validate
    from ansible_collections.l3.calico.plugins.module_utils.ipam_planner import Planner

    desired = validate(planner_pools(pool), {}, [], [{"name": node, "ip": "192.168.0.1/24", "labels": {}, "workloads": planner_workloads(node, count)}], node)
    return lambda state: Planner(desired, state).run()


def make_store(kind: str, target: str, **etcd_options):
    if kind == "file":
        from ansible_collections.l3.calico.plugins.module_utils.ipam_store import FileStore

        return FileStore(target)
    from ansible_collections.l3.calico.plugins.module_utils.ipam_etcd import EtcdSettings, EtcdStore

    # Eight writers at once on a loaded two-core machine: etcd may take longer than the module's 5 s to
    # answer (a CI run failed on that read timeout); what the tests judge is that no address is shared or
    # lost, not etcd's latency.
    return EtcdStore(EtcdSettings(endpoints=[target], **{"timeout": 30.0, **etcd_options}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["file", "etcd"], required=True)
    parser.add_argument("--target", required=True, help="state file path or etcd endpoint")
    parser.add_argument("--node", required=True)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--pool", default=POOL, help=f"the pool's CIDR, /{BLOCK_PREFIX} blocks (default {POOL})")
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--start-at", type=float, default=0.0, help="wall-clock start (a barrier)")
    parser.add_argument("--max-txn-ops", type=int, default=128)
    parser.add_argument("--retries", type=int, default=200)
    parser.add_argument("--slow-txn", type=float, default=0.0, help="sleep after each etcd transaction")
    parser.add_argument("--planner", action="store_true", help="allocate with the real planner (module option node), workloads growing by --batch")
    args = parser.parse_args(argv)
    options = {} if args.store == "file" else {"max_txn_ops": args.max_txn_ops, "retries": args.retries}
    store = make_store(args.store, args.target, **options)
    if args.slow_txn:  # the SIGKILL test needs time between two transactions
        real_txn = store.kv.txn

        def slow_txn(compares, success):
            ok = real_txn(compares, success)
            time.sleep(args.slow_txn)
            return ok

        store.kv.txn = slow_txn
    handles = [f"l3-workload.default.{args.node}-{i:04d}" for i in range(args.count)]
    store.load()  # imports and connection set up before the start line
    if args.start_at:
        time.sleep(max(0.0, args.start_at - time.time()))
    started = time.perf_counter()
    conflicts = 0
    for i in range(0, len(handles), args.batch):
        if args.planner:
            plan = planner_plan(args.node, min(args.count, i + args.batch), args.pool)
        else:
            plan = partial(allocate, node=args.node, handle_ids=handles[i : i + args.batch], pool=args.pool)
        store.transact(plan, write=True)
        conflicts += getattr(store, "conflicts", 0)
    elapsed = time.perf_counter() - started
    print(f"{args.node} {args.count} {elapsed:.6f} {conflicts}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
