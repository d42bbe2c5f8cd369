# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The audit's pure parts: the IPAM state against the inventory, a host's routes against the IPAM."""

from __future__ import annotations

from ansible_collections.l3.calico.plugins.module_utils.host_audit import audit_routes, audit_tunnels
from ansible_collections.l3.calico.plugins.module_utils.ipam_run import run
from ansible_collections.l3.calico.plugins.module_utils.naming import veth_name

POOLS = [{"name": "p1", "cidr": "10.10.0.0/16", "block_size": 26}]


def params(tmp_path, nodes, **kw):
    return {"pools": POOLS, "config": {}, "reservations": [], "node": None, "lock_timeout": 5.0, "state_file": str(tmp_path / "s.json"), "nodes": nodes, **kw}


def nodes(**workloads):
    return [{"name": n, "ip": f"192.168.1.{i}/24", "workloads": [{"name": w} for w in wls]} for i, (n, wls) in enumerate(sorted(workloads.items()), 1)]


def test_audit_of_a_consistent_state_is_clean_and_writes_nothing(tmp_path):
    run(params(tmp_path, nodes(a=["w1"], b=["w2"])), check_mode=False)
    before = (tmp_path / "s.json").read_bytes()
    result, _diff = run(params(tmp_path, nodes(a=["w1"], b=["w2"]), audit=True), check_mode=False)
    assert result["audit"] == [] and result["problems"] == [] and result["changed"] is False
    assert (tmp_path / "s.json").read_bytes() == before


def test_audit_finds_leaks_moves_missing_and_gone_nodes_each_with_a_fix(tmp_path):
    run(params(tmp_path, nodes(a=["w1", "old"], b=["w2"], c=["w3"])), check_mode=False)
    before = (tmp_path / "s.json").read_bytes()
    # old leaves the inventory, w2 moves to a, new appears, c is gone - nobody ran the IPAM.
    result, _diff = run(params(tmp_path, nodes(a=["w1", "w2", "new"], b=[]), audit=True), check_mode=False)
    by = {e["problem"]: e["fix"] for e in result["audit"]}
    text = "\n".join(by)
    assert (tmp_path / "s.json").read_bytes() == before
    assert any("default.old on a, which the inventory no longer lists" in p and "ipam.yml" in f for p, f in by.items()), text
    assert any("recorded on b but the inventory lists workload default.w2 on a" in p for p in by), text
    assert any("workload default.new on a has no address" in p for p in by), text
    assert any("belongs to c, which is not in the inventory" in p and "ipam.yml" in f for p, f in by.items()), text
    assert any("affine to c, which is not in the inventory" in p for p in by), text
    # a plan run fixes every one of them
    run(params(tmp_path, nodes(a=["w1", "w2", "new"], b=[])), check_mode=False)
    again, _diff = run(params(tmp_path, nodes(a=["w1", "w2", "new"], b=[]), audit=True), check_mode=False)
    assert again["audit"] == []


IPAM = {
    "pools": {
        "p1": {"cidr": "10.10.0.0/16", "block_size": 26, "vxlan_mode": "Never", "disable_bgp_export": False},
        "priv": {"cidr": "10.20.0.0/16", "block_size": 26, "vxlan_mode": "Never", "disable_bgp_export": True},
    },
    "nodes": {
        "a": {
            "ip": "192.168.1.1",
            "network": "192.168.1.0/24",
            "blocks": [{"cidr": "10.10.0.0/26", "pool": "p1"}],
            "workloads": [{"id": "default.w1", "ip": "10.10.0.1"}],
        },
        "b": {
            "ip": "192.168.1.2",
            "network": "192.168.1.0/24",
            "blocks": [{"cidr": "10.10.0.64/26", "pool": "p1"}, {"cidr": "10.20.0.0/26", "pool": "priv"}],
            "workloads": [{"id": "default.w2", "ip": "10.10.0.65"}],
        },
    },
}
GOOD = [
    {"dst": "10.10.0.1", "dev": veth_name("default.w1"), "scope": "link"},
    {"type": "blackhole", "dst": "10.10.0.0/26", "protocol": "bird"},
    {"dst": "10.10.0.64/26", "gateway": "192.168.1.2", "dev": "eth0", "protocol": "bird"},
    {"dst": "default", "gateway": "192.168.1.254", "dev": "eth0"},
]


def test_routes_in_agreement():
    assert audit_routes("a", IPAM, GOOD) == []  # b's private block is not exported: no route expected


