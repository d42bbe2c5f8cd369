# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Network policy for IPv6 in real namespaces (issue 17, slice 17e): dual-stack workloads on two hosts.

Hosts ``a`` and ``b`` (one IPv4 subnet, and an IPv6 underlay beside it: a fd00:100::100/64,
b fd00:100::101/64) each route the other's workload blocks (10.66.0.0/24 / 10.66.1.0/24 and
fd00:66::/122 / fd00:66::40/122), as BIRD would. Five workloads, built by the workloads module, one of
them (``a3``) IPv4 only. Every workload listens on TCP 80 over both families. The policies
(:data:`POLICIES`, as an inventory states them) use ``ipVersion``, IPv6 ``nets`` / ``notNets``,
``ICMPv6`` and a rule whose nets make it IPv6-only (Felix skips it for IPv4: its ``notNets`` hold no
IPv4 net). The programs come from the whole pipeline (policy_model -> policy_compile) and are applied by
``policy_rules.converge`` inside each host namespace, on nftables (an ``ip`` and an ``ip6`` table) and on
iptables-legacy + ipset (iptables and ip6tables chains, ipsets of family inet and inet6).

The expected verdicts (:data:`EXPECTED4`, :data:`EXPECTED6`) are written by hand, one grid per family
and probe (row = source, column = destination, ``Y`` allowed, ``.`` denied, ``-`` itself or no address
of that family); the reasoning is in the comment above them. Nothing of the code under test computes
them; the evaluator (policy_eval.reachability, what verify compares with) is held to them too.
Every name starts with ``l3tp6-<run>-``.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import threading
import time

import pytest

from ansible_collections.l3.calico.plugins.module_utils import naming, policy_compile, policy_eval
from ansible_collections.l3.calico.plugins.module_utils.policy_model import PolicySet
from tests.support.firewall_backends import firewall_backends
from tests.support.policy_netns import NFT_MONITOR, RUN_POLICY

from .conftest import HOSTS, PYTHONPATH, Topology, _missing, sh

PREFIX = "l3tp6-"
V6 = {"a": "fd00:100::100", "b": "fd00:100::101"}
ROUTES = {
    "a": ("10.66.1.0/24", HOSTS["b"][0], "fd00:66::40/122", V6["b"]),
    "b": ("10.66.0.0/24", HOSTS["a"][0], "fd00:66::/122", V6["a"]),
}

# key: (host, namespace, name, IPv4, IPv6 or None, labels)
WORKLOADS = {
    "a1": ("a", "blue", "web-a", "10.66.0.1", "fd00:66::1", {"app": "web"}),
    "a2": ("a", "blue", "db-a", "10.66.0.2", "fd00:66::2", {"app": "db"}),
    "a3": ("a", "blue", "old-a", "10.66.0.3", None, {"app": "db"}),
    "b1": ("b", "blue", "web-b", "10.66.1.1", "fd00:66::41", {"app": "web"}),
    "b2": ("b", "green", "cli-b", "10.66.1.2", "fd00:66::42", {"app": "cli"}),
}
ORDER = tuple(WORKLOADS)
NAMESPACES = {"blue": {"labels": {"team": "blue"}}, "green": {"labels": {"team": "green"}}}

POLICIES = [
    # P1: the blue databases (a2, a3)
    {
        "name": "db",
        "namespace": "blue",
        "selector": "app == 'db'",
        "ingress": [
            # [0] TCP 80 from anyone, over IPv4 only
            {"action": "Allow", "protocol": "TCP", "ipVersion": 4, "destination": {"ports": [80]}},
            # [1] TCP 80 over IPv6 from host a's IPv6 block only (IPv6 nets: an IPv6-only rule)
            {"action": "Allow", "protocol": "TCP", "source": {"nets": ["fd00:66::/122"]}, "destination": {"ports": [80]}},
            # [2] ICMPv6 echo requests from blue webs (the selector scoped to namespace blue)
            {"action": "Allow", "protocol": "ICMPv6", "icmp": {"type": 128}, "source": {"selector": "app == 'web'"}},
        ],
    },
    # P2: the green client may not send anything over IPv6
    {"name": "cli-egress", "selector": "app == 'cli'", "egress": [{"action": "Deny", "ip_version": 6}, {"action": "Allow"}]},
    # P3: the blue webs (a1, b1)
    {
        "name": "web",
        "namespace": "blue",
        "selector": "app == 'web'",
        "ingress": [
            # [0] ICMP (protocol 1: an IPv4 rule; an IPv6 ping is ICMPv6, not matched)
            {"action": "Allow", "protocol": "ICMP"},
            # [1] TCP 80 from outside host b's IPv6 block: notNets hold only an IPv6 net, so Felix renders
            #     the rule for IPv6 only (FilterRuleToIPVersion) - over IPv4 nothing allows TCP 80
            {"action": "Allow", "protocol": "TCP", "source": {"notNets": ["fd00:66::40/122"]}, "destination": {"ports": [80]}},
        ],
    },
]

