# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Tunnel and firewall planning from an IPAM result (pure functions, no kernel)."""

from __future__ import annotations

import pytest

from ansible_collections.l3.calico.plugins.module_utils import firewall, naming, sysctls, tunnels
from ansible_collections.l3.calico.plugins.module_utils.ipam_result import IpamResult, IpamResultError

POOLS = {
    "always": {"cidr": "172.17.0.0/16", "vxlan_mode": "Always", "ipip_mode": "Never", "nat_outgoing": True},
    "cross": {"cidr": "172.18.0.0/16", "vxlan_mode": "CrossSubnet", "ipip_mode": "Never", "nat_outgoing": False},
    "ipip": {"cidr": "172.19.0.0/16", "vxlan_mode": "Never", "ipip_mode": "CrossSubnet", "nat_outgoing": True, "disabled": True},
}


def node(ip, net, blocks, vxlan, workloads=(), ipip=None):
    return {
        "ip": ip,
        "network": net,
        "blocks": [{"cidr": c, "pool": p} for c, p in blocks],
        "workloads": list(workloads),
        "borrowed": [],
        "tunnels": {"vxlan": vxlan, "ipip": ipip},
    }


NODES = {
    "a": node("10.0.0.1", "10.0.0.0/24", [("172.17.0.0/26", "always"), ("172.18.0.0/26", "cross")], "172.17.0.0"),
    "b": node("10.0.0.2", "10.0.0.0/24", [("172.17.1.0/26", "always"), ("172.18.1.0/26", "cross")], "172.17.1.0"),
    "c": node(
        "10.1.0.2",
        "10.1.0.0/24",
        [("172.17.2.0/26", "always"), ("172.18.2.0/26", "cross")],
        "172.17.2.0",
        workloads=[{"id": "d.w", "ip": "172.17.0.9", "pool": "always", "borrowed": True}],
    ),
    "d": node("10.1.0.3", "10.1.0.0/24", [("172.19.0.0/26", "ipip")], None),
}


def test_crosssubnet_routes_only_for_nodes_in_another_subnet():
    desired = tunnels.desired_tunnels("a", {"nodes": NODES, "pools": POOLS})
    peers = {p.node: p for p in desired.peers}
    assert set(peers) == {"b", "c"}  # d has no VTEP
    assert peers["b"].routes == ("172.17.1.0/26",)  # same subnet: the CrossSubnet block is not tunnelled
    assert peers["b"].direct == ("172.18.1.0/26",)  # ... but routed straight to b, as Felix does
    assert peers["c"].direct == ()
    assert peers["c"].routes == ("172.17.0.9/32", "172.17.2.0/26", "172.18.2.0/26")  # borrowed /32 too
    assert peers["c"].mac == naming.vxlan_mac("c") and peers["c"].ip == "10.1.0.2"


def test_vxlan_plan_from_scratch_and_noop():
    desired = tunnels.desired_tunnels("a", {"nodes": NODES, "pools": POOLS})
    links = {"eth0": {"ifname": "eth0", "mtu": 9000, "flags": ["UP"], "addr_info": [{"family": "inet", "local": "10.0.0.1", "prefixlen": 24}]}}
    state = tunnels.State(links=links, routes=[], neighbours=[], fdb=[], ipip_loaded=False)
    plan = tunnels.plan(desired, state)
    assert plan.underlay == "eth0" and plan.vxlan_mtu == 8950
    assert plan.ip_lines[0] == (
        f"link add vxlan.calico mtu 8950 address {naming.vxlan_mac('a')} type vxlan id 4096 local 10.0.0.1 dev eth0 dstport 4789 nolearning"
    )
    assert "route replace 172.18.2.0/26 via 172.17.2.0 dev vxlan.calico onlink proto 80" in plan.ip_lines
    assert f"fdb replace {naming.vxlan_mac('c')} dev vxlan.calico dst 10.1.0.2 self permanent" in plan.bridge_lines
    assert "route replace 172.18.1.0/26 via 10.0.0.2 dev eth0 proto 80" in plan.ip_lines

    # The same state read back: nothing to do.
    links["vxlan.calico"] = {
        "ifname": "vxlan.calico",
        "mtu": 8950,
        "address": naming.vxlan_mac("a"),
        "flags": ["UP"],
        "ifalias": tunnels.VXLAN_ALIAS,
        "addr_info": [{"family": "inet", "local": "172.17.0.0", "prefixlen": 32}],
        "linkinfo": {"info_kind": "vxlan", "info_data": {"id": 4096, "local": "10.0.0.1", "link": "eth0", "port": 4789, "learning": False}},
    }
    routes = [
        {"dst": dst if not dst.endswith("/32") else dst[:-3], "gateway": p.vtep, "dev": "vxlan.calico", "protocol": "80", "flags": ["onlink"]}
        for p in desired.peers
        for dst in p.routes
    ]
    neigh = [{"dst": p.vtep, "lladdr": p.mac, "dev": "vxlan.calico", "state": ["PERMANENT"]} for p in desired.peers]
    fdb = [{"mac": p.mac, "dst": p.ip, "flags": ["self"], "state": "permanent"} for p in desired.peers]
    routes += [{"dst": dst, "gateway": p.ip, "dev": "eth0", "protocol": "80", "flags": []} for p in desired.peers for dst in p.direct]
    again = tunnels.plan(desired, tunnels.State(links, routes, neigh, fdb, False))
    assert not again.changed and again.ip_lines == [] and again.bridge_lines == []

    # A changed VNI cannot be changed in place: the device is recreated.
    links["vxlan.calico"]["linkinfo"]["info_data"]["id"] = 1
    recreate = tunnels.plan(desired, tunnels.State(links, routes, neigh, fdb, False))
    assert recreate.ip_lines[0] == "link del dev vxlan.calico" and "id 1 -> 4096" in recreate.changes[0]


