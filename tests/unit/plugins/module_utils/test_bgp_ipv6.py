# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""IPv6 BGP (bgp.ipv6_config), as Calico's bird6: IPv6 sessions between the nodes' IPv6 addresses, the same
mesh / reflector / external peer rules as IPv4, the node's IPv6 blocks and the IPv6 pools; none for a node
without an IPv6 address."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.l3.calico.plugins.module_utils.bgp import BgpConfigError, node_config


def dual(nodes: dict, pools6: dict | None = None) -> dict:
    """An IPAM result: name -> (IPv4/len, IPv6/len or None, IPv6 blocks)."""
    out = {}
    for name, (ip, ip6, blocks6) in nodes.items():
        node = {"ip": ip.split("/")[0], "network": str(ipaddress.IPv4Interface(ip).network), "blocks": []}
        if ip6 is not None:
            node.update(ipv6=ip6.split("/")[0], network_ipv6=str(ipaddress.IPv6Interface(ip6).network))
        node["blocks_ipv6"] = [{"cidr": b, "pool": "v6"} for b in blocks6]
        out[name] = node
    return {
        "nodes": out,
        "pools": {"default": {"cidr": "172.17.0.0/16"}},
        "pools_ipv6": pools6 if pools6 is not None else {"v6": {"cidr": "fd00:10::/48"}},
    }


THREE = dual(
    {
        "a": ("192.168.100.9/24", "fd00:100::9/64", ["fd00:10::/122", "fd00:10::1:0/128"]),
        # "fd00:100::10" > "fd00:100::9" as numbers, not as strings: the passive side compares numbers
        "b": ("192.168.100.10/24", "fd00:100::10/64", ["fd00:10::40/122"]),
        "c": ("192.168.200.1/24", None, []),  # IPv4 only: nobody's IPv6 peer
    }
)


def peers6(config: dict) -> dict:
    return {p["address"]: p for p in config["ipv6"]["peers"]}


def test_ipv6_sessions_between_the_ipv6_addresses_one_active_side():
    a, b = node_config(THREE, "a"), node_config(THREE, "b")
    assert list(peers6(a)) == ["fd00:100::10"] and list(peers6(b)) == ["fd00:100::9"]
    towards_b, towards_a = peers6(a)["fd00:100::10"], peers6(b)["fd00:100::9"]
    assert towards_b["name"] == "Mesh_fd00_100__10" and towards_b["kind"] == "mesh" and towards_b["node"] == "b"
    assert towards_b["passive"] is True and towards_a["passive"] is False  # the greater address connects
    # The IPv4 sessions are untouched: c is everybody's IPv4 peer.
    assert [p["address"] for p in a["peers"]] == ["192.168.100.10", "192.168.200.1"]


def test_a_node_without_an_ipv6_address_gets_no_ipv6_bgp():
    assert node_config(THREE, "c")["ipv6"] is None


def test_no_ipv6_pool_no_ipv6_bgp():
    data = dual({"a": ("192.168.100.9/24", "fd00:100::9/64", []), "b": ("192.168.100.10/24", "fd00:100::10/64", [])}, pools6={})
    assert node_config(data, "a")["ipv6"] is None


def test_ipv6_filter_data():
    pools6 = {
        "v6": {"cidr": "fd00:10::/48"},
        "vx6": {"cidr": "fd00:11::/48", "vxlan_mode": "Always"},
        "priv6": {"cidr": "fd00:12::/48", "disable_bgp_export": True},
    }
    data = dual({"a": ("192.168.100.9/24", "fd00:100::9/64", ["fd00:10::/122", "fd00:10::1:0/128"])}, pools6)
    six = node_config(data, "a")["ipv6"]
    assert six == {
        "address": "fd00:100::9",
        "network": "fd00:100::/64",
        "own_blocks": ["fd00:10::/122", "fd00:10::1:0/128"],
        "blackholes": ["fd00:10::/122"],  # never a /128 block, as Calico's bird6_aggr
        "pools": ["fd00:12::/48", "fd00:10::/48", "fd00:11::/48"],
        "export_pools": ["fd00:10::/48", "fd00:11::/48"],
        "no_export_pools": ["fd00:12::/48"],
        "vxlan_pools": ["fd00:11::/48"],
        "peers": [],
    }


def test_reflectors_and_mesh_in_ipv6_as_in_ipv4():
    data = dual({n: (f"192.168.100.{i}/24", f"fd00:100::{i}/64", []) for i, n in enumerate("abcd", 1)})
    settings = {"route_reflectors": {"b": "1.1.1.1"}, "node_mesh": True}
    for name in "abcd":
        config = node_config(data, name, settings)
        v4 = {p["node"]: (p["kind"], p["rr_client"], p["passive"]) for p in config["peers"]}
        v6 = {p["node"]: (p["kind"], p["rr_client"], p["passive"]) for p in config["ipv6"]["peers"]}
        assert v4 == v6, name
    assert node_config(data, "b", settings)["ipv6"]["peers"][0]["rr_client"] is True


