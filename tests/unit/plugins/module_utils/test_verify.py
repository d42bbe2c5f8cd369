# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""verify.judge: a healthy lab passes; each kind of breakage is named with host, expected, found."""

from __future__ import annotations

import pytest

from ansible_collections.l3.calico.plugins.module_utils import naming, verify
from ansible_collections.l3.calico.plugins.module_utils.ipam_result import IpamResult

from .verify_fixtures import healthy


def findings(ipam, probes, capture=None):
    return verify.judge(ipam, probes, capture=capture)["findings"]


def test_healthy_lab_passes_every_check():
    ipam, probes, capture = healthy()
    report = verify.judge(ipam, probes, capture=capture)
    assert report["findings"] == []
    summary = report["summary"]
    assert summary["pings"] == summary["pings_total"] == 9 * 8
    assert summary["sessions_established"] == summary["sessions_total"] == 6
    assert len(report["capture"]) == 9 * 6  # ordered pairs of workloads on different hosts


@pytest.mark.parametrize(
    ("src", "dst", "dst_pool", "expected"),
    [
        ("node-a", "node-b", "default-ipv4-ippool", "none"),  # CrossSubnet, same subnet
        ("node-a", "node-c", "default-ipv4-ippool", "ipip"),  # CrossSubnet, across the router
        ("node-a", "node-b", "blue-vxlan", "vxlan"),  # VXLAN Always
    ],
)
def test_encapsulation_follows_the_pool_and_the_subnets(src, dst, dst_pool, expected):
    result = IpamResult.from_dict(healthy()[0])
    assert result.pools[dst_pool].encapsulation(result.nodes[src], result.nodes[dst]) == expected


def test_expected_routes_are_calicos():
    ipam, _probes, _capture = healthy()
    routes = {exp["dst"]: verify.describe(exp) for _kind, exp in verify.expected_routes("node-a", ipam, "vec0")}
    assert routes["172.17.0.0/26"] == "blackhole 172.17.0.0/26"
    assert routes["172.17.64.0/26"] == "172.17.64.0/26 via 192.168.100.101 dev vec0 proto bird"
    assert routes["172.17.128.0/26"] == "172.17.128.0/26 via 192.168.200.101 dev tunl0 proto bird onlink"
    assert routes["172.18.128.0/26"] == "172.18.128.0/26 via 172.18.128.0 dev vxlan.calico onlink"
    veth = naming.veth_name("default.web-1")
    assert routes["172.17.0.1/32"] == f"172.17.0.1/32 dev {veth} scope link"


def test_a_missing_tunnel_route_names_host_expected_and_found():
    ipam, probes, _capture = healthy()
    for route in probes["node-a"]["routes"]:
        if route["dst"] == "172.17.128.0/26":
            route.update({"dev": "vec0", "onlink": False})  # not tunnelled
    [finding] = findings(ipam, probes)
    assert finding["host"] == "node-a"
    assert finding["expected"] == "172.17.128.0/26 via 192.168.200.101 dev tunl0 proto bird onlink"
    assert finding["found"] == "172.17.128.0/26 via 192.168.200.101 dev vec0 proto bird"


def test_a_session_not_established_is_a_finding():
    ipam, probes, _capture = healthy()
    probes["node-c"]["bgp"][0]["bgp_state"] = "Active"
    [finding] = findings(ipam, probes)
    assert (finding["host"], finding["expected"], finding["found"]) == ("node-c", "Established", "Active")
    assert finding["check"] == "BGP session with 192.168.100.100"


def test_bird_down_is_one_finding_not_one_per_peer():
    ipam, probes, _capture = healthy()
    probes["node-b"].update(bird_error="Unable to connect to server control socket", bgp=[])
    [finding] = findings(ipam, probes)
    assert finding["host"] == "node-b" and "control socket" in finding["found"]


def test_lost_blackhole_is_a_finding():
    ipam, probes, _capture = healthy()
    probes["node-b"]["routes"] = [r for r in probes["node-b"]["routes"] if r["type"] != "blackhole"]
    found = findings(ipam, probes)
    assert {(f["host"], f["expected"], f["found"]) for f in found} == {
        ("node-b", "blackhole 172.17.64.0/26", "no route"),
        ("node-b", "blackhole 172.18.64.0/26", "no route"),
    }


def test_workload_without_gateway_neighbour_or_address():
    ipam, probes, _capture = healthy()
    view = probes["node-c"]["workloads"]["default.web-5"]
    view["neighbours"] = [{"dst": naming.GATEWAY, "lladdr": "", "dev": "eth0", "state": "FAILED"}]
    view["addresses"] = ["172.17.128.1/26"]
    found = {f["check"]: f for f in findings(ipam, probes)}
    assert found["gateway neighbour"]["host"] == "node-c workload default.web-5"
    assert found["gateway neighbour"]["found"] == "169.254.1.1 lladdr - FAILED"
    assert found["address"]["expected"] == "172.17.128.1/32"


def test_a_workload_that_routes_is_a_finding_unless_allowed():
    ipam, probes, _capture = healthy()
    probes["node-b"]["workloads"]["default.web-3"]["ip_forward"] = "1"  # it copied the node's ip_forward=1
    found = {f["check"]: f for f in findings(ipam, probes)}
    assert found["IP forwarding inside"]["host"] == "node-b workload default.web-3"
    assert (found["IP forwarding inside"]["expected"], found["IP forwarding inside"]["found"]) == ("net.ipv4.ip_forward = 0", "1")
    probes["node-b"]["ip_forward_expected"] = "1"  # calico_workloads_allow_ip_forwarding on node-b
    assert sorted((f["host"], f["check"]) for f in findings(ipam, probes)) == [
        ("node-b workload blue.db-2", "IP forwarding inside"),
        ("node-b workload default.web-4", "IP forwarding inside"),
    ]


