# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""policy_compile: the HostProgram of each host, held to the contract (docs/policy.md) and to the
evaluator: a reference interpreter of the IR (tests/unit/plugins/module_utils/policy_helpers.py) gives
the same verdict, and the same deciding rule, as policy_eval for every flow hypothesis draws."""

from __future__ import annotations

import ipaddress
import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.l3.calico.plugins.module_utils import naming, policy_compile, policy_eval
from tests.unit.plugins.module_utils.policy_helpers import NODES, NODES6, WORKLOADS, WORKLOADS6, flow_args, ipam_result, ir_verdict, policies, policy_set

SET_RE = re.compile(r"[a-z][a-z0-9_]{0,30}")
CHAIN_RE = re.compile(r"[a-z][a-z0-9_]{0,27}")

WEB_DB = [
    {
        "name": "db-from-web",
        "namespace": "blue",
        "selector": "app == 'db'",
        "ingress": [{"action": "Allow", "protocol": "TCP", "source": {"selector": "app == 'web'"}, "destination": {"ports": [5432, "8000:8010"]}}],
    },
    {"name": "web-out", "order": 5, "selector": "app == 'web'", "egress": [{"action": "Deny", "destination": {"nets": ["192.0.2.0/24"]}}, {"action": "Allow"}]},
]


def _pkt(flow) -> dict:
    return {
        "family": flow.family,
        "src": policy_eval._address(flow.src, flow.family),
        "dst": policy_eval._address(flow.dst, flow.family),
        "protocol": flow.protocol,
        "sport": flow.src_port,
        "dport": flow.port,
        "icmp_type": flow.icmp_type,
        "icmp_code": flow.icmp_code,
    }


def _ref(decision):
    if decision.reason in (policy_eval.RULE, policy_eval.PASS):
        return f"{decision.policy} {decision.direction}[{decision.rule}]"
    return None


def test_program_shape_follows_the_contract():
    ps = policy_set(WEB_DB)
    programs = policy_compile.host_programs(ps, ipam_result())
    assert sorted(programs) == sorted(NODES)
    n1 = programs["n1"]
    assert n1["version"] == 1
    # blue.db-1 is on n1: the ingress chain of blue/db-from-web; the web workloads on n1: web-out's egress chain
    db = next(e for e in n1["endpoints"] if e["workload"] == "blue.db-1")
    assert db["interface"] == naming.veth_name("blue.db-1") and db["address"] == "10.64.0.2"
    assert db["ingress"] == [policy_compile.chain_name("blue/db-from-web", "ingress")] and db["egress"] == []
    web = next(e for e in n1["endpoints"] if e["workload"] == "blue.web-1")
    assert web["egress"] == [policy_compile.chain_name("web-out", "egress")] and web["ingress"] == []
    assert [e["interface"] for e in n1["endpoints"]] == sorted(e["interface"] for e in n1["endpoints"])
    chain = n1["chains"][db["ingress"][0]]
    assert chain["policy"] == "blue/db-from-web" and chain["direction"] == "ingress"
    rule = chain["rules"][0]
    assert rule["action"] == "allow" and rule["protocol"] == 6 and rule["ref"] == "blue/db-from-web ingress[0]"
    assert rule["destination"]["ports"] == [[5432, 5432], [8000, 8010]]
    # the source selector, scoped to namespace blue: blue's web workloads only (blue.web-2 is on n2)
    assert n1["sets"][rule["source"]["set"]] == ["10.64.0.1/32", "10.64.1.1/32"]
    assert all(SET_RE.fullmatch(s) for p in programs.values() for s in p["sets"])
    assert all(CHAIN_RE.fullmatch(c) for p in programs.values() for c in p["chains"])
    # n2 has no db: no chain of db-from-web there
    assert policy_compile.chain_name("blue/db-from-web", "ingress") not in programs["n2"]["chains"]
    egress = programs["n2"]["chains"][policy_compile.chain_name("web-out", "egress")]
    assert egress["rules"][0]["destination"]["nets"] == ["192.0.2.0/24"] and egress["rules"][0]["action"] == "deny"


def test_a_new_matching_workload_changes_a_set_element_not_a_chain():
    before = policy_compile.host_programs(policy_set(WEB_DB), ipam_result())
    more = dict(WORKLOADS, **{"blue.web-3": ("n2", "10.64.1.9", {"app": "web"})})
    after = policy_compile.host_programs(policy_set(WEB_DB, workloads=more), ipam_result(more))
    assert after["n1"]["chains"] == before["n1"]["chains"]
    changed = {name for name in after["n1"]["sets"] if after["n1"]["sets"][name] != before["n1"]["sets"].get(name)}
    assert len(changed) == 1
    (name,) = changed
    assert set(after["n1"]["sets"][name]) - set(before["n1"]["sets"][name]) == {"10.64.1.9/32"}


def test_hosts_without_workloads_get_an_empty_program_and_workloads_without_address_no_endpoint():
    result = ipam_result()
    result["nodes"]["n3"] = {"ip": "192.168.50.13", "workloads": [{"id": "blue.pending"}]}
    inventory = {"n3": [{"name": "pending", "namespace": "blue", "labels": {"app": "db"}}]}
    from tests.unit.plugins.module_utils.policy_helpers import inventory_workloads

    inventory.update(inventory_workloads())
    from ansible_collections.l3.calico.plugins.module_utils.policy_model import PolicySet

    ps = PolicySet.from_inventory(WEB_DB, {}, inventory, result)
    programs = policy_compile.host_programs(ps, result)
    assert programs["n3"] == {"version": 1, "sets": {}, "chains": {}, "endpoints": []}


def test_a_namespace_called_global_does_not_collide_with_global_policies():
    pols = [{"name": "x", "namespace": "global", "ingress": [{"action": "Deny"}]}, {"name": "x", "ingress": [{"action": "Allow"}]}]
    ws = dict(WORKLOADS, **{"global.w": ("n1", "10.64.0.9", {})})
    ps = policy_set(pols, workloads=ws)
    programs = policy_compile.host_programs(ps, ipam_result(ws))
    endpoint = next(e for e in programs["n1"]["endpoints"] if e["workload"] == "global.w")
    # no order: by Felix key, "global/x" (the namespaced one) before "x" (the global one)
    assert endpoint["ingress"] == [policy_compile.chain_name("global/x", "ingress"), policy_compile.chain_name("x", "ingress")]
    assert len(set(endpoint["ingress"])) == 2


def test_summary_counts():
    programs = policy_compile.host_programs(policy_set(WEB_DB), ipam_result())
    assert policy_compile.summary(programs) == {
        "hosts": 2,
        "endpoints": 8,
        "chains": 2,
        "sets": 1,
        "endpoints_with_ingress_policy": 1,
        "endpoints_with_egress_policy": 4,
    }


def test_a_bad_veth_prefix_is_refused():
    import pytest

    with pytest.raises(ValueError, match="veth_prefix"):
        policy_compile.host_programs(policy_set([]), ipam_result(), veth_prefix="toolong")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), st.lists(flow_args(), min_size=1, max_size=25))
def test_the_compiled_programs_agree_with_the_evaluator(pols, flows):
    ps = policy_set(pols)
    programs = policy_compile.host_programs(ps, ipam_result())
    for args in flows:
        flow = policy_eval.make_flow(ps, **args)
        expected = policy_eval.verdict(ps, flow)
        allowed, egress_ref, ingress_ref = ir_verdict(programs, NODES, _pkt(flow))
        assert allowed == expected.allowed, (flow.describe(), expected.text(), pols)
        assert egress_ref == _ref(expected.egress), (flow.describe(), expected.text())
        assert ingress_ref == _ref(expected.ingress), (flow.describe(), expected.text())


def test_sets_hold_canonical_sorted_cidrs():
    programs = policy_compile.host_programs(policy_set([{"name": "x", "ingress": [{"action": "Allow", "source": {"selector": "all()"}}]}]), ipam_result())
    for program in programs.values():
        for members in program["sets"].values():
            assert members == sorted(members, key=lambda c: int(ipaddress.IPv4Network(c).network_address))
            assert all(str(ipaddress.IPv4Network(c)) == c for c in members)


# --------------------------------------------------------------------------- dual stack

DUAL = [
    {
        "name": "web-in",
        "namespace": "blue",
        "selector": "app == 'web'",
        "ingress": [
            {"action": "Deny", "ipVersion": 6, "protocol": "TCP", "destination": {"ports": [22]}},
            {"action": "Allow", "source": {"nets": ["fd00:64::/64"]}},
            {"action": "Allow", "protocol": "ICMPv6", "icmp": {"type": 128}},
            {"action": "Allow", "source": {"selector": "app == 'db'", "namespace_selector": "all()"}},
            {"action": "Allow", "ipVersion": 4, "protocol": "ICMP"},
        ],
    }
]


def test_an_ipv4_only_fleet_gets_exactly_the_ipv4_program():
    """No workload with an IPv6 address: no sets6, address6 or ip_version; the IPv6-only rules (ipVersion 6,
    IPv6 nets, protocol ICMPv6) left out, the others as they were compiled before IPv6 existed."""
    v4_rules = [r for r in DUAL[0]["ingress"] if r.get("ipVersion") != 6 and "nets" not in r.get("source", {}) and r.get("protocol") != "ICMPv6"]
    only_v4 = policy_compile.host_programs(policy_set([dict(DUAL[0], ingress=[dict(r) for r in v4_rules])]), ipam_result())
    programs = policy_compile.host_programs(policy_set(DUAL), ipam_result())
    assert all(set(p) == {"version", "sets", "chains", "endpoints"} for p in programs.values())
    assert all("address6" not in e for p in programs.values() for e in p["endpoints"])
    for host, program in programs.items():
        for name, chain in program["chains"].items():
            assert [r["ref"] for r in chain["rules"]] == ["blue/web-in ingress[3]", "blue/web-in ingress[4]"]
            assert all("ip_version" not in r for r in chain["rules"])
            # the same rules as the IPv4-only policy's, but for their refs (their index in the policy)
            assert [{k: v for k, v in r.items() if k != "ref"} for r in chain["rules"]] == [
                {k: v for k, v in r.items() if k != "ref"} for r in only_v4[host]["chains"][name]["rules"]
            ]


def test_a_dual_stack_program_has_ipv6_sets_addresses_and_rule_versions():
    ps = policy_set(DUAL, dual=True)
    assert ps.dual_stack and ps.nodes6 == {n: int(ipaddress.IPv6Address(a)) for n, a in NODES6.items()}
    programs = policy_compile.host_programs(ps, ipam_result(dual=True))
    n1 = programs["n1"]
    assert set(n1) == {"version", "sets", "sets6", "chains", "endpoints"} and set(n1["sets6"]) == set(n1["sets"])
    by = {e["workload"]: e for e in n1["endpoints"]}
    assert by["blue.web-1"]["address6"] == "fd00:64::1" and "address6" not in by["default.tool"]
    (chain,) = n1["chains"].values()
    versions = [r.get("ip_version") for r in chain["rules"]]
    assert versions == [6, 6, 6, None, 4]  # ipVersion, the nets' family, ICMPv6's, both, ipVersion
    assert chain["rules"][1]["source"]["nets"] == ["fd00:64::/64"]
    assert chain["rules"][2]["protocol"] == 58 and chain["rules"][2]["icmp"] == {"type": 128, "code": None}
    name = chain["rules"][3]["source"]["set"]
    assert n1["sets"][name] == ["10.64.0.2/32", "10.64.1.3/32"]  # blue.db-1 and red.db-1 (every namespace)
    assert n1["sets6"][name] == ["fd00:64::2/128"]  # red.db-1 has no IPv6 address


def test_the_ipv6_matrix_follows_the_ipv6_rules():
    ps = policy_set(DUAL, dual=True)
    v4 = policy_eval.reachability(ps, 22)
    v6 = policy_eval.reachability(ps, 22, family=6)
    assert set(v6) == set(WORKLOADS6) and set(v4) == set(WORKLOADS)
    # to blue.web-1 (selected): IPv6 TCP 22 denied by ingress[0] whoever sends it; ICMPv6 echo allowed by ingress[1]
    # from fd00:64::/64 (n1's workloads) or by ingress[2]; over IPv4 ICMP allowed by ingress[4], TCP 22 only from db
    assert v6["red.api-1"]["blue.web-1"] == {"icmp": True, "tcp": False}
    assert v6["blue.db-1"]["blue.web-1"] == {"icmp": True, "tcp": False}
    assert v4["red.api-1"]["blue.web-1"] == {"icmp": True, "tcp": False}
    assert v4["blue.db-1"]["blue.web-1"] == {"icmp": True, "tcp": True}
    assert v4["red.db-1"]["blue.web-1"] == {"icmp": True, "tcp": True}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(dual=True), st.lists(flow_args(6) | flow_args(4), min_size=1, max_size=25))
def test_the_compiled_dual_stack_programs_agree_with_the_evaluator_for_both_families(pols, flows):
    ps = policy_set(pols, dual=True)
    programs = policy_compile.host_programs(ps, ipam_result(dual=True))
    for args in flows:
        flow = policy_eval.make_flow(ps, **args)
        expected = policy_eval.verdict(ps, flow)
        nodes = NODES6 if flow.family == 6 else NODES
        allowed, egress_ref, ingress_ref = ir_verdict(programs, nodes, _pkt(flow))
        assert allowed == expected.allowed, (flow.describe(), expected.text(), pols)
        assert egress_ref == _ref(expected.egress), (flow.describe(), expected.text())
        assert ingress_ref == _ref(expected.ingress), (flow.describe(), expected.text())


def test_an_ipv6_only_workload_is_an_endpoint_without_an_ipv4_address():
    programs = policy_compile.host_programs(policy_set(DUAL, dual=True), ipam_result(dual=True))
    (v6only,) = [e for e in programs["n2"]["endpoints"] if e["workload"] == "blue.v6only"]
    assert v6only["address"] is None and v6only["address6"] == "fd00:64:0:1::9" and v6only["ingress"]  # app == web: selected
    from ansible_collections.l3.calico.plugins.module_utils import policy_rules

    parsed = policy_rules.parse_program(programs["n2"])
    assert any(e.address is None and e.address6 == "fd00:64:0:1::9" for e in parsed.endpoints)
    assert "fd00:64:0:1::9" not in json.dumps(programs["n2"]["sets"]) and policy_rules.render_nft(parsed)