def test_every_ipv6_session_has_both_ends_and_one_active_side():
    data = dual({n: (f"192.168.100.{i}/24", f"fd00:100::{i:x}/64", []) for i, n in enumerate("abcdefghijkl", 1)})
    data["nodes"]["f"].pop("ipv6")
    data["nodes"]["f"].pop("network_ipv6")
    configs = {n: node_config(data, n) for n in data["nodes"]}
    for x, y in itertools.permutations(configs, 2):
        if "f" in (x, y):
            assert configs["f"]["ipv6"] is None and all(p["node"] != "f" for p in configs[x if y == "f" else y]["ipv6"]["peers"])
            continue
        there = {p["node"]: p for p in configs[x]["ipv6"]["peers"]}[y]
        back = {p["node"]: p for p in configs[y]["ipv6"]["peers"]}[x]
        assert there["passive"] != back["passive"]


def test_external_ipv6_peers_go_to_the_ipv6_sessions():
    settings = {
        "mesh_password": "mesh-key",
        "peers": [{"address": "2001:db8::1", "as": 65000, "password": "tor6-key"}, {"address": "10.0.0.1", "as": 65000}],
        "node_peers": [{"address": "2001:DB8:0::2", "as": 65002, "import_default_route": True, "keep_next_hop": True}],
    }
    config = node_config(THREE, "a", settings)
    assert [p["name"] for p in config["peers"]] == ["Mesh_192_168_100_10", "Mesh_192_168_200_1", "Global_10_0_0_1"]
    assert [(p["name"], p["address"]) for p in config["ipv6"]["peers"]] == [
        ("Mesh_fd00_100__10", "fd00:100::10"),
        ("Global_2001_db8__1", "2001:db8::1"),
        ("Node_2001_db8__2", "2001:db8::2"),  # one spelling (RFC 5952), whatever the inventory's
    ]
    assert config["secrets"]["CALICO_PW_GLOBAL_2001_DB8__1"] == {"var": "calico_bgp_peers", "index": 0}
    assert config["secrets"]["CALICO_PW_MESH_FD00_100__10"] == {"var": "calico_bgp_mesh_password", "index": None}
    assert "tor6-key" not in repr(config)
    # A global IPv6 peer is skipped on an IPv4-only node (as Calico's bird6 on a node without an IPv6 address).
    c = node_config(THREE, "c", {"peers": settings["peers"]})
    assert c["ipv6"] is None and [p["name"] for p in c["peers"]] == ["Mesh_192_168_100_9", "Mesh_192_168_100_10", "Global_10_0_0_1"]
    assert "CALICO_PW_GLOBAL_2001_DB8__1" not in c["secrets"]


def test_a_global_ipv6_peer_that_is_this_node_is_skipped():
    config = node_config(THREE, "a", {"node_mesh": False, "peers": [{"address": "fd00:100::9", "as": 65000}]})
    assert config["ipv6"]["peers"] == []


@pytest.mark.parametrize(
    "node, settings, match",
    [
        ("a", {"peers": [{"address": "fd00::zz", "as": 1}]}, r"host a: calico_bgp_peers\[0\]\.address='fd00::zz': not an IPv6 address"),
        ("a", {"peers": [{"address": "fe80::1", "as": 1}]}, r"host a: calico_bgp_peers\[0\]\.address='fe80::1': a link-local IPv6 address"),
        ("a", {"peers": [{"address": "::ffff:10.0.0.1", "as": 1}]}, r"an IPv4-mapped IPv6 address: an IPv4 peer is given as 10\.0\.0\.1"),
        (
            "c",
            {"node_peers": [{"address": "2001:db8::2", "as": 1}]},
            r"host c: calico_bgp_node_peers\[0\]\.address='2001:db8::2': an IPv6 peer, but this node has no IPv6 address \(calico_node_ipv6\)",
        ),
        ("a", {"node_peers": [{"address": "fd00:100::10", "as": 1}]}, r"calico_bgp_node_peers\[0\]\.address='fd00:100::10': already a peer"),
        (
            "a",
            {"peers": [{"address": "2001:db8::1", "as": 1}], "node_peers": [{"address": "2001:db8:0:0::1", "as": 2}]},
            r"calico_bgp_node_peers\[0\]\.address='2001:db8::1': already a peer",
        ),
        (
            "a",
            {"peers": [{"address": "2001:db8::1", "as": 1, "name": "Mesh_fd00_100__10"}]},
            r"host a: peer names=\['Mesh_fd00_100__10'\]: two peers with the same protocol name",
        ),
    ],
)
def test_bad_ipv6_input_names_host_field_and_value(node, settings, match):
    with pytest.raises(BgpConfigError, match=match):
        node_config(THREE, node, settings)


