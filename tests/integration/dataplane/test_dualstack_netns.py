# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Dual stack in real namespaces: IPv6 workload plumbing and vxlan-v6.calico (issue 17, data plane).

The topology of conftest (hosts a, b on 192.168.100.0/24, c on 192.168.200.0/24, behind a router)
gets an IPv6 underlay beside it: a fd00:100::100/64, b fd00:100::101/64, c fd00:200::101/64, the
router fd00:100::1 / fd00:200::1 forwarding both families. Every name starts with ``l3t6-<run>-``.

BGP is not in this slice (issue 15 rewrites bird.conf): the unencapsulated case gets the routes
BIRD would install, as static routes ``<remote block> via <node>``.
"""

from __future__ import annotations

import json
import sys
import time

import pytest

from ansible_collections.l3.calico.plugins.module_utils import naming

from .conftest import V6, Topology, _missing, sh

pytestmark = pytest.mark.netns

PREFIX = "l3t6-"


@pytest.fixture
def topo6():
    missing = _missing()
    if missing:
        pytest.skip(missing)
    topology = Topology(PREFIX)
    try:
        topology.build()
        topology.add_ipv6()
        for key in V6:  # the underlay's own link-local addresses finish their DAD (snapshots compare flags)
            for _attempt in range(50):
                if not sh("ip", "-n", topology.host(key), "-6", "addr", "show", "tentative").stdout.strip():
                    break
                time.sleep(0.1)
        yield topology
    finally:
        topology.cleanup()


SERVER6 = r"""
import socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", port)); s.listen(16); print("ready", flush=True)
while True:
    c, peer = s.accept(); c.sendall(peer[0].encode()); c.close()