def test_routes_disagreeing():
    routes = [r for r in GOOD if r.get("dst") != "10.10.0.64/26" and r.get("type") != "blackhole"]
    routes += [
        {"dst": "10.10.0.65", "dev": "cali0000000000x"},  # b's workload address, here
        {"dst": "10.10.0.9", "dev": "cali0000000000y"},  # nobody's
        {"dst": "10.10.9.0/26", "gateway": "192.168.1.3", "dev": "eth0", "protocol": "bird"},
    ]  # stale
    routes = [r for r in routes if r.get("dev") != veth_name("default.w1")]
    problems = [p["problem"] for p in audit_routes("a", IPAM, routes)]
    text = "\n".join(problems)
    assert any("workload default.w1 (10.10.0.1) has no route" in p for p in problems), text
    assert any("10.10.0.65 is used here" in p and "default.w2 on b" in p for p in problems), text
    assert any("'10.10.0.9 dev cali0000000000y' belongs to no workload" in p for p in problems), text
    assert any("own block 10.10.0.0/26 is not blackholed" in p for p in problems), text
    assert any("no route to block 10.10.0.64/26 of b" in p for p in problems), text
    assert any("route to 10.10.9.0/26" in p and "stale" in p for p in problems), text
    assert len(problems) == 6, text


def _fleet(n, vxlan=False):
    """n nodes on one subnet, node i holding block 10.40.i.0/26 (a VXLAN Always pool, or plain BGP)."""
    pool = {"cidr": "10.40.0.0/16", "block_size": 26, "ipip_mode": "Never", "vxlan_mode": "Always" if vxlan else "Never", "disable_bgp_export": False}
    return {
        "pools": {"p": pool},
        "nodes": {
            f"n{i}": {
                "ip": f"192.168.1.{i + 1}",
                "network": "192.168.1.0/24",
                "blocks": [{"cidr": f"10.40.{i}.0/26", "pool": "p"}],
                "workloads": [],
                "tunnels": {"ipip": None, "vxlan": f"10.40.{i}.0" if vxlan else None},
            }
            for i in range(n)
        },
    }


def test_a_host_missing_every_other_nodes_block_is_one_problem():
    """Cut off (its BIRD stopped): 9 other nodes' blocks with no route make one problem naming the count,
    not nine; a block routed the wrong way is still its own problem; five or fewer are listed one by one."""
    own = [{"type": "blackhole", "dst": "10.40.0.0/26", "protocol": "bird"}]
    problems = audit_routes("n0", _fleet(10), own)
    assert len(problems) == 1, problems
    first = "n0: no route to 9 blocks of 9 other nodes (10.40.1.0/26 of n1, 10.40.2.0/26 of n2, 10.40.3.0/26 of n3 and 6 more)"
    assert problems[0]["problem"].startswith(first), problems
    assert "learned by BGP (n0's BIRD stopped or its BGP sessions down?)" in problems[0]["problem"]
    assert "birdc show protocols" in problems[0]["fix"]

    wrong = own + [_bird("10.40.1.0/26", "192.168.1.9")]  # n1's block towards nobody's address
    problems = [p["problem"] for p in audit_routes("n0", _fleet(10), wrong)]
    assert len(problems) == 2 and any(p.startswith("n0: route to block 10.40.1.0/26 of n1 goes via 192.168.1.9") for p in problems), problems
    assert any(p.startswith("n0: no route to 8 blocks of 8 other nodes") for p in problems), problems

    few = audit_routes("n0", _fleet(6), own)
    assert [p["problem"].split(",")[0] for p in few] == [f"n0: no route to block 10.40.{i}.0/26 of n{i}" for i in range(1, 6)]


def test_many_missing_vxlan_routes_are_one_problem_of_the_tunnels():
    problems = audit_routes("n0", _fleet(8, vxlan=True), [{"type": "blackhole", "dst": "10.40.0.0/26", "protocol": "bird"}])
    assert len(problems) == 1, problems
    assert problems[0]["problem"].startswith("n0: no route to 7 blocks of 7 other nodes")
    assert "programmed by the tunnels module (proto 80) (vxlan.calico not converged" in problems[0]["problem"]


# --- borrowed /32s, encapsulations, nodes without BGP, tunnel addresses ------------------------------------------


def _pool(cidr, **modes):
    return {"cidr": cidr, "block_size": 26, "ipip_mode": modes.get("ipip", "Never"), "vxlan_mode": modes.get("vxlan", "Never"), "disable_bgp_export": False}


