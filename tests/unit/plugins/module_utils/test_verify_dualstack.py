# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""verify.judge on a dual-stack lab: each family judged and reported apart, the IPv4 figures unchanged."""

from __future__ import annotations

import pytest

from ansible_collections.l3.calico.plugins.filter.verify_report import verify_report
from ansible_collections.l3.calico.plugins.module_utils import naming, verify

from .verify_fixtures import healthy, healthy_dual_stack


def test_a_healthy_dual_stack_lab_passes_and_keeps_the_ipv4_figures():
    ipam, probes, capture = healthy_dual_stack()
    report = verify.judge(ipam, probes, capture=capture)
    assert report["findings"] == []
    s = report["summary"]
    ipv4_only = verify.judge(*healthy()[:2], capture=healthy()[2])["summary"]
    assert {k: s[k] for k in ipv4_only} == dict(ipv4_only, checks=ipv4_only["checks"] + s["checks6"])
    assert s["pings6"] == s["pings6_total"] == s["pings6_expected"] == 9 * 8
    assert (s["sessions6_established"], s["sessions6_total"], s["failed6"], s["ipv6_judged"]) == (0, 0, 0, True)
    assert report["workload_order6"] == report["workload_order"]
    assert report["nodes"]["node-c"]["ip6"] == "fd00:200::101"


def test_ipv6_routes_are_the_tunnels_and_no_bird_route_while_bird_carries_no_ipv6():
    ipam, probes, _capture = healthy_dual_stack()
    rows = {r["expected"] for r in verify.judge(ipam, probes)["routes6"]["node-a"]}
    # CrossSubnet VXLAN: node-b in node-a's IPv6 subnet via the underlay, node-c through vxlan-v6.calico.
    assert "fd00:17::40/122 via fd00:100::101 dev vec0" in rows
    assert f"fd00:17::80/122 via fd00:17::80 dev {naming.VXLAN_V6_DEVICE} onlink" in rows
    assert not any(r.startswith("blackhole") for r in rows)  # BIRD's: only once BIRD carries IPv6


def test_when_bird_carries_ipv6_its_sessions_and_blackholes_are_judged():
    ipam, probes, _capture = healthy_dual_stack(bgp6=True)
    report = verify.judge(ipam, probes)
    assert report["findings"] == []
    assert (report["summary"]["sessions6_established"], report["summary"]["sessions6_total"]) == (6, 6)
    assert report["summary"]["sessions_total"] == 6  # the IPv4 sessions, unchanged
    assert "blackhole fd00:17::/122" in {r["expected"] for r in report["routes6"]["node-a"]}
    probes["node-a"]["routes6"] = [r for r in probes["node-a"]["routes6"] if r.get("type") != "blackhole"]
    probes["node-b"]["bgp"][-1]["bgp_state"] = "Active"
    got = {(f["host"], f["check"], f["found"], f["family"]) for f in verify.judge(ipam, probes)["findings"]}
    assert got == {
        ("node-a", "route to own block fd00:17::/122 (IPv6)", "no route", 6),
        ("node-b", "BGP session with fd00:200::101", "Active", 6),
    }


def test_a_missing_vxlan_v6_route_is_named_with_its_family():
    ipam, probes, _capture = healthy_dual_stack()
    probes["node-c"]["routes6"] = [r for r in probes["node-c"]["routes6"] if r["dst"] != "fd00:17::/122"]
    [finding] = verify.judge(ipam, probes)["findings"]
    assert finding == {
        "host": "node-c",
        "check": "route to remote block of node-a (vxlan) fd00:17::/122 (IPv6)",
        "expected": f"fd00:17::/122 via fd00:17:: dev {naming.VXLAN_V6_DEVICE} onlink",
        "found": "no route",
        "family": 6,
    }


def test_ipv6_routes_match_whatever_the_spelling():
    ipam, probes, _capture = healthy_dual_stack()
    for route in probes["node-a"]["routes6"]:
        if route["dst"] == "fd00:17::40/122":
            route.update(dst="fd00:17:0:0:0:0:0:40/122", gateway="fd00:100:0::101")
    assert verify.judge(ipam, probes)["findings"] == []