def test_foreign_vxlan_device_and_unknown_node_are_refused():
    desired = tunnels.desired_tunnels("a", {"nodes": NODES, "pools": POOLS})
    links = {
        "eth0": {"ifname": "eth0", "mtu": 1500, "addr_info": [{"family": "inet", "local": "10.0.0.1", "prefixlen": 24}]},
        "vxlan.calico": {"ifname": "vxlan.calico"},
    }
    with pytest.raises(tunnels.TunnelError, match="not created by l3.calico"):
        tunnels.plan(desired, tunnels.State(links, [], [], [], False))
    with pytest.raises(tunnels.TunnelError, match="node 'zz' is not in the IPAM result"):
        tunnels.desired_tunnels("zz", {"nodes": NODES, "pools": POOLS})


def test_ipip_needs_the_driver_and_says_how_to_get_it():
    nodes = dict(NODES, a=dict(NODES["a"], tunnels={"vxlan": None, "ipip": "172.17.0.1"}))
    desired = tunnels.desired_tunnels("a", {"nodes": nodes, "pools": POOLS})
    links = {"eth0": {"ifname": "eth0", "mtu": 1500, "addr_info": [{"family": "inet", "local": "10.0.0.1", "prefixlen": 24}]}}
    plan = tunnels.plan(desired, tunnels.State(links, [], [], [], ipip_loaded=False))
    assert plan.load_ipip and plan.ipip_mtu == 1480
    message = tunnels.ipip_missing_message("Module ipip not found")
    assert "no ipip driver" in message and "modprobe" in message and "VXLAN" in message


def test_firewall_rules_nat_only_pool_to_outside_and_per_veth_sources():
    rules = firewall.desired_rules(POOLS, [{"name": "w", "ip": "172.17.0.5"}])
    assert rules.nat_pools == ["172.17.0.0/16"]  # the disabled ipip pool does not masquerade
    assert rules.all_pools == ["172.17.0.0/16", "172.18.0.0/16", "172.19.0.0/16"]
    veth = naming.veth_name("default.w")
    ipt = firewall.iptables_rules(rules)
    assert ipt["nat"] == [
        "-A L3CALICO-NAT-OUTGOING -d 172.17.0.0/16 -j RETURN",
        "-A L3CALICO-NAT-OUTGOING -d 172.18.0.0/16 -j RETURN",
        "-A L3CALICO-NAT-OUTGOING -d 172.19.0.0/16 -j RETURN",
        "-A L3CALICO-NAT-OUTGOING -s 172.17.0.0/16 -j MASQUERADE --random-fully",
    ]
    assert ipt["mangle"] == [f"-A L3CALICO-ANTISPOOF -s 172.17.0.5/32 -i {veth} -j RETURN", "-A L3CALICO-ANTISPOOF -i cali+ -j DROP"]
    nft = firewall.render_nft(rules)
    assert f'"{veth}" . 172.17.0.5' in nft and "ip saddr @nat-pools ip daddr != @all-pools" in nft
    # iptables: already as wanted -> nothing to do
    current = {
        "mangle": ipt["mangle"] + ["-A PREROUTING -j L3CALICO-ANTISPOOF"],
        "nat": ipt["nat"] + ["-A POSTROUTING -j L3CALICO-NAT-OUTGOING"],
        "filter": ipt["filter"] + ["-A INPUT -j L3CALICO-HOST-PROTECT"],
    }
    assert not firewall.plan(rules, "iptables", None, current, {}).changed
    assert firewall.plan(rules, "iptables", None, {"mangle": None, "nat": None}, {}).changed


def test_sysctls_file_and_runtime(tmp_path):
    proc = tmp_path / "proc"
    (proc / "net/ipv4").mkdir(parents=True)
    (proc / "net/ipv4/ip_forward").write_text("0\n")
    path = tmp_path / "60-l3-calico.conf"
    plan = sysctls.plan({"net.ipv4.ip_forward": 1}, str(path), str(proc))
    assert plan.changed and plan.runtime == {"net.ipv4.ip_forward": "1"}
    sysctls.apply(plan, str(path), str(proc))
    assert path.read_text().endswith("net.ipv4.ip_forward = 1\n")
    assert (proc / "net/ipv4/ip_forward").read_text() == "1"
    assert not sysctls.plan({"net.ipv4.ip_forward": True}, str(path), str(proc)).changed
    with pytest.raises(sysctls.SysctlError, match="does not exist"):
        sysctls.plan({"net.ipv4.nope": 1}, str(path), str(proc))
    # a full match: '$' would accept the newline, and the key would reach the sysctl file as two lines
    with pytest.raises(sysctls.SysctlError, match=r"net\.ipv4\.ip_forward\\n"):
        sysctls.plan({"net.ipv4.ip_forward\n": 1}, str(path), str(proc))