def _n(i, subnet, blocks, workloads=(), ipip=None, vxlan=None):
    return {
        "ip": f"192.168.{subnet}.{i}",
        "network": f"192.168.{subnet}.0/24",
        "blocks": [{"cidr": c, "pool": p} for c, p in blocks],
        "workloads": list(workloads),
        "tunnels": {"ipip": ipip, "vxlan": vxlan},
    }


# c holds 10.10.0.5 (pool p1, BGP, no encapsulation) and 10.30.0.5 (pool vx, VXLAN Always), both borrowed
# from a's blocks; c's own blocks are 10.10.0.128/26 and 10.30.0.128/26.
BORROW = {
    "pools": {"p1": _pool("10.10.0.0/16"), "vx": _pool("10.30.0.0/16", vxlan="Always")},
    "nodes": {
        "a": _n(1, 1, [("10.10.0.0/26", "p1"), ("10.30.0.0/26", "vx")], vxlan="10.30.0.0"),
        "b": _n(2, 1, [("10.10.0.64/26", "p1"), ("10.30.0.64/26", "vx")], vxlan="10.30.0.64"),
        "c": _n(
            3,
            1,
            [("10.10.0.128/26", "p1"), ("10.30.0.128/26", "vx")],
            vxlan="10.30.0.128",
            workloads=[
                {"id": "default.w5", "ip": "10.10.0.5", "pool": "p1", "block": "10.10.0.0/26", "borrowed": True},
                {"id": "blue.w6", "ip": "10.30.0.5", "pool": "vx", "block": "10.30.0.0/26", "borrowed": True},
            ],
        ),
    },
}


def _vx(dst, vtep):
    return {"dst": dst, "gateway": vtep, "dev": "vxlan.calico", "protocol": "80", "flags": ["onlink"]}


def _bird(dst, gw, dev="eth0", **kw):
    return {"dst": dst, "gateway": gw, "dev": dev, "protocol": "bird", "flags": kw.get("flags", [])}


B_GOOD = [
    {"type": "blackhole", "dst": "10.10.0.64/26", "protocol": "bird"},
    {"type": "blackhole", "dst": "10.30.0.64/26", "protocol": "bird"},
    _bird("10.10.0.0/26", "192.168.1.1"),
    _bird("10.10.0.128/26", "192.168.1.3"),
    _vx("10.30.0.0/26", "10.30.0.0"),
    _vx("10.30.0.128/26", "10.30.0.128"),
    _bird("10.10.0.5", "192.168.1.3"),  # c's borrowed /32s, towards c
    _vx("10.30.0.5", "10.30.0.128"),
]


def test_borrowed_addresses_routed_towards_their_holder_are_clean():
    assert audit_routes("b", BORROW, B_GOOD) == []
    # on a, the block's owner, the /32s win over its own blackhole by longest prefix
    a_routes = [
        {"type": "blackhole", "dst": "10.10.0.0/26"},
        {"type": "blackhole", "dst": "10.30.0.0/26"},
        _bird("10.10.0.64/26", "192.168.1.2"),
        _bird("10.10.0.128/26", "192.168.1.3"),
        _vx("10.30.0.64/26", "10.30.0.64"),
        _vx("10.30.0.128/26", "10.30.0.128"),
        _bird("10.10.0.5", "192.168.1.3"),
        _vx("10.30.0.5", "10.30.0.128"),
    ]
    assert audit_routes("a", BORROW, a_routes) == []
    missing = [r for r in a_routes if r["dst"] != "10.10.0.5"]
    (problem,) = audit_routes("a", BORROW, missing)
    assert problem["problem"].startswith("a: no route to 10.10.0.5/32 (workload default.w5 on c, borrowed from block 10.10.0.0/26 of a)")
    assert "--limit a,c" in problem["fix"] and "birdc show route 10.10.0.5/32" in problem["fix"]


def test_a_missing_borrowed_route_is_found_with_its_fix():
    problems = audit_routes("b", BORROW, [r for r in B_GOOD if r["dst"] not in ("10.10.0.5", "10.30.0.5")])
    by = {p["problem"]: p["fix"] for p in problems}
    text = "\n".join(by)
    assert len(problems) == 2, text
    bgp = next(p for p in by if "10.10.0.5/32" in p)
    assert "borrowed from block 10.10.0.0/26 of a" in bgp and "follows a's block route instead" in bgp
    assert "expected via 192.168.1.3 (BGP)" in bgp and "--limit b,c" in by[bgp]
    vx = next(p for p in by if "10.30.0.5/32" in p)
    assert "expected via 10.30.0.128 dev vxlan.calico onlink proto 80" in vx
    assert by[vx].endswith("ip route replace 10.30.0.5/32 via 10.30.0.128 dev vxlan.calico onlink proto 80)")


