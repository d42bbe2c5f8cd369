#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Benchmark of the workloads data plane: one host namespace, N workloads (default 250).

Measured in the same run, on the same kernel:

- module:  ``workloads.converge`` from empty (read, plan, one host ``ip -batch``, one
           ``ip -n NS -batch`` per namespace, sysctls written to /proc/sys), then a no-op run;
- floor:   the same work hand-written: one host ``ip -batch`` plus one ``ip -n NS -batch`` per
           namespace and the same sysctl writes, no reading, no planning (iproute2 cannot switch
           namespace inside one batch, so this is the fewest processes that can do the work);
           run with the module's parallelism, and sequentially for reference;
- loop:    the naive script: per workload, one ``ip``/``sysctl`` command per attribute.

Prints the figures and the ratios (goals: module <= 2x floor, >= 25x faster than the loop,
no-op <= 1 s). Needs root. Every name starts with ``l3tdp-bench-``; everything is removed.

    sudo .venv/bin/python benchmarks/dataplane.py [N]
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".collections"))

from ansible_collections.l3.calico.plugins.module_utils import naming  # noqa: E402
from ansible_collections.l3.calico.plugins.module_utils import workloads as wl  # noqa: E402

HOST = "l3tdp-bench-host"
CLONE_NEWNET = 0x40000000
MTU = 1450


def sh(argv, stdin=None):
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


def enter_host_namespace() -> None:
    """Move this process (before any thread exists) into the benchmark's host namespace."""
    sh(["ip", "netns", "add", HOST])
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{HOST}", "rb") as handle:
        if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
            raise SystemExit(f"setns: {os.strerror(ctypes.get_errno())}")
    sh(["ip", "link", "set", "lo", "up"])


def our_namespaces(prefix: str):
    return [n for n in os.listdir("/run/netns") if n.startswith(prefix)]


def teardown(prefix: str, settle: float = 3.0) -> float:
    """Remove what a phase made (veths first, then namespaces); returns the time it took.

    The kernel finishes namespace teardown in the background; ``settle`` lets it, so the next
    phase is not measured against that work.
    """
    start = time.perf_counter()
    links = [line.split(":")[1].strip().split("@")[0] for line in sh(["ip", "-o", "link", "show"]).splitlines()]
    lines = [f"link del dev {name}" for name in links if name.startswith("cali")]
    lines += [f"netns del {ns}" for ns in our_namespaces(prefix)]
    if lines:
        sh(["ip", "-batch", "-"], "".join(line + "\n" for line in lines))
    took = time.perf_counter() - start
    time.sleep(settle if lines else 0)
    return took


def workloads(n: int):
    return [{"id": f"bench.w{i}", "ip": f"10.200.{i // 256}.{i % 256}"} for i in range(n)]


def run_module(items, prefix, state_file):
    start = time.perf_counter()
    the_plan = wl.converge(items, mtu=MTU, netns_prefix=prefix, state_file=state_file)
    return time.perf_counter() - start, the_plan


def floor(items, prefix, workers):
    """Hand-written batches for the same end state (rendered before the clock starts)."""
    host, inside, sysctls = [], {}, {}
    for item in items:
        veth = naming.veth_name(item["id"])
        ns = naming.netns_name(item["id"], prefix)
        host += [
            f"netns add {ns}",
            f"link add {veth} mtu {MTU} address {naming.HOST_VETH_MAC} type veth peer name eth0 mtu {MTU} netns {ns}",
            f"link set dev {veth} alias {wl.MARKER_PREFIX}{ns} up",
            f"route replace {item['ip']}/32 dev {veth} scope link",
        ]
        inside[ns] = (
            "link set dev lo up\nlink set dev eth0 up\n"
            f"addr add {item['ip']}/32 dev eth0\n"
            f"route replace {naming.GATEWAY} dev eth0 scope link\n"
            f"route replace default via {naming.GATEWAY} dev eth0\n"
        )
        sysctls.update(wl.veth_sysctls(veth, 1))
    host_text = "".join(line + "\n" for line in host)

    start = time.perf_counter()
    sh(["ip", "-batch", "-"], host_text)
    for path, value in sysctls.items():
        with open(f"/proc/sys/{path}", "w", encoding="ascii") as handle:
            handle.write(value)
    jobs = list(inside.items())
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda job: sh(["ip", "-n", job[0], "-batch", "-"], job[1]), jobs))
    else:
        for ns, text in jobs:
            sh(["ip", "-n", ns, "-batch", "-"], text)
    return time.perf_counter() - start