def test_firewall_veth_prefix_is_a_full_ascii_match():
    for prefix in ("cal\n", "ca\u00b2"):
        with pytest.raises(firewall.FirewallError, match="veth_prefix"):
            firewall.desired_rules(POOLS, [], veth_prefix=prefix)


def test_firewall_protects_the_hosts_bgp_port_unless_allowed():
    """TCP 179 of the host from a workload veth is dropped by default; an empty port list allows it."""
    from ansible_collections.l3.calico.plugins.module_utils import firewall

    pools = {"p": {"cidr": "172.17.0.0/16"}}
    rules = firewall.desired_rules(pools, [])
    assert firewall.iptables_rules(rules)["filter"] == ["-A L3CALICO-HOST-PROTECT -i cali+ -p tcp -m tcp --dport 179 -j DROP"]
    assert 'iifname "cali*" tcp dport { 179 } counter drop' in firewall.render_nft(rules)
    allowed = firewall.desired_rules(pools, [], host_tcp_ports=[])
    assert firewall.iptables_rules(allowed)["filter"] == []
    assert "dport" not in firewall.render_nft(allowed)
    with pytest.raises(firewall.FirewallError, match=r"host_tcp_ports\[0\]: 70000"):
        firewall.desired_rules(pools, [], host_tcp_ports=[70000])


def _link(name, alias=None, addrs=(), up=True):
    return {"ifname": name, "ifalias": alias, "flags": ["UP"] if up else [], "addr_info": [{"family": "inet", "local": a, "prefixlen": 32} for a in addrs]}


def test_tunnel_removal_takes_only_what_is_ours():
    links = {
        "tunl0": _link("tunl0", tunnels.IPIP_ALIAS, ["172.19.0.1", "10.66.0.1"]),  # 10.66.0.1: not ours
        "vxlan.calico": _link("vxlan.calico", tunnels.VXLAN_ALIAS, ["172.17.0.0"]),
        "eth0": _link("eth0", addrs=["10.0.0.1"]),
    }
    routes = [
        {"dst": "172.18.1.0/26", "gateway": "10.0.0.2", "dev": "eth0", "protocol": "80"},  # ours
        {"dst": "172.17.1.0/26", "gateway": "172.17.1.0", "dev": "vxlan.calico", "protocol": "80"},
        {"dst": "10.9.0.0/16", "gateway": "10.0.0.9", "dev": "eth0", "protocol": "80"},  # not in a pool
        {"dst": "172.18.2.0/26", "gateway": "10.0.0.3", "dev": "eth0", "protocol": "bird"},
    ]
    plan = tunnels.plan_removal(tunnels.State(links, routes, [], [], True), POOLS)
    # 10.66.0.1 is someone else's: tunl0 stays up for it, only our alias goes
    assert plan.ip_lines == [
        "addr del 172.19.0.1/32 dev tunl0",
        'link set dev tunl0 alias ""',
        "link del dev vxlan.calico",
        "route del 172.18.1.0/26 dev eth0 proto 80",
    ]
    assert not plan.load_ipip and plan.kept == []
    alone = {"tunl0": _link("tunl0", tunnels.IPIP_ALIAS, ["172.19.0.1"])}
    assert tunnels.plan_removal(tunnels.State(alone, [], [], [], True), POOLS).ip_lines == [
        "addr del 172.19.0.1/32 dev tunl0",
        'link set dev tunl0 down alias ""',
    ]  # nothing else on it: down
    # what the removal leaves: tunl0 without our alias and no address, no vxlan.calico -> nothing to do
    after = {"tunl0": _link("tunl0", None, ["10.66.0.1"]), "eth0": links["eth0"]}
    again = tunnels.plan_removal(tunnels.State(after, [routes[2], routes[3]], [], [], True), POOLS, "172.19.0.1")
    assert not again.changed and again.ip_lines == []


def test_tunnel_removal_leaves_foreign_devices_and_addresses():
    links = {
        "tunl0": _link("tunl0", None, ["10.66.0.1", "172.19.0.1"]),  # not marked: someone else's tunl0
        "vxlan.calico": _link("vxlan.calico", "someone else"),
    }
    plan = tunnels.plan_removal(tunnels.State(links, [], [], [], True), POOLS, ipip_address="172.19.0.1")
    assert plan.ip_lines == ["addr del 172.19.0.1/32 dev tunl0"]  # only the node's tunnel address
    assert plan.kept == ["vxlan.calico: not created by l3.calico (alias is not l3.calico:vxlan), left alone"]
    assert not tunnels.plan_removal(tunnels.State(links, [], [], [], True), POOLS).changed


def test_sysctl_file_removal_keeps_runtime_values_and_refuses_a_foreign_file(tmp_path):
    proc = tmp_path / "proc"
    (proc / "net/ipv4").mkdir(parents=True)
    (proc / "net/ipv4/ip_forward").write_text("0\n")
    path = tmp_path / "60-l3-calico.conf"
    sysctls.apply(sysctls.plan({"net.ipv4.ip_forward": 1}, str(path), str(proc)), str(path), str(proc))
    removal = sysctls.plan_removal(str(path))
    assert removal.changed and removal.runtime == {} and removal.changes == ["file removed (the values applied now stay)"]
    sysctls.apply(removal, str(path), str(proc))
    assert not path.exists() and (proc / "net/ipv4/ip_forward").read_text() == "1"
    assert not sysctls.plan_removal(str(path)).changed  # idempotent
    path.write_text("net.ipv4.ip_forward = 1\n")  # a file of somebody else's at that path
    with pytest.raises(sysctls.SysctlError, match="not written by l3.calico"):
        sysctls.plan_removal(str(path))
    assert path.exists()


