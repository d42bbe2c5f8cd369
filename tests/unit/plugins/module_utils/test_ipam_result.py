# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""ipam_result: the IPAM result read once, and the one answer to CrossSubnet, borrowed and expected routes.

The rule is pinned with nodes of different prefix lengths (node a 10.0.0.1/16, node b 10.0.1.1/24: a sees
b inside its subnet, b does not see a inside its own), and the data plane (tunnels), the host audit and
verify are shown to agree on it - against an oracle written with the standard library's ``ipaddress``.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.l3.calico.plugins.module_utils import bgp, host_audit, naming, tunnels, verify
from ansible_collections.l3.calico.plugins.module_utils.ipam_result import (
    BORROWED,
    BY_BIRD,
    BY_TUNNELS,
    REMOTE_BLOCK,
    IpamResult,
    IpamResultError,
    Subnet,
    same_subnet,
)

UNDERLAY = "eth0"
ROUTER = "10.255.255.254"


def _node(ip, network, blocks, ipip=None, vxlan=None, workloads=()):
    return {
        "ip": ip,
        "network": network,
        "blocks": [{"cidr": c, "pool": p} for c, p in blocks],
        "workloads": list(workloads),
        "borrowed": [w["ip"] for w in workloads if w.get("borrowed")],
        "tunnels": {"ipip": ipip, "vxlan": vxlan},
    }


def _pool(cidr, ipip="Never", vxlan="Never", export=True):
    return {"cidr": cidr, "block_size": 26, "ipip_mode": ipip, "vxlan_mode": vxlan, "nat_outgoing": False, "disabled": False, "disable_bgp_export": not export}


# a: 10.0.0.1/16, b: 10.0.1.1/24 - b's address is inside a's subnet, a's is outside b's.
PREFIXES = {
    "pools": {"ip": _pool("172.17.0.0/16", ipip="CrossSubnet"), "vx": _pool("172.18.0.0/16", vxlan="CrossSubnet")},
    "nodes": {
        "a": _node(
            "10.0.0.1",
            "10.0.0.0/16",
            [("172.17.0.0/26", "ip"), ("172.18.0.0/26", "vx")],
            ipip="172.17.0.0",
            vxlan="172.18.0.0",
            workloads=[{"id": "default.wa", "ip": "172.17.0.1", "pool": "ip", "block": "172.17.0.0/26"}],
        ),
        "b": _node(
            "10.0.1.1",
            "10.0.1.0/24",
            [("172.17.0.64/26", "ip"), ("172.18.0.64/26", "vx")],
            ipip="172.17.0.64",
            vxlan="172.18.0.64",
            workloads=[{"id": "default.wb", "ip": "172.17.0.65", "pool": "ip", "block": "172.17.0.64/26"}],
        ),
    },
}


def test_crosssubnet_is_the_peers_address_inside_this_nodes_subnet():
    result = IpamResult.from_dict(PREFIXES)
    a, b = result.nodes["a"], result.nodes["b"]
    assert a.same_subnet(b) is True  # 10.0.1.1 is inside 10.0.0.0/16
    assert b.same_subnet(a) is False  # 10.0.0.1 is outside 10.0.1.0/24
    for name, kind in (("ip", "ipip"), ("vx", "vxlan")):
        pool = result.pools[name]
        assert pool.encapsulation(a, b) == "none"  # a -> b: not encapsulated
        assert pool.encapsulation(b, a) == kind  # b -> a: encapsulated
    unknown = IpamResult.from_dict({"nodes": {"x": {"ip": "10.0.0.9"}}, "pools": {}}).nodes["x"]
    assert unknown.same_subnet(a) is False  # no subnet known: never the same subnet (Felix: encapsulate)
    assert result.pools["ip"].encapsulation(unknown, a) == "ipip"