def loop(items, prefix):
    """The naive way: one command per attribute per workload."""
    start = time.perf_counter()
    for item in items:
        veth = naming.veth_name(item["id"])
        ns = naming.netns_name(item["id"], prefix)
        ip = item["ip"]
        for argv in (
            ["ip", "netns", "add", ns],
            ["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns],
            ["ip", "link", "set", "dev", veth, "address", naming.HOST_VETH_MAC, "mtu", str(MTU)],
            ["ip", "link", "set", "dev", veth, "up"],
            ["ip", "route", "replace", f"{ip}/32", "dev", veth, "scope", "link"],
            ["ip", "-n", ns, "link", "set", "dev", "lo", "up"],
            ["ip", "-n", ns, "link", "set", "dev", "eth0", "mtu", str(MTU), "up"],
            ["ip", "-n", ns, "addr", "add", f"{ip}/32", "dev", "eth0"],
            ["ip", "-n", ns, "route", "replace", naming.GATEWAY, "dev", "eth0", "scope", "link"],
            ["ip", "-n", ns, "route", "replace", "default", "via", naming.GATEWAY, "dev", "eth0"],
        ) + tuple(["sysctl", "-qw", f"{path.replace('/', '.')}={value}"] for path, value in wl.veth_sysctls(veth, 1).items()):
            sh(argv)
    return time.perf_counter() - start


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 250
    prefix = "l3tdp-bench-w-"
    state_file = f"/run/l3-calico/{HOST}.json"
    enter_host_namespace()
    try:
        items = workloads(n)
        t_floor = floor(items, prefix, wl.APPLY_WORKERS)
        assert len(our_namespaces(prefix)) == n
        teardown(prefix)
        t_floor_seq = floor(items, prefix, 1)
        teardown(prefix)

        t_create, created = run_module(items, prefix, state_file)
        assert len(created.create) == n and len(our_namespaces(prefix)) == n
        t_noop, noop = run_module(items, prefix, state_file)
        assert not noop.changed, noop.update
        t_noop2, _ = run_module(items, prefix, state_file)
        t_remove, removed = run_module([], prefix, state_file)
        assert len(removed.remove) == n and not our_namespaces(prefix)
        time.sleep(3)

        t_loop = loop(items, prefix)
        assert len(our_namespaces(prefix)) == n
        teardown(prefix)
    finally:
        teardown(prefix)
        if os.path.exists(state_file):
            os.unlink(state_file)
        subprocess.run(["ip", "netns", "del", HOST], check=False)

    best_floor = min(t_floor, t_floor_seq)
    print(f"workloads: {n} in one host namespace, {os.cpu_count()} CPUs, kernel {os.uname().release}")
    print(f"module converge from empty : {t_create:7.3f} s  ({1 + n} ip processes to write, {n} sysctl sets)")
    print(f"module no-op               : {t_noop:7.3f} s  (again: {t_noop2:.3f} s; {1 + n} ip -json reads)")
    print(f"module removal of all      : {t_remove:7.3f} s  (kernel veth/netns teardown dominates)")
    print(f"floor, hand-written batches: {t_floor:7.3f} s  ({wl.APPLY_WORKERS} parallel); sequential {t_floor_seq:.3f} s")
    print(f"loop, one command/attribute: {t_loop:7.3f} s  ({15 * n} processes)")
    print(f"ratio module / floor       : {t_create / best_floor:7.2f}x   (goal <= 2x)")
    print(f"ratio loop / module        : {t_loop / t_create:7.2f}x   (goal >= 25x)")
    print(f"ratio loop / floor         : {t_loop / best_floor:7.2f}x   (the bound for loop / module)")
    print(f"no-op                      : {min(t_noop, t_noop2):7.3f} s   (goal <= 1 s)")


if __name__ == "__main__":
    main()