def test_firewall_removal_of_both_backends_and_nothing_else():
    ipt = {
        "mangle": ["-A L3CALICO-ANTISPOOF -i cali+ -j DROP", "-A PREROUTING -j L3CALICO-ANTISPOOF"],
        "nat": None,
        "filter": ["-A INPUT -j L3CALICO-HOST-PROTECT"],
    }
    plan = firewall.plan_removal("table ip l3calico {\n}\n", ipt, state_file_exists=True)
    assert plan.nft_script == "delete table ip l3calico\n"
    assert plan.iptables_script == (
        "*mangle\n-D PREROUTING -j L3CALICO-ANTISPOOF\n-F L3CALICO-ANTISPOOF\n"
        "-X L3CALICO-ANTISPOOF\nCOMMIT\n*filter\n-D INPUT -j L3CALICO-HOST-PROTECT\n"
        "-F L3CALICO-HOST-PROTECT\n-X L3CALICO-HOST-PROTECT\nCOMMIT\n"
    )
    assert plan.changed and "state file removed" in plan.changes
    nothing = firewall.plan_removal(None, {"mangle": None, "nat": None, "filter": None}, state_file_exists=False)
    assert not nothing.changed and nothing.backend == "none" and not nothing.iptables_script


def test_firewall_removal_deletes_every_jump_to_our_chain():
    """A jump added twice (by hand, or by an older run): one -D each, or -X would fail the table's commit."""
    ipt = {"mangle": None, "nat": None, "filter": ["-A INPUT -j L3CALICO-HOST-PROTECT"] * 2}
    plan = firewall.plan_removal(None, ipt, state_file_exists=False)
    assert plan.iptables_script == (
        "*filter\n-D INPUT -j L3CALICO-HOST-PROTECT\n-D INPUT -j L3CALICO-HOST-PROTECT\n-F L3CALICO-HOST-PROTECT\n-X L3CALICO-HOST-PROTECT\nCOMMIT\n"
    )


def test_firewall_closes_every_nodes_bgp_port_on_the_forward_path_and_never_masquerades_to_nodes():
    """The IPAM result's node and tunnel addresses: TCP 179 to any of them from a workload veth is dropped in
    prerouting (before the workload's own RETURN), and traffic to them is excluded from natOutgoing."""
    nodes = {"na": {"ip": "192.168.77.1", "tunnels": {"ipip": None, "vxlan": "172.17.0.64"}}, "nb": {"ip": "192.168.77.2", "tunnels": {}}}
    addresses = IpamResult.from_dict({"nodes": nodes}).node_addresses()
    assert addresses == ["172.17.0.64", "192.168.77.1", "192.168.77.2"]
    rules = firewall.desired_rules(POOLS, [{"name": "w", "ip": "172.17.0.5"}], node_addresses=addresses)
    veth = naming.veth_name("default.w")
    ipt = firewall.iptables_rules(rules)
    assert ipt["mangle"] == [
        "-A L3CALICO-ANTISPOOF -d 172.17.0.64/32 -i cali+ -p tcp -m tcp --dport 179 -j DROP",
        "-A L3CALICO-ANTISPOOF -d 192.168.77.1/32 -i cali+ -p tcp -m tcp --dport 179 -j DROP",
        "-A L3CALICO-ANTISPOOF -d 192.168.77.2/32 -i cali+ -p tcp -m tcp --dport 179 -j DROP",
        f"-A L3CALICO-ANTISPOOF -s 172.17.0.5/32 -i {veth} -j RETURN",
        "-A L3CALICO-ANTISPOOF -i cali+ -j DROP",
    ]
    assert ipt["nat"][-3:] == [
        "-A L3CALICO-NAT-OUTGOING -d 192.168.77.1/32 -j RETURN",
        "-A L3CALICO-NAT-OUTGOING -d 192.168.77.2/32 -j RETURN",
        "-A L3CALICO-NAT-OUTGOING -s 172.17.0.0/16 -j MASQUERADE --random-fully",
    ]
    nft = firewall.render_nft(rules)
    assert "elements = { 172.17.0.64, 192.168.77.1, 192.168.77.2 }" in nft
    assert 'iifname "cali*" ip daddr @node-addresses tcp dport { 179 } counter drop' in nft
    assert "ip daddr != @all-pools ip daddr != @node-addresses counter masquerade" in nft
    assert nft.index("@node-addresses tcp dport") < nft.index("!= @workload-sources")
    with pytest.raises(firewall.FirewallError, match=r"node_addresses\[0\]: '192.168.77.300'"):
        firewall.desired_rules(POOLS, [], node_addresses=["192.168.77.300"])


