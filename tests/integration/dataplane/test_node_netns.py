# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Node side against real namespaces: VXLAN between hosts, IPIP, natOutgoing, anti-spoofing."""

from __future__ import annotations

import copy
import os
import platform
import re
import select
import shutil
import subprocess

import pytest

from ansible_collections.l3.calico.plugins.module_utils import firewall, naming
from tests.support.firewall_backends import firewall_backends

from .conftest import HOSTS, OUTSIDE, ping, start_server, tcp_peer, udp_send

pytestmark = pytest.mark.netns

DEFAULT = "default-ipv4-ippool"
BLUE = "blue-vxlan"
POOLS = {
    DEFAULT: {"cidr": "172.17.0.0/16", "block_size": 26, "ipip_mode": "Never", "vxlan_mode": "Always", "nat_outgoing": True, "disabled": False},
    BLUE: {"cidr": "172.18.0.0/16", "block_size": 26, "ipip_mode": "Never", "vxlan_mode": "CrossSubnet", "nat_outgoing": False, "disabled": False},
}


def wl(name, ip, pool=DEFAULT, namespace="default", block=None, borrowed=False):
    return {"id": f"{namespace}.{name}", "name": name, "namespace": namespace, "pool": pool, "ip": ip, "block": block, "borrowed": borrowed}


def node(key, blocks, workloads, vxlan=None, ipip=None):
    address, plen, _bridge, _gateway = HOSTS[key]
    net = ".".join(address.split(".")[:3]) + ".0/" + str(plen)
    return {
        "ip": address,
        "network": net,
        "blocks": [{"cidr": c, "pool": p} for c, p in blocks],
        "workloads": workloads,
        "borrowed": [w["ip"] for w in workloads if w["borrowed"]],
        "tunnels": {"ipip": ipip, "vxlan": vxlan},
    }


# An IPAM result as calico_ipam_result carries it: a and b share a subnet, c is behind the router;
# c's web-6 borrowed an address from a's block.
NODES = {
    "node-a": node(
        "a",
        [("172.17.72.0/26", DEFAULT), ("172.18.9.0/26", BLUE)],
        [wl("web-1", "172.17.72.1"), wl("web-2", "172.17.72.2"), wl("db-1", "172.18.9.1", BLUE, "blue")],
        vxlan="172.17.72.0",
    ),
    "node-b": node(
        "b", [("172.17.76.0/26", DEFAULT), ("172.18.11.0/26", BLUE)], [wl("web-3", "172.17.76.1"), wl("db-2", "172.18.11.1", BLUE, "blue")], vxlan="172.17.76.0"
    ),
    "node-c": node(
        "c",
        [("172.17.80.0/26", DEFAULT), ("172.18.10.0/26", BLUE)],
        [wl("web-5", "172.17.80.1"), wl("web-6", "172.17.72.5", borrowed=True), wl("db-3", "172.18.10.1", BLUE, "blue")],
        vxlan="172.17.80.0",
    ),
}


def converge_node(topo, key, tmp_path, nodes=None, **kwargs):
    nodes = NODES if nodes is None else nodes
    name = f"node-{key}"
    tun = topo.converge(key, "tunnels", node=name, ipam={"nodes": nodes, "pools": POOLS}, **kwargs)
    wls = topo.workloads(key, nodes[name]["workloads"], tmp_path, mtu=1450) if name in nodes else None
    return tun, wls


def ws(topo, key, name, namespace="default"):
    return topo.netns_prefix(key) + f"{namespace}.{name}"