def test_an_ipv6_ping_that_fails_is_a_finding_and_ipv4_is_untouched():
    ipam, probes, _capture = healthy_dual_stack()
    probes["node-a"]["pings6"]["default.web-1"]["default.web-5"] = {"ok": False, "rtt_ms": None}
    report = verify.judge(ipam, probes)
    [finding] = report["findings"]
    assert (finding["host"], finding["check"], finding["expected"], finding["found"]) == (
        "node-a workload default.web-1",
        "ping6 default.web-5 (fd00:17::81)",
        "a reply",
        "no reply",
    )
    assert (report["summary"]["pings"], report["summary"]["pings6"]) == (72, 71)


@pytest.mark.parametrize(
    ("change", "check"),
    [
        (lambda v: v.update(addresses6=[]), "IPv6 address"),
        (lambda v: v.update(routes6=[]), "IPv6 default route"),
        (lambda v: v.update(neighbours=[n for n in v["neighbours"] if ":" not in n["dst"]]), "IPv6 gateway neighbour"),
        (lambda v: v.update(ip6_forward="1"), "IPv6 forwarding inside"),
    ],
)
def test_a_workloads_ipv6_plumbing_is_judged(change, check):
    ipam, probes, _capture = healthy_dual_stack()
    change(probes["node-b"]["workloads"]["blue.db-2"])
    [finding] = verify.judge(ipam, probes)["findings"]
    assert (finding["host"], finding["check"], finding["family"]) == ("node-b workload blue.db-2", check, 6)


def test_a_dual_stack_node_probed_without_its_ipv6_side_is_one_finding():
    ipam, probes, _capture = healthy_dual_stack()
    for key in ("node_ip6", "underlay_device6", "routes6", "pings6"):
        del probes["node-c"][key]
    found = verify.judge(ipam, probes)["findings"]
    assert [(f["host"], f["check"]) for f in found if f["host"] == "node-c"] == [("node-c", "IPv6 probed")]
    # ... and the others' pings to node-c's workloads are tried: only node-c's own row is missing.
    assert all(f["host"] == "node-c" or "ping6" not in f["check"] for f in found)


def test_a_node_without_ipv6_in_a_dual_stack_result_gets_no_ipv6_check():
    ipam, probes, _capture = healthy_dual_stack()
    node = ipam["nodes"]["node-c"]
    for key in ("ipv6", "network_ipv6"):
        node[key] = None
    node["blocks_ipv6"], node["tunnels"]["vxlan_v6"] = [], None
    for wl in node["workloads"]:
        wl.update(ipv6=None, pool_ipv6=None, block_ipv6=None)
    for name in ("node-a", "node-b"):
        probes[name]["routes6"] = [r for r in probes[name]["routes6"] if not r["dst"].startswith("fd00:17::8")]
        for row in probes[name]["pings6"].values():
            for wid in [w["id"] for w in node["workloads"]]:
                row.pop(wid)
    report = verify.judge(ipam, probes)
    assert report["findings"] == []
    assert report["summary"]["pings6_total"] == 6 * 5
    assert "node-c" not in report["routes6"]


def test_ipv6_verdicts_are_their_own_and_none_means_reported_not_judged():
    ipam, probes, _capture = healthy_dual_stack()
    probes["node-a"]["pings6"]["default.web-2"]["default.web-1"]["ok"] = False  # as an IPv6 policy would
    # IPv6 verdicts of their own: the pair is expected denied over IPv6, allowed over IPv4.
    deny = verify.expect_from({"default.web-2": {"default.web-1": {"icmp": False}}})
    report = verify.judge(ipam, probes, expect6=deny)
    assert report["findings"] == []
    assert report["pings6"]["default.web-2"]["default.web-1"] == {"ok": False, "expected": False}
    assert report["pings"]["default.web-2"]["default.web-1"] == {"ok": True, "expected": True}
    # None: reported, not judged (but every pair must have been tried).
    report = verify.judge(ipam, probes, expect6=None)
    assert report["findings"] == [] and report["summary"]["ipv6_judged"] is False
    assert report["pings6"]["default.web-2"]["default.web-1"] == {"ok": False, "expected": None}
    assert report["summary"]["pings6_expected"] == 0
    del probes["node-a"]["pings6"]["default.web-2"]["default.web-1"]
    [finding] = verify.judge(ipam, probes, expect6=None)["findings"]
    assert (finding["check"], finding["expected"], finding["found"]) == ("ping6 default.web-1 (fd00:17::1)", "tried (verdict not judged)", "not tried")


