# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Network policy in real namespaces: two hosts, twelve workloads, thirteen policies, both backends.

Hosts ``a`` and ``b`` (namespaces, one subnet, each routing the other's workload /24) carry six
workloads each, built by the workloads module; every workload runs a listener on TCP 80, TCP 8080
and UDP 53. The policy set (:data:`POLICIES`, Calico's fields, as an inventory states them)
exercises order, Pass, Log, default deny, namespaceSelector, not_selector / not_nets / not_ports /
not_protocol, port ranges, ICMP type and code, TCP, UDP and ICMP. Every host gets its program,
applied by ``policy_rules.converge`` inside the host namespace, on nftables and on iptables-legacy +
ipset: once the programs written by hand from the policies (:func:`hand_program`), once those the
compiler makes from the inventory data (:func:`compiled_programs`: policy_model, policy_compile).

The expected verdicts (:data:`EXPECTED`) are written by hand, one grid per probe: row = source,
column = destination, ``Y`` allowed, ``.`` denied, ``-`` itself. The reasoning for each column
is in the comment above the grids. Nothing of the code under test computes them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.l3.calico.plugins.module_utils import naming
from tests.support.firewall_backends import firewall_backends
from tests.support.policy_netns import NFT_MONITOR, RUN_POLICY

from .conftest import HOSTS, PYTHONPATH, ROOT, Topology, _missing

pytestmark = pytest.mark.netns

PREFIX = "l3tpol-"

# ----------------------------------------------------------------------------------------------
# The workloads and the policies, as an inventory states them
# ----------------------------------------------------------------------------------------------

NAMESPACES = {"blue": {"labels": {"team": "blue"}}, "green": {"labels": {"team": "green"}}, "ops": {"labels": {"team": "ops"}}}

# key: (host, namespace, name, ip, labels)
WORKLOADS = {
    "a1": ("a", "blue", "web-a", "10.65.0.1", {"app": "web"}),
    "a2": ("a", "blue", "db-a", "10.65.0.2", {"app": "db"}),
    "a3": ("a", "green", "web-a", "10.65.0.3", {"app": "web"}),
    "a4": ("a", "green", "cache-a", "10.65.0.4", {"app": "cache"}),
    "a5": ("a", "ops", "mon-a", "10.65.0.5", {"app": "monitor"}),
    "a6": ("a", "ops", "free-a", "10.65.0.6", {"app": "free"}),
    "b1": ("b", "blue", "web-b", "10.65.1.1", {"app": "web"}),
    "b2": ("b", "blue", "db-b", "10.65.1.2", {"app": "db"}),
    "b3": ("b", "green", "web-b", "10.65.1.3", {"app": "web"}),
    "b4": ("b", "green", "batch-b", "10.65.1.4", {"app": "batch"}),
    "b5": ("b", "ops", "mon-b", "10.65.1.5", {"app": "monitor"}),
    "b6": ("b", "ops", "bad-b", "10.65.1.6", {"app": "bad", "quarantine": "true"}),
}
ORDER = tuple(WORKLOADS)
# appears later (the set-element test): namespace ops, selected by no policy
EXTRA = {"b7": ("b", "ops", "extra-b", "10.65.1.7", {"app": "extra"})}
ROUTES = {"a": ("10.65.1.0/24", HOSTS["b"][0]), "b": ("10.65.0.0/24", HOSTS["a"][0])}

POLICIES = [
    # P1: quarantined workloads talk to nobody and nobody to them
    {
        "name": "quarantine",
        "order": 1,
        "selector": 'quarantine == "true"',
        "types": ["Ingress", "Egress"],
        "ingress": [{"action": "Deny"}],
        "egress": [{"action": "Deny"}],
    },
    # P2: monitors may send any ICMP to everyone but "free" workloads: Pass skips the rest of the tier.
    # It selects every workload but free-a, so those have a default deny for ingress.
    {
        "name": "ops-pass",
        "order": 5,
        "selector": 'app != "free"',
        "types": ["Ingress"],
        "ingress": [{"action": "Pass", "protocol": "ICMP", "source": {"namespace_selector": 'team == "ops"', "selector": 'app == "monitor"'}}],
    },
    # P3: log TCP to the databases (no verdict)
    {"name": "db-log", "namespace": "blue", "order": 50, "selector": 'app == "db"', "ingress": [{"action": "Log", "protocol": "TCP"}]},
    # P4 before P5 (order): blue webs may ask the databases' DNS port over UDP...
    {
        "name": "allow-dns",
        "namespace": "blue",
        "order": 90,
        "selector": 'app == "db"',
        "ingress": [{"action": "Allow", "protocol": "UDP", "source": {"selector": 'app == "web"'}, "destination": {"ports": [53]}}],
    },
    # P5: ...and every other UDP into blue is denied
    {"name": "deny-udp", "namespace": "blue", "order": 95, "selector": "all()", "types": ["Ingress"], "ingress": [{"action": "Deny", "protocol": "UDP"}]},
    # P6: blue webs: TCP 80 from anyone, echo requests (type 8 code 0) from namespaces of team blue
    {
        "name": "web",
        "namespace": "blue",
        "order": 100,
        "selector": 'app == "web"',
        "types": ["Ingress"],
        "ingress": [
            {"action": "Allow", "protocol": "TCP", "destination": {"ports": [80]}},
            {"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8, "code": 0}, "source": {"namespace_selector": 'team == "blue"'}},
        ],
    },
    # P7: blue databases: TCP 8080 from blue webs
    {
        "name": "db",
        "namespace": "blue",
        "order": 100,
        "selector": 'app == "db"',
        "ingress": [{"action": "Allow", "protocol": "TCP", "source": {"selector": 'app == "web"'}, "destination": {"ports": [8080]}}],
    },
    # P8: blue webs may not ping green workloads; anything else out is allowed
    {
        "name": "web-egress",
        "namespace": "blue",
        "order": 100,
        "selector": 'app == "web"',
        "types": ["Egress"],
        "egress": [
            {"action": "Deny", "protocol": "ICMP", "icmp": {"type": 8, "code": 0}, "destination": {"namespace_selector": 'team == "green"'}},
            {"action": "Allow"},
        ],
    },
    # P9: the green cache: TCP 8000-8100 from green workloads that are not batch jobs
    {
        "name": "cache",
        "namespace": "green",
        "order": 100,
        "selector": 'app == "cache"',
        "ingress": [
            {
                "action": "Allow",
                "protocol": "TCP",
                "source": {"selector": "has(app)", "not_selector": 'app == "batch"'},
                "destination": {"ports": ["8000:8100"]},
            }
        ],
    },
    # P10: green webs: TCP 80 from outside host b's workload /24, UDP 53 from anyone, echo (any code) from 10.65/16
    {
        "name": "web",
        "namespace": "green",
        "order": 200,
        "selector": 'app == "web"',
        "ingress": [
            {"action": "Allow", "protocol": "TCP", "source": {"not_nets": ["10.65.1.0/24"]}, "destination": {"ports": [80]}},
            {"action": "Allow", "protocol": "UDP", "destination": {"ports": [53]}},
            {"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8}, "source": {"nets": ["10.65.0.0/16"]}},
        ],
    },
    # P11: green batch jobs: no UDP out, TCP out except to 8080, ICMP out
    {
        "name": "batch-egress",
        "namespace": "green",
        "order": 100,
        "selector": 'app == "batch"',
        "types": ["Egress"],
        "egress": [
            {"action": "Deny", "protocol": "UDP"},
            {"action": "Allow", "protocol": "TCP", "destination": {"not_ports": [8080]}},
            {"action": "Allow", "protocol": "ICMP"},
        ],
    },
    # P12: monitors in namespaces of team ops: no UDP from webs (of any namespace), anything but TCP from others
    {
        "name": "ops-monitor",
        "order": 400,
        "namespace_selector": 'team == "ops"',
        "selector": 'app == "monitor"',
        "types": ["Ingress"],
        "ingress": [{"action": "Deny", "protocol": "UDP", "source": {"selector": 'app == "web"'}}, {"action": "Allow", "not_protocol": "TCP"}],
    },
    # P13: monitors: TCP 80 and 8080 from namespaces of team ops
    {
        "name": "monitor",
        "namespace": "ops",
        "order": 100,
        "selector": 'app == "monitor"',
        "ingress": [{"action": "Allow", "protocol": "TCP", "source": {"namespace_selector": 'team == "ops"'}, "destination": {"ports": [80, 8080]}}],
    },
]

# ----------------------------------------------------------------------------------------------
# The expected verdicts, by hand
# ----------------------------------------------------------------------------------------------
# Ingress, per destination (policies in order; "pass" = profile allow):
#   a1 b1 blue web     P2 P5 P6: TCP 80 from all; TCP 8080 no; UDP denied (P5); echo from a5 b5 (Pass) and blue (a1 a2 b1 b2)
#   a2 b2 blue db      P2 P3 P4 P5 P7: TCP 80 no; TCP 8080 from a1 b1; UDP 53 from a1 b1 (P4 before P5); echo from a5 b5
#   a3 b3 green web    P2 P10: TCP 80 from a1..a6 (not 10.65.1.0/24); 8080 no; UDP 53 from all; echo from all
#   a4 green cache     P2 P9: TCP 8080 (in 8000:8100) from a3 b3 (green, has app, not batch); UDP no; echo from a5 b5
#   b4 green batch     P2: echo from a5 b5 only
#   a5 b5 monitor      P2 P13 P12: TCP 80/8080 from ops (a5 a6 b5 b6); UDP from all but webs (a1 b1 a3 b3); echo from all
#   a6 free            no policy: everything
#   b6 quarantine      P1: nothing
# Egress, per source: a1 b1 (P8) no echo to green (a3 a4 b3 b4); b4 (P11) no UDP, no TCP 8080; b6 (P1) nothing.
#
# columns:  a1 a2 a3 a4 a5 a6 b1 b2 b3 b4 b5 b6
EXPECTED = {
    "tcp80": """
        a1  - . Y . . Y Y . Y . . .
        a2  Y - Y . . Y Y . Y . . .
        a3  Y . - . . Y Y . Y . . .
        a4  Y . Y - . Y Y . Y . . .
        a5  Y . Y . - Y Y . Y . Y .
        a6  Y . Y . Y - Y . Y . Y .
        b1  Y . . . . Y - . . . . .
        b2  Y . . . . Y Y - . . . .
        b3  Y . . . . Y Y . - . . .
        b4  Y . . . . Y Y . . - . .
        b5  Y . . . Y Y Y . . . - .
        b6  . . . . . . . . . . . -
    """,
    "tcp8080": """
        a1  - Y . . . Y . Y . . . .
        a2  . - . . . Y . . . . . .
        a3  . . - Y . Y . . . . . .
        a4  . . . - . Y . . . . . .
        a5  . . . . - Y . . . . Y .
        a6  . . . . Y - . . . . Y .
        b1  . Y . . . Y - Y . . . .
        b2  . . . . . Y . - . . . .
        b3  . . . Y . Y . . - . . .
        b4  . . . . . . . . . - . .
        b5  . . . . Y Y . . . . - .
        b6  . . . . . . . . . . . -
    """,
    "udp53": """
        a1  - Y Y . . Y . Y Y . . .
        a2  . - Y . Y Y . . Y . Y .
        a3  . . - . . Y . . Y . . .
        a4  . . Y - Y Y . . Y . Y .
        a5  . . Y . - Y . . Y . Y .
        a6  . . Y . Y - . . Y . Y .
        b1  . Y Y . . Y - Y Y . . .
        b2  . . Y . Y Y . - Y . Y .
        b3  . . Y . . Y . . - . . .
        b4  . . . . . . . . . - . .
        b5  . . Y . Y Y . . Y . - .
        b6  . . . . . . . . . . . -
    """,
    "icmp": """
        a1  - . . . Y Y Y . . . Y .
        a2  Y - Y . Y Y Y . Y . Y .
        a3  . . - . Y Y . . Y . Y .
        a4  . . Y - Y Y . . Y . Y .
        a5  Y Y Y Y - Y Y Y Y Y Y .
        a6  . . Y . Y - . . Y . Y .
        b1  Y . . . Y Y - . . . Y .
        b2  Y . Y . Y Y Y - Y . Y .
        b3  . . Y . Y Y . . - . Y .
        b4  . . Y . Y Y . . Y - Y .
        b5  Y Y Y Y Y Y Y Y Y Y - .
        b6  . . . . . . . . . . . -
    """,
}


def expected(kind: str) -> dict:
    grid = {}
    for line in EXPECTED[kind].strip().splitlines():
        source, *cells = line.split()
        assert len(cells) == len(ORDER), line
        for target, cell in zip(ORDER, cells, strict=True):
            if cell != "-":
                grid[(source, target)] = cell == "Y"
    return grid


# ----------------------------------------------------------------------------------------------
# The programs, by hand (what the compiler must produce from POLICIES, modulo names)
# ----------------------------------------------------------------------------------------------


def ip(key: str) -> str:
    return {**WORKLOADS, **EXTRA}[key][3]


def cidrs(*keys: str) -> list:
    return sorted((ip(k) + "/32" for k in keys), key=lambda c: tuple(int(x) for x in c[:-3].split(".")))


def veth(key: str, workloads: dict) -> str:
    _host, namespace, name, _ip, _labels = workloads[key]
    return naming.veth_name(naming.workload_id(namespace, name))


SETS = {
    "s_ops_monitors": cidrs("a5", "b5"),  # P2 source: namespace team == ops, app == monitor
    "s_blue_all": cidrs("a1", "a2", "b1", "b2"),  # P6 source: namespace team == blue
    "s_blue_webs": cidrs("a1", "b1"),  # P4 P7 source: blue, app == web
    "s_green_all": cidrs("a3", "a4", "b3", "b4"),  # P8 destination: namespace team == green; P9 source: green, has(app)
    "s_batch": cidrs("b4"),  # P9 not_selector: app == batch
    "s_ops_all": cidrs("a5", "a6", "b5", "b6"),  # P13 source: namespace team == ops
    "s_webs": cidrs("a1", "b1", "a3", "b3"),  # P12 source: app == web, any namespace
}


def rule(action, ref, protocol=None, not_protocol=None, icmp=None, source=None, destination=None):
    entity = {"nets": [], "not_nets": [], "set": None, "not_set": None, "ports": [], "not_ports": []}
    return {
        "action": action,
        "protocol": protocol,
        "not_protocol": not_protocol,
        "icmp": icmp,
        "not_icmp": None,
        "source": dict(entity, **(source or {})),
        "destination": dict(entity, **(destination or {})),
        "ref": ref,
    }


CHAINS = {
    "p1_i": ("global/quarantine", "ingress", [rule("deny", "global/quarantine ingress[0]")]),
    "p1_e": ("global/quarantine", "egress", [rule("deny", "global/quarantine egress[0]")]),
    "p2_i": ("global/ops-pass", "ingress", [rule("pass", "global/ops-pass ingress[0]", 1, source={"set": "s_ops_monitors"})]),
    "p3_i": ("blue/db-log", "ingress", [rule("log", "blue/db-log ingress[0]", 6)]),
    "p4_i": ("blue/allow-dns", "ingress", [rule("allow", "blue/allow-dns ingress[0]", 17, source={"set": "s_blue_webs"}, destination={"ports": [[53, 53]]})]),
    "p5_i": ("blue/deny-udp", "ingress", [rule("deny", "blue/deny-udp ingress[0]", 17)]),
    "p6_i": (
        "blue/web",
        "ingress",
        [
            rule("allow", "blue/web ingress[0]", 6, destination={"ports": [[80, 80]]}),
            rule("allow", "blue/web ingress[1]", 1, icmp={"type": 8, "code": 0}, source={"set": "s_blue_all"}),
        ],
    ),
    "p7_i": ("blue/db", "ingress", [rule("allow", "blue/db ingress[0]", 6, source={"set": "s_blue_webs"}, destination={"ports": [[8080, 8080]]})]),
    "p8_e": (
        "blue/web-egress",
        "egress",
        [
            rule("deny", "blue/web-egress egress[0]", 1, icmp={"type": 8, "code": 0}, destination={"set": "s_green_all"}),
            rule("allow", "blue/web-egress egress[1]"),
        ],
    ),
    "p9_i": (
        "green/cache",
        "ingress",
        [rule("allow", "green/cache ingress[0]", 6, source={"set": "s_green_all", "not_set": "s_batch"}, destination={"ports": [[8000, 8100]]})],
    ),
    "p10_i": (
        "green/web",
        "ingress",
        [
            rule("allow", "green/web ingress[0]", 6, source={"not_nets": ["10.65.1.0/24"]}, destination={"ports": [[80, 80]]}),
            rule("allow", "green/web ingress[1]", 17, destination={"ports": [[53, 53]]}),
            rule("allow", "green/web ingress[2]", 1, icmp={"type": 8, "code": None}, source={"nets": ["10.65.0.0/16"]}),
        ],
    ),
    "p11_e": (
        "green/batch-egress",
        "egress",
        [
            rule("deny", "green/batch-egress egress[0]", 17),
            rule("allow", "green/batch-egress egress[1]", 6, destination={"not_ports": [[8080, 8080]]}),
            rule("allow", "green/batch-egress egress[2]", 1),
        ],
    ),
    "p12_i": (
        "global/ops-monitor",
        "ingress",
        [rule("deny", "global/ops-monitor ingress[0]", 17, source={"set": "s_webs"}), rule("allow", "global/ops-monitor ingress[1]", not_protocol=6)],
    ),
    "p13_i": (
        "ops/monitor",
        "ingress",
        [rule("allow", "ops/monitor ingress[0]", 6, source={"set": "s_ops_all"}, destination={"ports": [[80, 80], [8080, 8080]]})],
    ),
}

# per workload: (ingress chains, egress chains), in policy order (order, then name)
ENDPOINT_CHAINS = {
    "a1": (["p2_i", "p5_i", "p6_i"], ["p8_e"]),
    "a2": (["p2_i", "p3_i", "p4_i", "p5_i", "p7_i"], []),
    "a3": (["p2_i", "p10_i"], []),
    "a4": (["p2_i", "p9_i"], []),
    "a5": (["p2_i", "p13_i", "p12_i"], []),
    "a6": ([], []),
    "b1": (["p2_i", "p5_i", "p6_i"], ["p8_e"]),
    "b2": (["p2_i", "p3_i", "p4_i", "p5_i", "p7_i"], []),
    "b3": (["p2_i", "p10_i"], []),
    "b4": (["p2_i"], ["p11_e"]),
    "b5": (["p2_i", "p13_i", "p12_i"], []),
    "b6": (["p1_i", "p2_i"], ["p1_e"]),
}


def hand_program(host: str, workloads: dict | None = None, sets: dict | None = None) -> dict:
    """The policy program of ``host`` written by hand: ``workloads`` and ``sets`` default to WORKLOADS and SETS."""
    workloads = WORKLOADS if workloads is None else workloads
    sets = SETS if sets is None else sets
    keys = [k for k in workloads if workloads[k][0] == host]
    used = sorted({c for k in keys for lst in ENDPOINT_CHAINS[k] for c in lst})
    endpoints = [
        {
            "interface": veth(k, workloads),
            "workload": f"{workloads[k][1]}.{workloads[k][2]}",
            "address": workloads[k][3],
            "ingress": ENDPOINT_CHAINS[k][0],
            "egress": ENDPOINT_CHAINS[k][1],
        }
        for k in keys
    ]
    return {
        "version": 1,
        "sets": {name: list(members) for name, members in sets.items()},
        "chains": {c: {"policy": CHAINS[c][0], "direction": CHAINS[c][1], "rules": CHAINS[c][2]} for c in used},
        "endpoints": sorted(endpoints, key=lambda e: e["interface"]),
    }


# ----------------------------------------------------------------------------------------------
# The hosts, the listeners, the probes
# ----------------------------------------------------------------------------------------------

SERVE = r"""
import socket, threading
def tcp(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", port)); s.listen(64)
    while True:
        c, _peer = s.accept(); c.sendall(b"ok"); c.close()
def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port))
    while True:
        data, peer = s.recvfrom(512); s.sendto(b"ok", peer)
for target, port in ((tcp, 80), (tcp, 8080), (udp, 53)):
    threading.Thread(target=target, args=(port,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

PROBE = r"""
import json, socket, subprocess, sys, threading
targets = json.loads(sys.argv[1])
out = {}
def tcp(address, port):
    s = socket.socket(); s.settimeout(2.0)
    try:
        s.connect((address, port)); return s.recv(8) == b"ok"
    except OSError:
        return False
    finally:
        s.close()
def udp(address, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.7)
    try:
        for _attempt in range(3):
            s.sendto(b"hi", (address, port))
            try:
                if s.recv(8) == b"ok":
                    return True
            except socket.timeout:
                pass
        return False
    finally:
        s.close()
def icmp(address):
    return subprocess.run(["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "1", address], capture_output=True).returncode == 0
def probe(address):
    out[address] = {"tcp80": tcp(address, 80), "tcp8080": tcp(address, 8080), "udp53": udp(address, 53), "icmp": icmp(address)}
threads = [threading.Thread(target=probe, args=(a,)) for a in targets]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(out))
"""


READS = {("nft", "-c"), ("nft", "-j"), ("iptables-legacy-save", "-t"), ("ipset", "save"), ("ipset", "list")}


class PolicyHosts:
    """Topology with the twelve workloads, their listeners and routes between the two hosts."""

    def __init__(self, topo: Topology, tmp_path: Path, backend: str):
        self.topo, self.tmp, self.backend = topo, tmp_path, backend

    def ns(self, key: str) -> str:
        host, namespace, name, _ip, _labels = {**WORKLOADS, **EXTRA}[key]
        return self.topo.netns_prefix(host) + naming.workload_id(namespace, name)

    def build(self, workloads: dict | None = None) -> None:
        workloads = WORKLOADS if workloads is None else workloads
        for host in sorted({w[0] for w in workloads.values()}):
            items = [{"name": w[2], "namespace": w[1], "ip": w[3]} for w in workloads.values() if w[0] == host]
            result = self.topo.workloads(host, items, self.tmp)
            assert result["ok"], result
        for host, (prefix, via) in ROUTES.items():
            self.topo.ip(self.topo.host(host), f"route replace {prefix} via {via}")

    def serve(self, keys) -> None:
        for key in keys:
            child = self.topo.spawn(self.ns(key), SERVE)
            assert child.stdout.readline().strip() == "ready"

    def policy(self, host: str, call: str = "converge", **kwargs) -> dict:
        kwargs.setdefault("state_file", str(self.tmp / f"policy-{host}.json"))
        if call == "converge":
            kwargs.setdefault("backend", self.backend)
        proc = self.topo.nsexec(self.topo.host(host), "env", f"PYTHONPATH={PYTHONPATH}", sys.executable, "-c", RUN_POLICY, stdin=json.dumps([call, kwargs]))
        return json.loads(proc.stdout)

    def apply(self, programs: dict) -> None:
        for host, program in programs.items():
            result = self.policy(host, program=program)
            assert result["ok"], result
            assert result["backend"] == self.backend

    def warm_up(self, keys) -> None:
        """ARP and routes settled: each host pings its workloads (always allowed) and the other host."""
        for key in keys:
            self.topo.nsexec(self.topo.host({**WORKLOADS, **EXTRA}[key][0]), "ping", "-c", "1", "-W", "2", ip(key), check=False)
        self.topo.nsexec(self.topo.host("a"), "ping", "-c", "1", "-W", "2", HOSTS["b"][0], check=False)

    def matrix(self, keys=ORDER) -> dict:
        """(source, destination) -> {probe kind: reached}, every source probing in parallel."""
        results: dict = {}

        def one(source):
            targets = [ip(k) for k in keys if k != source]
            proc = self.topo.nsexec(self.ns(source), sys.executable, "-c", PROBE, json.dumps(targets))
            by_ip = json.loads(proc.stdout)
            for k in keys:
                if k != source:
                    results[(source, k)] = by_ip[ip(k)]

        threads = [threading.Thread(target=one, args=(s,)) for s in keys]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    def state(self, host: str) -> str:
        """Everything of both backends in host ``host``, as text."""
        ns = self.topo.host(host)
        parts = [self.topo.nsexec(ns, "nft", "list", "ruleset", check=False).stdout]
        parts.append(self.topo.nsexec(ns, "iptables-legacy-save", "-t", "filter", check=False).stdout)
        parts.append(self.topo.nsexec(ns, "ipset", "save", check=False).stdout)
        return "\n".join(line for part in parts for line in part.splitlines() if not line.startswith("#") and "initval" not in line)


def compare(found: dict, keys=ORDER) -> list:
    wrong = []
    for kind in EXPECTED:
        want = expected(kind)
        for (source, target), verdict in sorted(want.items()):
            if source in keys and target in keys and found[(source, target)][kind] != verdict:
                wrong.append(f"{kind} {source}->{target}: expected {'allowed' if verdict else 'denied'}, got {'allowed' if not verdict else 'denied'}")
    return wrong


@pytest.fixture
def hosts(request, tmp_path):
    missing = _missing()
    if missing:
        pytest.skip(missing)
    topology = Topology(prefix=PREFIX)
    try:
        topology.build()
        yield lambda backend: PolicyHosts(topology, tmp_path, backend)
    finally:
        topology.cleanup()


BACKENDS = firewall_backends()


def _needs(backend: str) -> None:
    if (
        backend == "iptables"
        and not os.path.exists("/usr/sbin/ipset")
        and not any(os.path.exists(os.path.join(p, "ipset")) for p in os.environ.get("PATH", "").split(":"))
    ):
        pytest.skip("needs ipset (Debian package ipset) for the iptables-legacy backend")


def test_the_expected_grids_are_complete():
    for kind in EXPECTED:
        assert len(expected(kind)) == len(ORDER) * (len(ORDER) - 1)
    assert len(POLICIES) >= 10 and len(WORKLOADS) >= 12


def compiled_programs() -> dict:
    """The whole pipeline: the inventory's policies, namespaces and labels -> the model -> the compiler."""
    from ansible_collections.l3.calico.plugins.module_utils import policy_compile
    from ansible_collections.l3.calico.plugins.module_utils.policy_model import PolicySet

    nodes = {h: {"ip": HOSTS[h][0], "network": "192.168.100.0/24", "blocks": [], "workloads": [], "borrowed": [], "tunnels": {}} for h in ("a", "b")}
    inventory: dict = {}
    for host, namespace, name, address, labels in WORKLOADS.values():
        nodes[host]["workloads"].append({"id": naming.workload_id(namespace, name), "ip": address})
        inventory.setdefault(host, []).append({"name": name, "namespace": namespace, "labels": labels})
    ipam = {"nodes": nodes, "pools": {}}
    return policy_compile.host_programs(PolicySet.from_inventory(POLICIES, NAMESPACES, inventory, ipam), ipam)


PROGRAMS = {
    "hand-written": lambda: {host: hand_program(host) for host in ("a", "b")},
    "compiled": compiled_programs,
}


@pytest.mark.parametrize("source", list(PROGRAMS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_reachability_matrix(hosts, backend, source):
    """Every verdict of the hand-written matrix, with the hand-written programs and with the ones the
    compiler makes from the inventory's policies (the whole pipeline)."""
    _needs(backend)
    programs = PROGRAMS[source]()
    h = hosts(backend)
    h.build()
    h.serve(ORDER)
    h.warm_up(ORDER)
    # before any policy, everything reaches everything (the probes work)
    open_matrix = h.matrix(["a1", "a2", "b6"])
    assert all(all(v.values()) for v in open_matrix.values()), open_matrix
    h.apply(programs)
    found = h.matrix()
    wrong = compare(found)
    assert not wrong, "\n".join(wrong)
    # the host still reaches its own workloads, whatever their policies (b6 is quarantined, a2 denies ICMP)
    assert h.topo.nsexec(h.topo.host("b"), "ping", "-c", "1", "-W", "2", ip("b6"), check=False).returncode == 0
    assert h.topo.nsexec(h.topo.host("a"), "ping", "-c", "1", "-W", "2", ip("a2"), check=False).returncode == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_noop_check_mode_set_element_change_and_removal(hosts, backend):
    _needs(backend)
    h = hosts(backend)
    keys = ["a1", "a2", "a5", "a6", "b1", "b5", "b6"]
    subset = {k: WORKLOADS[k] for k in keys}
    h.build(subset)
    h.serve(keys)
    h.warm_up(keys)
    programs = {host: hand_program(host, subset) for host in ("a", "b")}
    h.apply(programs)
    assert not compare(h.matrix(keys), keys)

    # a no-op reads and writes nothing: no command but reads, no state file write, no ruleset event
    state_file = h.tmp / "policy-a.json"
    stamp = state_file.stat().st_mtime_ns
    before = h.state("a")
    monitor = None
    if backend == "nftables":
        monitor = h.topo.spawn(h.topo.host("a"), NFT_MONITOR)
        time.sleep(0.3)
    again = h.policy("a", program=programs["a"])
    assert again["ok"] and again["changed"] is False and again["kind"] == "none", again
    assert {tuple(argv[:2]) for argv, _stdin in again["ran"]} <= READS, again["ran"]
    assert state_file.stat().st_mtime_ns == stamp and h.state("a") == before

    # check mode: a policy dropped -> changed, the diff shows its chain, nothing applied
    fewer = json.loads(json.dumps(programs["a"]))
    for endpoint in fewer["endpoints"]:
        endpoint["ingress"] = [c for c in endpoint["ingress"] if c != "p13_i"]
    del fewer["chains"]["p13_i"]
    checked = h.policy("a", program=fewer, check_mode=True)
    assert checked["ok"] and checked["changed"] and checked["kind"] == "replace", checked
    assert "p13_i" in checked["diff"]["before"] or "p13" in checked["diff"]["before"], checked["diff"]
    assert {tuple(argv[:2]) for argv, _stdin in checked["ran"]} <= READS
    assert h.state("a") == before and state_file.stat().st_mtime_ns == stamp
    if monitor is not None:
        time.sleep(0.3)
        monitor.terminate()
        events, _err = monitor.communicate(timeout=5)
        assert events.strip() == "", events  # neither the no-op nor check mode touched the ruleset
    # a new workload b7 (namespace ops) appears on host b: host a's program only gains one member
    # of the set "namespace team == ops" (P13's source) -> one element changes, nothing else
    with_b7 = dict(subset, **EXTRA)
    h.build({k: v for k, v in with_b7.items() if v[0] == "b"})
    ENDPOINT_CHAINS["b7"] = ([], [])
    try:
        h.policy("b", program=hand_program("b", with_b7))
        h.serve(["b7"])
        h.warm_up(["b7"])
        b7_ns = h.ns("b7")
        probe = json.loads(h.topo.nsexec(b7_ns, sys.executable, "-c", PROBE, json.dumps([ip("a5")])).stdout)
        assert probe[ip("a5")]["tcp80"] is False  # not in namespace ops' set on host a yet
        sets = dict(SETS, s_ops_all=sorted([*SETS["s_ops_all"], "10.65.1.7/32"]))
        if backend == "nftables":
            monitor = h.topo.spawn(h.topo.host("a"), NFT_MONITOR)
            time.sleep(0.3)
        grown = h.policy("a", program=hand_program("a", subset, sets))
        assert grown["ok"] and grown["kind"] == "elements", grown
        writes = [(argv, stdin) for argv, stdin in grown["ran"] if tuple(argv[:2]) not in READS]
        if backend == "nftables":
            assert writes == [(["nft", "-f", "-"], "add element ip l3calico_policy s_ops_all { 10.65.1.7/32 }\n")]
            time.sleep(0.3)
            monitor.terminate()
            events, _err = monitor.communicate(timeout=5)
            lines = [e for e in events.splitlines() if e.strip()]
            # one transaction (one new generation), one element
            assert [e for e in lines if not e.startswith("#")] == ["add element ip l3calico_policy s_ops_all { 10.65.1.7 }"], events
            assert len([e for e in lines if e.startswith("# new generation")]) == 1, events
        else:
            assert writes == [(["ipset", "restore"], "add l3cp-s_ops_all 10.65.1.7/32\n")]
        assert "10.65.1.7" in h.state("a")
        probe = json.loads(h.topo.nsexec(b7_ns, sys.executable, "-c", PROBE, json.dumps([ip("a5")])).stdout)
        assert probe[ip("a5")]["tcp80"] is True  # now it is
        assert grown["diff"]["after"].count("10.65.1.7") == 1 and "chain" not in grown["diff"]["after"]
    finally:
        ENDPOINT_CHAINS.pop("b7", None)

    # removal: every object of the part gone (both backends), the state file too; traffic flows again
    gone = h.policy("a", call="remove", state_file=str(state_file))
    assert gone["ok"] and gone["changed"], gone
    assert not state_file.exists()
    left = h.state("a")
    assert "l3calico_policy" not in left and "L3CP" not in left and "l3cp-" not in left, left
    assert h.policy("a", call="remove", state_file=str(state_file))["changed"] is False
    assert h.matrix(["a2", "a6"])[("a6", "a2")]["tcp80"] is True


@pytest.mark.parametrize("backend", BACKENDS)
def test_drift_is_rewritten_and_bad_programs_change_nothing(hosts, backend):
    _needs(backend)
    h = hosts(backend)
    subset = {k: WORKLOADS[k] for k in ("a1", "a2")}
    h.build(subset)
    program = hand_program("a", subset)
    h.apply({"a": program})
    before = h.state("a")
    ns = h.topo.host("a")
    if backend == "nftables":
        h.topo.nsexec(ns, "nft", "flush", "chain", "ip", "l3calico_policy", "p7_i")
    else:
        h.topo.nsexec(ns, "iptables-legacy", "-F", "L3CP-p7_i")
    assert h.state("a") != before
    repaired = h.policy("a", program=program)
    assert repaired["ok"] and repaired["kind"] == "replace", repaired
    assert h.state("a") == before
    bad = json.loads(json.dumps(program))
    bad["chains"]["p7_i"]["rules"][0]["destination"]["ports"] = [[9000, 8000]]
    failed = h.policy("a", program=bad)
    assert failed["ok"] is False and "upside down" in failed["error"] and "p7_i" in failed["error"], failed
    assert h.state("a") == before
    # policies that select no workload of this host: nothing to enforce, everything of ours removed
    unselected = json.loads(json.dumps(program))
    for endpoint in unselected["endpoints"]:
        endpoint["ingress"], endpoint["egress"] = [], []
    emptied = h.policy("a", program=unselected)
    assert emptied["ok"] and emptied["kind"] == "remove", emptied
    left = h.state("a")
    assert "l3calico_policy" not in left and "L3CP" not in left and "l3cp-" not in left, left
    assert h.policy("a", program=unselected)["changed"] is False


def test_the_ansible_module_check_diff_and_idempotence(hosts):
    """The real module through ansible (check + diff, apply, no-op), inside host a."""
    h = hosts("nftables")
    if subprocess.run(["which", "nft"], capture_output=True, check=False).returncode:
        pytest.skip("needs nft (Debian package nftables)")
    subset = {k: WORKLOADS[k] for k in ("a1", "a2")}
    h.build(subset)
    args = json.dumps({"program": hand_program("a", subset), "state_file": str(h.tmp / "module.json")})
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOME=str(h.tmp / "ansible"),
        ANSIBLE_LOCAL_TEMP=str(h.tmp / "ansible-tmp"),
        PYTHONPATH=PYTHONPATH,
    )
    ansible = str(ROOT / ".venv" / "bin" / "ansible")

    def run(*extra):
        proc = subprocess.run(
            ["nsenter", f"--net=/run/netns/{h.topo.host('a')}", ansible, "localhost", "-c", "local", "-m", "l3.calico.policy", "-a", args, *extra],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            check=False,
            timeout=120,
        )
        assert "=>" in proc.stdout, proc.stdout + proc.stderr
        shown, result = proc.stdout.split("=>", 1)
        return json.loads(result), shown

    before = h.state("a")
    checked, shown = run("--check", "--diff")
    assert checked["changed"] and checked["kind"] == "replace"
    assert "chain p7_i" in shown and "dport 8080" in shown  # the diff the user sees
    assert h.state("a") == before
    applied, _shown = run()
    assert applied["changed"] and applied["backend"] == "nftables"
    again, _shown = run("--check", "--diff")
    assert again["changed"] is False and again["kind"] == "none"


def test_the_role_compiles_once_applies_and_a_second_run_changes_nothing(hosts):
    """Role calico_policy in a play (host a, nftables): check + diff, apply, a second run changed=0."""
    h = hosts("nftables")
    if subprocess.run(["which", "nft"], capture_output=True, check=False).returncode:
        pytest.skip("needs nft (Debian package nftables)")
    subset = {k: WORKLOADS[k] for k in ("a1", "a2", "a6", "b1")}
    h.build({k: v for k, v in subset.items() if v[0] == "a"})
    h.serve(["a2"])
    h.warm_up(["a1", "a2", "a6"])
    nodes = {x: {"ip": HOSTS[x][0], "network": "192.168.100.0/24", "blocks": [], "workloads": [], "borrowed": [], "tunnels": {}} for x in ("a", "b")}
    inventory = {"calico_nodes": {"hosts": {}, "vars": {"calico_policies": POLICIES, "calico_namespaces": NAMESPACES}}}
    for host, namespace, name, address, labels in subset.values():
        nodes[host]["workloads"].append({"id": naming.workload_id(namespace, name), "ip": address})
        entry = inventory["calico_nodes"]["hosts"].setdefault(host, {"calico_workloads": []})
        entry["calico_workloads"].append({"name": name, "namespace": namespace, "labels": labels})
    inventory["calico_nodes"]["hosts"]["a"].update(ansible_connection="local", ansible_python_interpreter=sys.executable)
    (h.tmp / "vars.json").write_text(
        json.dumps(
            {"calico_ipam_result": {"nodes": nodes, "pools": {}}, "calico_policy_backend": "nftables", "calico_policy_state_file": str(h.tmp / "role.json")}
        )
    )
    (h.tmp / "play.yml").write_text("- hosts: a\n  gather_facts: false\n  roles:\n    - role: l3.calico.calico_policy\n")
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOME=str(h.tmp / "ansible"),
        ANSIBLE_LOCAL_TEMP=str(h.tmp / "ansible-tmp"),
        PYTHONPATH=PYTHONPATH,
    )
    (h.tmp / "inventory.yml").write_text(json.dumps(inventory))  # JSON is YAML

    def play(*extra):
        proc = subprocess.run(
            [
                "nsenter",
                f"--net=/run/netns/{h.topo.host('a')}",
                str(ROOT / ".venv" / "bin" / "ansible-playbook"),
                "-i",
                str(h.tmp / "inventory.yml"),
                "-e",
                f"@{h.tmp / 'vars.json'}",
                str(h.tmp / "play.yml"),
                *extra,
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            check=False,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        recap = [line for line in proc.stdout.splitlines() if line.startswith("a ")][-1]
        return proc.stdout, int(recap.split("changed=")[1].split()[0])

    before = h.state("a")
    record = h.tmp / "calico_policy.json"  # beside the inventory
    shown, changed = play("--check", "--diff")
    # the rules that would be written, and the record of the policy model that would be written
    assert changed == 2 and "chain wl-to-" in shown and "dport 8080" in shown, shown
    assert h.state("a") == before and not record.exists()
    _shown, changed = play()
    assert changed == 2 and "l3calico_policy" in h.state("a")
    assert json.loads(record.read_text()) == {"policies": POLICIES, "namespaces": NAMESPACES}
    found = h.matrix(["a1", "a2", "a6"])
    assert found[("a1", "a2")]["tcp8080"] is True and found[("a6", "a2")]["tcp8080"] is False  # P7: blue webs only
    _shown, changed = play()
    assert changed == 0

    # A policy change, with --check --diff: the flows it flips are listed before anything changes.
    freeze = {
        "name": "freeze-db",
        "namespace": "blue",
        "order": 0,
        "selector": 'app == "db"',
        "ingress": [{"action": "Deny", "protocol": "TCP", "source": {"selector": 'app == "web"'}, "destination": {"ports": [8080]}}],
    }
    inventory["calico_nodes"]["vars"]["calico_policies"] = [freeze, *POLICIES]
    (h.tmp / "inventory.yml").write_text(json.dumps(inventory))
    applied = h.state("a")
    shown, changed = play("--check", "--diff")
    flips = [line for line in shown.splitlines() if " -> " in line and ": allow -> deny" in line]
    assert flips and all("blue.db-a" in line for line in flips), shown
    assert any(line.strip().lstrip("- ").strip("'\"").startswith("blue.web-a -> blue.db-a TCP 8080: allow -> deny") for line in flips), flips
    assert h.state("a") == applied and json.loads(record.read_text())["policies"] == POLICIES  # nothing written
    _shown, changed = play()
    assert changed == 2 and h.matrix(["a1", "a2"])[("a1", "a2")]["tcp8080"] is False
