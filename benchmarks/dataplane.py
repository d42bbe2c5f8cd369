#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Benchmark of the workloads data plane: one host namespace, N workloads (default 250).

Measured in the same run, on the same kernel:

- module:  ``workloads.converge`` from empty (read, plan, one host ``ip -batch``, one
           ``ip -n NS -batch`` per namespace, sysctls written to /proc/sys), then a no-op run;
- floor:   the same work hand-written: one host ``ip -batch`` plus one ``ip -batch`` per
           namespace (started inside it, as the module does) and the same sysctl writes, no
           reading, no planning, with the module's parallelism (iproute2 cannot switch namespace
           inside one batch, so this is the fewest processes that can do the work); for reference
           also the way a shell script does it, ``ip -n NS -batch`` each;
- loop:    the naive script: per workload, one ``ip``/``sysctl`` command per attribute.

Prints the figures and the ratios (goals: module <= 2x floor, >= 25x faster than the loop,
no-op <= 1 s). Needs root. Every name starts with ``l3tdp-bench-``; everything is removed.

    sudo .venv/bin/python benchmarks/dataplane.py [N]
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".collections"))

from ansible_collections.l3.calico.plugins.module_utils import naming, rtnl  # noqa: E402
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


def floor(items, prefix, workers, enter=True):
    """Hand-written batches for the same end state (rendered before the clock starts).

    ``enter``: start each namespace's ``ip -batch`` from a thread inside the namespace (as the
    module does); otherwise ``ip -n NS -batch``.
    """
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
    def job(item):
        ns, text = item
        if enter:
            with rtnl.entered(ns):
                sh(["ip", "-batch", "-"], text)
        else:
            sh(["ip", "-n", ns, "-batch", "-"], text)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(job, inside.items()))
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
    state_dir = tempfile.mkdtemp(prefix="l3tdp-bench-")
    state_file = os.path.join(state_dir, "workloads.json")
    enter_host_namespace()
    try:
        items = workloads(n)
        rounds = 2  # module and floor: best of two (the machine may be shared)
        t_floor = []
        for _ in range(rounds):
            t_floor.append(floor(items, prefix, wl.APPLY_WORKERS))
            assert len(our_namespaces(prefix)) == n
            teardown(prefix)
        t_floor_n = floor(items, prefix, wl.APPLY_WORKERS, enter=False)
        teardown(prefix)

        t_create, t_noop, t_remove = [], [], []
        for _ in range(rounds):
            took, created = run_module(items, prefix, state_file)
            t_create.append(took)
            assert len(created.create) == n and len(our_namespaces(prefix)) == n
            for _ in range(2):
                took, noop = run_module(items, prefix, state_file)
                assert not noop.changed, noop.update
                t_noop.append(took)
            took, removed = run_module([], prefix, state_file)
            t_remove.append(took)
            assert len(removed.remove) == n and not our_namespaces(prefix)
            time.sleep(3)

        t_loop = loop(items, prefix)
        assert len(our_namespaces(prefix)) == n
        teardown(prefix)
    finally:
        teardown(prefix)
        shutil.rmtree(state_dir, ignore_errors=True)
        subprocess.run(["ip", "netns", "del", HOST], check=False)

    create, noop, floor_best = min(t_create), min(t_noop), min(t_floor)
    load = os.getloadavg()[0]
    print(f"workloads: {n} in one host namespace, {os.cpu_count()} CPUs, kernel {os.uname().release}, load {load:.1f}")
    print(f"module converge from empty : {create:7.3f} s  (runs: {', '.join(f'{t:.3f}' for t in t_create)})")
    print(f"module no-op               : {noop:7.3f} s  (runs: {', '.join(f'{t:.3f}' for t in t_noop)})")
    print(f"module removal of all      : {min(t_remove):7.3f} s  (the kernel's veth/netns teardown dominates)")
    print(f"floor, hand-written batches: {floor_best:7.3f} s  (runs: {', '.join(f'{t:.3f}' for t in t_floor)}; "
          f"with `ip -n NS` as a script would: {t_floor_n:.3f} s)")
    print(f"loop, one command/attribute: {t_loop:7.3f} s  ({15 * n} processes)")
    print(f"ratio module / floor       : {create / floor_best:7.2f}x   (goal <= 2x)")
    print(f"ratio loop / module        : {t_loop / create:7.2f}x   (goal >= 25x)")
    print(f"no-op                      : {noop:7.3f} s   (goal <= 1 s; 1 ip process + {n} in-process rtnetlink reads)")
    print("processes: converge 1 host ip -batch + 1 per namespace; no-op 1 ip -json; loop 15 per workload")

if __name__ == "__main__":
    main()