def test_the_filter_judges_ipv6_by_its_own_verdicts_or_not_at_all_under_ipv4_only_verdicts():
    ipam, probes, _capture = healthy_dual_stack()
    probes["node-a"]["pings6"]["default.web-2"]["default.web-1"]["ok"] = False
    four = {"default.web-1": {"default.web-2": {"icmp": True}}}
    assert verify_report(probes, ipam)["findings"][0]["check"] == "ping6 default.web-1 (fd00:17::1)"  # no policy: all pass
    assert verify_report(probes, ipam, expected=four)["summary"]["ipv6_judged"] is False  # policy, no IPv6 verdicts
    six = {"default.web-2": {"default.web-1": {"icmp": False}}}
    report = verify_report(probes, ipam, expected=four, expected_ipv6=six)
    assert report["findings"] == [] and report["summary"]["ipv6_judged"] is True


def test_the_router_capture_is_judged_per_family():
    ipam, probes, capture = healthy_dual_stack()
    report = verify.judge(ipam, probes, capture=capture)
    assert report["findings"] == []
    assert len(report["capture"]) == len(report["capture6"]) == 9 * 6
    rows = {(r["src"], r["dst"]): r for r in report["capture6"]}
    assert rows[("default.web-1", "default.web-3")]["expected"] == "none fd00:17::1 > fd00:17::41"  # same IPv6 subnet
    assert rows[("default.web-1", "default.web-5")]["expected"] == "vxlan fd00:100::100 > fd00:200::101"  # CrossSubnet
    # Plain IPv6 between the subnets (no vxlan-v6.calico) is a finding of the IPv6 family; IPv4 is untouched.
    for flow in capture:
        if flow["inner_src"] == "fd00:17::1" and flow["inner_dst"] == "fd00:17::81":
            flow.update(encap="none", outer_src="fd00:17::1", outer_dst="fd00:17::81")
    [finding] = verify.judge(ipam, probes, capture=capture)["findings"]
    assert (finding["host"], finding["check"], finding["found"], finding["family"]) == (
        "router",
        "capture default.web-1 (fd00:17::1) > default.web-5 (fd00:17::81)",
        "none fd00:17::1 > fd00:17::81",
        6,
    )


def test_without_ipv6_verdicts_a_pair_not_seen_is_no_finding_but_one_carried_wrong_is():
    ipam, probes, capture = healthy_dual_stack()
    capture = [f for f in capture if f["inner_src"] != "fd00:17::1"]  # web-1's echoes never left (denied?)
    report = verify.judge(ipam, probes, capture=capture, expect6=None)
    assert report["findings"] == []
    assert {r["ok"] for r in report["capture6"] if r["src"] == "default.web-1"} == {None}
    capture.append(dict(encap="none", outer_src="fd00:17::1", outer_dst="fd00:17::81", inner_src="fd00:17::1", inner_dst="fd00:17::81", icmp="echo-request"))
    [finding] = verify.judge(ipam, probes, capture=capture, expect6=None)["findings"]
    assert finding["expected"] == "vxlan fd00:100::100 > fd00:200::101"


def test_ipv4_only_judgement_of_a_dual_stack_result_when_ipv6_is_not_probed():
    ipam, probes, capture = healthy_dual_stack()
    for probe in probes.values():
        for key in ("node_ip6", "underlay_device6", "routes6", "pings6"):
            del probe[key]
    report = verify_report(probes, ipam, capture=capture, ipv6=False)
    assert report["findings"] == [] and "checks6" not in report["summary"] and "pings6" not in report
    assert report["summary"] == verify.judge(*healthy()[:2], capture=healthy()[2])["summary"]