def test_tunnels_host_audit_verify_and_bgp_agree_with_different_prefix_lengths():
    result = IpamResult.from_dict(PREFIXES)
    # The data plane: a reaches b's VXLAN block directly, b reaches a's through vxlan.calico.
    on_a = {p.node: p for p in tunnels.desired_tunnels("a", result).peers}
    on_b = {p.node: p for p in tunnels.desired_tunnels("b", result).peers}
    assert (on_a["b"].routes, on_a["b"].direct) == ((), ("172.18.0.64/26",))
    assert (on_b["a"].routes, on_b["a"].direct) == (("172.18.0.0/26",), ())
    # verify expects just that (it compared the two networks' strings: both directions encapsulated).
    routes = {name: {exp["dst"]: (kind, verify.describe(exp)) for kind, exp in verify.expected_routes(name, result, UNDERLAY)} for name in ("a", "b")}
    assert routes["a"]["172.17.0.64/26"] == ("remote block of b (none)", "172.17.0.64/26 via 10.0.1.1 dev eth0 proto bird")
    assert routes["a"]["172.18.0.64/26"] == ("remote block of b (none)", "172.18.0.64/26 via 10.0.1.1 dev eth0")
    assert routes["b"]["172.17.0.0/26"] == ("remote block of a (ipip)", "172.17.0.0/26 via 10.0.0.1 dev tunl0 proto bird onlink")
    assert routes["b"]["172.18.0.0/26"] == ("remote block of a (vxlan)", "172.18.0.0/26 via 172.18.0.0 dev vxlan.calico onlink")
    # The host audit finds the data plane's tables right, and the opposite choice wrong, on both nodes.
    for name in ("a", "b"):
        table = kernel_table(PREFIXES, name)
        assert host_audit.audit_routes(name, result, table) == []
        assert unmatched(name, result, table) == []
    flipped = [dict(r, gateway="10.0.1.1", dev="tunl0", flags=["onlink"]) if r["dst"] == "172.17.0.64/26" else r for r in kernel_table(PREFIXES, "a")]
    (problem,) = host_audit.audit_routes("a", result, flipped)
    assert "route to block 172.17.0.64/26 of b goes via 10.0.1.1 dev tunl0" in problem["problem"]
    assert list(unmatched("a", result, flipped)) == ["172.17.0.64/26"]
    # BIRD decides IPIP CrossSubnet itself ("bgp_next_hop ~ <network>"): with each node's own subnet.
    assert bgp.node_config(PREFIXES, "a")["network"] == "10.0.0.0/16"
    assert bgp.node_config(PREFIXES, "b")["network"] == "10.0.1.0/24"


def test_the_capture_is_judged_by_the_same_rule():
    """Echo requests between a and b seen on the router: a -> b plain, b -> a IP-in-IP."""
    ipam = {
        **PREFIXES,
        "nodes": {
            n: dict(v, workloads=[dict(w, name=w["id"].split(".")[1], namespace="default", borrowed=False) for w in v["workloads"]])
            for n, v in PREFIXES["nodes"].items()
        },
    }
    flows = [
        {"icmp": "echo-request", "inner_src": "172.17.0.1", "inner_dst": "172.17.0.65", "encap": "none", "outer_src": "172.17.0.1", "outer_dst": "172.17.0.65"},
        {"icmp": "echo-request", "inner_src": "172.17.0.65", "inner_dst": "172.17.0.1", "encap": "ipip", "outer_src": "10.0.1.1", "outer_dst": "10.0.0.1"},
    ]
    report = verify.judge(ipam, {}, capture=flows)
    assert [row["ok"] for row in report["capture"]] == [True, True]


# --- borrowed, expected routes, disable_bgp_export -----------------------------------------------------------


