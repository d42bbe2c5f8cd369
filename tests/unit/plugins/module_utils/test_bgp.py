# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Unit tests of plugins/module_utils/bgp.py: mesh pairs, passive side, reflectors, peers, filter data."""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import json

import pytest

from ansible_collections.l3.calico.plugins.module_utils.bgp import (
    MESH,
    MESH_PASSWORD,
    RR,
    BgpConfigError,
    BgpSettings,
    PasswordSource,
    Peer,
    hash_router_id,
    node_config,
    node_peers,
)
from ansible_collections.l3.calico.plugins.module_utils.ipam_result import IpamResult


def ipam(nodes: dict, pools: dict | None = None) -> dict:
    pools = pools or {"default": {"cidr": "172.17.0.0/16", "ipip_mode": "CrossSubnet", "vxlan_mode": "Never"}}
    return {
        "nodes": {
            name: {
                "ip": ip.split("/")[0],
                "network": str(ipaddress.IPv4Interface(ip).network),
                "blocks": [{"cidr": b, "pool": "default"} for b in blocks],
                "workloads": [],
                "borrowed": [],
            }
            for name, (ip, blocks) in nodes.items()
        },
        "pools": pools,
    }


THREE = ipam(
    {
        "a": ("192.168.100.9/24", ["172.17.0.0/26"]),
        "b": ("192.168.100.10/24", ["172.17.0.64/26"]),
        "c": ("192.168.200.1/24", ["172.17.0.128/26", "172.17.0.192/32"]),
    }
)


def peers(config: dict) -> dict:
    return {p["address"]: p for p in config["peers"]}


def test_full_mesh_one_active_side_per_pair():
    configs = {n: node_config(THREE, n) for n in THREE["nodes"]}
    for x, y in itertools.permutations(configs, 2):
        x_ip, y_ip = THREE["nodes"][x]["ip"], THREE["nodes"][y]["ip"]
        towards_y = peers(configs[x])[y_ip]
        assert towards_y["kind"] == "mesh" and towards_y["name"] == "Mesh_" + y_ip.replace(".", "_")
        # In each pair exactly one side is passive: the side whose peer has the greater address.
        assert towards_y["passive"] != peers(configs[y])[x_ip]["passive"]
        assert towards_y["passive"] == (ipaddress.IPv4Address(y_ip) > ipaddress.IPv4Address(x_ip))


def test_passive_side_compares_addresses_numerically():
    # As strings "192.168.100.9" > "192.168.100.10"; as addresses it is the other way round.
    a = node_config(THREE, "a")
    assert peers(a)["192.168.100.10"]["passive"] is True


def test_mesh_off_without_reflectors_leaves_external_peers_only():
    config = node_config(THREE, "a", {"node_mesh": False, "peers": [{"address": "10.0.0.1", "as": 65000}]})
    assert [p["name"] for p in config["peers"]] == ["Global_10_0_0_1"]


def test_route_reflector_clients_and_mesh():
    rr = {"b": "1.1.1.1"}
    on_rr = node_config(THREE, "b", {"route_reflectors": rr})
    assert {p["address"]: (p["kind"], p["rr_client"]) for p in on_rr["peers"]} == {
        "192.168.100.9": ("rr", True),
        "192.168.200.1": ("rr", True),
    }
    assert on_rr["route_reflector_cluster_id"] == "1.1.1.1"
    # A client keeps the mesh with the other clients (mesh on) but never meshes with the reflector.
    client = node_config(THREE, "a", {"route_reflectors": rr})
    assert {p["address"]: (p["kind"], p["rr_client"]) for p in client["peers"]} == {
        "192.168.100.10": ("rr", False),
        "192.168.200.1": ("mesh", False),
    }
    client_no_mesh = node_config(THREE, "a", {"route_reflectors": rr, "node_mesh": False})
    assert [p["address"] for p in client_no_mesh["peers"]] == ["192.168.100.10"]


def test_reflectors_of_one_cluster_are_not_clients_of_each_other():
    same = node_config(THREE, "a", {"route_reflectors": {"a": "1.1.1.1", "b": "1.1.1.1"}})
    assert peers(same)["192.168.100.10"]["rr_client"] is False
    assert peers(same)["192.168.200.1"]["rr_client"] is True
    other = node_config(THREE, "a", {"route_reflectors": {"a": "1.1.1.1", "b": "2.2.2.2"}})
    assert peers(other)["192.168.100.10"]["rr_client"] is True


