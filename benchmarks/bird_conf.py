# SPDX-License-Identifier: MIT
"""bird.conf of one node of a full-mesh fleet, as l3.calico.bird computes and prints it on the host
(``bird_conf.from_bgp``: ``bgp.node_config`` then ``bird_conf.render``), IPv4 only and dual stack.

1. The same N nodes, IPv4 only, then with an IPv6 address, an IPv6 block each and an IPv6 pool: a
   dual-stack node has twice the sessions and bird.conf twice the bytes. Goal: dual stack at most
   2.5 times the IPv4-only time (the IPv6 side no dearer per session than the IPv4 one, plus reading
   the IPv6 side of the result).
2. The IPv6 spelling of every IPv6 peer (``bgp._ipv6_text``: ``socket.inet_ntop``) against the plain
   ``str(ipaddress.IPv6Address(n))``, N addresses. Goal: faster (ratio < 1).

CPU seconds of this process (the machine may be shared), best of R rounds; the first reading of a fleet
(cold: every value parsed) is the one a module run pays, so each round reads a fresh copy.
Usage: python benchmarks/bird_conf.py [--nodes N] [--rounds R]
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".collections"))

from ansible_collections.l3.calico.plugins.module_utils import bird_conf, ipam_result  # noqa: E402
from ansible_collections.l3.calico.plugins.module_utils.bgp import _ipv6_text  # noqa: E402


def fleet(nodes: int, dual: bool) -> dict:
    out = {}
    for i in range(nodes):
        node = {
            "ip": f"10.{i // 250}.{i % 250}.1",
            "network": f"10.{i // 250}.{i % 250}.0/24",
            "blocks": [{"cidr": f"172.{16 + i // 4096}.{(i % 4096) // 16}.{(i % 16) * 16}/28", "pool": "p"}],
        }
        if dual:
            node.update(ipv6=f"fd00:{i:x}::1", network_ipv6=f"fd00:{i:x}::/64", blocks_ipv6=[{"cidr": f"fd00:10:0:{i:x}::/122", "pool": "v6"}])
        out[f"node-{i:05d}"] = node
    return out


def cpu(fn, rounds: int, fresh=None) -> float:
    best = float("inf")
    for _round in range(rounds):
        arg = fresh() if fresh else None
        for cache in (ipam_result._SUBNETS, ipam_result._SUBNETS6, ipam_result._TEXTS, ipam_result._TEXTS6, ipam_result._NODE_NAMES):
            cache.clear()  # cold, as a module run
        start = time.process_time()
        fn(arg)
        best = min(best, time.process_time() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pools = {"p": {"cidr": "172.16.0.0/12"}}
    pools6 = {"v6": {"cidr": "fd00:10::/32"}}
    node = "node-00005"
    print(f"bird.conf of one node of {args.nodes:,} (full mesh), best of {args.rounds}, CPU seconds")
    times, sizes = {}, {}
    for label, dual in (("IPv4 only", False), ("dual stack", True)):
        nodes = fleet(args.nodes, dual)

        def run(fresh, dual=dual):
            bgp = {"node": node, "nodes": fresh, "pools": pools, "pools_ipv6": pools6 if dual else {}, "settings": {"mesh_password": "x"}, "layout": {}}
            sizes[dual] = len(bird_conf.from_bgp(bgp, "/etc/bird/bird.conf", "/etc/bird/bird-secrets.conf")[0])

        times[dual] = cpu(run, args.rounds, lambda nodes=nodes: copy.deepcopy(nodes))
        print(f"  {label:10}  {times[dual]:7.3f} s  bird.conf {sizes[dual]:,} bytes")
    ratio = times[True] / times[False]
    print(f"  dual stack / IPv4 only: {ratio:.2f} (goal <= 2.5)")
    numbers = [(0xFD00 << 112) | (i << 64) | 1 for i in range(args.nodes)]
    ours = cpu(lambda _unused: [_ipv6_text(n) for n in numbers], args.rounds)
    plain = cpu(lambda _unused: [str(ipaddress.IPv6Address(n)) for n in numbers], args.rounds)
    print(f"  IPv6 spelling of {args.nodes:,} peers: inet_ntop {ours:.4f} s, ipaddress {plain:.4f} s, ratio {ours / plain:.2f} (goal < 1)")
    return 0 if ratio <= 2.5 and ours < plain else 1


if __name__ == "__main__":
    sys.exit(main())