def test_borrowed_is_worked_out_once():
    ipam = {
        "pools": {"p": _pool("10.10.0.0/16")},
        "nodes": {
            "a": _node("192.168.1.1", "192.168.1.0/24", [("10.10.0.0/26", "p")]),
            "c": {
                **_node(
                    "192.168.1.3",
                    "192.168.1.0/24",
                    [("10.10.0.128/26", "p")],
                    workloads=[
                        {"id": "default.flagged", "ip": "10.10.0.5", "pool": "p", "block": "10.10.0.0/26", "borrowed": True},
                        {"id": "default.unflagged", "ip": "10.10.0.6", "pool": "p", "block": "10.10.0.0/26"},  # block not its own
                        {"id": "default.own", "ip": "10.10.0.129", "pool": "p", "block": "10.10.0.128/26"},
                        {"id": "default.pending", "ip": None, "pool": None, "block": None},
                    ],
                ),
                "borrowed": ["10.10.0.5", "10.10.0.7"],
            },  # 10.10.0.7: listed, no workload entry (pool by address)
        },
    }
    result = IpamResult.from_dict(ipam)
    assert [(b.ip, b.pool, b.workload) for b in result.nodes["c"].borrowed()] == [
        ("10.10.0.5", "p", "default.flagged"),
        ("10.10.0.6", "p", "default.unflagged"),
        ("10.10.0.7", None, None),
    ]
    routes = [r for r in result.expected_routes("a") if r.kind == BORROWED]
    assert [(str(r.dst), r.node, r.pool, r.gateway, r.by) for r in routes] == [
        ("10.10.0.5/32", "c", "p", "192.168.1.3", BY_BIRD),
        ("10.10.0.6/32", "c", "p", "192.168.1.3", BY_BIRD),
        ("10.10.0.7/32", "c", "p", "192.168.1.3", BY_BIRD),
    ]
    assert result.block_owner(Subnet.parse("10.10.0.7/32", "x")) == "a"


def test_expected_routes_know_disable_bgp_export_and_who_runs_bird():
    ipam = {
        "pools": {"pub": _pool("10.10.0.0/16"), "priv": _pool("10.20.0.0/16", export=False), "vx": _pool("10.30.0.0/16", vxlan="Always")},
        "nodes": {
            "a": _node("192.168.1.1", "192.168.1.0/24", [("10.10.0.0/26", "pub"), ("10.30.0.0/26", "vx")], vxlan="10.30.0.0"),
            "b": _node(
                "192.168.2.1",
                "192.168.2.0/24",
                [("10.10.0.64/26", "pub"), ("10.20.0.0/26", "priv"), ("10.30.0.64/26", "vx"), ("10.10.0.128/32", "pub")],
                vxlan="10.30.0.64",
            ),
        },
    }
    result = IpamResult.from_dict(ipam)

    def remote(name, **kw):
        return {str(r.dst): (r.by, r.gateway, r.dev) for r in result.expected_routes(name, **kw) if r.kind == REMOTE_BLOCK}

    # the private pool's block: no route anywhere (verify used to expect one); across subnets: via a router
    assert remote("a") == {
        "10.10.0.64/26": (BY_BIRD, None, None),
        "10.10.0.128/32": (BY_BIRD, None, None),
        "10.30.0.64/26": (BY_TUNNELS, "10.30.0.64", "vxlan.calico"),
    }
    assert remote("a", bgp_nodes=["a"]) == {"10.30.0.64/26": (BY_TUNNELS, "10.30.0.64", "vxlan.calico")}
    own = [str(r.dst) for r in result.expected_routes("b") if r.blackhole]
    assert own == ["10.10.0.64/26", "10.20.0.0/26", "10.30.0.64/26"]  # not the /32 block (BIRD does not either)
    assert [r for r in result.expected_routes("b", bgp_nodes=["a"]) if r.blackhole] == []
    assert verify.expected_routes("a", ipam, UNDERLAY) == list(verify.expected_routes("a", result, UNDERLAY))
    assert "10.20.0.0/26" not in {exp["dst"] for _kind, exp in verify.expected_routes("a", ipam, UNDERLAY)}


def test_node_addresses_for_the_firewall():
    result = IpamResult.from_dict(PREFIXES)
    assert result.node_addresses() == ["10.0.0.1", "10.0.1.1", "172.17.0.0", "172.17.0.64", "172.18.0.0", "172.18.0.64"]


# --- bad data: named once, for every consumer ------------------------------------------------------------------


# What host "b" reads of node "a" when it reads the result lazily (host_audit, bgp on the host): bgp only a's name
# and address; host_audit all of a but the workloads that cannot be borrowed (a's workload 0 is in a's own block).
BGP, AUDIT = "bgp", "audit"