# The reasoning, per destination (ingress) and source (egress):
# - a2, a3 (db, P1): IPv4 TCP 80 allowed from everyone by [0] (b2's egress allows IPv4); IPv4 pings denied
#   (end of tier: [1] is IPv6-only, [2] is ICMPv6). IPv6 (a2 only): TCP 80 only from fd00:66::/122 = a1;
#   ICMPv6 echo from the blue webs a1, b1.
# - a1, b1 (web, P3): IPv4 pings allowed by [0], IPv4 TCP 80 denied ([1] does not exist for IPv4). IPv6:
#   no ICMPv6 rule -> denied; TCP 80 from outside fd00:66::40/122: a2 and a1 yes, b1 (itself in b's block) no.
# - b2 (no ingress policy): everything in, both families. Its egress (P2): every IPv6 flow denied, IPv4 allowed.
# - a3 has no IPv6 address: no IPv6 column or row.
EXPECTED4 = {
    "icmp": """
        a1  - . . Y Y
        a2  Y - . Y Y
        a3  Y . - Y Y
        b1  Y . . - Y
        b2  Y . . Y -
    """,
    "tcp80": """
        a1  - Y Y . Y
        a2  . - Y . Y
        a3  . Y - . Y
        b1  . Y Y - Y
        b2  . Y Y . -
    """,
}
EXPECTED6 = {
    "icmp": """
        a1  - Y - . Y
        a2  . - - . Y
        a3  - - - - -
        b1  . Y - - Y
        b2  . . - . -
    """,
    "tcp80": """
        a1  - Y - Y Y
        a2  Y - - Y Y
        a3  - - - - -
        b1  . . - - Y
        b2  . . - . -
    """,
}


def expected(grids: dict, kind: str) -> dict:
    grid = {}
    for line in grids[kind].strip().splitlines():
        source, *cells = line.split()
        assert len(cells) == len(ORDER), line
        for target, cell in zip(ORDER, cells, strict=True):
            if cell != "-":
                grid[(source, target)] = cell == "Y"
    return grid


def wid(key: str) -> str:
    _host, namespace, name, *_rest = WORKLOADS[key]
    return naming.workload_id(namespace, name)


def ipam_result() -> dict:
    nodes = {
        h: {
            "ip": HOSTS[h][0],
            "network": "192.168.100.0/24",
            "ipv6": V6[h],
            "network_ipv6": "fd00:100::/64",
            "blocks": [],
            "workloads": [],
            "borrowed": [],
            "tunnels": {},
        }
        for h in ("a", "b")
    }
    for key, (host, _namespace, _name, ip4, ip6, _labels) in WORKLOADS.items():
        entry = {"id": wid(key), "ip": ip4}
        if ip6:
            entry["ipv6"] = ip6
        nodes[host]["workloads"].append(entry)
    return {"nodes": nodes, "pools": {}, "pools_ipv6": {}}


def policy_set() -> PolicySet:
    inventory: dict = {}
    for host, namespace, name, _ip4, _ip6, labels in WORKLOADS.values():
        inventory.setdefault(host, []).append({"name": name, "namespace": namespace, "labels": labels})
    return PolicySet.from_inventory(POLICIES, NAMESPACES, inventory, ipam_result())


def test_the_hand_grids_are_complete_and_the_evaluator_agrees_with_them():
    """No namespace needed: what verify will expect (policy_eval.reachability, per family) is the hand grid."""
    ps = policy_set()
    for family, grids in ((4, EXPECTED4), (6, EXPECTED6)):
        matrix = policy_eval.reachability(ps, 80, family=family)
        for kind, probe in (("icmp", "icmp"), ("tcp80", "tcp")):
            want = expected(grids, kind)
            assert len(want) == (20 if family == 4 else 12)
            found = {(s, t): matrix[wid(s)][wid(t)][probe] for s, t in want}
            assert found == want, (family, kind)