def test_the_ipip_address_read_for_a_removal_is_checked():
    nodes = {"n1": {"tunnels": {"ipip": "172.19.0.1"}}, "n2": {}, "n3": {"tunnels": {"ipip": "172.19.0.1/32; rm -rf /"}}}
    assert tunnels.ipip_address(nodes, "n1") == "172.19.0.1"
    assert tunnels.ipip_address(nodes, "n2") is None and tunnels.ipip_address(nodes, "gone") is None
    assert tunnels.ipip_address(nodes, None) is None
    with pytest.raises(IpamResultError, match=r"nodes\.n3\.tunnels\.ipip='172\.19\.0\.1/32; rm -rf /': not an IPv4 address"):
        tunnels.ipip_address(nodes, "n3")


POOLS6 = {"v6": {"cidr": "fd00:66::/48", "block_size": 122, "vxlan_mode": "CrossSubnet", "ipip_mode": "Never"}}


def node6(base, ip6, net6, blocks6, vtep6):
    return dict(
        base,
        ipv6=ip6,
        network_ipv6=net6,
        blocks_ipv6=[{"cidr": c, "pool": "v6"} for c in blocks6],
        borrowed_ipv6=[],
        tunnels=dict(base["tunnels"], vxlan_v6=vtep6),
    )


NODES6 = {
    "a": node6(NODES["a"], "fd00:10::1", "fd00:10::/64", ["fd00:66::/122"], "fd00:66::"),
    "b": node6(NODES["b"], "fd00:10::2", "fd00:10::/64", ["fd00:66::40/122"], "fd00:66::40"),
    "c": node6(NODES["c"], "fd00:11::2", "fd00:11::/64", ["fd00:66::80/122"], "fd00:66::80"),
    "d": NODES["d"],  # no IPv6 address: nothing IPv6, for it or towards it
}


def test_vxlan_v6_peers_are_the_ipam_results_ipv6_routes():
    result = {"nodes": NODES6, "pools": POOLS, "pools_ipv6": POOLS6}
    desired = tunnels.desired_tunnels("a", result)
    assert (desired.node_ip6, desired.vxlan_v6) == ("fd00:10::1", "fd00:66::")
    peers = {p.node: p for p in desired.peers6}
    assert set(peers) == {"b", "c"}
    assert peers["b"].direct == ("fd00:66::40/122",) and peers["b"].routes == ()  # CrossSubnet, same IPv6 subnet
    assert peers["c"].routes == ("fd00:66::80/122",) and peers["c"].vtep == "fd00:66::80"  # another subnet: encapsulated
    assert peers["c"].ip == "fd00:11::2" and peers["c"].mac == naming.vxlan_mac_v6("c") != naming.vxlan_mac("c")
    expected = IpamResult.from_dict(result).expected_routes("a", bgp_nodes=(), version=6)
    assert sorted(str(r.dst) for r in expected if r.by == "tunnels") == ["fd00:66::40/122", "fd00:66::80/122"]  # one answer
    # The IPv4 side is what it always was.
    assert [p.node for p in desired.peers] == [p.node for p in tunnels.desired_tunnels("a", {"nodes": NODES, "pools": POOLS}).peers]
    assert tunnels.desired_tunnels("d", result).vxlan_v6 is None and tunnels.desired_tunnels("d", result).peers6 == []