@pytest.mark.parametrize(
    ("change", "match", "read_by_b"),
    [
        (lambda d: d["nodes"]["a"].update(ip="10.0.0.300"), r"calico_ipam_result\.nodes\.a\.ip='10\.0\.0\.300': not an IPv4", {BGP, AUDIT}),
        (lambda d: d["nodes"]["a"].update(ip="10.0.0.1/16"), r"nodes\.a\.ip='10\.0\.0\.1/16': not an IPv4 address", {BGP, AUDIT}),
        (lambda d: d["nodes"]["a"].update(network="10.0.0.1/16"), r"nodes\.a\.network='10\.0\.0\.1/16': host bits set", {AUDIT}),
        (lambda d: d["nodes"]["a"].update(network="10.9.0.0/16"), r"nodes\.a\.network='10\.9\.0\.0/16': does not contain", {AUDIT}),
        (lambda d: d["nodes"]["a"].update(network="10.0.0.0/033"), r"network='10\.0\.0\.0/033': not an IPv4 network", {AUDIT}),
        (
            lambda d: d["nodes"]["a"]["blocks"].append({"cidr": "172.17.1.0/26", "pool": "gone"}),
            r"nodes\.a\.blocks\[2\]\.pool='gone': not a pool of the IPAM result \(ip, vx\)",
            {AUDIT},
        ),
        (lambda d: d["nodes"]["a"]["tunnels"].update(vxlan="172.18.0.0\n"), r"nodes\.a\.tunnels\.vxlan='172\.18\.0\.0\\n'", {AUDIT}),
        (lambda d: d["nodes"]["a"]["workloads"][0].update(borrowed="no"), r"workloads\[0\]\.borrowed='no': must be a boolean", {AUDIT}),
        (lambda d: d["nodes"]["a"]["workloads"][0].update(block="172.17.0.1/26"), r"workloads\[0\]\.block='172\.17\.0\.1/26': host bits set", {AUDIT}),
        (lambda d: d["nodes"]["a"]["workloads"][0].update(ip="172.17.0.01"), r"workloads\[0\]\.ip='172\.17\.0\.01'", set()),
        (lambda d: d["nodes"]["a"]["workloads"].append("172.17.0.2"), r"nodes\.a\.workloads\[1\]=.*'172\.17\.0\.2'.*: a workload must be a mapping", {AUDIT}),
        (lambda d: d["nodes"]["a"].update(workloads="172.17.0.1"), r"nodes\.a\.workloads=.*'172\.17\.0\.1'.*: must be a list", {AUDIT}),
        (lambda d: d["nodes"].update({"a;reboot": d["nodes"]["b"]}), r"calico_ipam_result\.nodes='a;reboot': .*DNS-1123", {BGP, AUDIT}),
        (
            lambda d: d["pools"]["ip"].update(ipip_mode="Sometimes"),
            r"pools\.ip\.ipip_mode='Sometimes': unknown mode \(one of Never, Always, CrossSubnet\)",
            {BGP, AUDIT},
        ),
        (
            lambda d: d["pools"]["ip"].update(vxlan_mode="Always"),
            r"pools\.ip\.vxlan_mode='Always': IPIP \(CrossSubnet\) and VXLAN cannot both be on in one pool",
            {BGP, AUDIT},
        ),
        (lambda d: d["pools"]["ip"].update(disable_bgp_export="false"), r"pools\.ip\.disable_bgp_export='false': must be a bool", {BGP, AUDIT}),
        (lambda d: d["pools"].update({"Bad_Name": d["pools"]["ip"]}), r"calico_ipam_result\.pools='Bad_Name'", {BGP, AUDIT}),
    ],
)
def test_bad_data_is_refused_naming_field_and_value(change, match, read_by_b):
    data = _copy(PREFIXES)
    change(data)
    with pytest.raises(IpamResultError, match=match):
        IpamResult.from_dict(data)
    # read lazily: the same words as soon as it is read (here: all of it)
    with pytest.raises(IpamResultError, match=match):
        for node in IpamResult.from_dict(data, lazy=True).nodes.values():
            len(node.workloads)
    # every consumer refuses it with the same words
    with pytest.raises(tunnels.TunnelError, match=match):
        tunnels.desired_tunnels("b", data)
    # the lazy consumers on a host: node a reads all of a; node b what it needs of a (read_by_b)
    for host in ("a", "b"):
        if host == "a" or BGP in read_by_b:
            with pytest.raises(bgp.BgpConfigError, match=match) as refused:
                bgp.node_config(data, host)
            assert str(refused.value).startswith(f"host {host}: calico_ipam_result.")
        if host == "a" or AUDIT in read_by_b:
            with pytest.raises(IpamResultError, match=match):
                host_audit.audit_routes(host, data, [])
    if AUDIT not in read_by_b:  # a's other workloads: read by b's audit once an address found on b must be named
        with pytest.raises(IpamResultError, match=match):
            host_audit.audit_routes("b", data, [{"dst": "172.17.0.99", "dev": "cali0123456789a", "scope": "link"}])