def test_reflector_client_only_within_the_same_as():
    config = node_config(THREE, "b", {"route_reflectors": {"b": "1.1.1.1"}, "node_as": {"c": 65001}})
    assert peers(config)["192.168.200.1"]["rr_client"] is False
    assert peers(config)["192.168.200.1"]["ibgp"] is False
    assert peers(config)["192.168.200.1"]["multihop"] == 255


def test_external_peers_global_and_per_node_with_password_sources():
    config = node_config(
        THREE,
        "a",
        {
            "mesh_password": "mesh-key",
            "peers": [{"address": "10.0.0.1", "as": 65000, "password": "tor-key", "ttl_security": True, "multihop": 2}],
            "node_peers": [
                {
                    "address": "10.0.0.2",
                    "as": 65001,
                    "keep_next_hop": True,
                    "port": 1179,
                    "import_default_route": True,
                    "name": "tor_b",
                }
            ],
        },
    )
    by_name = {p["name"]: p for p in config["peers"]}
    assert by_name["Global_10_0_0_1"]["password_symbol"] == "CALICO_PW_GLOBAL_10_0_0_1"
    assert by_name["Global_10_0_0_1"]["ttl_security"] is True and by_name["Global_10_0_0_1"]["multihop"] == 2
    assert by_name["tor_b"]["keep_next_hop"] and by_name["tor_b"]["port"] == 1179
    assert by_name["tor_b"]["import_default_route"] and by_name["tor_b"]["password_symbol"] is None
    assert by_name["Mesh_192_168_100_10"]["password_symbol"] == "CALICO_PW_MESH_192_168_100_10"
    # No secret in the returned data: only where to read it.
    assert "tor-key" not in repr(config) and "mesh-key" not in repr(config)
    assert config["secrets"]["CALICO_PW_GLOBAL_10_0_0_1"] == {"var": "calico_bgp_peers", "index": 0}
    assert config["secrets"]["CALICO_PW_MESH_192_168_200_1"] == {"var": "calico_bgp_mesh_password", "index": None}


def test_a_global_peer_that_is_this_node_is_skipped():
    config = node_config(THREE, "a", {"node_mesh": False, "peers": [{"address": "192.168.100.9", "as": 65000}]})
    assert config["peers"] == []


def test_filter_data():
    pools = {
        "default": {"cidr": "172.17.0.0/16", "ipip_mode": "CrossSubnet", "vxlan_mode": "Never"},
        "always": {"cidr": "172.20.0.0/16", "ipip_mode": "Always", "vxlan_mode": "Never"},
        "blue": {"cidr": "172.18.0.0/16", "ipip_mode": "Never", "vxlan_mode": "Always"},
        "private": {"cidr": "172.19.0.0/16", "ipip_mode": "Never", "vxlan_mode": "Never", "disable_bgp_export": True},
    }
    data = ipam({"c": ("192.168.200.1/24", ["172.17.0.128/26", "172.17.0.192/32"])}, pools)
    config = node_config(data, "c")
    assert config["own_blocks"] == ["172.17.0.128/26", "172.17.0.192/32"]
    assert config["blackholes"] == ["172.17.0.128/26"]  # never a /32 block
    assert config["pools"] == ["172.20.0.0/16", "172.18.0.0/16", "172.17.0.0/16", "172.19.0.0/16"]
    assert config["export_pools"] == ["172.20.0.0/16", "172.18.0.0/16", "172.17.0.0/16"]
    assert config["no_export_pools"] == ["172.19.0.0/16"]
    assert config["ipip_always_pools"] == ["172.20.0.0/16"]
    assert config["ipip_cross_subnet_pools"] == ["172.17.0.0/16"]
    assert config["vxlan_pools"] == ["172.18.0.0/16"]
    assert config["network"] == "192.168.200.0/24" and config["tunnel_device"] == "tunl0"
    assert config["workload_interfaces"] == "cali*"