def test_the_compiled_programs_carry_both_families():
    programs = policy_compile.host_programs(policy_set(), ipam_result())
    a = programs["a"]
    assert "sets6" in a and {e["workload"]: e.get("address6") for e in a["endpoints"]} == {
        "blue.web-a": "fd00:66::1",
        "blue.db-a": "fd00:66::2",
        "blue.old-a": None,
    }
    db = a["chains"][policy_compile.chain_name("blue/db", "ingress")]
    assert [r.get("ip_version") for r in db["rules"]] == [4, 6, 6]  # ipVersion, IPv6 nets, ICMPv6
    web = a["chains"][policy_compile.chain_name("blue/web", "ingress")]
    assert [r.get("ip_version") for r in web["rules"]] == [4, 6] and web["rules"][1]["source"]["not_nets"] == ["fd00:66::40/122"]  # ICMP, notNets


# ----------------------------------------------------------------------------------------------
# The namespaces
# ----------------------------------------------------------------------------------------------

SERVE = r"""
import socket, threading
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 80)); s.listen(64)
print("ready", flush=True)
while True:
    c, _peer = s.accept(); c.sendall(b"ok"); c.close()
"""

PROBE = r"""
import json, socket, subprocess, sys, threading
targets = json.loads(sys.argv[1])
out = {}
def tcp(address):
    s = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET); s.settimeout(2.0)
    try:
        s.connect((address, 80)); return s.recv(8) == b"ok"
    except OSError:
        return False
    finally:
        s.close()
def icmp(address):
    return subprocess.run(["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "1", address], capture_output=True).returncode == 0
def probe(address):
    out[address] = {"tcp80": tcp(address), "icmp": icmp(address)}
threads = [threading.Thread(target=probe, args=(a,)) for a in targets]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(out))
"""


READS = {("nft", "-c"), ("nft", "-j"), ("iptables-legacy-save", "-t"), ("ip6tables-legacy-save", "-t"), ("ipset", "save"), ("ipset", "list")}


class Hosts:
    def __init__(self, topo: Topology, tmp_path, backend: str = "nftables"):
        self.topo, self.tmp, self.backend = topo, tmp_path, backend

    def ns(self, key: str) -> str:
        return self.topo.netns_prefix(WORKLOADS[key][0]) + wid(key)

    def build(self) -> None:
        for host in ("a", "b"):
            items = [{"name": w[2], "namespace": w[1], "ip": w[3], "ipv6": w[4]} for w in WORKLOADS.values() if w[0] == host]
            result = self.topo.workloads(host, items, self.tmp)
            assert result["ok"], result
            prefix4, via4, prefix6, via6 = ROUTES[host]
            self.topo.ip(self.topo.host(host), f"route replace {prefix4} via {via4}", f"route replace {prefix6} via {via6}")
        for key in ORDER:
            child = self.topo.spawn(self.ns(key), SERVE)
            assert child.stdout.readline().strip() == "ready"

    def policy(self, host: str, call: str = "converge", **kwargs) -> dict:
        kwargs.setdefault("state_file", str(self.tmp / f"policy-{host}.json"))
        if call == "converge":
            kwargs.setdefault("backend", self.backend)
        proc = self.topo.nsexec(self.topo.host(host), "env", f"PYTHONPATH={PYTHONPATH}", sys.executable, "-c", RUN_POLICY, stdin=json.dumps([call, kwargs]))
        return json.loads(proc.stdout)

    def warm_up(self) -> None:
        """Neighbours and routes settled: each host pings its workloads (always allowed), both families."""
        for host, _ns, _name, ip4, ip6, _labels in WORKLOADS.values():
            for address in (ip4, ip6):
                if address:
                    self.topo.nsexec(self.topo.host(host), "ping", "-c", "1", "-W", "2", address, check=False)

    def matrix(self, family: int, keys=ORDER) -> dict:
        """(source, destination) -> {probe: reached} over IPv``family``, every source probing in parallel."""
        col = 3 if family == 4 else 4
        keys = [k for k in keys if WORKLOADS[k][col]]
        results: dict = {}

        def one(source):
            targets = [WORKLOADS[k][col] for k in keys if k != source]
            by_ip = json.loads(self.topo.nsexec(self.ns(source), sys.executable, "-c", PROBE, json.dumps(targets)).stdout)
            for k in keys:
                if k != source:
                    results[(source, k)] = by_ip[WORKLOADS[k][col]]

        threads = [threading.Thread(target=one, args=(s,)) for s in keys]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    def state(self, host: str) -> str:
        """Everything of both backends and both families in host ``host``, as text."""
        ns = self.topo.host(host)
        parts = [self.topo.nsexec(ns, "nft", "list", "ruleset", check=False).stdout]
        for command in ("iptables-legacy-save", "ip6tables-legacy-save"):
            if shutil.which(command):
                parts.append(self.topo.nsexec(ns, command, "-t", "filter", check=False).stdout)
        if shutil.which("ipset"):
            parts.append(self.topo.nsexec(ns, "ipset", "save", check=False).stdout)
        lines = (line for part in parts for line in part.splitlines() if not line.startswith("#") and "initval" not in line)
        return "\n".join(re.sub(r" \[\d+:\d+\]$", "", line) for line in lines)  # built-in chains' counters move