def test_a_lazy_reading_reads_what_is_asked_checked_as_strictly_and_keeps_it():
    data = _copy(PREFIXES)
    data["nodes"]["a"]["workloads"][0]["ip"] = "172.17.0.01"  # bad, in a workload b never needs
    data["nodes"]["a"]["network"] = "10.0.0.1/16"  # bad, in what b's BGP never needs
    data["nodes"]["b"]["workloads"].append({"id": "default.moved", "ip": "172.17.0.2", "pool": "ip", "block": "172.17.0.0/26"})
    result = IpamResult.from_dict(data, lazy=True)
    assert sorted(result.nodes) == ["a", "b"] and len(result.nodes) == 2 and "c" not in result.nodes and [] not in result.nodes
    assert result.node_address("a") == ("10.0.0.1", int(ipaddress.IPv4Address("10.0.0.1")))  # a's address alone
    assert bgp.node_config(data, "b")["peers"][0]["address"] == "10.0.0.1"
    with pytest.raises(IpamResultError, match=r"nodes\.a\.network='10\.0\.0\.1/16': host bits set"):
        result.nodes.get("a")  # the node itself: all of it
    data["nodes"]["a"]["network"] = "10.0.0.0/16"
    result = IpamResult.from_dict(data, lazy=True)
    a = result.nodes["a"]
    assert a.borrowed() == ()  # its only workload is in its own block: its address not read
    with pytest.raises(IpamResultError, match=r"nodes\.a\.workloads\[0\]\.ip='172\.17\.0\.01': not an IPv4 address"):
        len(a.workloads)
    with pytest.raises(IpamResultError, match=r"nodes\.a\.workloads\[0\]\.ip='172\.17\.0\.01': not an IPv4 address"):
        result.full_node("a")  # a host's own node: all of it at once
    assert result.full_node("c") is None
    # b's workload in a's block is borrowed although not marked: read, the same answer as a reading at once
    b = result.nodes["b"]
    assert [(x.ip, x.workload) for x in b.borrowed()] == [("172.17.0.2", "default.moved")]
    assert result.nodes["b"] is b and b.workloads == IpamResult.from_dict({**PREFIXES, "nodes": {"b": data["nodes"]["b"]}}).nodes["b"].workloads
    data["nodes"]["a"]["workloads"][0]["ip"] = "172.17.0.1"
    assert IpamResult.from_dict(data, lazy=True) == IpamResult.from_dict(data)  # equal to the reading at once


def _copy(data):
    import copy

    return copy.deepcopy(data)


# --- properties: the rule, and the pieces agreeing on random fleets ----------------------------------------------


addresses = st.integers(min_value=int(ipaddress.IPv4Address("10.0.0.1")), max_value=int(ipaddress.IPv4Address("10.3.255.254")))


@given(addresses, st.integers(min_value=8, max_value=32), addresses)
def test_same_subnet_is_ipaddress_containment(mine, prefix, peer):
    network = ipaddress.IPv4Interface((mine, prefix)).network
    subnet = Subnet.parse(str(network), "network")
    assert same_subnet(subnet, peer) == (ipaddress.IPv4Address(peer) in network)
    assert same_subnet(network, ipaddress.IPv4Address(peer)) == same_subnet(subnet, peer)  # ipaddress objects too
    assert same_subnet(None, peer) is False