def test_router_id_modes():
    assert node_config(THREE, "a")["router_id"] == "192.168.100.9"
    hashed = node_config(THREE, "a", {"router_id": "hash"})["router_id"]
    assert hashed == hash_router_id("a") != hash_router_id("b")
    ipaddress.IPv4Address(hashed)
    assert node_config(THREE, "a", {"router_id": "10.9.9.9"})["router_id"] == "10.9.9.9"


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"as": 0}, r"host a: calico_bgp_as=0: must be an integer in 1\.\.4294967295"),
        ({"as": True}, r"host a: calico_bgp_as=True"),
        ({"router_id": "fast"}, r"host a: calico_bgp_router_id='fast': not an IPv4 address"),
        ({"node_mesh": "yes"}, r"host a: calico_bgp_node_mesh='yes': must be a boolean"),
        ({"route_reflectors": {"b": ""}}, r"host b: calico_bgp_rr_cluster_id='': a route reflector needs a cluster id"),
        ({"route_reflectors": {"zz": "1.1.1.1"}}, r"host zz: calico_route_reflectors"),
        ({"peers": [{"address": "10.0.0.1"}]}, r"host a: calico_bgp_peers\[0\]\.as=None"),
        ({"peers": [{"address": "10.0.0.1", "as": 1, "colour": "red"}]}, r"unknown keys"),
        (
            {"node_peers": [{"address": "192.168.100.10", "as": 1}]},
            r"calico_bgp_node_peers\[0\]\.address='192.168.100.10': already a peer",
        ),
        ({"peers": [{"address": "10.0.0.1", "as": 1, "multihop": 256}]}, r"multihop=256"),
        (
            {"peers": [{"address": "10.0.0.1", "as": 1, "name": "Mesh_192_168_100_10"}]},
            r"host a: peer names=\['Mesh_192_168_100_10'\]: two peers with the same protocol name",
        ),
        ({"graceful_restart": "on"}, r"host a: calico_bgp_graceful_restart='on': must be a boolean"),
        ({"graceful_restart_time": 4096}, r"host a: calico_bgp_graceful_restart_time=4096: must be an integer in 0\.\.4095"),
    ],
)
def test_bad_input_names_host_field_and_value(settings, match):
    with pytest.raises(BgpConfigError, match=match):
        node_config(THREE, "a", settings)


def test_a_bad_password_is_refused_without_being_echoed():
    with pytest.raises(BgpConfigError) as excinfo:
        node_config(THREE, "a", {"peers": [{"address": "10.0.0.1", "as": 1, "password": 'se"cret'}]})
    assert "calico_bgp_peers[0].password" in str(excinfo.value) and "cret" not in str(excinfo.value)


def test_a_password_with_a_trailing_newline_is_refused_by_us_not_by_bird():
    password = "mesh-key\n"
    """A vaulted password with a trailing newline (an ``encrypt_string`` slip) used to pass: '$' accepts it."""
    for settings, field in (
        ({"mesh_password": password}, "calico_bgp_mesh_password"),
        ({"peers": [{"address": "10.0.0.1", "as": 1, "password": password}]}, "calico_bgp_peers[0].password"),
    ):
        with pytest.raises(BgpConfigError) as excinfo:
            node_config(THREE, "a", settings)
        assert field in str(excinfo.value) and "mesh-key" not in str(excinfo.value)


def test_a_peer_name_with_a_trailing_newline_is_refused():
    with pytest.raises(BgpConfigError, match=r"calico_bgp_peers\[0\]\.name='tor1\\n'"):
        node_config(THREE, "a", {"peers": [{"address": "10.0.0.1", "as": 1, "name": "tor1\n"}]})


@pytest.mark.parametrize("name", ["c\n  protocol static evil { ipv4; route 172.17.0.200/32 blackhole; }", "c;reboot", "rack1/c"])
def test_a_node_name_that_is_not_a_dns_subdomain_never_reaches_bird_conf(name):
    bad = ipam({"a": ("192.168.100.9/24", ["172.17.0.0/26"]), name: ("192.168.100.10/24", ["172.17.0.64/26"])})
    with pytest.raises(BgpConfigError, match=r"calico_ipam_result\.nodes=.*DNS-1123 subdomain"):
        node_config(bad, "a")
    for settings in ({"node_as": {name: 65001}}, {"route_reflectors": {name: "1.1.1.1"}}):
        with pytest.raises(BgpConfigError, match="DNS-1123 subdomain"):
            node_config(THREE, "a", settings)


def test_bad_ipam_data():
    with pytest.raises(BgpConfigError, match="host z: calico_ipam_result.nodes"):
        node_config(THREE, "z")
    broken = ipam({"a": ("192.168.100.9/24", ["10.0.0.0/26"])})
    with pytest.raises(BgpConfigError, match=r"blocks\[0\]\.cidr='10.0.0.0/26': outside every pool"):
        node_config(broken, "a")
    broken = ipam({"a": ("192.168.100.9/24", [])})
    broken["nodes"]["a"]["network"] = "10.0.0.0/24"
    with pytest.raises(BgpConfigError, match="does not contain the node address"):
        node_config(broken, "a")


