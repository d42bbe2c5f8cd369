# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Benchmark of network policy on one host: N workloads (default 250), P policies (default 50).

Measured in the same run, in a network namespace of the benchmark's own (``l3bpol-<pid>``):

- apply:   ``policy_rules.converge`` from nothing (check the program, probe the backend, read,
           plan, one transaction, read back, state file) against the floor: one hand-written
           ``nft -f`` of the same ruleset (rendered before the clock starts), the least any tool
           must do (goal: apply <= 2x floor);
- no-op:   ``converge`` again with the same program (goal <= 0.2 s), against the floor of
           reading the table once (``nft -j list table``);
- member:  one workload added to a selected set: the elements the plan changes (goal: one set
           element, no rule) and its time, against replacing the whole table;
- the same three on iptables-legacy + ipset (``--iptables``; one ``ipset restore`` +
           one ``iptables-legacy-restore`` hand-written as the floor).

Prints the figures, the ratios and whether each goal of issue 16 is met (``--strict``: exit 1
when one is not). Needs root and nft (and iptables-legacy + ipset for ``--iptables``). ``--dual``:
a dual-stack program (every workload also has an IPv6 address, the sets their IPv6 members, the
ICMP and net rules per family, one IPv6-only rule per policy): both tables in one ``nft -f`` (and
ip6tables-legacy beside iptables-legacy), the floors hand-written for both families.

    sudo .venv/bin/python benchmarks/policy_rules.py [N] [--policies P] [--rounds R] [--iptables] [--dual] [--strict]
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".collections"))

from ansible_collections.l3.calico.plugins.module_utils import policy_rules as pr  # noqa: E402

CLONE_NEWNET = 0x40000000


def sh(argv, stdin=None):
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


def enter_namespace(name: str) -> None:
    sh(["ip", "netns", "add", name])
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{name}", "rb") as handle:
        if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
            raise SystemExit(f"setns: {os.strerror(ctypes.get_errno())}")


def address(i: int) -> str:
    return f"10.210.{i // 250}.{i % 250 + 1}"


def address6(i: int) -> str:
    return f"fd00:210::{i + 1:x}"


def program(n: int, policies: int, extra: int = 0, dual: bool = False) -> dict:
    """N workloads in 10 "apps"; every policy selects one app (ingress, some egress), its rules
    use sets of other apps, port ranges, ICMP and nets: what a compiler gives a busy host."""
    apps = {a: [i for i in range(n) if i % 10 == a] for a in range(10)}
    sets = {f"s_app{a}": sorted((f"{address(i)}/32" for i in members), key=lambda c: tuple(map(int, c[:-3].split(".")))) for a, members in apps.items()}
    for i in range(extra):  # workloads of other hosts joining app 0
        sets["s_app0"].append(f"10.211.0.{i + 1}/32")
    entity = {"nets": [], "not_nets": [], "set": None, "not_set": None, "ports": [], "not_ports": []}
    chains, ingress, egress = {}, {i: [] for i in range(n)}, {i: [] for i in range(n)}
    for p in range(policies):
        app, other = p % 10, (p + 3) % 10
        direction = "egress" if p % 5 == 4 else "ingress"
        peer = "destination" if direction == "egress" else "source"
        name = f"p{p:02d}_{direction[0]}"
        rules = [
            {"action": "log", "protocol": 6, "source": dict(entity), "destination": dict(entity, ports=[[22, 22]])},
            {"action": "deny", "protocol": 17, peer: dict(entity, set=f"s_app{(p + 1) % 10}"), "destination" if peer == "source" else "source": dict(entity)},
            {
                "action": "allow",
                "protocol": 6,
                peer: dict(entity, set=f"s_app{other}"),
                "destination" if peer == "source" else "source": dict(entity, ports=[[80, 80], [8000, 8100]]),
            },
            {"action": "allow", "protocol": 1, "icmp": {"type": 8, "code": 0}, "source": dict(entity, nets=["10.210.0.0/16"]), "destination": dict(entity)},
            {"action": "pass", "protocol": 17, "source": dict(entity, not_nets=["10.0.0.0/8"]), "destination": dict(entity, not_ports=[[53, 53]])},
        ]
        if dual:
            rules[3]["ip_version"] = rules[4]["ip_version"] = 4
            rules.append({"action": "deny", "ip_version": 6, "protocol": 6, "source": dict(entity, nets=["2001:db8::/32"]), "destination": dict(entity)})
        for rule in rules:
            rule.setdefault("source", dict(entity))
            rule.setdefault("destination", dict(entity))
            rule.update(ref=f"ns{app}/policy-{p} {direction}", not_protocol=None, not_icmp=None)
            rule.setdefault("icmp", None)
        chains[name] = {"policy": f"ns{app}/policy-{p}", "direction": direction, "rules": rules}
        for i in apps[app]:
            (egress if direction == "egress" else ingress)[i].append(name)
    endpoints = [
        {
            "interface": "cali" + hashlib.sha1(f"bench.w{i}".encode()).hexdigest()[:11],
            "workload": f"bench.w{i}",
            "address": address(i),
            "ingress": ingress[i],
            "egress": egress[i],
            **({"address6": address6(i)} if dual else {}),
        }
        for i in range(n)
    ]
    out = {"version": 1, "sets": sets, "chains": chains, "endpoints": sorted(endpoints, key=lambda e: e["interface"])}
    if dual:
        out["sets6"] = {f"s_app{a}": [f"{address6(i)}/128" for i in members] for a, members in apps.items()}
    return out