def test_an_ipv6_node_peer_without_an_ipv6_pool_is_refused():
    data = dual({"a": ("192.168.100.9/24", "fd00:100::9/64", [])}, pools6={})
    with pytest.raises(BgpConfigError, match=r"an IPv6 peer, but the IPAM result has no IPv6 pool"):
        node_config(data, "a", {"node_peers": [{"address": "2001:db8::2", "as": 1}]})


def test_bad_ipv6_ipam_data():
    broken = dual({"a": ("192.168.100.9/24", "fd00:100::9/64", ["fd00:99::/122"])})
    broken["pools_ipv6"]["other"] = {"cidr": "fd00:98::/48"}
    broken["nodes"]["a"]["blocks_ipv6"][0]["pool"] = None
    with pytest.raises(BgpConfigError, match=r"blocks_ipv6\[0\]\.cidr='fd00:99::/122': outside every pool"):
        node_config(broken, "a")
    same = dual({"a": ("192.168.100.9/24", "fd00:100::9/64", []), "b": ("192.168.100.10/24", "fd00:100::9/64", [])})
    with pytest.raises(BgpConfigError, match=r"host b: nodes\.ipv6='fd00:100::9': same IPv6 address as a"):
        node_config(same, "a")


def test_an_ipv6_address_has_one_spelling_whatever_the_inventory_wrote():
    """Names and neighbors print the C library's RFC 5952 spelling (BIRD's own), equal to ipaddress's for node
    and peer addresses (IPv4-mapped ones are refused where they enter)."""
    from ansible_collections.l3.calico.plugins.module_utils.bgp import _ipv6_text

    for text in ("fd00:0:0:0:0:0:0:1", "FD00::1", "2001:db8:0:1:0:0:0:1", "2001:0:0:1::1", "fe80::", "::1", "2001:db8:1:2:3:4:5:6", "1:0::0:2"):
        address = ipaddress.IPv6Address(text)
        assert _ipv6_text(int(address)) == str(address)
    data = dual({"a": ("192.168.100.9/24", "fd00:100::9/64", []), "b": ("192.168.100.10/24", "FD00:100:0:0::A/64", [])})
    assert [p["name"] for p in node_config(data, "a")["ipv6"]["peers"]] == ["Mesh_fd00_100__a"]


@given(st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_the_spelling_is_ipaddress_s_outside_the_embedded_ipv4_ranges(number):
    """Outside ::/96 and ::ffff:0:0/96 (where the C library writes a dotted quad) the two agree."""
    from ansible_collections.l3.calico.plugins.module_utils.bgp import _ipv6_text

    if number >> 32 in (0, 0xFFFF):
        number |= 1 << 127
    assert _ipv6_text(number) == str(ipaddress.IPv6Address(number))


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(min_value=2, max_value=7),
    with_ipv6=st.sets(st.integers(min_value=0, max_value=6)),
    suffixes=st.lists(st.integers(min_value=1, max_value=0xFFFF), min_size=7, max_size=7, unique=True),
    mesh=st.booleans(),
    reflectors=st.sets(st.integers(min_value=0, max_value=6), max_size=3),
)
def test_ipv6_sessions_are_the_ipv4_ones_between_nodes_with_ipv6(count, with_ipv6, suffixes, mesh, reflectors):
    """For any nodes, IPv6 addresses, mesh switch and reflectors: between two nodes with an IPv6 address there
    is an IPv6 session exactly where there is an IPv4 one, of the same kind, both ends configured, one passive
    (by the IPv6 addresses); no IPv6 session with or on a node without one."""
    nodes = {f"n{i}": (f"10.0.0.{i + 1}/24", f"fd00:100::{suffixes[i]:x}/64" if i in with_ipv6 else None, []) for i in range(count)}
    data = dual(nodes)
    rr = {f"n{i}": "1.1.1.1" for i in reflectors if i < count}
    configs = {n: node_config(data, n, {"node_mesh": mesh, "route_reflectors": rr}) for n in nodes}
    v4 = {(x, p["node"]): p for x, c in configs.items() for p in c["peers"]}
    v6 = {(x, p["node"]): p for x, c in configs.items() if c["ipv6"] for p in c["ipv6"]["peers"]}
    six = {n for n, (_ip, ip6, _blocks) in nodes.items() if ip6}
    assert {n for n, c in configs.items() if c["ipv6"] is not None} == six
    assert set(v6) == {pair for pair in v4 if pair[0] in six and pair[1] in six}
    for (x, y), peer in v6.items():
        assert peer["kind"] == v4[(x, y)]["kind"] and peer["rr_client"] == v4[(x, y)]["rr_client"]
        assert peer["passive"] != v6[(y, x)]["passive"]
        assert peer["passive"] == (ipaddress.IPv6Address(peer["address"]) > ipaddress.IPv6Address(nodes[x][1].split("/")[0]))