def test_vxlan_between_hosts(topo, tmp_path):
    for key in "abc":
        tun, wls = converge_node(topo, key, tmp_path)
        assert tun["ok"] and wls["ok"], (tun, wls)
        assert tun["changed"] and tun["vxlan_mtu"] == 1450 and tun["underlay"] == "up0"

    # The device as Felix makes it.
    link = topo.ip_json(topo.host("a"), "-d", "link", "show", naming.VXLAN_DEVICE)[0]
    info = link["linkinfo"]["info_data"]
    assert (info["id"], info["port"], info["local"], info["link"], info["learning"]) == (4096, 4789, "192.168.100.100", "up0", False)
    assert link["address"] == naming.vxlan_mac("node-a") and link["mtu"] == 1450
    addrs = topo.ip_json(topo.host("a"), "addr", "show", naming.VXLAN_DEVICE)[0]["addr_info"]
    assert [f"{a['local']}/{a['prefixlen']}" for a in addrs if a["family"] == "inet"] == ["172.17.72.0/32"]

    # Routes on a: c's blocks of both pools (c is in another subnet), c's borrowed /32; from b only
    # the Always pool's block (b shares a's subnet, the CrossSubnet pool goes unencapsulated).
    routes = {
        (r["dst"], r["gateway"])
        for r in topo.ip_json(topo.host("a"), "route", "show", "dev", naming.VXLAN_DEVICE)
        if "onlink" in r["flags"] and r.get("protocol") == "80"
    }  # Felix's route protocol
    assert routes == {("172.17.80.0/26", "172.17.80.0"), ("172.18.10.0/26", "172.17.80.0"), ("172.17.72.5", "172.17.80.0"), ("172.17.76.0/26", "172.17.76.0")}
    neigh = {(n["dst"], n["lladdr"]) for n in topo.ip_json(topo.host("a"), "neigh", "show", "dev", naming.VXLAN_DEVICE)}
    assert neigh == {("172.17.80.0", naming.vxlan_mac("node-c")), ("172.17.76.0", naming.vxlan_mac("node-b"))}
    # b's block of the CrossSubnet pool: same subnet, so straight to b on the underlay, not encapsulated.
    direct = topo.ip_json(topo.host("a"), "route", "show", "172.18.11.0/26")
    assert direct == [{"dst": "172.18.11.0/26", "gateway": "192.168.100.101", "dev": "up0", "protocol": "80", "flags": []}]
    fdb = topo.nsexec(topo.host("a"), "bridge", "fdb", "show", "dev", naming.VXLAN_DEVICE).stdout
    assert f"{naming.vxlan_mac('node-c')} dst 192.168.200.101 self permanent" in fdb

    # Workloads on different hosts reach each other through vxlan.calico (ping and TCP).
    before = topo.ip_json(topo.host("a"), "-s", "link", "show", naming.VXLAN_DEVICE)[0]["stats64"]["tx"]["packets"]
    assert ping(topo, ws(topo, "a", "web-1"), "172.17.80.1", count=2)
    assert ping(topo, ws(topo, "a", "db-1", "blue"), "172.18.10.1")
    assert ping(topo, ws(topo, "a", "web-1"), "172.17.72.5")  # borrowed address, lives on c
    assert ping(topo, ws(topo, "b", "web-3"), "172.17.72.1")  # same subnet, Always pool
    start_server(topo, ws(topo, "c", "web-5"), "tcp", 8080)
    assert tcp_peer(topo, ws(topo, "a", "web-1"), "172.17.80.1", 8080) == "172.17.72.1"
    after = topo.ip_json(topo.host("a"), "-s", "link", "show", naming.VXLAN_DEVICE)[0]["stats64"]["tx"]["packets"]
    assert after - before >= 5
    assert ping(topo, ws(topo, "a", "db-1", "blue"), "172.18.11.1", count=2)  # CrossSubnet, same subnet
    unchanged = topo.ip_json(topo.host("a"), "-s", "link", "show", naming.VXLAN_DEVICE)[0]["stats64"]["tx"]["packets"]
    assert unchanged == after  # that went unencapsulated

    # Second run: nothing to do. Check mode on a changed result: reported, not applied.
    again = topo.converge("a", "tunnels", node="node-a", ipam={"nodes": NODES, "pools": POOLS})
    assert again["ok"] and again["changed"] is False and not again["ip_lines"] and not again["bridge_lines"]
    without_c = {k: v for k, v in NODES.items() if k != "node-c"}
    snap = topo.snapshot("a")
    check = topo.converge("a", "tunnels", node="node-a", ipam={"nodes": without_c, "pools": POOLS}, check_mode=True)
    assert check["changed"] and any("172.17.80.0/26" in c for c in check["changes"])
    assert topo.snapshot("a") == snap

    # Node c leaves: its neighbour, FDB entry and routes go, b's stay.
    gone = topo.converge("a", "tunnels", node="node-a", ipam={"nodes": without_c, "pools": POOLS})
    assert gone["ok"] and gone["changed"]
    routes = {r["dst"] for r in topo.ip_json(topo.host("a"), "route", "show", "dev", naming.VXLAN_DEVICE)}
    assert routes == {"172.17.76.0/26"}
    assert topo.ip_json(topo.host("a"), "route", "show", "172.18.11.0/26")  # b's direct route stays
    assert naming.vxlan_mac("node-c") not in topo.nsexec(topo.host("a"), "bridge", "fdb", "show").stdout

    # No VXLAN pool selects the node any more: the device goes.
    no_vxlan = copy.deepcopy(without_c)
    no_vxlan["node-a"]["tunnels"]["vxlan"] = None
    off = topo.converge("a", "tunnels", node="node-a", ipam={"nodes": no_vxlan, "pools": POOLS})
    assert off["ok"] and naming.VXLAN_DEVICE not in {x["ifname"] for x in topo.ip_json(topo.host("a"), "link", "show")}
    assert topo.ip_json(topo.host("a"), "route", "show", "proto", "80") == []  # nothing of ours is left