# --- the model: BgpSettings.from_inventory, Peer, the password kept as where to read it ---------------------------

EVERYTHING = {
    "route_reflectors": {"b": "1.1.1.1"},
    "node_as": {"a": 65001},
    "mesh_password": "mesh-key",
    "peers": [{"address": "10.0.0.1", "as": 65000, "password": "tor-key", "ttl_security": True, "multihop": 2}],
    "node_peers": [{"address": "10.0.0.2", "as": 64512, "keep_next_hop": True, "port": 1179, "import_default_route": True, "name": "tor_c"}],
    "router_id": "hash",
    "graceful_restart_time": 300,
}


def _peer(name, kind, address, asn, multihop=None, password_symbol=None, ibgp=True, node=None, **flags):
    head = {"name": name, "kind": kind} | ({"node": node} if node else {})
    return head | {
        "address": address,
        "as": asn,
        "ttl_security": flags.get("ttl_security", False),
        "multihop": multihop,
        "keep_next_hop": flags.get("keep_next_hop", False),
        "port": flags.get("port", 179),
        "passive": False,
        "import_default_route": flags.get("import_default_route", False),
        "rr_client": False,
        "password_symbol": password_symbol,
        "ibgp": ibgp,
    }


def test_the_output_every_consumer_reads_is_pinned_key_for_key():
    """What the filter returns (bird_conf.render, render_secrets, the verify peers): values and key order, as before the
    settings became dataclasses."""
    expected = {
        "node": "c",
        "router_id": hash_router_id("c"),
        "as": 64512,
        "address": "192.168.200.1",
        "network": "192.168.200.0/24",
        "route_reflector_cluster_id": None,
        "own_blocks": ["172.17.0.128/26", "172.17.0.192/32"],
        "blackholes": ["172.17.0.128/26"],
        "pools": ["172.17.0.0/16"],
        "export_pools": ["172.17.0.0/16"],
        "no_export_pools": [],
        "ipip_always_pools": [],
        "ipip_cross_subnet_pools": ["172.17.0.0/16"],
        "vxlan_pools": [],
        "import_default_route": False,
        "graceful_restart": True,
        "graceful_restart_time": 300,
        "tunnel_device": "tunl0",
        "workload_interfaces": "cali*",
        "peers": [
            _peer("Mesh_192_168_100_9", "mesh", "192.168.100.9", 65001, 255, "CALICO_PW_MESH_192_168_100_9", False, node="a"),
            _peer("RR_192_168_100_10", "rr", "192.168.100.10", 64512, None, "CALICO_PW_RR_192_168_100_10", node="b"),
            _peer("Global_10_0_0_1", "global", "10.0.0.1", 65000, 2, "CALICO_PW_GLOBAL_10_0_0_1", False, ttl_security=True),
            _peer("tor_c", "node", "10.0.0.2", 64512, keep_next_hop=True, port=1179, import_default_route=True),
        ],
        "secrets": {
            "CALICO_PW_MESH_192_168_100_9": {"var": "calico_bgp_mesh_password", "index": None},
            "CALICO_PW_RR_192_168_100_10": {"var": "calico_bgp_mesh_password", "index": None},
            "CALICO_PW_GLOBAL_10_0_0_1": {"var": "calico_bgp_peers", "index": 0},
        },
        "ipv6": None,  # no IPv6 address, no IPv6 pool: no IPv6 BGP (dual stack: ipv6_config)
    }
    assert json.dumps(node_config(THREE, "c", EVERYTHING)) == json.dumps(expected)