"""


def serve(topo: Topology, ns: str, port: int) -> None:
    child = topo.spawn(ns, f"import sys; sys.argv[1:] = [{str(port)!r}]\n" + SERVER6)
    assert child.stdout.readline().strip() == "ready"


def tcp(topo: Topology, ns: str, address: str, port: int) -> str:
    """Connect from ``ns``; the peer address the server saw (IPv4 ones as ::ffff:a.b.c.d)."""
    family = "socket.AF_INET6" if ":" in address else "socket.AF_INET"
    code = f"import socket\ns=socket.socket({family}); s.settimeout(3)\ns.connect(({address!r},{port})); print(s.recv(64).decode())"
    return topo.nsexec(ns, sys.executable, "-c", code).stdout.strip()


def ping(topo: Topology, ns: str, address: str) -> bool:
    return topo.nsexec(ns, "ping", "-c", "1", "-W", "2", address, check=False).returncode == 0


def sysctl(topo: Topology, ns: str, key: str) -> str:
    return topo.nsexec(ns, "sysctl", "-n", key).stdout.strip()


def snapshot(topo: Topology, key: str) -> dict:
    """Both families: links and addresses (lifetimes and carrier left out), routes of every table,
    the permanent neighbours, of host ``key`` and each of its workload namespaces."""

    def links(ns):
        out = topo.ip_json(ns, "-d", "addr", "show")
        for link in out:
            link.pop("operstate", None)
            link["flags"] = [f for f in link.get("flags", []) if f not in ("LOWER_UP", "NO-CARRIER")]
            for addr in link.get("addr_info", []):
                for volatile in ("valid_life_time", "preferred_life_time"):
                    addr.pop(volatile, None)
        return out

    def routes(ns):
        return [topo.ip_json(ns, family, "route", "show", "table", "all") for family in ("-4", "-6")]

    host = topo.host(key)
    namespaces = sorted(n for n in sh("ip", "netns", "list").stdout.split() if n.startswith(topo.netns_prefix(key)))
    # The kernel's own link-local addresses (an IPv4-only workload keeps DAD on) finish duplicate address
    # detection in their own time - a second or more on a loaded machine - and only then get their local
    # route: wait for that, so a snapshot shows what the module did, not where the kernel's DAD had got to.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(
        addr.get("tentative") for ns in (host, *namespaces) for link in topo.ip_json(ns, "-6", "addr", "show") for addr in link.get("addr_info", [])
    ):
        time.sleep(0.2)
    snap = {"host": [links(host), routes(host), [n for n in topo.ip_json(host, "neigh", "show") if "PERMANENT" in n.get("state", [])]]}
    snap["netns"] = namespaces
    for ns in snap["netns"]:
        snap[ns] = [links(ns), routes(ns)]
    return snap


def global6(topo: Topology, ns: str, dev: str = "eth0") -> list[dict]:
    (link,) = topo.ip_json(ns, "-6", "addr", "show", "dev", dev)
    return [a for a in link["addr_info"] if a.get("scope") == "global"]


def test_dual_stack_workloads_reach_each_other_and_the_host(topo6, tmp_path):
    topo = topo6
    a_items = [
        {"name": "web-1", "ip": "10.65.0.1", "ipv6": "fd00:65::1"},
        {"name": "web-2", "ip": "10.65.0.2", "ipv6": "fd00:65::2"},
        {"name": "old-1", "ip": "10.65.0.3", "ipv6": None},  # IPv4 only: nothing IPv6 for it
    ]
    b_items = [{"name": "db-1", "ip": "10.65.0.65", "ipv6": "fd00:65::41"}]
    done = topo.workloads("a", a_items, tmp_path)
    assert done["ok"] and done["create"] == ["default.old-1", "default.web-1", "default.web-2"], done
    # Host b: new devices start with IPv6 off (the host's IPv6 side must come after the veth's sysctls),
    # and db-1 first exists IPv4-only, then gains its IPv6 address (the kernel then makes the veth's
    # link-local address itself the moment IPv6 is on: the module's `addr replace` must not fail on it).
    topo.nsexec(topo.host("b"), "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
    assert topo.workloads("b", b_items, tmp_path, ipv6=False)["ok"]
    gained = topo.workloads("b", b_items, tmp_path)
    assert gained["ok"] and list(gained["update"]) == ["default.db-1"], gained
    # The routes BIRD would install (no encapsulation, same subnet): the other node's blocks via it.
    topo.ip(topo.host("a"), "route add 10.65.0.64/26 via 192.168.100.101", "route add fd00:65::40/122 via fd00:100::101")
    topo.ip(topo.host("b"), "route add 10.65.0.0/26 via 192.168.100.100", "route add fd00:65::/122 via fd00:100::100")

    web1, web2, old1 = (topo.netns_prefix("a") + "default." + n for n in ("web-1", "web-2", "old-1"))
    db1 = topo.netns_prefix("b") + "default.db-1"
    veth1 = naming.veth_name("default.web-1")
    # Reachable at once (no DAD wait): the first ping right after the run.
    assert ping(topo, web1, "fd00:65::2"), "web-1 -> web-2 over IPv6 (same host)"
    # eth0: exactly IP/32 and IP/128, the /128 not tentative (DAD off); default via the host veth's link-local.
    (eth0,) = topo.ip_json(web1, "addr", "show", "dev", "eth0")
    assert [(a["local"], a["prefixlen"]) for a in eth0["addr_info"] if a["family"] == "inet"] == [("10.65.0.1", 32)]
    (addr6,) = global6(topo, web1)
    assert (addr6["local"], addr6["prefixlen"]) == ("fd00:65::1", 128) and not addr6.get("tentative") and not addr6.get("dadfailed")
    assert naming.GATEWAY6 == "fe80::ecee:eeff:feee:eeee"
    assert {"dst": "default", "gateway": naming.GATEWAY6, "dev": "eth0"}.items() <= topo.ip_json(web1, "-6", "route", "show", "default")[0].items()
    # The host side: the gateway's link-local address on the veth, IP/128 dev cali…, Calico's sysctls.
    (host_veth,) = topo.ip_json(topo.host("a"), "-6", "addr", "show", "dev", veth1)
    assert ("fe80::ecee:eeff:feee:eeee", 64) in [(a["local"], a["prefixlen"]) for a in host_veth["addr_info"]]
    host_routes6 = topo.ip_json(topo.host("a"), "-6", "route", "show", "dev", veth1)
    assert [r["dst"] for r in host_routes6 if not r["dst"].startswith("fe80:")] == ["fd00:65::1"]
    for key, value in (("disable_ipv6", "0"), ("proxy_ndp", "1"), ("forwarding", "1"), ("accept_dad", "0"), ("accept_ra", "0")):
        assert sysctl(topo, topo.host("a"), f"net.ipv6.conf.{veth1}.{key}") == value, key
    for key, value in (("net.ipv6.conf.all.forwarding", "0"), ("net.ipv6.conf.eth0.accept_dad", "0"), ("net.ipv6.conf.all.disable_ipv6", "0")):
        assert sysctl(topo, web1, key) == value, key
    # The IPv4-only workload has no IPv6 of ours (its kernel link-local only), the host no route for it.
    assert global6(topo, old1) == []
    assert [r for r in topo.ip_json(topo.host("a"), "-6", "route", "show", "dev", naming.veth_name("default.old-1")) if not r["dst"].startswith("fe80:")] == []

    # Both families: workload <-> workload (same host, other host), workload <-> host; ping and TCP.
    for src, dst in (
        (web1, "fd00:65::41"),
        (db1, "fd00:65::1"),
        (web1, "fd00:100::100"),
        (topo.host("a"), "fd00:65::1"),
        (web1, "10.65.0.65"),
        (db1, "10.65.0.2"),
    ):
        assert ping(topo, src, dst), f"{src} -> {dst}"
    # The host answered the workload's neighbour solicitation for the gateway with the veth's MAC.
    neigh = topo.ip_json(web1, "-6", "neigh", "show", naming.GATEWAY6)
    assert neigh and neigh[0]["lladdr"] == naming.HOST_VETH_MAC
    serve(topo, db1, 7001)
    assert tcp(topo, web1, "fd00:65::41", 7001) == "fd00:65::1"  # the source kept (no NAT)
    assert tcp(topo, web1, "10.65.0.65", 7001) == "::ffff:10.65.0.1"
    serve(topo, web2, 7002)
    assert tcp(topo, topo.host("a"), "fd00:65::2", 7002) == "fd00:100::100"
    assert tcp(topo, db1, "fd00:65::2", 7002) == "fd00:65::41"

    # A second run is a no-op: nothing changes, nothing is touched.
    before = snapshot(topo, "a")
    again = topo.workloads("a", a_items, tmp_path)
    assert again["ok"] and not again["changed"] and not again["host_lines"] and not again["host_ops6"] and not again["ns_ops"], again
    assert snapshot(topo, "a") == before

    # Check mode with changes pending (web-2 loses its IPv6 address, web-3 comes): nothing changes.
    changed = [dict(a_items[0]), dict(a_items[1], ipv6=None), a_items[2], {"name": "web-3", "ip": "10.65.0.4", "ipv6": "fd00:65::4"}]
    check = topo.workloads("a", changed, tmp_path, check_mode=True)
    assert check["ok"] and check["create"] == ["default.web-3"] and "default.web-2" in check["update"], check
    assert snapshot(topo, "a") == before

    # Applied: web-2 keeps IPv4 and loses every IPv6 thing of ours; web-3 works at once; then a no-op.
    applied = topo.workloads("a", changed, tmp_path)
    assert applied["ok"] and applied["changed"], applied
    assert global6(topo, web2) == []
    assert topo.ip_json(web2, "-6", "route", "show", "default") == []
    veth2 = naming.veth_name("default.web-2")
    assert [r for r in topo.ip_json(topo.host("a"), "-6", "route", "show", "dev", veth2) if not r["dst"].startswith("fe80:")] == []
    assert ping(topo, web2, "10.65.0.65") and not ping(topo, web1, "fd00:65::2")
    assert ping(topo, topo.netns_prefix("a") + "default.web-3", "fd00:65::41")
    assert not topo.workloads("a", changed, tmp_path)["changed"]

    # A node without IPv6 (ipv6 false) gets nothing IPv6: what was there goes, IPv4 stays.
    assert topo.workloads("b", b_items, tmp_path, ipv6=False)["changed"]
    assert global6(topo, db1) == [] and ping(topo, db1, "10.65.0.1")
    assert [r for r in topo.ip_json(topo.host("b"), "-6", "route", "show") if r.get("dev", "").startswith("cali") and not r["dst"].startswith("fe80:")] == []
    assert not topo.workloads("b", b_items, tmp_path, ipv6=False)["changed"]

    # Removal: everything of ours goes, both families.
    gone = topo.workloads("a", [], tmp_path)
    assert gone["ok"] and sorted(gone["remove"]) == ["default.old-1", "default.web-1", "default.web-2", "default.web-3"]
    assert not [n for n in sh("ip", "netns", "list").stdout.split() if n.startswith(topo.netns_prefix("a"))]
    assert [r for r in topo.ip_json(topo.host("a"), "-6", "route", "show") if r.get("dev", "").startswith("cali")] == []


def test_bad_ipv6_input_fails_before_any_change(topo6, tmp_path):
    topo = topo6
    before = snapshot(topo, "a")
    cases = [
        ({"name": "web-1", "ip": "10.65.0.1", "ipv6": "10.65.0.9"}, "workloads[0]: ipv6 '10.65.0.9' of workload 'default.web-1' is not an IPv6 address"),
        (
            {"name": "web-1", "ip": "10.65.0.1", "ipv6": "fd00:65::/64"},
            "workloads[0]: ipv6 'fd00:65::/64' of workload 'default.web-1' must be a single address (/128)",
        ),
        ({"name": "web-1", "ip": "10.65.0.1", "ipv6": "fe80::1"}, "workloads[0]: ipv6 'fe80::1' of workload 'default.web-1' is not a unicast address"),
        ({"name": "web-1", "ip": "fd00:65::1"}, "workloads[0]: ip 'fd00:65::1' of workload 'default.web-1' is not IPv4 (its IPv6 address goes in 'ipv6')"),
        ({"name": "web-1", "ip": None, "ipv6": None}, "workloads[0]: workload 'default.web-1' has no ip"),
    ]
    for item, message in cases:
        done = topo.workloads("a", [item, {"name": "web-2", "ip": "10.65.0.2", "ipv6": "fd00:65::2"}], tmp_path)
        assert not done["ok"] and message in done["error"], (item, done)
    dup = topo.workloads(
        "a", [{"name": "web-1", "ip": "10.65.0.1", "ipv6": "fd00:65::2"}, {"name": "web-2", "ip": "10.65.0.2", "ipv6": "fd00:65:0::2"}], tmp_path
    )
    assert not dup["ok"] and "workloads[1]: ipv6 fd00:65::2 of workload 'default.web-2' is already used by workload 'default.web-1'" in dup["error"]
    assert snapshot(topo, "a") == before


def _vxlan_v6_result(mode: str = "Always", c_blocks=("fd00:66::40/122",)) -> dict:
    """Nodes a and c (different IPv6 subnets) with one IPv6-only workload each, an IPv6 pool in ``mode``."""

    def node(ip, network, ip6, network6, blocks, wid, address, vtep):
        return {
            "ip": ip,
            "network": network,
            "blocks": [],
            "borrowed": [],
            "workloads": [{"id": wid, "ip": None, "ipv6": address, "pool_ipv6": "v6", "block_ipv6": blocks[0], "borrowed_ipv6": False}],
            "tunnels": {"ipip": None, "vxlan": None, "vxlan_v6": vtep if mode != "Never" else None},
            "ipv6": ip6,
            "network_ipv6": network6,
            "blocks_ipv6": [{"cidr": b, "pool": "v6"} for b in blocks],
            "borrowed_ipv6": [],
        }

    nodes = {
        "node-a": node("192.168.100.100", "192.168.100.0/24", V6["a"], "fd00:100::/64", ("fd00:66::/122",), "default.v6a", "fd00:66::1", "fd00:66::"),
        "node-c": node("192.168.200.101", "192.168.200.0/24", V6["c"], "fd00:200::/64", c_blocks, "default.v6c", "fd00:66::41", "fd00:66::40"),
    }
    pool = {"cidr": "fd00:66::/48", "block_size": 122, "ipip_mode": "Never", "vxlan_mode": mode, "nat_outgoing": False, "disabled": False}
    return {"nodes": nodes, "pools": {}, "pools_ipv6": {"v6": pool}}


def _counters(topo: Topology, key: str) -> int:
    (link,) = topo.ip_json(topo.host(key), "-s", "link", "show", naming.VXLAN_V6_DEVICE)
    return link["stats64"]["tx"]["packets"]


def test_vxlan_v6_between_hosts(topo6, tmp_path):
    topo = topo6
    ipam = _vxlan_v6_result()
    for key, node in (("a", "node-a"), ("c", "node-c")):
        done = topo.converge(key, "tunnels", node=node, ipam=ipam)
        assert done["ok"] and done["changed"], done
        wid, address = ipam["nodes"][node]["workloads"][0]["id"], ipam["nodes"][node]["workloads"][0]["ipv6"]
        assert topo.workloads(key, [{"id": wid, "ip": None, "ipv6": address}], tmp_path, mtu=1430)["ok"]
    host_a = topo.host("a")
    (dev,) = topo.ip_json(host_a, "-d", "addr", "show", "dev", naming.VXLAN_V6_DEVICE)
    info = dev["linkinfo"]["info_data"]
    # Felix's IPv6 VXLAN device: the same VNI and port as IPv4, the IPv6 underlay address, MAC from "<node>-v6".
    assert (info["id"], info["port"], info.get("local6") or info.get("local"), info["learning"]) == (4096, 4789, V6["a"], False)
    assert dev["address"] == naming.vxlan_mac_v6("node-a") and dev["mtu"] == 1500 - 70 and dev["ifalias"] == "l3.calico:vxlan-v6"
    assert [(a["local"], a["prefixlen"]) for a in dev["addr_info"] if a.get("scope") == "global"] == [("fd00:66::", 128)]
    routes = [r for r in topo.ip_json(host_a, "-6", "route", "show", "dev", naming.VXLAN_V6_DEVICE) if r.get("protocol") == "80"]
    assert [(r["dst"], r["gateway"], "onlink" in r["flags"]) for r in routes] == [("fd00:66::40/122", "fd00:66::40", True)]
    neigh = [n for n in topo.ip_json(host_a, "-6", "neigh", "show", "dev", naming.VXLAN_V6_DEVICE) if "PERMANENT" in n.get("state", [])]
    assert [(n["dst"], n["lladdr"]) for n in neigh] == [("fd00:66::40", naming.vxlan_mac_v6("node-c"))]
    fdb = json.loads(sh("ip", "netns", "exec", host_a, "bridge", "-json", "fdb", "show", "dev", naming.VXLAN_V6_DEVICE).stdout)
    assert (naming.vxlan_mac_v6("node-c"), V6["c"]) in [(f["mac"], f.get("dst")) for f in fdb]
    # No IPv4 VXLAN device: no IPv4 VXLAN pool.
    assert sh("ip", "-n", host_a, "link", "show", naming.VXLAN_DEVICE, check=False).returncode != 0

    v6a, v6c = topo.netns_prefix("a") + "default.v6a", topo.netns_prefix("c") + "default.v6c"
    sent = _counters(topo, "a")
    assert ping(topo, v6a, "fd00:66::41") and ping(topo, v6c, "fd00:66::1")
    serve(topo, v6c, 7003)
    assert tcp(topo, v6a, "fd00:66::41", 7003) == "fd00:66::1"
    assert _counters(topo, "a") > sent, "the packets went through vxlan-v6.calico"

    # Re-run: no-op; check mode with a change pending touches nothing.
    before = snapshot(topo, "a")
    again = topo.converge("a", "tunnels", node="node-a", ipam=ipam)
    assert again["ok"] and not again["changed"] and not again["ip_lines"] and not again["bridge_lines"], again
    moved = _vxlan_v6_result(c_blocks=("fd00:66::40/122", "fd00:66::80/122"))
    check = topo.converge("a", "tunnels", node="node-a", ipam=moved, check_mode=True)
    assert check["ok"] and check["changed"] and "route replace fd00:66::80/122 via fd00:66::40 dev vxlan-v6.calico onlink proto 80" in check["ip_lines"]
    assert snapshot(topo, "a") == before
    assert topo.converge("a", "tunnels", node="node-a", ipam=moved)["changed"]
    assert not topo.converge("a", "tunnels", node="node-a", ipam=moved)["changed"]

    # No IPv6 VXLAN pool any more: the device goes (with its neighbours, FDB entries and routes).
    gone = topo.converge("a", "tunnels", node="node-a", ipam=_vxlan_v6_result(mode="Never"))
    assert gone["ok"] and "link del dev vxlan-v6.calico" in gone["ip_lines"], gone
    assert sh("ip", "-n", host_a, "link", "show", naming.VXLAN_V6_DEVICE, check=False).returncode != 0


OUTSIDE6 = "2001:db8:ffff::1"


def test_nat_outgoing_for_an_ipv6_pool(topo6, tmp_path):
    """nftables table ip6 l3calico: an IPv6 nat pool's workload reaches the outside from the host's IPv6
    address; traffic to another pool keeps its source; no-op, check mode, the pool's natOutgoing off, removal."""
    topo = topo6
    rt = topo.router
    topo.ip(rt, f"addr add {OUTSIDE6}/128 dev lo")
    a_items = [{"name": "web-1", "ip": "10.65.0.1", "ipv6": "fd00:65::1"}]
    b_items = [{"name": "db-1", "ip": "10.65.0.65", "ipv6": "fd00:66::41"}]
    assert topo.workloads("a", a_items, tmp_path)["ok"] and topo.workloads("b", b_items, tmp_path)["ok"]
    topo.ip(topo.host("a"), "route add fd00:66::40/122 via fd00:100::101")
    topo.ip(topo.host("b"), "route add fd00:65::/122 via fd00:100::100")
    web1, db1 = topo.netns_prefix("a") + "default.web-1", topo.netns_prefix("b") + "default.db-1"
    serve(topo, rt, 7010)
    serve(topo, db1, 7011)
    # Without the rules the router cannot answer (no route back to the pool): the test can fail.
    assert (
        topo.nsexec(
            web1, sys.executable, "-c", f"import socket; s=socket.socket(socket.AF_INET6); s.settimeout(2); s.connect(({OUTSIDE6!r},7010))", check=False
        ).returncode
        != 0
    )

    pools = {"v4": {"cidr": "10.65.0.0/16", "nat_outgoing": False}}
    pools6 = {"v6": {"cidr": "fd00:65::/48", "nat_outgoing": True}, "other": {"cidr": "fd00:66::/48", "nat_outgoing": False}}
    state = str(tmp_path / "fw-a.json")
    kwargs = dict(pools=pools, workloads=a_items, pools6=pools6, node_addresses6=[V6["a"], V6["b"]], state_file=state, backend="nftables")
    done = topo.converge("a", "firewall", **kwargs)
    assert done["ok"] and "nftables table ip6 l3calico created" in done["changes"], done
    assert tcp(topo, web1, OUTSIDE6, 7010) == V6["a"]  # masqueraded to the host's IPv6 address
    assert tcp(topo, web1, "fd00:66::41", 7011) == "fd00:65::1"  # another pool: the source kept
    assert tcp(topo, topo.host("a"), OUTSIDE6, 7010) == V6["a"]

    listing = sh("ip", "netns", "exec", topo.host("a"), "nft", "-s", "list", "table", "ip6", "l3calico").stdout
    again = topo.converge("a", "firewall", **kwargs)
    assert again["ok"] and not again["changed"], again
    off = dict(kwargs, pools6={name: dict(pool, nat_outgoing=False) for name, pool in pools6.items()})
    check = topo.converge("a", "firewall", check_mode=True, **off)
    assert check["ok"] and check["changes"] == ["nftables table ip6 l3calico replaced (rules or set elements differ)"], check
    assert sh("ip", "netns", "exec", topo.host("a"), "nft", "-s", "list", "table", "ip6", "l3calico").stdout == listing
    assert topo.converge("a", "firewall", **off)["changed"]
    # The IPv6 table stays (IPv6 anti-spoofing) without its nat chain; the IPv4 table as it was.
    assert "nat-outgoing" not in sh("ip", "netns", "exec", topo.host("a"), "nft", "-s", "list", "table", "ip6", "l3calico").stdout
    assert sh("ip", "netns", "exec", topo.host("a"), "nft", "list", "table", "ip", "l3calico", check=False).returncode == 0  # IPv4's stays
    assert not topo.converge("a", "firewall", **off)["changed"]
    no_v6 = topo.converge("a", "firewall", **dict(off, pools6={}, workloads=[dict(a_items[0], ipv6=None)]))
    assert no_v6["changes"] == ["nftables table ip6 l3calico removed (no IPv6 in use)"], no_v6
    assert sh("ip", "netns", "exec", topo.host("a"), "nft", "list", "table", "ip6", "l3calico", check=False).returncode != 0
