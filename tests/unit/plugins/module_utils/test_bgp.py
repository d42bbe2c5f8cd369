# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Unit tests of plugins/module_utils/bgp.py: mesh pairs, passive side, reflectors, peers, filter data."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from ansible_collections.l3.calico.plugins.module_utils.bgp import (
    BgpConfigError,
    hash_router_id,
    node_config,
)


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
    for settings, field in (({"mesh_password": password}, "calico_bgp_mesh_password"),
                            ({"peers": [{"address": "10.0.0.1", "as": 1, "password": password}]},
                             "calico_bgp_peers[0].password")):
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


try:
    from hypothesis import given, settings, strategies as st
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