def test_a_misdirected_borrowed_route_is_found():
    routes = [r for r in B_GOOD if r["dst"] not in ("10.10.0.5", "10.30.0.5")]
    routes += [_bird("10.10.0.5", "192.168.1.1"), _vx("10.30.0.5", "10.30.0.0")]  # towards a, the block owner
    problems = [p["problem"] for p in audit_routes("b", BORROW, routes)]
    text = "\n".join(problems)
    assert any(
        p.startswith("b: route to 10.10.0.5/32 (workload default.w5 on c") and "goes via 192.168.1.1 dev eth0 proto bird, not towards c" in p for p in problems
    ), text
    assert any("10.30.0.5/32" in p and "goes via 10.30.0.0 dev vxlan.calico proto 80, not towards c" in p for p in problems), text
    # multipath (merge paths): one hop towards the holder is enough
    multi = [r for r in B_GOOD if r["dst"] != "10.10.0.5"] + [
        {"dst": "10.10.0.5", "protocol": "bird", "nexthops": [{"gateway": "192.168.1.3", "dev": "eth0"}, {"gateway": "192.168.1.9", "dev": "eth0"}]}
    ]
    assert audit_routes("b", BORROW, multi) == []


def test_a_stale_borrowed_route_is_found():
    routes = B_GOOD + [_bird("10.10.0.9", "192.168.1.3")]  # nobody borrowed 10.10.0.9
    (problem,) = audit_routes("b", BORROW, routes)
    assert (
        problem["problem"].startswith("b: route to 10.10.0.9/32 (via 192.168.1.3 dev eth0 proto bird) but no node borrowed that address")
        and "ip route del 10.10.0.9/32" in problem["fix"]
    )
    # a /32 for a workload inside its own node's block takes its traffic away from that node
    ipam = {
        **BORROW,
        "nodes": {
            **BORROW["nodes"],
            "a": {**BORROW["nodes"]["a"], "workloads": [{"id": "default.w1", "ip": "10.10.0.1", "pool": "p1", "block": "10.10.0.0/26", "borrowed": False}]},
        },
    }
    (hijack,) = audit_routes("b", ipam, B_GOOD + [_bird("10.10.0.1", "192.168.1.3")])
    assert "10.10.0.1 is workload default.w1 on a, inside its own block: the /32 takes its traffic away" in hijack["problem"]


def test_ipip_and_crosssubnet_routes_go_where_bird_and_tunnels_put_them():
    ipam = {
        "pools": {"ip": _pool("10.10.0.0/16", ipip="CrossSubnet"), "vx": _pool("10.30.0.0/16", vxlan="CrossSubnet")},
        "nodes": {
            "a": _n(1, 1, [("10.10.0.0/26", "ip"), ("10.30.0.0/26", "vx")], ipip="10.10.0.1", vxlan="10.30.0.1"),
            "b": _n(2, 1, [("10.10.0.64/26", "ip"), ("10.30.0.64/26", "vx")], ipip="10.10.0.65", vxlan="10.30.0.65"),
            "c": _n(3, 2, [("10.10.0.128/26", "ip"), ("10.30.0.128/26", "vx")], ipip="10.10.0.129", vxlan="10.30.0.129"),
        },
    }
    good = [
        {"type": "blackhole", "dst": "10.10.0.0/26"},
        {"type": "blackhole", "dst": "10.30.0.0/26"},
        _bird("10.10.0.64/26", "192.168.1.2"),  # same subnet: no tunnel
        _bird("10.10.0.128/26", "192.168.2.3", dev="tunl0", flags=["onlink"]),  # across subnets: tunl0
        {"dst": "10.30.0.64/26", "gateway": "192.168.1.2", "dev": "eth0", "protocol": "80", "flags": []},
        _vx("10.30.0.128/26", "10.30.0.129"),
    ]
    assert audit_routes("a", ipam, good) == []
    wrong = [r for r in good if r["dst"] != "10.10.0.128/26"] + [_bird("10.10.0.128/26", "192.168.1.254")]
    (problem,) = audit_routes("a", ipam, wrong)
    assert "route to block 10.10.0.128/26 of c goes via 192.168.1.254 dev eth0" in problem["problem"]
    assert "expected via 192.168.2.3 dev tunl0 onlink (BGP)" in problem["problem"]


