# SPDX-License-Identifier: MIT
"""Policy compiler benchmark: the controller's work for a fleet (module_utils/policy_model, policy_compile).

A generated fleet - N hosts x W workloads in 20 namespaces (labels: app of 25, tier of 3, version of 4,
so a few thousand classes of workloads with equal labels), P policies (half namespaced, half global, each
with a selector and three rules with selectors, namespace selectors, ports and nets):

1. ``PolicySet.from_inventory`` (every policy, namespace and workload checked; the IPAM result read);
2. ``policy_compile.host_programs``: every distinct selection evaluated once over the fleet's label
   classes, then one program per host;
3. the size of the programs as JSON (every host's sets hold the fleet-wide members of its selectors, as
   Felix's ipsets do);
4. against the plain alternatives, in the same run: (a) every distinct selection evaluated once over every
   workload (no label classes), and (b) every selection evaluated for each host over the fleet, as a
   per-host compiler would (measured on a few hosts and scaled to N: running it for 1,000 hosts would take
   hours). Ratios printed.

CPU seconds of this process are what is judged (the machine may be shared). Goal: the compiler faster than
both plain alternatives (ratio < 1). ``--dual``: every workload and node also has an IPv6 address and every
policy an IPv6-only rule (``ipVersion: 6``, IPv6 nets): the dual-stack programs (``sets6``, ``address6``).
Usage: python benchmarks/policy.py [--hosts N] [--workloads W] [--policies P] [--rounds R] [--sample S] [--dual]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".collections"))

from ansible_collections.l3.calico.plugins.module_utils import policy_compile  # noqa: E402
from ansible_collections.l3.calico.plugins.module_utils.ipam_result import IpamResult  # noqa: E402
from ansible_collections.l3.calico.plugins.module_utils.policy_model import PolicySet  # noqa: E402

APPS = [f"app{i}" for i in range(25)]
TIERS = ["front", "back", "data"]
NAMESPACES = {f"ns-{i}": {"labels": {"team": f"t{i % 5}", "env": ("prod", "dev")[i % 2]}} for i in range(20)}


def fleet(hosts: int, workloads: int, dual: bool = False) -> tuple:
    """(calico_workloads by host, the IPAM result) of a generated fleet (``dual``: IPv6 addresses too)."""
    inventory, nodes = {}, {}
    n = 0
    for h in range(hosts):
        name = f"node-{h:05d}"
        entries, wls = [], []
        for _k in range(workloads):
            ns = f"ns-{n % 20}"
            labels = {"app": APPS[(n // 20) % 25], "tier": TIERS[n % 3], "version": f"v{n % 4}"}
            entries.append({"name": f"w{n}", "namespace": ns, "labels": labels})
            wls.append({"id": f"{ns}.w{n}", "ip": f"10.{64 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}"})
            if dual:
                wls[-1]["ipv6"] = f"fd00:64::{n >> 16:x}:{n & 0xFFFF:x}"
            n += 1
        inventory[name] = entries
        nodes[name] = {"ip": f"192.168.{h >> 8}.{h & 255}", "workloads": wls}
        if dual:
            nodes[name]["ipv6"] = f"fd00:192::{h:x}"
    return inventory, {"nodes": nodes, "pools": {}, **({"pools_ipv6": {}} if dual else {})}


def policies(count: int, dual: bool = False) -> list:
    out = []
    for i in range(count):
        app, peer = APPS[i % 25], APPS[(i + 7) % 25]
        policy = {
            "name": f"policy-{i}",
            "order": (i % 10) * 10,
            "selector": f"app == '{app}' && tier in {{'front', 'back'}}",
            "ingress": [
                {"action": "Allow", "protocol": "TCP", "source": {"selector": f"app == '{peer}'"}, "destination": {"ports": [80 + i, "8000:8100"]}},
                {"action": "Allow", "protocol": "UDP", "source": {"namespace_selector": f"team == 't{i % 5}'"}, "destination": {"ports": [53]}},
                {"action": "Deny", "source": {"nets": ["192.0.2.0/24"], "not_selector": "version == 'v0'"}},
            ],
            "egress": [{"action": "Allow", "destination": {"selector": f"tier == 'data' && app == '{peer}'"}}],
        }
        if dual:
            policy["ingress"].append({"action": "Deny", "ipVersion": 6, "source": {"nets": ["2001:db8::/32"]}})
        if i % 2:
            policy["namespace"] = f"ns-{i % 20}"
        else:
            policy["namespace_selector"] = f"env == '{('prod', 'dev')[i % 2]}'"
        out.append(policy)
    return out


def cpu(fn, rounds: int) -> tuple:
    """(the least CPU seconds of ``rounds`` runs of ``fn``, its last result)."""
    best, value = None, None
    for _round in range(rounds):
        gc.collect()
        start = time.process_time()
        value = fn()
        spent = time.process_time() - start
        best = spent if best is None else min(best, spent)
    return best, value


def selections(ps: PolicySet) -> list:
    """Every distinct selection of the policy set (policy selectors and rule selectors)."""
    found = {}
    for policy in ps.policies:
        found[policy.selection.key] = policy.selection
        for rule in policy.ingress + policy.egress:
            for entity in (rule.source, rule.destination):
                for sel in (entity.selection, entity.not_selection):
                    if sel is not None:
                        found[sel.key] = sel
    return list(found.values())


def per_workload(ps: PolicySet) -> int:
    """Plain alternative (a): each distinct selection evaluated once over every workload."""
    matched = 0
    workloads = list(ps.workloads.values())
    for sel in selections(ps):
        matched += sum(1 for w in workloads if sel.selects(w, ps.namespaces))
    return matched


def per_host(ps: PolicySet, hosts: list) -> int:
    """Plain alternative (b), for ``hosts``: each host evaluates every selection over the fleet."""
    matched = 0
    workloads = list(ps.workloads.values())
    for _host in hosts:
        for sel in selections(ps):
            matched += sum(1 for w in workloads if sel.selects(w, ps.namespaces))
    return matched


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--workloads", type=int, default=50)
    parser.add_argument("--policies", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sample", type=int, default=2, help="hosts measured for the per-host alternative (scaled to --hosts)")
    parser.add_argument("--dual", action="store_true", help="dual stack: IPv6 addresses and an IPv6-only rule per policy")
    args = parser.parse_args()
    inventory, result = fleet(args.hosts, args.workloads, args.dual)
    pols = policies(args.policies, args.dual)
    ipam = IpamResult.from_dict(result)
    print(
        f"Policy compiler benchmark{' (dual stack)' if args.dual else ''}: {args.hosts:,} hosts x {args.workloads} workloads "
        f"({args.hosts * args.workloads:,}), {args.policies} policies, best of {args.rounds}, CPU seconds"
    )
    # The first reading is the controller's (a fresh process checks every label once); later ones find the
    # labels already checked.
    cold, ps = cpu(lambda: PolicySet.from_inventory(pols, NAMESPACES, inventory, ipam), 1)
    warm, ps = cpu(lambda: PolicySet.from_inventory(pols, NAMESPACES, inventory, ipam), args.rounds)
    classes = len({w.label_class for w in ps.workloads.values()})
    sels = selections(ps)
    what = f"{len(ps.workloads):,} workloads in {classes:,} label classes, {len(sels)} distinct selections"
    print(f"  read and check the policy model          {cold:8.3f} s  cold, {warm:.3f} s warm ({what})")
    compiled, programs = cpu(lambda: policy_compile.host_programs(ps, ipam), args.rounds)
    summary = policy_compile.summary(programs)
    print(
        f"  compile: host_programs                    {compiled:8.3f} s  ({summary['chains']} chains, {summary['sets']} sets, "
        f"{summary['endpoints_with_ingress_policy']:,} endpoints with ingress policy)"
    )
    sizes = [len(json.dumps(programs[h])) for h in sorted(programs)[:20]]
    print(
        f"  programs as JSON (what the result carries) {sum(sizes) / len(sizes) / 1e6:7.2f} MB per host on average of 20, "
        f"about {sum(sizes) / len(sizes) * len(programs) / 1e9:.2f} GB for the fleet (address sets hold fleet-wide members)"
    )
    plain_a, _matched = cpu(lambda: per_workload(ps), 1)
    print(f"  plain (a) every selection x every workload {plain_a:7.3f} s  ratio {compiled / plain_a:.3f}")
    sample = sorted(programs)[: args.sample]
    spent, _matched = cpu(lambda: per_host(ps, sample), 1)
    plain_b = spent * args.hosts / len(sample)
    print(
        f"  plain (b) per host, every selection x fleet {plain_b:7.1f} s  (measured {spent:.2f} s for {len(sample)} host(s), scaled to {args.hosts:,}) "
        f"ratio {compiled / plain_b:.5f}"
    )
    met = compiled < plain_a and compiled < plain_b
    print(f"  goal (compiler faster than both plain alternatives): {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