def test_settings_are_read_once_into_a_frozen_model():
    bgp = BgpSettings.from_inventory("c", EVERYTHING)
    assert (bgp.local_as, bgp.default_as, bgp.router_id, bgp.node_mesh) == (64512, 64512, "hash", True)
    assert bgp.node_as == {"a": 65001, "c": 64512} and bgp.route_reflectors == {"b": "1.1.1.1"}
    assert [(p.name, p.kind, p.ip, p.asn, p.where) for p in bgp.peers] == [
        ("Global_10_0_0_1", "global", "10.0.0.1", 65000, "calico_bgp_peers[0]"),
        ("tor_c", "node", "10.0.0.2", 64512, "calico_bgp_node_peers[0]"),
    ]
    assert bgp.peers[0].address == int(ipaddress.IPv4Address("10.0.0.1"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        bgp.node_mesh = False
    with pytest.raises(dataclasses.FrozenInstanceError):
        bgp.peers[0].passive = True
    assert BgpSettings.from_inventory("a") == BgpSettings("a", node_as={"a": 64512})


def test_passwords_are_kept_only_as_where_to_read_them():
    """Split by construction: the model holds the variable and the index, never the value."""
    bgp = BgpSettings.from_inventory("a", EVERYTHING)
    assert bgp.mesh_password == MESH_PASSWORD == PasswordSource("calico_bgp_mesh_password", None)
    assert bgp.peers[0].password == PasswordSource("calico_bgp_peers", 0) and bgp.peers[1].password is None
    assert "mesh-key" not in repr(bgp) and "tor-key" not in repr(bgp)
    assert all("mesh-key" not in repr(v) and "tor-key" not in repr(v) for v in dataclasses.astuple(bgp))
    assert bgp.peers[0].password_symbol == "CALICO_PW_GLOBAL_10_0_0_1" and bgp.peers[1].password_symbol is None
    # An empty password is no password (a vaulted variable left empty): no constant, no secret.
    assert BgpSettings.from_inventory("a", {"mesh_password": ""}).mesh_password is None


def test_the_as_of_a_node():
    bgp = BgpSettings.from_inventory("a", {"as": 65000, "default_as": 65010, "node_as": {"b": 65001}})
    assert (bgp.as_of("a"), bgp.as_of("b"), bgp.as_of("c")) == (65000, 65001, 65010)
    # default_as defaults to this node's AS
    assert BgpSettings.from_inventory("a", {"as": 65000}).as_of("c") == 65000


@pytest.mark.parametrize(
    "mine, theirs, same_as, mesh, expected",
    [
        (None, None, True, True, (MESH, False)),
        (None, None, True, False, None),
        (None, "1.1.1.1", True, False, (RR, False)),  # a client peers with every reflector, mesh or not
        ("1.1.1.1", None, True, False, (RR, True)),  # a reflector: every node of its AS is its client
        ("1.1.1.1", None, False, True, (RR, False)),  # ... but not a node of another AS
        ("1.1.1.1", "1.1.1.1", True, True, (RR, False)),  # reflectors of one cluster are not clients
        ("1.1.1.1", "2.2.2.2", True, True, (RR, True)),  # of another cluster they are
    ],
)
def test_the_session_with_another_node(mine, theirs, same_as, mesh, expected):
    reflectors = {k: v for k, v in (("a", mine), ("b", theirs)) if v}
    bgp = BgpSettings.from_inventory("a", {"route_reflectors": reflectors, "node_mesh": mesh})
    assert bgp.session_with("b", 64512 if same_as else 65001) == expected
    assert bgp.cluster_id == mine


def test_a_peer_as_bird_conf_reads_it():
    peer = Peer("Mesh_10_0_0_2", MESH, "10.0.0.2", 0x0A000002, 65001, node="b", multihop=255, password=MESH_PASSWORD)
    assert peer.as_dict(64512) == _peer("Mesh_10_0_0_2", "mesh", "10.0.0.2", 65001, 255, "CALICO_PW_MESH_10_0_0_2", False, node="b")
    assert list(peer.as_dict(64512)) == list(_peer("x", "mesh", "x", 1, node="b"))
    assert peer.as_dict(65001)["ibgp"] is True
    assert "node" not in dataclasses.replace(peer, node=None).as_dict(1)


def test_the_sessions_with_the_nodes_are_the_peers_the_constructor_builds():
    """node_peers builds its Peers without the dataclass's __init__ (a mesh is 10,000 of them): the same values."""
    bgp = BgpSettings.from_inventory("a", {"node_as": {"c": 65001}, "mesh_password": "k", "route_reflectors": {"b": "1.1.1.1"}})
    result = IpamResult.from_dict(THREE)

    def address(ip):
        return int(ipaddress.IPv4Address(ip))

    expected = [
        Peer("RR_192_168_100_10", RR, "192.168.100.10", address("192.168.100.10"), 64512, node="b", passive=True, password=MESH_PASSWORD),
        Peer("Mesh_192_168_200_1", MESH, "192.168.200.1", address("192.168.200.1"), 65001, node="c", multihop=255, passive=True, password=MESH_PASSWORD),
    ]
    built = node_peers(bgp, result, result.nodes["a"])
    assert [vars(p) for p in built] == [vars(p) for p in expected] and built == expected
    assert [type(p) for p in built] == [Peer, Peer] and hash(built[0]) == hash(expected[0])


def test_settings_are_checked_before_the_ipam_result():
    """One check per input, settings first: a bad setting is named even when the IPAM result is bad too."""
    with pytest.raises(BgpConfigError, match=r"host a: calico_bgp_as=0"):
        node_config({"nodes": {}, "pools": {}}, "a", {"as": 0})


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:

    @settings(max_examples=60, deadline=None)
    @given(
        addresses=st.sets(st.integers(min_value=0x0A000001, max_value=0x0A0000FE), min_size=2, max_size=7),
        mesh=st.booleans(),
        reflectors=st.sets(st.integers(min_value=0, max_value=6), max_size=3),
    )
    def test_every_session_has_both_ends_and_one_active_side(addresses, mesh, reflectors):
        """For any nodes, mesh switch and reflector set: sessions are symmetric (both ends configured),
        exactly one end is passive, reflectors never mesh, clients see every reflector."""
        ips = sorted(str(ipaddress.IPv4Address(a)) for a in addresses)
        data = ipam({f"n{i}": (f"{ip}/24", []) for i, ip in enumerate(ips)})
        names = list(data["nodes"])
        rr = {names[i]: "1.1.1.1" for i in reflectors if i < len(names)}
        configs = {n: node_config(data, n, {"node_mesh": mesh, "route_reflectors": rr}) for n in names}
        sessions = {}
        for node, config in configs.items():
            for peer in config["peers"]:
                sessions[(node, peer["node"])] = peer
        for (x, y), peer in sessions.items():
            assert (y, x) in sessions, f"{x}->{y} has no other end"
            assert peer["passive"] != sessions[(y, x)]["passive"]
            assert peer["kind"] == ("rr" if x in rr or y in rr else "mesh")
        for x in names:
            for y in names:
                if x == y:
                    continue
                expected = x in rr or y in rr or mesh
                assert ((x, y) in sessions) == expected

    # A marker no other output holds, then any printable ASCII BIRD accepts in a string.
    passwords = st.one_of(
        st.none(), st.just(""), st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters='"\\'), max_size=20).map("l3tPw-".__add__)
    )

    @settings(max_examples=60, deadline=None)
    @given(
        mesh_password=passwords,
        external=st.lists(st.tuples(st.integers(min_value=1, max_value=200), passwords, st.booleans()), max_size=4, unique_by=lambda e: e[0]),
        reflector=st.booleans(),
    )
    def test_secrets_are_exactly_the_peers_constants_and_hold_no_password(mesh_password, external, reflector):
        """For any passwords: ``secrets`` names each constant a peer refers to and nothing else, says where the
        password is read (the mesh variable, or the external peer's list and index), and no password appears in
        the returned data or the settings' model."""
        peers = {"peers": [], "node_peers": []}
        for last, password, per_node in external:
            key = "node_peers" if per_node else "peers"
            peers[key].append({"address": f"10.9.0.{last}", "as": 65000, **({"password": password} if password is not None else {})})
        raw = {"mesh_password": mesh_password, "route_reflectors": {"b": "1.1.1.1"} if reflector else {}, **peers}
        config = node_config(THREE, "a", raw)
        symbols = [p["password_symbol"] for p in config["peers"] if p["password_symbol"]]
        assert list(config["secrets"]) == symbols
        for peer in config["peers"]:
            source = config["secrets"].get(peer["password_symbol"])
            if peer["kind"] in ("mesh", "rr"):
                assert source == ({"var": "calico_bgp_mesh_password", "index": None} if mesh_password else None)
            else:
                key = "node_peers" if peer["kind"] == "node" else "peers"
                index = [p["address"] for p in peers[key]].index(peer["address"])
                assert source == ({"var": f"calico_bgp_{key}", "index": index} if peers[key][index].get("password") else None)
        secrets = [v for v in [mesh_password] + [p.get("password") for p in peers["peers"] + peers["node_peers"]] if v]
        model = repr(BgpSettings.from_inventory("a", raw))
        assert not any(secret in json.dumps(config) or secret in model for secret in secrets)