def reset(backend: str, state_file: str) -> None:
    pr.remove(state_file)
    if backend == "iptables":
        for name in sh(["ipset", "list", "-n"]).split():
            if name.startswith(pr.IPSET_PREFIX):
                sh(["ipset", "destroy", name])


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def floor_text(backend: str, parsed) -> tuple[str, str]:
    """The same ruleset hand-written for one ``nft -f`` / one ``ipset restore`` + ``iptables-legacy-restore``."""
    if backend == "nftables":
        return pr.render_nft(parsed), ""
    ipset, scripts = "", []
    for version in (4, 6) if parsed.dual else (4,):
        chains, sets = pr.ipt_program(parsed.family(version), version)
        family = "inet6" if version == 6 else "inet"
        ipset += "".join(f"create {name} hash:net family {family}\n" + "".join(f"add {name} {m}\n" for m in members) for name, members in sets.items())
        lines = ["*filter", *(f":{c} - [0:0]" for c in chains)]
        for chain_lines in chains.values():
            lines += chain_lines
        lines += ["-I FORWARD 1 -j L3CP-FORWARD", "-I INPUT 1 -j L3CP-INPUT", "COMMIT"]
        scripts.append("\n".join(lines) + "\n")
    return ipset, scripts


def bench(backend: str, n: int, policies: int, rounds: int, state_file: str, dual: bool = False) -> list:
    data = program(n, policies, dual=dual)
    parsed = pr.parse_program(data)
    rules = sum(len(c["rules"]) for c in data["chains"].values())
    members = sum(len(m) for m in data["sets"].values()) + sum(len(m) for m in data.get("sets6", {}).values())
    what = f"{len(data['sets'])} sets ({members} members{', both families' if dual else ''}), {2 * n} workload chains"
    print(f"--- {backend}{' (dual stack)' if dual else ''}: {n} workloads, {policies} policies ({rules} rules), {what}")
    applies, floors, noops, reads, members_t, replaces = [], [], [], [], [], []
    grown = program(n, policies, extra=1, dual=dual)
    added = None
    for _round in range(rounds):
        reset(backend, state_file)
        first, text = floor_text(backend, parsed)
        if backend == "nftables":
            t_floor, _unused = timed(lambda first=first: sh(["nft", "-f", "-"], first))
        else:
            t_floor, _unused = timed(
                lambda first=first, text=text: (
                    sh(["ipset", "restore"], first),
                    *(
                        sh([command, "--noflush"], script)
                        for command, script in zip(("iptables-legacy-restore", "ip6tables-legacy-restore"), text, strict=False)
                    ),
                )
            )
        floors.append(t_floor)
        reset(backend, state_file)
        t_apply, the_plan = timed(lambda: pr.converge(data, backend=backend, state_file=state_file))
        assert the_plan.kind == "replace", the_plan.kind
        applies.append(t_apply)
        t_noop, again = timed(lambda: pr.converge(data, backend=backend, state_file=state_file))
        assert again.kind == "none" and not again.changed, again.changes
        noops.append(t_noop)
        if backend == "nftables":
            reads.append(timed(lambda: [sh(["nft", "-j", "list", "table", family, pr.TABLE]) for family in (("ip", "ip6") if dual else ("ip",))])[0])
        else:
            saves = ("iptables-legacy-save", "ip6tables-legacy-save") if dual else ("iptables-legacy-save",)
            reads.append(timed(lambda saves=saves: ([sh([save, "-t", "filter"]) for save in saves], sh(["ipset", "save"])))[0])
        t_member, one = timed(lambda: pr.converge(grown, backend=backend, state_file=state_file))
        assert one.kind == "elements", one.kind
        added = one
        members_t.append(t_member)
        pr.converge(data, backend=backend, state_file=state_file)  # back
        t_replace, _unused = timed(lambda: sh(["nft", "-f", "-"], pr.render_nft(pr.parse_program(grown))) if backend == "nftables" else None)
        replaces.append(t_replace)
    reset(backend, state_file)
    med = statistics.median
    script = added.nft_script or added.ipset_script
    print(f"apply everything (module)    : {med(applies):7.3f} s   (best {min(applies):.3f})")
    print(f"one hand-written transaction : {med(floors):7.3f} s   (best {min(floors):.3f})")
    print(f"no-op (module)               : {med(noops):7.3f} s   (reading the rules once: {med(reads):.3f} s)")
    print(f"one workload joins a set     : {med(members_t):7.3f} s   {added.changes}; written: {script.strip()!r}")
    if backend == "nftables":
        print(f"  vs the whole table again   : {med(replaces):7.3f} s   (ratio {med(replaces) / med(members_t):.1f}x)")
    goals = [
        (f"ratio apply / hand-written    : {med(applies) / med(floors):7.2f}x   (goal <= 2x)", med(applies) <= 2 * med(floors)),
        (f"no-op                         : {med(noops):7.3f} s   (goal <= 0.2 s)", med(noops) <= 0.2),
        (
            f"member change                 : {len(script.splitlines())} line(s), kind {added.kind}   (goal: one set element, no rule)",
            added.kind == "elements" and len(script.splitlines()) == 1,
        ),
    ]
    for line, ok in goals:
        print(f"{line}  {'met' if ok else 'NOT MET'}")
    return [ok for _line, ok in goals]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=250)
    parser.add_argument("--policies", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iptables", action="store_true", help="also measure iptables-legacy + ipset")
    parser.add_argument("--dual", action="store_true", help="a dual-stack program (IPv6 addresses, sets and rules beside the IPv4 ones)")
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (a network namespace of its own)")
    if shutil.which("nft") is None:
        raise SystemExit("needs nft (Debian package nftables)")
    name = f"l3bpol-{os.getpid()}"
    enter_namespace(name)
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="l3bpol-") as tmp:
            state_file = os.path.join(tmp, "policy.json")
            results += bench("nftables", args.n, args.policies, args.rounds, state_file, args.dual)
            if args.iptables or shutil.which("ipset"):
                results += bench("iptables", args.n, args.policies, args.rounds, state_file, args.dual)
            print(json.dumps({"goals_met": sum(results), "goals": len(results)}))
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    if args.strict and not all(results):
        sys.exit(1)


if __name__ == "__main__":
    main()
