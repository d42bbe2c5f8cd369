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


def ipam_result(workloads=None) -> dict:
    workloads = WORKLOADS if workloads is None else workloads
    nodes = {name: {"ip": ip, "network": "192.168.50.0/24", "blocks": [], "workloads": [], "borrowed": [], "tunnels": {}} for name, ip in NODES.items()}
    for wid, (host, ip, _labels) in workloads.items():
        nodes[host]["workloads"].append({"id": wid, "ip": ip})
    return {"nodes": nodes, "pools": {}}


def inventory_workloads(workloads=None) -> dict:
    workloads = WORKLOADS if workloads is None else workloads
    out: dict = {}
    for wid, (host, _ip, labels) in workloads.items():
        namespace, name = wid.split(".")
        out.setdefault(host, []).append({"name": name, "namespace": namespace, "labels": labels})
    return out


def policy_set(policies, namespaces=None, workloads=None) -> PolicySet:
    return PolicySet.from_inventory(policies, NAMESPACES if namespaces is None else namespaces, inventory_workloads(workloads), ipam_result(workloads))


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
PORTS = [22, 80, 443, "8000:8100", "0:1024", 5000]


@st.composite
def entities(draw, with_ports: bool, namespaced: bool):
    entity = {}
    if draw(st.integers(0, 3)) == 0:
        entity["nets"] = draw(st.lists(st.sampled_from(NETS), min_size=1, max_size=2))
    if draw(st.integers(0, 4)) == 0:
        entity["not_nets"] = draw(st.lists(st.sampled_from(NETS), min_size=1, max_size=2))
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
def rules(draw, namespaced: bool):
    rule = {"action": draw(st.sampled_from(["Allow", "Allow", "Deny", "Log", "Pass"]))}
    protocol = draw(st.sampled_from([None, None, "TCP", "TCP", "UDP", "ICMP", 6, 47, "SCTP"]))
    if protocol is not None:
        rule["protocol"] = protocol
    if draw(st.integers(0, 5)) == 0:
        rule["not_protocol"] = draw(st.sampled_from(["TCP", "UDP", "ICMP"]))
    with_ports = protocol in ("TCP", "UDP", 6, "SCTP")
    if protocol == "ICMP" and draw(st.booleans()):
        icmp = {"type": draw(st.sampled_from([0, 8]))}
        if draw(st.booleans()):
            icmp["code"] = draw(st.sampled_from([0, 1]))
        rule["icmp" if draw(st.booleans()) else "not_icmp"] = icmp
    for side in ("source", "destination"):
        if draw(st.integers(0, 2)) == 0:
            rule[side] = draw(entities(with_ports, namespaced))
    return rule


@st.composite
def policies(draw, max_policies=5):
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
                policy[direction] = draw(st.lists(rules(namespace is not None), max_size=3))
        if draw(st.integers(0, 2)) == 0:
            policy["types"] = draw(st.sampled_from([["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
        out.append(policy)
    return out


ENDPOINTS = [*WORKLOADS, *EXTERNAL, *NODES.values()]


@st.composite
def flow_args(draw):
    protocol = draw(st.sampled_from(["TCP", "TCP", "UDP", "ICMP", "SCTP", 47]))
    ends = st.sampled_from(list(WORKLOADS)) | st.sampled_from(ENDPOINTS)  # mostly workloads
    args = {"src": draw(ends), "dst": draw(ends), "protocol": protocol}
    if protocol in ("TCP", "UDP", "SCTP"):
        args["port"] = draw(st.sampled_from([22, 80, 443, 1024, 1025, 8000, 8050, 8100, 8101, 5000]))
        args["src_port"] = draw(st.sampled_from([32768, 80, 1000]))
    if protocol == "ICMP":
        args["icmp_type"] = draw(st.sampled_from([0, 8, 3]))
        args["icmp_code"] = draw(st.sampled_from([0, 1]))
    return args


# --------------------------------------------------------------------------- the IR's reference interpreter


def _addr(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def _in_cidrs(address: int, cidrs) -> bool:
    return any(ipaddress.IPv4Address(address) in ipaddress.IPv4Network(c) for c in cidrs)


def _in_set(program, name, address) -> bool:
    return _in_cidrs(address, program["sets"][name])


def _entity(program, entity, address, port) -> bool:
    if entity["nets"] and not _in_cidrs(address, entity["nets"]):
        return False
    if entity["not_nets"] and _in_cidrs(address, entity["not_nets"]):
        return False
    if entity["set"] is not None and not _in_set(program, entity["set"], address):
        return False
    if entity["not_set"] is not None and _in_set(program, entity["not_set"], address):
        return False
    if entity["ports"] and not (port is not None and any(lo <= port <= hi for lo, hi in entity["ports"])):
        return False
    return not (entity["not_ports"] and port is not None and any(lo <= port <= hi for lo, hi in entity["not_ports"]))


def _rule(program, rule, pkt) -> bool:
    if rule["protocol"] is not None and pkt["protocol"] != rule["protocol"]:
        return False
    if rule["not_protocol"] is not None and pkt["protocol"] == rule["not_protocol"]:
        return False
    for key, want in (("icmp", True), ("not_icmp", False)):
        icmp = rule[key]
        if icmp is not None:
            hit = pkt["protocol"] == 1 and pkt["icmp_type"] == icmp["type"] and (icmp["code"] is None or pkt["icmp_code"] == icmp["code"])
            if hit != want:
                return False
    ports = pkt["protocol"] in (6, 17, 132)
    return _entity(program, rule["source"], pkt["src"], pkt["sport"] if ports else None) and _entity(
        program, rule["destination"], pkt["dst"], pkt["dport"] if ports else None
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
    (allowed, egress ref, ingress ref)."""
    where = {}
    for host, program in programs.items():
        for ep in program["endpoints"]:
            where[_addr(ep["address"])] = (host, ep)
    src, dst = where.get(pkt["src"]), where.get(pkt["dst"])
    if src is not None and dst is not None and src[1]["workload"] == dst[1]["workload"]:
        return True, None, None
    egress = (True, None) if src is None else _direction(programs[src[0]], src[1]["egress"], pkt)
    if dst is None or (src is None and pkt["src"] == _addr(nodes[dst[0]])):
        ingress = (True, None)
    else:
        ingress = _direction(programs[dst[0]], dst[1]["ingress"], pkt)
    return egress[0] and ingress[0], egress[1], ingress[1]