def test_nodes_without_bgp_expect_vxlan_routes_only():
    ipam = {
        "pools": {"p1": _pool("10.10.0.0/16"), "vx": _pool("10.30.0.0/16", vxlan="Always")},
        "nodes": {
            "a": _n(1, 1, [("10.10.0.0/26", "p1"), ("10.30.0.0/26", "vx")], vxlan="10.30.0.0"),
            "b": _n(2, 1, [("10.10.0.64/26", "p1"), ("10.30.0.64/26", "vx")], vxlan="10.30.0.64"),
        },
    }
    # no BIRD anywhere: no blackhole, no route for the BGP pool, the VXLAN block via vxlan.calico onlink
    assert audit_routes("a", ipam, [_vx("10.30.0.64/26", "10.30.0.64")], bgp=False) == []
    (problem,) = audit_routes("a", ipam, [], bgp=False)
    assert "no route to block 10.30.0.64/26 of b" in problem["problem"] and "vxlan.calico onlink" in problem["problem"]
    # a runs BIRD, b does not: nothing of b's BGP pool is expected on a, a's blackholes are
    routes = [{"type": "blackhole", "dst": "10.10.0.0/26"}, {"type": "blackhole", "dst": "10.30.0.0/26"}, _vx("10.30.0.64/26", "10.30.0.64")]
    assert audit_routes("a", ipam, routes, bgp=True, bgp_nodes=["a"]) == []
    assert any("no route to block 10.10.0.64/26 of b" in p["problem"] for p in audit_routes("a", ipam, routes, bgp=True, bgp_nodes=["a", "b"]))


def _tlink(name, *addrs, up=True):
    return {
        "ifname": name,
        "flags": ["NOARP", "UP", "LOWER_UP"] if up else ["NOARP"],
        "addr_info": [{"family": "inet", "local": a, "prefixlen": 32} for a in addrs] + [{"family": "inet6", "local": "fe80::1", "prefixlen": 64}],
    }


TUN = {
    "pools": {"ip": _pool("10.10.0.0/16", ipip="Always"), "vx": _pool("10.30.0.0/16", vxlan="Always")},
    "nodes": {"a": _n(1, 1, [], ipip="10.10.0.1", vxlan="10.30.0.1"), "b": _n(2, 1, [])},
}


def test_tunnel_addresses_equal_to_the_ipam_are_clean():
    links = [_tlink("lo", "127.0.0.1"), _tlink("tunl0", "10.10.0.1"), _tlink("vxlan.calico", "10.30.0.1")]
    assert audit_tunnels("a", TUN, links) == []
    assert audit_tunnels("b", TUN, [_tlink("tunl0"), _tlink("tunl0-foreign", "10.10.0.9")]) == []


def test_tunnel_address_missing_different_or_left_over_is_found_with_its_fix():
    found = audit_tunnels("a", TUN, [_tlink("tunl0", "10.10.0.7"), _tlink("vxlan.calico", up=False)])
    by = {p["problem"]: p["fix"] for p in found}
    text = "\n".join(by)
    assert len(found) == 3, text
    ipip = "a: tunl0 has 10.10.0.7/32, but the IPAM gives a the IPIP tunnel address 10.10.0.1"
    assert by[ipip].endswith("(or on a: ip addr del 10.10.0.7/32 dev tunl0; ip addr add 10.10.0.1/32 dev tunl0)")
    assert "a: vxlan.calico has no address, but the IPAM gives a the VXLAN tunnel address 10.30.0.1" in by, text
    assert "a: vxlan.calico is down" in by
    (gone,) = audit_tunnels("a", TUN, [_tlink("tunl0", "10.10.0.1")])
    assert gone["problem"] == "a: vxlan.calico does not exist, but the IPAM gives a the VXLAN tunnel address 10.30.0.1"
    (leftover,) = audit_tunnels("b", TUN, [_tlink("tunl0", "10.10.0.66", "172.31.0.1")])  # 172.31.0.1: not a pool's
    assert leftover["problem"] == "b: tunl0 holds 10.10.0.66/32 but the IPAM gives b no IPIP tunnel address (a leftover)"
    assert leftover["fix"].endswith("ip addr del 10.10.0.66/32 dev tunl0)")