def _ipip_unavailable() -> str | None:
    if os.path.isdir("/sys/module/ipip"):
        return None
    probe = subprocess.run(["modprobe", "-n", "ipip"], capture_output=True, text=True, check=False) if shutil.which("modprobe") else None
    if probe is not None and probe.returncode == 0:
        return None
    detail = probe.stderr.strip() if probe is not None else "modprobe missing"
    return (
        f"this kernel ({platform.release()}) has no ipip driver (not built in; {detail}); "
        "the lab's User-mode Linux guests have it: `make lab` (playbooks/verify.yml) proves tunl0 and IPIP traffic"
    )


@pytest.mark.skipif(_ipip_unavailable() is not None, reason=str(_ipip_unavailable()))
def test_ipip_tunl0(topo, tmp_path):
    nodes = copy.deepcopy(NODES)
    nodes["node-a"]["tunnels"]["ipip"] = "172.17.72.3"
    tun = topo.converge("a", "tunnels", node="node-a", ipam={"nodes": nodes, "pools": POOLS})
    assert tun["ok"] and tun["ipip_mtu"] == 1480
    link = topo.ip_json(topo.host("a"), "addr", "show", "tunl0")[0]
    assert link["mtu"] == 1480 and "UP" in link["flags"]
    assert [a["local"] for a in link["addr_info"] if a["family"] == "inet"] == ["172.17.72.3"]
    assert topo.converge("a", "tunnels", node="node-a", ipam={"nodes": nodes, "pools": POOLS})["changed"] is False


@pytest.mark.skipif(_ipip_unavailable() is None, reason="this kernel has ipip: the failure path cannot be shown")
def test_missing_ipip_fails_before_any_change(topo, tmp_path):
    nodes = copy.deepcopy(NODES)
    nodes["node-a"]["tunnels"]["ipip"] = "172.17.72.3"  # and VXLAN is wanted too
    snap = topo.snapshot("a")
    for check_mode in (True, False):
        tun = topo.converge("a", "tunnels", node="node-a", ipam={"nodes": nodes, "pools": POOLS}, check_mode=check_mode)
        assert not tun["ok"]
        assert "has no ipip driver" in tun["error"] and "modprobe" in tun["error"] and "VXLAN" in tun["error"]
        assert topo.snapshot("a") == snap


def _received(child, timeout=1.0):
    """Datagrams the UDP server printed since the last call: {payload: source seen}."""
    fd, data = child.stdout.fileno(), b""
    while select.select([fd], [], [], timeout)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
        timeout = 0.3
    return dict(line.split() for line in data.decode().splitlines())


def _listing(topo, key, backend):
    if backend == "nftables":
        return topo.nsexec(topo.host(key), "nft", "-s", "list", "ruleset").stdout
    saved = topo.nsexec(topo.host(key), "iptables-legacy-save").stdout
    return "\n".join(re.sub(r" \[\d+:\d+\]$", "", line) for line in saved.splitlines() if not line.startswith("#"))