def compare(found: dict, grids: dict) -> list:
    wrong = []
    for kind in grids:
        for (source, target), verdict in sorted(expected(grids, kind).items()):
            if found[(source, target)][kind] != verdict:
                wrong.append(f"{kind} {source}->{target}: expected {'allowed' if verdict else 'denied'}, got {'denied' if verdict else 'allowed'}")
    return wrong


@pytest.fixture
def hosts(tmp_path):
    missing = _missing()
    if missing:
        pytest.skip(missing)
    topology = Topology(PREFIX)
    try:
        topology.build()
        for key, address in V6.items():
            host = topology.host(key)
            topology.ip(host, f"addr add {address}/64 dev up0 nodad")
            topology.nsexec(host, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        for key in V6:  # the underlay's own link-local addresses finish their DAD
            for _attempt in range(50):
                if not sh("ip", "-n", topology.host(key), "-6", "addr", "show", "tentative").stdout.strip():
                    break
                time.sleep(0.1)
        yield lambda backend: Hosts(topology, tmp_path, backend)
    finally:
        topology.cleanup()


BACKENDS = firewall_backends()


def _needs(backend: str) -> None:
    if backend == "iptables":
        for command in ("ipset", "ip6tables-legacy-restore", "ip6tables-legacy-save"):
            if shutil.which(command) is None:
                pytest.skip(f"needs {command} for IPv6 policy on iptables-legacy")


@pytest.mark.netns
@pytest.mark.parametrize("backend", BACKENDS)
def test_dual_stack_policy_matrix_per_family_noop_element_and_removal(hosts, backend):
    _needs(backend)
    h = hosts(backend)
    h.build()
    h.warm_up()
    # before any policy, everything reaches everything over both families (the probes work)
    for family in (4, 6):
        opened = h.matrix(family, ["a1", "a2", "b2"])
        assert all(all(v.values()) for v in opened.values()), (family, opened)

    programs = policy_compile.host_programs(policy_set(), ipam_result())
    for host in ("a", "b"):
        applied = h.policy(host, program=programs[host])
        assert applied["ok"] and applied["kind"] == "replace" and applied["backend"] == backend, applied
        created = "nftables table ip6 l3calico_policy created" if backend == "nftables" else "ip6tables-legacy chains L3CP-* created"
        assert created in applied["changes"], applied
    wrong = compare(h.matrix(4), EXPECTED4) + compare(h.matrix(6), EXPECTED6)
    assert not wrong, "\n".join(wrong)
    # the host still reaches its own workloads over IPv6, whatever their policies (a1 has no ICMPv6 rule)
    assert h.topo.nsexec(h.topo.host("a"), "ping", "-c", "1", "-W", "2", "fd00:66::1", check=False).returncode == 0
    # b2 may send nothing over IPv6, but its neighbour solicitation for the gateway still reaches the host
    # (accepted before the workload chains, as Felix does): after a flush the gateway is resolved again
    b2 = h.ns("b2")
    h.topo.nsexec(b2, "ip", "-6", "neigh", "flush", "all")
    assert h.topo.nsexec(b2, "ping", "-c", "1", "-W", "1", "fd00:66::41", check=False).returncode != 0
    neigh = h.topo.ip_json(b2, "-6", "neigh", "show", naming.GATEWAY6)
    assert neigh and neigh[0].get("lladdr") == naming.HOST_VETH_MAC, neigh

    # a no-op: nothing but reads, no state file write, no ruleset event (both families)
    state_file = h.tmp / "policy-a.json"
    stamp = state_file.stat().st_mtime_ns
    before = h.state("a")
    if backend == "nftables":
        assert "table ip l3calico_policy" in before and "table ip6 l3calico_policy" in before
    else:
        assert "l3cp-6" in before and before.count(":L3CP-INPUT") == 2  # iptables and ip6tables
    monitor = None
    if backend == "nftables":
        monitor = h.topo.spawn(h.topo.host("a"), NFT_MONITOR)
        time.sleep(0.3)
    for _run in range(2):  # the first learns the generation if it moved since; the second takes the fast path
        again = h.policy("a", program=programs["a"])
        assert again["ok"] and again["changed"] is False and again["kind"] == "none", again
        assert {tuple(argv[:2]) for argv, _stdin in again["ran"]} <= READS, again["ran"]
    if backend == "nftables":
        assert again["ran"] == []  # the generation recorded: nothing run at all
    assert h.state("a") == before and state_file.stat().st_mtime_ns == stamp

    # a new IPv6 member only: one element, one transaction
    grown = json.loads(json.dumps(programs["a"]))
    name = next(iter(grown["sets6"]))
    grown["sets6"][name] = sorted([*grown["sets6"][name], "fd00:66::99/128"])
    added = h.policy("a", program=grown)
    assert added["ok"] and added["kind"] == "elements", added
    writes = [(argv, stdin) for argv, stdin in added["ran"] if tuple(argv[:2]) not in READS]
    if backend == "nftables":
        assert writes == [(["nft", "-f", "-"], f"add element ip6 l3calico_policy {name} {{ fd00:66::99/128 }}\n")], writes
        time.sleep(0.3)
        monitor.terminate()
        events, _err = monitor.communicate(timeout=5)
        lines = [e for e in events.splitlines() if e.strip()]
        assert [e for e in lines if not e.startswith("#")] == [f"add element ip6 l3calico_policy {name} {{ fd00:66::99 }}"], events
    else:
        assert writes == [(["ipset", "restore"], f"add l3cp-6{name} fd00:66::99/128\n")], writes
    assert "fd00:66::99" in h.state("a")
    assert h.policy("a", program=programs["a"])["kind"] == "elements"  # back

    # removal: every object of both families gone, the state file too; IPv6 flows again
    gone = h.policy("a", call="remove", state_file=str(state_file))
    assert gone["ok"] and gone["changed"], gone
    left = h.state("a")
    assert "l3calico_policy" not in left and "L3CP" not in left and "l3cp-" not in left and not state_file.exists(), left
    assert h.matrix(6, ["a1", "a2"])[("a2", "a1")]["icmp"] is True


@pytest.mark.netns
def test_an_ipv4_only_program_after_a_dual_stack_one_drops_the_ip6_table_in_one_transaction(hosts):
    if shutil.which("nft") is None:
        pytest.skip("needs nft (Debian package nftables)")
    h = hosts("nftables")
    h.build()
    programs = policy_compile.host_programs(policy_set(), ipam_result())
    assert h.policy("a", program=programs["a"])["ok"]
    dual_ip_table = h.topo.nsexec(h.topo.host("a"), "nft", "list", "table", "ip", "l3calico_policy").stdout
    # the same fleet without IPv6: the IPv4 program
    v4 = ipam_result()
    for node in v4["nodes"].values():
        for key in ("ipv6", "network_ipv6"):
            node.pop(key)
        for w in node["workloads"]:
            w.pop("ipv6", None)
    v4.pop("pools_ipv6")
    inventory: dict = {}
    for host, namespace, name, _ip4, _ip6, labels in WORKLOADS.values():
        inventory.setdefault(host, []).append({"name": name, "namespace": namespace, "labels": labels})
    program4 = policy_compile.host_programs(PolicySet.from_inventory(POLICIES, NAMESPACES, inventory, v4), v4)["a"]
    assert set(program4) == {"version", "sets", "chains", "endpoints"}
    monitor = h.topo.spawn(h.topo.host("a"), NFT_MONITOR)
    time.sleep(0.3)
    back = h.policy("a", program=program4)
    assert back["ok"] and back["kind"] == "replace" and "nftables table ip6 l3calico_policy removed (no IPv6 in the program)" in back["changes"], back
    time.sleep(0.3)
    monitor.terminate()
    events, _err = monitor.communicate(timeout=5)
    assert len([e for e in events.splitlines() if e.startswith("# new generation")]) == 1, events
    assert "ip6" not in h.state("a")
    # the ip table is the one the dual-stack program had: its IPv4 side never depended on IPv6
    assert h.topo.nsexec(h.topo.host("a"), "nft", "list", "table", "ip", "l3calico_policy").stdout == dual_ip_table
    assert h.policy("a", program=program4)["changed"] is False
