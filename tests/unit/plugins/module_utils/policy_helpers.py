# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""A small fleet for the policy tests, hypothesis strategies of policies over it, and a reference
interpreter of the HostProgram IR (docs/policy.md): the semantics the host renderer must implement."""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from ansible_collections.l3.calico.plugins.module_utils.policy_model import PolicySet

NODES = {"n1": "192.168.50.11", "n2": "192.168.50.12"}
# id -> (host, ip, labels)
WORKLOADS = {
    "blue.web-1": ("n1", "10.64.0.1", {"app": "web", "role": "x"}),
    "blue.web-2": ("n2", "10.64.1.1", {"app": "web"}),
    "blue.db-1": ("n1", "10.64.0.2", {"app": "db", "role": "y"}),
    "red.web-1": ("n2", "10.64.1.2", {"app": "web", "role": "y"}),
    "red.api-1": ("n1", "10.64.0.3", {"app": "api"}),
    "red.db-1": ("n2", "10.64.1.3", {"app": "db"}),
    "default.tool": ("n1", "10.64.0.4", {}),
    "green.web-1": ("n2", "10.64.1.4", {"app": "web", "role": "x"}),
}
NAMESPACES = {"blue": {"labels": {"team": "a"}}, "red": {"labels": {"team": "b", "env": "prod"}}, "green": {"labels": {"team": "a", "env": "dev"}}}
EXTERNAL = ["192.0.2.10", "198.51.100.7", "10.64.0.200"]
# Dual stack: the nodes' and some workloads' IPv6 addresses (red.db-1 and default.tool have none)
NODES6 = {"n1": "fd00:50::11", "n2": "fd00:50::12"}
WORKLOADS6 = {
    "blue.web-1": "fd00:64::1",
    "blue.web-2": "fd00:64:0:1::1",
    "blue.db-1": "fd00:64::2",
    "red.web-1": "fd00:64:0:1::2",
    "red.api-1": "fd00:64::3",
    "green.web-1": "fd00:64:0:1::4",
    "blue.v6only": "fd00:64:0:1::9",
}
# an IPv6-only workload (assign_ipv4 false) of the dual-stack fleet: id -> (host, labels)
V6_ONLY = {"blue.v6only": ("n2", {"app": "web", "role": "x"})}
EXTERNAL6 = ["2001:db8::10", "2001:db8:1::7", "fd00:64::c8"]


def ipam_result(workloads=None, dual: bool = False) -> dict:
    workloads = WORKLOADS if workloads is None else workloads
    nodes = {name: {"ip": ip, "network": "192.168.50.0/24", "blocks": [], "workloads": [], "borrowed": [], "tunnels": {}} for name, ip in NODES.items()}
    for wid, (host, ip, _labels) in workloads.items():
        nodes[host]["workloads"].append({"id": wid, "ip": ip})
        if dual and wid in WORKLOADS6:
            nodes[host]["workloads"][-1]["ipv6"] = WORKLOADS6[wid]
    if dual:
        for wid, (host, _labels) in V6_ONLY.items():
            nodes[host]["workloads"].append({"id": wid, "ipv6": WORKLOADS6[wid]})
        for name, ip6 in NODES6.items():
            nodes[name].update(ipv6=ip6, network_ipv6="fd00:50::/64")
    return {"nodes": nodes, "pools": {}, "pools_ipv6": {}} if dual else {"nodes": nodes, "pools": {}}


def inventory_workloads(workloads=None, dual: bool = False) -> dict:
    workloads = WORKLOADS if workloads is None else workloads
    out: dict = {}
    for wid, (host, _ip, labels) in workloads.items():
        namespace, name = wid.split(".")
        out.setdefault(host, []).append({"name": name, "namespace": namespace, "labels": labels})
    for wid, (host, labels) in V6_ONLY.items() if dual else ():
        namespace, name = wid.split(".")
        out.setdefault(host, []).append({"name": name, "namespace": namespace, "labels": labels})
    return out


def policy_set(policies, namespaces=None, workloads=None, dual: bool = False) -> PolicySet:
    return PolicySet.from_inventory(
        policies, NAMESPACES if namespaces is None else namespaces, inventory_workloads(workloads, dual), ipam_result(workloads, dual)
    )


# --------------------------------------------------------------------------- strategies

SELECTORS = [
    "all()",
    "app == 'web'",
    "app in {'web', 'db'}",
    "has(role)",
    "!has(role)",
    "role != 'x'",
    "app starts with 'w'",
    "pcns.team == 'a'",
    "app == 'nope'",
]
NS_SELECTORS = ["team == 'a'", "all()", "projectcalico.org/name == 'red'", "env == 'prod'", "has(nope)"]
NETS = ["10.64.0.0/30", "10.64.1.0/24", "192.0.2.0/24", "10.64.0.3", "10.0.0.0/8"]
NETS6 = ["fd00:64::/126", "fd00:64:0:1::/64", "2001:db8::/32", "fd00:64::3", "fd00::/8"]
PORTS = [22, 80, 443, "8000:8100", "0:1024", 5000]


@st.composite
def entities(draw, with_ports: bool, namespaced: bool, nets=None):
    nets = NETS if nets is None else nets
    entity = {}
    if draw(st.integers(0, 3)) == 0:
        entity["nets"] = draw(st.lists(st.sampled_from(nets), min_size=1, max_size=2))
    if draw(st.integers(0, 4)) == 0:
        entity["not_nets"] = draw(st.lists(st.sampled_from(nets), min_size=1, max_size=2))
    if draw(st.integers(0, 2)) == 0:
        entity["selector"] = draw(st.sampled_from(SELECTORS))
    if draw(st.integers(0, 3)) == 0:
        entity["not_selector"] = draw(st.sampled_from(SELECTORS))
    if draw(st.integers(0, 3)) == 0:
        entity["namespace_selector"] = draw(st.sampled_from([*NS_SELECTORS, "global()"]))
    if with_ports and draw(st.integers(0, 2)) == 0:
        entity["ports"] = draw(st.lists(st.sampled_from(PORTS), min_size=1, max_size=3))
    if with_ports and draw(st.integers(0, 3)) == 0:
        entity["not_ports"] = draw(st.lists(st.sampled_from(PORTS), min_size=1, max_size=2))
    return entity


@st.composite
def rules(draw, namespaced: bool, dual: bool = False):
    rule = {"action": draw(st.sampled_from(["Allow", "Allow", "Deny", "Log", "Pass"]))}
    protocols = [None, None, "TCP", "TCP", "UDP", "ICMP", 6, 47, "SCTP"] + (["ICMPv6", "ICMPv6", 58] if dual else [])
    protocol = draw(st.sampled_from(protocols))
    if protocol is not None:
        rule["protocol"] = protocol
    if draw(st.integers(0, 5)) == 0:
        rule["not_protocol"] = draw(st.sampled_from(["TCP", "UDP", "ICMP"] + (["ICMPv6"] if dual else [])))
    with_ports = protocol in ("TCP", "UDP", 6, "SCTP")
    if protocol in ("ICMP", "ICMPv6", 58) and draw(st.booleans()):
        icmp = {"type": draw(st.sampled_from([0, 8] if protocol == "ICMP" else [128, 129, 1]))}
        if draw(st.booleans()):
            icmp["code"] = draw(st.sampled_from([0, 1]))
        rule["icmp" if draw(st.booleans()) else "not_icmp"] = icmp
    family = None
    if dual:
        # the rule's family (Calico refuses ipVersion against its nets or its ICMP protocol, and nets mixing families)
        icmps = {rule.get("protocol"), rule.get("not_protocol")}
        fixed = 4 if "ICMP" in icmps else 6 if {"ICMPv6", 58} & icmps else None
        if "ICMP" in icmps and {"ICMPv6", 58} & icmps:
            rule.pop("not_protocol")
            fixed = 4 if protocol == "ICMP" else 6
        family = draw(st.sampled_from([4, 6]))
        if draw(st.booleans()):
            ip_version = fixed or family
            family = ip_version
            rule["ipVersion" if draw(st.booleans()) else "ip_version"] = ip_version
    for side in ("source", "destination"):
        if draw(st.integers(0, 2)) == 0:
            rule[side] = draw(entities(with_ports, namespaced, NETS6 if family == 6 else NETS))
    return rule


@st.composite
def policies(draw, max_policies=5, dual: bool = False):
    out = []
    for i in range(draw(st.integers(0, max_policies))):
        namespace = draw(st.sampled_from([None, "blue", "red"]))
        policy = {"name": f"p{i}"}
        if namespace:
            policy["namespace"] = namespace
        if draw(st.booleans()):
            policy["order"] = draw(st.sampled_from([1, 10, 10.5, 100]))
        if draw(st.booleans()):
            policy["selector"] = draw(st.sampled_from(SELECTORS))
        if namespace is None and draw(st.integers(0, 2)) == 0:
            policy["namespace_selector"] = draw(st.sampled_from(NS_SELECTORS))
        for direction in ("ingress", "egress"):
            if draw(st.booleans()):
                policy[direction] = draw(st.lists(rules(namespace is not None, dual), max_size=3))
        if draw(st.integers(0, 2)) == 0:
            policy["types"] = draw(st.sampled_from([["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
        out.append(policy)
    return out


ENDPOINTS = [*WORKLOADS, *EXTERNAL, *NODES.values()]


ENDPOINTS6 = [*WORKLOADS6, *EXTERNAL6, *NODES6.values()]


@st.composite
def flow_args(draw, family: int = 4):
    if family == 6:
        protocol = draw(st.sampled_from(["TCP", "TCP", "UDP", "ICMPv6", "ICMPv6", "SCTP", 47, "ICMP"]))
        ends = st.sampled_from(list(WORKLOADS6)) | st.sampled_from(ENDPOINTS6)
    else:
        protocol = draw(st.sampled_from(["TCP", "TCP", "UDP", "ICMP", "SCTP", 47]))
        ends = st.sampled_from(list(WORKLOADS)) | st.sampled_from(ENDPOINTS)  # mostly workloads
    args = {"src": draw(ends), "dst": draw(ends), "protocol": protocol}
    if family == 6:
        args["family"] = 6
    if protocol in ("TCP", "UDP", "SCTP"):
        args["port"] = draw(st.sampled_from([22, 80, 443, 1024, 1025, 8000, 8050, 8100, 8101, 5000]))
        args["src_port"] = draw(st.sampled_from([32768, 80, 1000]))
    if protocol == "ICMP":
        args["icmp_type"] = draw(st.sampled_from([0, 8, 3]))
        args["icmp_code"] = draw(st.sampled_from([0, 1]))
    if protocol == "ICMPv6":
        args["icmp_type"] = draw(st.sampled_from([128, 129, 1]))
        args["icmp_code"] = draw(st.sampled_from([0, 1]))
    return args


# --------------------------------------------------------------------------- the IR's reference interpreter


def _addr(text: str) -> int:
    return int(ipaddress.ip_address(text))


def _in_cidrs(address: int, cidrs, family: int = 4) -> bool:
    ip = ipaddress.IPv6Address(address) if family == 6 else ipaddress.IPv4Address(address)
    return any(ip in ipaddress.ip_network(c) for c in cidrs)


def _in_set(program, name, address, family: int = 4) -> bool:
    return _in_cidrs(address, program["sets6" if family == 6 else "sets"][name], family)


def _entity(program, entity, address, port, family: int = 4) -> bool:
    if entity["nets"] and not _in_cidrs(address, entity["nets"], family):
        return False
    if entity["not_nets"] and _in_cidrs(address, entity["not_nets"], family):
        return False
    if entity["set"] is not None and not _in_set(program, entity["set"], address, family):
        return False
    if entity["not_set"] is not None and _in_set(program, entity["not_set"], address, family):
        return False
    if entity["ports"] and not (port is not None and any(lo <= port <= hi for lo, hi in entity["ports"])):
        return False
    return not (entity["not_ports"] and port is not None and any(lo <= port <= hi for lo, hi in entity["not_ports"]))


def _rule(program, rule, pkt) -> bool:
    family = pkt.get("family", 4)
    if rule.get("ip_version", family) != family:
        return False
    if rule["protocol"] is not None and pkt["protocol"] != rule["protocol"]:
        return False
    if rule["not_protocol"] is not None and pkt["protocol"] == rule["not_protocol"]:
        return False
    for key, want in (("icmp", True), ("not_icmp", False)):
        icmp = rule[key]
        if icmp is not None:
            hit = pkt["protocol"] in (1, 58) and pkt["icmp_type"] == icmp["type"] and (icmp["code"] is None or pkt["icmp_code"] == icmp["code"])
            if hit != want:
                return False
    ports = pkt["protocol"] in (6, 17, 132)
    return _entity(program, rule["source"], pkt["src"], pkt["sport"] if ports else None, family) and _entity(
        program, rule["destination"], pkt["dst"], pkt["dport"] if ports else None, family
    )


def _direction(program, chains, pkt):
    """(allowed, deciding rule ref or None) for one endpoint's chains of one direction."""
    if not chains:
        return True, None
    for name in chains:
        for rule in program["chains"][name]["rules"]:
            if _rule(program, rule, pkt):
                if rule["action"] == "log":
                    continue
                return rule["action"] in ("allow", "pass"), rule["ref"]
    return False, None


def ir_verdict(programs: dict, nodes: dict, pkt: dict):
    """What the hosts' programs do with a packet ``pkt`` (integers src, dst; protocol, ports, ICMP):
    (allowed, egress ref, ingress ref). ``pkt["family"]`` 6: the endpoints' ``address6`` and ``nodes`` the
    nodes' IPv6 addresses."""
    key = "address6" if pkt.get("family", 4) == 6 else "address"
    where = {}
    for host, program in programs.items():
        for ep in program["endpoints"]:
            if ep.get(key) is not None:
                where[_addr(ep[key])] = (host, ep)
    src, dst = where.get(pkt["src"]), where.get(pkt["dst"])
    if src is not None and dst is not None and src[1]["workload"] == dst[1]["workload"]:
        return True, None, None
    egress = (True, None) if src is None else _direction(programs[src[0]], src[1]["egress"], pkt)
    if dst is None or (src is None and pkt["src"] == _addr(nodes[dst[0]])):
        ingress = (True, None)
    else:
        ingress = _direction(programs[dst[0]], dst[1]["ingress"], pkt)
    return egress[0] and ingress[0], egress[1], ingress[1]