@pytest.mark.parametrize("backend", firewall_backends())
def test_nat_outgoing_and_anti_spoofing(topo, tmp_path, backend):
    workloads = NODES["node-a"]["workloads"]
    # rp_filter 0 on the veths, so what drops a spoofed packet here is the firewall alone.
    assert topo.workloads("a", workloads, tmp_path, rp_filter=0)["ok"]
    web1, web2, db1 = ws(topo, "a", "web-1"), ws(topo, "a", "web-2"), ws(topo, "a", "db-1", "blue")
    server = start_server(topo, topo.router, "udp", 9999)

    # Without the rules: a spoofed source gets through, nothing is NATed (so the test can fail).
    udp_send(topo, web1, OUTSIDE, 9999, "spoof0", source="172.17.72.2")
    udp_send(topo, web1, OUTSIDE, 9999, "plain0")
    assert _received(server) == {"spoof0": "172.17.72.2", "plain0": "172.17.72.1"}

    # Foreign rules of the same backend must survive.
    if backend == "nftables":
        topo.nsexec(topo.host("a"), "nft", "add table ip foreign; add chain ip foreign c; add rule ip foreign c accept")
    else:
        topo.nsexec(topo.host("a"), "iptables-legacy", "-t", "nat", "-A", "POSTROUTING", "-d", "10.99.0.0/16", "-j", "ACCEPT")

    state = str(tmp_path / "fw.json")
    result = topo.converge("a", "firewall", pools=POOLS, workloads=workloads, backend=backend, state_file=state)
    assert result["ok"] and result["changed"] and result["backend"] == backend, result

    udp_send(topo, web1, OUTSIDE, 9999, "spoof1", source="172.17.72.2")  # another workload's address
    udp_send(topo, web1, OUTSIDE, 9999, "spoof2", source="10.1.2.3")  # outside every pool
    udp_send(topo, web1, OUTSIDE, 9999, "nat1")  # nat_outgoing pool -> outside: masqueraded
    udp_send(topo, db1, OUTSIDE, 9999, "plain1")  # pool without nat_outgoing: not NATed
    assert _received(server) == {"nat1": HOSTS["a"][0], "plain1": "172.18.9.1"}
    start_server(topo, web2, "tcp", 8080)
    assert tcp_peer(topo, web1, "172.17.72.2", 8080) == "172.17.72.1"  # pool -> pool: never NATed

    listing = _listing(topo, "a", backend)
    if backend == "nftables":
        assert "table ip foreign" in listing
        # nothing of iptables-legacy was created on the way (not even an empty table)
        assert topo.nsexec(topo.host("a"), "cat", "/proc/net/ip_tables_names").stdout.split() == []
    else:
        assert "-A POSTROUTING -d 10.99.0.0/16 -j ACCEPT" in listing

    # Idempotent; check mode changes nothing.
    again = topo.converge("a", "firewall", pools=POOLS, workloads=workloads, backend=backend, state_file=state)
    assert again["ok"] and again["changed"] is False, again
    check = topo.converge("a", "firewall", pools=POOLS, workloads=workloads[:1], backend=backend, state_file=state, check_mode=True)
    assert check["changed"] and _listing(topo, "a", backend) == listing

    # Switching backends removes the other backend's objects and keeps the foreign ones.
    other = "iptables" if backend == "nftables" else "nftables"
    usable = firewall.iptables_usable()[0] if other == "iptables" else shutil.which("nft") is not None
    if usable:
        switched = topo.converge("a", "firewall", pools=POOLS, workloads=workloads, backend=other, state_file=state)
        assert switched["ok"] and switched["changed"]
        nft = topo.nsexec(topo.host("a"), "nft", "-s", "list", "ruleset").stdout
        ipt = topo.nsexec(topo.host("a"), "iptables-legacy-save").stdout
        assert ("table ip l3calico" in nft) == (other == "nftables")
        assert ("L3CALICO" in ipt) == (other == "iptables")
        assert "table ip foreign" in nft or "10.99.0.0/16" in ipt
        udp_send(topo, web1, OUTSIDE, 9999, "spoof3", source="172.17.72.2")
        udp_send(topo, web1, OUTSIDE, 9999, "nat3")
        assert _received(server) == {"nat3": HOSTS["a"][0]}