def test_a_failed_ping_is_named_by_source_and_target():
    ipam, probes, _capture = healthy()
    probes["node-a"]["pings"]["default.web-1"]["blue.db-3"] = {"ok": False, "rtt_ms": None}
    [finding] = findings(ipam, probes)
    assert finding["host"] == "node-a workload default.web-1"
    assert finding["check"].startswith("ping blue.db-3")
    report = verify.judge(ipam, probes)
    assert report["summary"]["pings"] == 71
    assert report["pings"]["default.web-1"]["blue.db-3"] == {"ok": False, "expected": True}


def deny_web1_to_db3(src, dst, kind):
    """A policy in the test's own words: default.web-1 may not reach blue.db-3, neither ping nor TCP."""
    return (src, dst) != ("default.web-1", "blue.db-3")


def with_tcp(probes, outcome=lambda src, dst: "open"):
    for probe in probes.values():
        probe["tcp"] = {src: {dst: {"ok": outcome(src, dst) == "open", "outcome": outcome(src, dst)} for dst in row} for src, row in probe["pings"].items()}
    return probes


def test_a_pair_the_policy_denies_must_fail_and_one_that_passes_anyway_is_named():
    ipam, probes, capture = healthy()
    probes = with_tcp(probes, lambda src, dst: "timeout" if (src, dst) == ("default.web-1", "blue.db-3") else "open")
    probes["node-a"]["pings"]["default.web-1"]["blue.db-3"] = {"ok": False, "rtt_ms": None}
    report = verify.judge(ipam, probes, capture=capture, expect=deny_web1_to_db3)
    assert report["findings"] == []
    assert report["tcp"]["default.web-1"]["blue.db-3"] == {"ok": False, "expected": False}
    assert report["summary"]["tcp_expected"] == report["summary"]["tcp_total"] == 72
    assert report["summary"]["pings_expected"] == 72 and report["summary"]["pings"] == 71
    # The same network without that policy: both are findings.
    found = sorted((f["check"].split(" (")[0], f["expected"], f["found"]) for f in findings(ipam, probes))
    assert found == [("TCP to blue.db-3", "a connection", "no connection (timeout)"), ("ping blue.db-3", "a reply", "no reply")]
    # The policy denies, the network lets it through: named, with what was expected.
    probes = with_tcp(healthy()[1])
    wrong = verify.judge(ipam, probes, expect=deny_web1_to_db3)["findings"]
    assert sorted((f["host"], f["check"].split(" (")[0], f["expected"], f["found"]) for f in wrong) == [
        ("node-a workload default.web-1", "TCP to blue.db-3", "no connection (denied by policy)", "a connection"),
        ("node-a workload default.web-1", "ping blue.db-3", "no reply (denied by policy)", "a reply"),
    ]


def test_without_a_tcp_matrix_nothing_about_tcp_is_judged():
    ipam, probes, _capture = healthy()
    report = verify.judge(ipam, probes)
    assert report["tcp"] == {} and report["summary"]["tcp_total"] == 0


def test_unencapsulated_cross_subnet_traffic_fails_the_capture():
    ipam, probes, capture = healthy()
    for flow in capture:
        if flow["inner_src"] == "172.17.0.1" and flow["inner_dst"] == "172.17.128.1":
            flow.update(encap="none", outer_src="172.17.0.1", outer_dst="172.17.128.1")
    [finding] = findings(ipam, probes, capture)
    assert finding["host"] == "router"
    assert finding["expected"] == "ipip 192.168.100.100 > 192.168.200.101"
    assert finding["found"] == "none 172.17.0.1 > 172.17.128.1"


def test_encapsulated_same_subnet_traffic_fails_the_capture():
    ipam, probes, capture = healthy()
    for flow in capture:
        if flow["inner_src"] == "172.17.0.1" and flow["inner_dst"] == "172.17.64.1":
            flow.update(encap="ipip", outer_src="192.168.100.100", outer_dst="192.168.100.101")
    [finding] = findings(ipam, probes, capture)
    assert finding["expected"] == "none 172.17.0.1 > 172.17.64.1"


def test_the_report_is_the_same_from_run_to_run_while_the_network_is():
    ipam, probes, capture = healthy()
    first = verify.judge(ipam, probes, capture=capture)
    for probe in probes.values():
        for row in probe["pings"].values():
            for cell in row.values():
                cell["rtt_ms"] = 9.99  # round-trip times vary
    for flow in capture:
        flow["packets"] += 2
    assert verify.judge(ipam, probes, capture=capture) == first


def test_unreachable_node_is_a_finding():
    ipam, probes, _capture = healthy()
    del probes["node-b"]
    assert [f["host"] for f in findings(ipam, probes)] == ["node-b"]


def test_expected_matrix_as_policy_plan_returns_it():
    expect = verify.expect_from({"default.web-1": {"blue.db-3": {"tcp": False, "icmp": True}}})
    assert expect("default.web-1", "blue.db-3", "tcp") is False
    assert expect("default.web-1", "blue.db-3", "icmp") is True
    assert expect("blue.db-3", "default.web-1", "tcp") is True  # not listed: passes
    with pytest.raises(ValueError, match=r"expected\.a\.b\.tcp='no': must be a boolean"):
        verify.expect_from({"a": {"b": {"tcp": "no"}}})("a", "b", "tcp")