MODES = st.sampled_from(["Never", "Always", "CrossSubnet"])


@st.composite
def fleets(draw):
    """2-4 nodes in 10.0.0.0/14 with random prefix lengths (nested subnets happen), an IPIP pool, a VXLAN pool
    and a plain pool with random modes; two blocks per node, a VTEP for most, sometimes a borrowed address."""
    count = draw(st.integers(min_value=2, max_value=4))
    ips = draw(st.lists(addresses, min_size=count, max_size=count, unique=True))
    ipip, vxlan = draw(MODES), draw(MODES)
    pools = {"ip": _pool("172.17.0.0/16", ipip=ipip), "vx": _pool("172.18.0.0/16", vxlan=vxlan), "plain": _pool("172.19.0.0/16", export=draw(st.booleans()))}
    nodes = {}
    for i, ip in enumerate(ips):
        network = ipaddress.IPv4Interface((ip, draw(st.integers(min_value=8, max_value=30)))).network
        pool = draw(st.sampled_from(["ip", "plain"]))
        second = f"172.{17 if pool == 'ip' else 19}.{i}.0/26"
        nodes[f"n{i}"] = _node(
            str(ipaddress.IPv4Address(ip)),
            str(network),
            [(f"172.18.{i}.0/26", "vx"), (second, pool)],
            ipip=f"172.17.{i}.0" if ipip != "Never" else None,
            vxlan=f"172.18.{i}.0" if vxlan != "Never" and draw(st.integers(0, 3)) else None,
        )
    if draw(st.booleans()):  # the last node borrowed an address of the first node's VXLAN block
        nodes[f"n{count - 1}"]["workloads"].append({"id": "default.moved", "ip": "172.18.0.9", "pool": "vx", "block": "172.18.0.0/26", "borrowed": True})
        nodes[f"n{count - 1}"]["borrowed"] = ["172.18.0.9"]
    return {"nodes": nodes, "pools": pools}


@settings(max_examples=150, deadline=None)
@given(fleets())
def test_tunnels_host_audit_and_verify_agree_on_random_fleets(ipam):
    result = IpamResult.from_dict(ipam)
    lazy = IpamResult.from_dict(ipam, lazy=True)
    assert [n.borrowed() for n in lazy.nodes.values()] == [n.borrowed() for n in result.nodes.values()]  # before the workloads are read
    assert lazy == result
    for name in ipam["nodes"]:
        # The data plane's VXLAN routes are the oracle's.
        desired = tunnels.desired_tunnels(name, result)
        programmed = {(dst, p.vtep, naming.VXLAN_DEVICE) for p in desired.peers for dst in p.routes}
        programmed |= {(dst, p.ip, UNDERLAY) for p in desired.peers for dst in p.direct}
        assert programmed == {(r["dst"], r["gateway"], r["dev"]) for r in oracle(ipam, name) if r["protocol"] == "80"}
        # The host audit and verify find the data plane's table right.
        table = kernel_table(ipam, name)
        assert host_audit.audit_routes(name, result, table) == []
        assert host_audit.audit_routes(name, ipam, table) == []  # the dict, read lazily
        assert unmatched(name, result, table) == []


# --- an oracle of what the data plane programs, written apart from the model (ipaddress) --------------------------