def test_vxlan_v6_plan_from_scratch_and_noop():
    desired = tunnels.desired_tunnels("a", {"nodes": NODES6, "pools": POOLS, "pools_ipv6": POOLS6})
    addrs = [{"family": "inet", "local": "10.0.0.1", "prefixlen": 24}, {"family": "inet6", "local": "fd00:10::1", "prefixlen": 64, "scope": "global"}]
    links = {"eth0": {"ifname": "eth0", "mtu": 1500, "flags": ["UP"], "addr_info": addrs}}
    plan = tunnels.plan(desired, tunnels.State(links=links, routes=[], neighbours=[], fdb=[], ipip_loaded=False))
    dev, mac = naming.VXLAN_V6_DEVICE, naming.vxlan_mac_v6("a")
    assert (plan.underlay6, plan.vxlan_v6_mtu, plan.vxlan_v6_mac) == ("eth0", 1430, mac)
    v6_lines = [line for line in plan.ip_lines if "fd00:" in line or dev in line]
    assert v6_lines == [
        f"link add {dev} mtu 1430 address {mac} type vxlan id 4096 local fd00:10::1 dev eth0 dstport 4789 nolearning",
        f"link set dev {dev} alias l3.calico:vxlan-v6 up",
        f"addr add fd00:66::/128 dev {dev}",
        f"neigh replace fd00:66::40 lladdr {naming.vxlan_mac_v6('b')} dev {dev} nud permanent",
        f"neigh replace fd00:66::80 lladdr {naming.vxlan_mac_v6('c')} dev {dev} nud permanent",
        f"route replace fd00:66::80/122 via fd00:66::80 dev {dev} onlink proto 80",
        "route replace fd00:66::40/122 via fd00:10::2 dev eth0 proto 80",
    ]
    assert f"fdb replace {naming.vxlan_mac_v6('c')} dev {dev} dst fd00:11::2 self permanent" in plan.bridge_lines
    # As the kernel then shows it (ip -json): nothing to do; its own routes and link-local are not strays.
    vx = {
        "ifname": dev,
        "mtu": 1430,
        "address": mac,
        "flags": ["UP"],
        "ifalias": "l3.calico:vxlan-v6",
        "linkinfo": {"info_data": {"id": 4096, "local6": "fd00:10::1", "link": "eth0", "port": 4789, "learning": False}},
        "addr_info": [
            {"family": "inet6", "local": "fd00:66::", "prefixlen": 128, "scope": "global"},
            {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"},
        ],
    }
    routes6 = [
        {"dst": "fd00:66::80/122", "gateway": "fd00:66::80", "dev": dev, "protocol": "80", "flags": ["onlink"]},
        {"dst": "fd00:66::", "dev": dev, "protocol": "kernel", "flags": []},
        {"dst": "fe80::/64", "dev": dev, "protocol": "kernel", "flags": []},
        {"dst": "fd00:66::40/122", "gateway": "fd00:10::2", "dev": "eth0", "protocol": "80", "flags": []},
    ]
    neigh = [{"dst": "fd00:66::40", "lladdr": naming.vxlan_mac_v6("b"), "dev": dev, "state": ["PERMANENT"]}]
    neigh.append({"dst": "fd00:66::80", "lladdr": naming.vxlan_mac_v6("c"), "dev": dev, "state": ["PERMANENT"]})
    fdb6 = [{"mac": naming.vxlan_mac_v6(n), "dst": ip, "flags": ["self"]} for n, ip in (("b", "fd00:10::2"), ("c", "fd00:11::2"))]
    state = tunnels.State(links={**links, dev: vx}, routes=[], neighbours=neigh, fdb=[], ipip_loaded=False, routes6=routes6, fdb6=fdb6)
    again = tunnels.plan(desired, state)
    assert [line for line in again.ip_lines + again.bridge_lines if "fd00:" in line or dev in line] == []  # (vxlan.calico is not there: its lines)
    # The pool goes to Never: the device and the direct route go.
    never = dict(POOLS6, v6=dict(POOLS6["v6"], vxlan_mode="Never"))
    nodes = {k: dict(v, tunnels=dict(v["tunnels"], vxlan_v6=None)) for k, v in NODES6.items()}
    gone = tunnels.plan(tunnels.desired_tunnels("a", {"nodes": nodes, "pools": POOLS, "pools_ipv6": never}), state)
    assert f"link del dev {dev}" in gone.ip_lines and "route del fd00:66::40/122 dev eth0 proto 80" in gone.ip_lines


def test_vxlan_v6_needs_the_ipv6_address_on_an_interface_and_refuses_a_foreign_device():
    desired = tunnels.desired_tunnels("a", {"nodes": NODES6, "pools": POOLS, "pools_ipv6": POOLS6})
    links = {"eth0": {"ifname": "eth0", "mtu": 1500, "flags": ["UP"], "addr_info": [{"family": "inet", "local": "10.0.0.1", "prefixlen": 24}]}}
    with pytest.raises(tunnels.TunnelError, match="node a: IPv6 address fd00:10::1 is on no interface of this host"):
        tunnels.plan(desired, tunnels.State(links=links, routes=[], neighbours=[], fdb=[], ipip_loaded=False))
    foreign = {**links, naming.VXLAN_V6_DEVICE: {"ifname": naming.VXLAN_V6_DEVICE, "ifalias": ""}}
    with pytest.raises(tunnels.TunnelError, match="interface vxlan-v6.calico exists but was not created by l3.calico"):
        tunnels.plan(desired, tunnels.State(links=foreign, routes=[], neighbours=[], fdb=[], ipip_loaded=False))


def test_an_ipv6_only_workload_has_no_ipv4_source_of_its_own():
    """Dual stack: the IPAM result's ``ip: null`` (assign_ipv4 false) with an ``ipv6`` - no IPv4 source is
    allowed from its veth (the anti-spoofing rule drops every one); ``ip: null`` alone is still refused."""
    rules = firewall.desired_rules(POOLS, [{"id": "d.v6", "ip": None, "ipv6": "fd00::1"}, {"id": "d.w", "ip": "172.17.0.9"}])
    assert rules.sources == [(naming.veth_name("d.w"), "172.17.0.9")]
    with pytest.raises(firewall.FirewallError, match=r"workloads\[0\] \(d.x\): ip None is not an IPv4 address"):
        firewall.desired_rules(POOLS, [{"id": "d.x", "ip": None}])


POOLS6_NAT = {"v6": {"cidr": "fd00:66::/48", "nat_outgoing": True}, "v6b": {"cidr": "fd00:67::/48", "nat_outgoing": False}}


def test_ipv6_nat_outgoing_is_a_table_of_its_own_only_while_ipv6_is_in_use():
    rules = firewall.desired_rules(POOLS, [], pools6=POOLS6_NAT, node_addresses6=["fd00:10::1", "fd00:66::"])
    text = firewall.render_nft6(rules)
    assert "table ip6 l3calico {" in text and "elements = { fd00:66::/48 }" in text and "elements = { fd00:66::/48, fd00:67::/48 }" in text
    assert "ip6 saddr @nat-pools ip6 daddr != @all-pools ip6 daddr != @node-addresses counter masquerade fully-random" in text
    assert firewall.render_nft(rules) == firewall.render_nft(firewall.desired_rules(POOLS, []))  # the IPv4 table as it was
    created = firewall.plan(rules, "nftables", None, {"mangle": None, "nat": None, "filter": None}, {}, None)
    assert "nftables table ip6 l3calico created" in created.changes and created.nft_script.endswith(text)
    recorded = dict(created.record, nft_listing="L4", nft6_listing="L6")
    again = firewall.plan(rules, "nftables", "L4", {"mangle": None, "nat": None, "filter": None}, recorded, "L6")
    assert not again.changed and again.record == created.record
    # No IPv6 nat pool: the table stays (anti-spoofing) without its nat chain.
    plain = firewall.desired_rules(POOLS, [], pools6={"v6b": POOLS6_NAT["v6b"]})
    assert "nat-outgoing" not in firewall.render_nft6(plain) and "chain antispoof" in firewall.render_nft6(plain)
    replaced = firewall.plan(plain, "nftables", "L4", {"mangle": None, "nat": None, "filter": None}, recorded, "L6")
    assert replaced.changes == ["nftables table ip6 l3calico replaced (rules or set elements differ)"]
    # No IPv6 at all: the table goes; none there: nothing to do and nothing recorded for it.
    gone = firewall.plan(firewall.desired_rules(POOLS, []), "nftables", "L4", {"mangle": None, "nat": None, "filter": None}, recorded, "L6")
    assert gone.changes == ["nftables table ip6 l3calico removed (no IPv6 in use)"] and "delete table ip6 l3calico" in gone.nft_script
    assert "nft6_sha256" not in gone.record
    nothing = firewall.plan(firewall.desired_rules(POOLS, []), "nftables", "L4", {"mangle": None, "nat": None, "filter": None}, recorded, None)
    assert not nothing.changed and render_nothing(nothing)
    with pytest.raises(firewall.FirewallError, match="pools_ipv6 v6: cidr '10.0.0.0/8' is not an IPv6 network"):
        firewall.desired_rules(POOLS, [], pools6={"v6": {"cidr": "10.0.0.0/8"}})


def render_nothing(the_plan) -> bool:
    return not the_plan.nft_script and not the_plan.iptables_script and not the_plan.ip6tables_script


NO_IPT = {"mangle": None, "nat": None, "filter": None}


def test_ipv6_anti_spoofing_lets_through_the_workloads_own_link_local_and_the_unspecified_source():
    """Felix's strict IPv6 reverse-path check passes the workload's own addresses, fe80::/10 (the veth's own
    link-local route) and :: (rpfilter: not routable) - the same sources here, every other one dropped."""
    workloads = [{"id": "d.w", "ip": "172.17.0.9", "ipv6": "fd00:66::9/128"}, {"id": "d.v4", "ip": "172.17.0.10"}]
    rules = firewall.desired_rules(POOLS, workloads, pools6=POOLS6_NAT, node_addresses6=["fd00:10::1"])
    veth, veth4 = naming.veth_name("d.w"), naming.veth_name("d.v4")
    assert rules.ipv6 and rules.sources6 == [(veth, "fd00:66::9")]
    nft = firewall.render_nft6(rules)
    assert f'"{veth}" . fd00:66::9' in nft and veth4 not in nft
    assert 'iifname "cali*" ip6 saddr != { ::, fe80::/10 } iifname . ip6 saddr != @workload-sources counter drop' in nft
    assert 'iifname "cali*" ip6 daddr @node-addresses tcp dport { 179 } counter drop' in nft
    assert 'iifname "cali*" tcp dport { 179 } counter drop' in nft.split("chain host-protect")[1]
    ipt6 = firewall.ip6tables_rules(rules)
    assert ipt6["mangle"] == [
        "-A L3CALICO-ANTISPOOF -d fd00:10::1/128 -i cali+ -p tcp -m tcp --dport 179 -j DROP",
        f"-A L3CALICO-ANTISPOOF -s fd00:66::9/128 -i {veth} -j RETURN",
        "-A L3CALICO-ANTISPOOF -s ::/128 -i cali+ -j RETURN",
        "-A L3CALICO-ANTISPOOF -s fe80::/10 -i cali+ -j RETURN",
        "-A L3CALICO-ANTISPOOF -i cali+ -j DROP",
    ]
    assert ipt6["nat"] == [
        "-A L3CALICO-NAT-OUTGOING -d fd00:66::/48 -j RETURN",
        "-A L3CALICO-NAT-OUTGOING -d fd00:67::/48 -j RETURN",
        "-A L3CALICO-NAT-OUTGOING -d fd00:10::1/128 -j RETURN",
        "-A L3CALICO-NAT-OUTGOING -s fd00:66::/48 -j MASQUERADE --random-fully",
    ]
    assert ipt6["filter"] == ["-A L3CALICO-HOST-PROTECT -i cali+ -p tcp -m tcp --dport 179 -j DROP"]
    # A workload's IPv6 address alone (no IPv6 pool given) also puts IPv6 in use; a bad one is refused.
    assert firewall.desired_rules(POOLS, workloads).ipv6 and not firewall.desired_rules(POOLS, workloads[1:]).ipv6
    with pytest.raises(firewall.FirewallError, match=r"workloads\[0\] \(d.x\): ipv6 'fd00::zz' is not an IPv6 address"):
        firewall.desired_rules(POOLS, [{"id": "d.x", "ip": "172.17.0.9", "ipv6": "fd00::zz"}])


def test_ip6tables_legacy_created_in_one_restore_then_a_no_op_then_the_nat_chain_removed():
    workloads = [{"id": "d.w", "ip": "172.17.0.9", "ipv6": "fd00:66::9"}]
    rules = firewall.desired_rules(POOLS, workloads, pools6=POOLS6_NAT, node_addresses6=["fd00:10::1"])
    want4, want6 = firewall.iptables_rules(rules), firewall.ip6tables_rules(rules)
    created = firewall.plan(rules, "iptables", None, NO_IPT, {}, None, NO_IPT)
    assert [c for c in created.changes if c.startswith("ip6tables")] == [
        "ip6tables-legacy mangle chain L3CALICO-ANTISPOOF created",
        "ip6tables-legacy nat chain L3CALICO-NAT-OUTGOING created",
        "ip6tables-legacy filter chain L3CALICO-HOST-PROTECT created",
    ]
    script = created.ip6tables_script
    assert script.count("COMMIT") == 3 and "-I POSTROUTING 1 -j L3CALICO-NAT-OUTGOING" in script and "-I PREROUTING 1 -j L3CALICO-ANTISPOOF" in script
    assert "-A L3CALICO-NAT-OUTGOING -s fd00:66::/48 -j MASQUERADE --random-fully" in created.rendered
    jumps = {"mangle": "-A PREROUTING -j L3CALICO-ANTISPOOF", "nat": "-A POSTROUTING -j L3CALICO-NAT-OUTGOING", "filter": "-A INPUT -j L3CALICO-HOST-PROTECT"}
    current4 = {table: want4[table] + [jumps[table]] for table in jumps}
    current6 = {table: want6[table] + [jumps[table]] for table in jumps}
    again = firewall.plan(rules, "iptables", None, current4, {}, None, current6)
    assert not again.changed and render_nothing(again)
    # The IPv6 pool's natOutgoing off: the nat chain and its jump go, in the same restore; the rest stays.
    off = firewall.desired_rules(POOLS, workloads, pools6={n: dict(p, nat_outgoing=False) for n, p in POOLS6_NAT.items()}, node_addresses6=["fd00:10::1"])
    removed = firewall.plan(off, "iptables", None, current4, {}, None, current6)
    assert removed.changes == ["ip6tables-legacy nat chain L3CALICO-NAT-OUTGOING removed (no IPv6 pool with natOutgoing)"]
    assert removed.ip6tables_script == "*nat\n-D POSTROUTING -j L3CALICO-NAT-OUTGOING\n-F L3CALICO-NAT-OUTGOING\n-X L3CALICO-NAT-OUTGOING\nCOMMIT\n"
    # No IPv6 in use: every ip6tables chain goes; the nftables backend removes them too.
    v4only = firewall.desired_rules(POOLS, [])
    assert firewall.plan(v4only, "iptables", None, current4, {}, None, current6).ip6tables_script.count("-X L3CALICO") == 3
    nft = firewall.plan(rules, "nftables", None, NO_IPT, {}, None, current6)
    assert "ip6tables-legacy chains of l3.calico removed (backend is nftables)" in nft.changes and nft.ip6tables_script.count("-X L3CALICO") == 3


def test_ipv6_in_use_with_iptables_legacy_needs_ip6tables_legacy(monkeypatch):
    rules = firewall.desired_rules(POOLS, [], pools6=POOLS6_NAT)
    monkeypatch.setattr(firewall.shutil, "which", lambda name: None if name.startswith("ip6tables") else "/usr/sbin/" + name)
    expected = r"IPv6 pools fd00:66::/48, fd00:67::/48 need ip6tables-legacy .*natOutgoing of fd00:66::/48.*missing ip6tables-legacy-save, ip6"
    with pytest.raises(firewall.FirewallError, match=expected):
        firewall.require_ip6tables(rules, "iptables")
    firewall.require_ip6tables(rules, "nftables")  # nftables: its own ip6 table
    firewall.require_ip6tables(firewall.desired_rules(POOLS, []), "iptables")  # IPv4 only: not needed
    calls = []
    with pytest.raises(firewall.FirewallError, match="need ip6tables-legacy"):
        firewall.prepare(POOLS, [], firewall.Options(backend="iptables"), runner=lambda argv, stdin: calls.append(argv), pools6=POOLS6_NAT)
    assert calls == []  # refused before reading or changing anything


def test_removal_takes_the_ipv6_table_too():
    gone = firewall.plan_removal("L4", {"mangle": None, "nat": None, "filter": None}, False, "L6")
    assert gone.nft_script == "delete table ip l3calico\ndelete table ip6 l3calico\n"
    assert gone.changes == ["nftables table ip l3calico removed", "nftables table ip6 l3calico removed"]
    ipt6 = {"mangle": ["-A L3CALICO-ANTISPOOF -i cali+ -j DROP", "-A PREROUTING -j L3CALICO-ANTISPOOF"], "nat": None, "filter": None}
    both = firewall.plan_removal(None, {"mangle": None, "nat": None, "filter": None}, False, None, ipt6)
    assert both.backend == "iptables" and both.changes == ["ip6tables-legacy mangle chain L3CALICO-ANTISPOOF removed (and its jump from PREROUTING)"]
    assert both.ip6tables_script == "*mangle\n-D PREROUTING -j L3CALICO-ANTISPOOF\n-F L3CALICO-ANTISPOOF\n-X L3CALICO-ANTISPOOF\nCOMMIT\n"
    assert firewall.plan_removal("L4", {"mangle": None, "nat": None, "filter": None}, False).nft_script == "delete table ip l3calico\n"