def oracle(ipam: dict, name: str) -> list:
    """The remote routes node ``name``'s kernel gets: l3.calico.tunnels for VXLAN pools, BIRD's kernel filter
    (``bgp_next_hop ~ <network>`` for CrossSubnet IPIP, ``gateway recursive``) for the others."""
    me = ipam["nodes"][name]
    mine = ipaddress.IPv4Network(me["network"])
    routes = []
    for other, peer in sorted(ipam["nodes"].items()):
        if other == name:
            continue
        inside = ipaddress.IPv4Address(peer["ip"]) in mine
        prefixes = [(b["cidr"], b["pool"]) for b in peer["blocks"]]
        prefixes += [(w["ip"] + "/32", w["pool"]) for w in peer["workloads"] if w.get("borrowed")]
        for dst, pool_name in prefixes:
            pool = ipam["pools"][pool_name]
            if pool["vxlan_mode"] != "Never":
                if not me["tunnels"]["vxlan"]:
                    continue  # Felix: no VTEP of its own, no route of a VXLAN pool
                if pool["vxlan_mode"] == "CrossSubnet" and inside:
                    routes.append({"dst": dst, "gateway": peer["ip"], "dev": UNDERLAY, "protocol": "80"})
                elif peer["tunnels"]["vxlan"]:
                    routes.append({"dst": dst, "gateway": peer["tunnels"]["vxlan"], "dev": naming.VXLAN_DEVICE, "protocol": "80", "flags": ["onlink"]})
            elif not pool["disable_bgp_export"]:
                if pool["ipip_mode"] == "Always" or (pool["ipip_mode"] == "CrossSubnet" and not inside):
                    routes.append({"dst": dst, "gateway": peer["ip"], "dev": naming.IPIP_DEVICE, "protocol": "bird", "flags": ["onlink"]})
                else:
                    routes.append({"dst": dst, "gateway": peer["ip"] if inside else ROUTER, "dev": UNDERLAY, "protocol": "bird"})
    return routes


def kernel_table(ipam: dict, name: str) -> list:
    """``ip -json route`` of node ``name`` with everything programmed: blackholes, workload routes, the oracle's."""
    me = ipam["nodes"][name]
    table = [{"type": "blackhole", "dst": b["cidr"], "protocol": "bird"} for b in me["blocks"]]
    table += [{"dst": w["ip"], "dev": naming.veth_name(w["id"]), "scope": "link", "protocol": "boot"} for w in me["workloads"]]
    for route in oracle(ipam, name):
        dst = route["dst"][:-3] if route["dst"].endswith("/32") else route["dst"]
        table.append(dict(route, dst=dst, type="unicast"))
    return table


def unmatched(name: str, result: IpamResult, table: list) -> list:
    """The destinations verify expects on node ``name`` that the table does not route as it expects."""
    seen = [
        dict(r, dst=verify.normalise_dst(r["dst"]), type=r.get("type", "unicast"), gateway=r.get("gateway", ""), onlink="onlink" in r.get("flags", []))
        for r in table
    ]
    return [
        exp["dst"]
        for _kind, exp in verify.expected_routes(name, result, UNDERLAY)
        if not any(f["dst"] == exp["dst"] and verify.route_matches(exp, f) for f in seen)
    ]


@pytest.mark.parametrize(
    "ipip, vxlan, kinds",
    [
        ("Never", "Never", ()),
        ("Always", "Never", ("ipip",)),
        ("CrossSubnet", "Never", ("ipip",)),
        ("Never", "Always", ("vxlan",)),
        ("Never", "CrossSubnet", ("vxlan",)),
    ],
)
def test_a_pools_tunnel_kinds_are_one_answer_for_the_inventory_the_result_and_the_mtu(ipip, vxlan, kinds):
    """The inventory's pool (the planner: which tunnel addresses a node needs), the IPAM result's (who routes
    it, its encapsulation) and the workload MTU ask ipam_model.tunnel_kinds, and agree."""
    from ansible_collections.l3.calico.plugins.module_utils import node as node_utils
    from ansible_collections.l3.calico.plugins.module_utils.ipam_inventory import validate

    raw = _pool("172.17.0.0/16", ipip, vxlan)
    [planned] = validate([dict(raw, name="p")], {}, [], []).pools
    pool = IpamResult.from_dict({"nodes": {}, "pools": {"p": raw}}).pools["p"]
    assert planned.tunnel_kinds == pool.tunnel_kinds == kinds
    assert pool.routed_by == (BY_TUNNELS if "vxlan" in kinds else BY_BIRD)
    assert {pool.encapsulation_if(False)} == set(kinds or ("none",))
    overhead = {(): 0, ("ipip",): tunnels.IPIP_OVERHEAD, ("vxlan",): tunnels.VXLAN_OVERHEAD}[kinds]
    assert node_utils.workload_mtu(1500, {"p": raw}) == 1500 - overhead
