# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""policy_eval: Calico's verdicts for cases taken from Calico's documentation (docs.tigera.io, Calico Open
Source: "Get started with Calico network policy", "Policy rules", "Use namespace rules in policy", "Use
ICMP/ping rules in policy", "Adopt a zero trust network model / default deny", the NetworkPolicy and
GlobalNetworkPolicy resource references for order and Pass). Every expectation is stated by hand.

The fleet (policy_helpers): namespaces blue (team=a), red (team=b, env=prod), green (team=a, env=dev),
default; workloads blue.web-1 (app=web, role=x, n1, 10.64.0.1), blue.web-2 (app=web, n2, 10.64.1.1),
blue.db-1 (app=db, role=y, n1, 10.64.0.2), red.web-1 (app=web, role=y, n2, 10.64.1.2), red.api-1
(app=api, n1, 10.64.0.3), red.db-1 (app=db, n2, 10.64.1.3), default.tool (no labels, n1, 10.64.0.4),
green.web-1 (app=web, role=x, n2, 10.64.1.4); nodes n1 192.168.50.11, n2 192.168.50.12.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.l3.calico.plugins.module_utils import policy_eval as pe
from tests.unit.plugins.module_utils.policy_helpers import NAMESPACES, WORKLOADS, flow_args, policies, policy_set


def check(ps, src, dst, protocol="TCP", port=None, **kw):
    return pe.verdict(ps, pe.make_flow(ps, src, dst, protocol, port, **kw))


# "Get started with Calico network policy": allow-tcp-6379 in namespace production, here blue with app=db
# the database and app=web the frontend.
ALLOW_TCP_6379 = {
    "name": "allow-tcp-6379",
    "namespace": "blue",
    "selector": "app == 'db'",
    "types": ["Ingress", "Egress"],
    "ingress": [{"action": "Allow", "protocol": "TCP", "source": {"selector": "app == 'web'"}, "destination": {"ports": [6379]}}],
    "egress": [{"action": "Allow"}],
}


def test_getting_started_allow_tcp_6379():
    ps = policy_set([ALLOW_TCP_6379])
    v = check(ps, "blue.web-1", "blue.db-1", port=6379)
    assert v.allowed and v.ingress.policy == "blue/allow-tcp-6379" and v.ingress.rule == 0 and v.ingress.reason == pe.RULE
    assert v.egress.reason == pe.NO_POLICY  # web-1 itself: no policy selects it
    # another port: the database is selected for ingress and no rule matches: end of tier, denied
    v = check(ps, "blue.web-1", "blue.db-1", port=6380)
    assert not v.allowed and v.ingress.reason == pe.END_OF_TIER and v.decided_by is v.ingress
    # a frontend in another namespace: the rule's selector is scoped to the policy's namespace
    assert not check(ps, "red.web-1", "blue.db-1", port=6379).allowed
    # UDP to 6379: protocol TCP only
    assert not check(ps, "blue.web-1", "blue.db-1", "UDP", 6379).allowed
    # the database's egress: allowed by egress[0]
    v = check(ps, "blue.db-1", "192.0.2.10", port=443)
    assert v.allowed and v.egress.policy == "blue/allow-tcp-6379" and v.egress.rule == 0
    # red.db-1 has app=db but lives in red: the namespaced policy does not select it
    assert check(ps, "red.api-1", "red.db-1", port=9999).ingress.reason == pe.NO_POLICY


# "Use namespace rules in policy": a rule's namespaceSelector picks the source's namespace by its labels.
def test_namespace_selector_in_a_rule():
    ps = policy_set(
        [
            {
                "name": "allow-from-team-b",
                "namespace": "blue",
                "selector": "app == 'db'",
                "ingress": [{"action": "Allow", "protocol": "TCP", "source": {"selector": "app == 'web'", "namespace_selector": "team == 'b'"}}],
            }
        ]
    )
    assert check(ps, "red.web-1", "blue.db-1", port=5432).allowed  # red has team=b
    assert not check(ps, "blue.web-1", "blue.db-1", port=5432).allowed  # blue has team=a: the namespace selector replaces the own-namespace scope
    assert not check(ps, "red.api-1", "blue.db-1", port=5432).allowed  # team b but not app=web


def test_namespace_selector_of_a_global_policy_and_projectcalico_org_name():
    ps = policy_set(
        [
            {"name": "isolate-team-a", "namespace_selector": "team == 'a'", "types": ["Ingress"]},
            {
                "name": "red-only-from-itself",
                "namespace_selector": "projectcalico.org/name == 'red'",
                "ingress": [{"action": "Allow", "source": {"namespace_selector": "projectcalico.org/name == 'red'"}}],
            },
        ]
    )
    # blue and green (team=a) are isolated for ingress with no rule: denied from anywhere
    assert not check(ps, "red.web-1", "blue.web-2", port=80).allowed
    assert not check(ps, "192.0.2.10", "green.web-1", port=80).allowed
    # red accepts only from red
    assert check(ps, "red.api-1", "red.db-1", port=80).allowed
    assert not check(ps, "default.tool", "red.db-1", port=80).allowed
    # default (no labels, no policy) is open
    assert check(ps, "blue.web-1", "default.tool", port=80).ingress.reason == pe.NO_POLICY


def test_global_namespace_selector_selects_only_non_namespaced_endpoints():
    ps = policy_set([{"name": "p", "namespace": "blue", "ingress": [{"action": "Allow", "source": {"namespace_selector": "global()"}}]}])
    # no workload is non-namespaced: nothing matches, every blue workload is isolated
    assert not check(ps, "red.web-1", "blue.web-1", port=80).allowed
    assert not check(ps, "192.0.2.10", "blue.web-1", port=80).allowed


# Order: "Calico applies the policy with the lowest value first"; a policy without order comes last;
# equal orders by name.
def test_order_lower_first_absent_last():
    ps = policy_set(
        [
            {"name": "allow-all", "ingress": [{"action": "Allow"}]},  # no order: last
            {"name": "deny-80", "order": 10, "ingress": [{"action": "Deny", "protocol": "TCP", "destination": {"ports": [80]}}]},
            {"name": "allow-80-from-red", "order": 5, "ingress": [{"action": "Allow", "source": {"namespace_selector": "projectcalico.org/name == 'red'"}}]},
        ]
    )
    v = check(ps, "blue.web-1", "blue.web-2", port=80)
    assert not v.allowed and (v.ingress.policy, v.ingress.rule) == ("global/deny-80", 0)
    v = check(ps, "red.web-1", "blue.web-2", port=80)
    assert v.allowed and v.ingress.policy == "global/allow-80-from-red"
    v = check(ps, "blue.web-1", "blue.web-2", port=443)
    assert v.allowed and v.ingress.policy == "global/allow-all"


def test_equal_orders_are_broken_by_name():
    ps = policy_set([{"name": "b-allow", "order": 1, "ingress": [{"action": "Allow"}]}, {"name": "a-deny", "order": 1, "ingress": [{"action": "Deny"}]}])
    assert check(ps, "red.web-1", "blue.web-1", port=1).ingress.policy == "global/a-deny"


# Pass: "skips to the next tier... or the profile" - with one tier the namespace profile allows.
def test_pass_ends_the_tier_and_the_profile_allows():
    ps = policy_set(
        [
            {"name": "pass-web", "order": 1, "selector": "app == 'web'", "ingress": [{"action": "Pass", "source": {"nets": ["10.64.0.0/16"]}}]},
            {"name": "deny-all", "order": 2, "ingress": [{"action": "Deny"}]},
        ]
    )
    v = check(ps, "red.api-1", "blue.web-2", port=80)
    assert v.allowed and v.ingress.reason == pe.PASS and (v.ingress.policy, v.ingress.rule) == ("global/pass-web", 0)
    # not from 10.64/16: pass-web does not match, deny-all does
    assert not check(ps, "192.0.2.10", "blue.web-2", port=80).allowed
    # not a web workload: deny-all
    assert not check(ps, "red.api-1", "red.db-1", port=80).allowed


# Log: logs and goes on to the next rule.
def test_log_goes_on():
    ps = policy_set([{"name": "log-then-deny", "ingress": [{"action": "Log"}, {"action": "Deny", "protocol": "UDP"}, {"action": "Allow"}]}])
    v = check(ps, "red.api-1", "blue.web-1", "UDP", 53)
    assert not v.allowed and v.ingress.rule == 1 and v.ingress.logged == ("global/log-then-deny ingress[0]",)
    v = check(ps, "red.api-1", "blue.web-1", port=53)
    assert v.allowed and v.ingress.rule == 2


# "Adopt a zero trust network model": a default-deny global policy for every namespace but one.
def test_default_deny_except_a_namespace():
    ps = policy_set(
        [
            {
                "name": "default-deny",
                "selector": "projectcalico.org/namespace not in {'default'}",
                "types": ["Ingress", "Egress"],
            }
        ]
    )
    v = check(ps, "blue.web-1", "red.db-1", port=80)
    assert not v.allowed and v.egress.reason == pe.END_OF_TIER and v.decided_by is v.egress
    assert check(ps, "default.tool", "192.0.2.10", port=80).allowed
    assert not check(ps, "default.tool", "red.db-1", port=80).allowed  # red.db-1's ingress


# "Use ICMP/ping rules in policy": allow ping (type 8) in the cluster, deny other ICMP; host unreachable
# (type 3 code 1).
def test_icmp_type_and_code():
    ps = policy_set(
        [
            {
                "name": "allow-ping-in-cluster",
                "order": 10,
                "ingress": [{"action": "Allow", "protocol": "ICMP", "source": {"selector": "all()"}, "icmp": {"type": 8}}],
            },
            {"name": "allow-host-unreachable", "order": 20, "ingress": [{"action": "Allow", "protocol": "ICMP", "icmp": {"type": 3, "code": 1}}]},
            {"name": "block-icmp", "order": 200, "ingress": [{"action": "Deny", "protocol": "ICMP"}, {"action": "Allow"}]},
        ]
    )
    assert check(ps, "red.api-1", "blue.web-1", "ICMP", icmp_type=8).allowed
    assert not check(ps, "192.0.2.10", "blue.web-1", "ICMP", icmp_type=8).allowed  # selector: only workloads
    assert check(ps, "192.0.2.10", "blue.web-1", "ICMP", icmp_type=3, icmp_code=1).allowed
    v = check(ps, "192.0.2.10", "blue.web-1", "ICMP", icmp_type=3, icmp_code=0)
    assert not v.allowed and v.ingress.policy == "global/block-icmp"
    assert check(ps, "192.0.2.10", "blue.web-1", port=22).allowed  # TCP: block-icmp's second rule


def test_not_icmp_and_not_protocol():
    ps = policy_set(
        [
            {
                "name": "p",
                "ingress": [
                    {"action": "Allow", "protocol": "ICMP", "not_icmp": {"type": 8, "code": 0}},
                    {"action": "Allow", "not_protocol": "TCP"},
                ],
            }
        ]
    )
    v = check(ps, "red.api-1", "blue.web-1", "ICMP", icmp_type=8, icmp_code=0)
    assert v.allowed and v.ingress.rule == 1  # not_icmp excluded the ping from rule 0; rule 1 (not TCP) allows it
    assert check(ps, "red.api-1", "blue.web-1", "ICMP", icmp_type=0).ingress.rule == 0
    assert check(ps, "red.api-1", "blue.web-1", "UDP", 53).ingress.rule == 1
    assert not check(ps, "red.api-1", "blue.web-1", "TCP", 53).allowed


# "Policy rules": nets / notNets, ports and port ranges, notPorts, notSelector.
def test_nets_not_nets_ports_ranges_not_ports_not_selector():
    ps = policy_set(
        [
            {
                "name": "p",
                "selector": "app == 'db'",
                "ingress": [
                    {"action": "Deny", "source": {"not_nets": ["10.64.0.0/16"]}},
                    {"action": "Allow", "protocol": "TCP", "destination": {"ports": [80, "6040:6050"], "not_ports": [6045]}},
                    {"action": "Allow", "protocol": "UDP", "source": {"not_selector": "app == 'web'"}},
                ],
            }
        ]
    )
    assert not check(ps, "192.0.2.10", "red.db-1", port=80).allowed  # outside 10.64/16: rule 0
    assert check(ps, "red.web-1", "red.db-1", port=6040).allowed
    assert check(ps, "red.web-1", "red.db-1", port=6050).allowed
    assert not check(ps, "red.web-1", "red.db-1", port=6051).allowed
    assert not check(ps, "red.web-1", "red.db-1", port=6045).allowed  # not_ports
    assert not check(ps, "red.web-1", "red.db-1", "UDP", 53).allowed  # not_selector excludes web
    assert check(ps, "red.api-1", "red.db-1", "UDP", 53).allowed
    assert check(ps, "10.64.200.1", "red.db-1", "UDP", 53).allowed  # an address matches no selector, so not_selector holds


def test_source_ports_use_the_ephemeral_default():
    ps = policy_set([{"name": "p", "ingress": [{"action": "Allow", "protocol": "TCP", "source": {"ports": ["32768:60999"]}}]}])
    assert check(ps, "red.api-1", "blue.web-1", port=80).allowed
    assert not check(ps, "red.api-1", "blue.web-1", port=80, src_port=1000).allowed


def test_host_reaches_its_local_workloads_and_a_workload_itself():
    ps = policy_set([{"name": "deny-all", "types": ["Ingress", "Egress"]}])
    v = check(ps, "192.168.50.11", "blue.web-1", port=22)  # n1 holds blue.web-1
    assert v.allowed and v.ingress.reason == pe.HOST_TO_LOCAL
    assert not check(ps, "192.168.50.12", "blue.web-1", port=22).allowed  # the other node: a plain address
    assert check(ps, "blue.web-1", "blue.web-1", port=22).allowed
    # an address that is a workload's is that workload
    assert check(ps, "10.64.0.1", "blue.web-1", port=22).egress.reason == pe.SAME_WORKLOAD


def test_decision_texts():
    ps = policy_set([ALLOW_TCP_6379])
    v = check(ps, "blue.web-1", "blue.db-1", port=6379)
    assert v.text() == (
        "ALLOW: egress of blue.web-1: allow (no policy selects it: profile allow); ingress of blue.db-1: allow by blue/allow-tcp-6379 ingress[0]"
    )
    assert check(ps, "blue.web-1", "blue.db-1", port=1).ingress.text() == "ingress of blue.db-1: deny (end of tier: default deny)"
    assert v.as_dict()["ingress"]["policy"] == "blue/allow-tcp-6379"


@pytest.mark.parametrize(
    "args, message",
    [
        ({"src": "blue.nope", "dst": "blue.db-1", "port": 80}, "no such workload"),
        ({"src": "10.64.0.300", "dst": "blue.db-1", "port": 80}, "neither a workload"),
        ({"src": "blue.web-1", "dst": "blue.db-1"}, "needs a destination port"),
        ({"src": "blue.web-1", "dst": "blue.db-1", "protocol": "ICMP", "port": 80}, "only TCP, UDP and SCTP"),
        ({"src": "blue.web-1", "dst": "blue.db-1", "protocol": "GRE"}, "protocol='GRE'"),
        ({"src": "blue.web-1", "dst": "blue.db-1", "port": "http"}, "port='http'"),
        ({"src": "blue.web-1", "dst": "blue.db-1", "port": 80, "icmp_type": 8}, "only for ICMP"),
    ],
)
def test_bad_flows_are_refused(args, message):
    ps = policy_set([])
    with pytest.raises(pe.FlowError, match=message):
        pe.make_flow(ps, **args)


# --------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(policies(), flow_args())
def test_a_flow_nobody_selects_is_always_allowed(pols, args):
    ps = policy_set(pols)
    flow = pe.make_flow(ps, **args)
    selected = [w for w in (flow.src, flow.dst) if isinstance(w, pe.Workload) and (ps.policies_for(w, "egress") or ps.policies_for(w, "ingress"))]
    if not selected:
        assert pe.verdict(ps, flow).allowed


@settings(max_examples=60, deadline=None)
@given(policies(), flow_args())
def test_an_allow_all_policy_of_order_0_allows_everything(pols, args):
    everything = {"name": "allow-all", "order": 0, "types": ["Ingress", "Egress"], "ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}]}
    ps = policy_set([*pols, everything])
    v = pe.verdict(ps, pe.make_flow(ps, **args))
    assert v.allowed


@settings(max_examples=60, deadline=None)
@given(policies(), flow_args())
def test_a_deny_all_policy_first_denies_every_flow_between_two_workloads(pols, args):
    deny = {"name": "deny-all", "order": -1, "types": ["Ingress", "Egress"], "ingress": [{"action": "Deny"}], "egress": [{"action": "Deny"}]}
    ps = policy_set([*pols, deny])
    flow = pe.make_flow(ps, **args)
    v = pe.verdict(ps, flow)
    if isinstance(flow.src, pe.Workload) and isinstance(flow.dst, pe.Workload) and flow.src.id != flow.dst.id:
        assert not v.allowed and v.egress.policy == "global/deny-all"


@settings(max_examples=40, deadline=None)
@given(policies(), st.sampled_from(list(WORKLOADS)), st.sampled_from(list(WORKLOADS)))
def test_egress_and_ingress_are_independent(pols, src, dst):
    """The verdict is the AND of the source's egress decision and the destination's ingress decision."""
    ps = policy_set(pols)
    flow = pe.make_flow(ps, src, dst, "TCP", 80)
    v = pe.verdict(ps, flow)
    if src != dst:
        assert v.allowed == (pe.decide(ps, flow.src, "egress", flow).allowed and pe.decide(ps, flow.dst, "ingress", flow).allowed)


def test_namespaces_fixture_is_what_the_docstring_says():
    assert NAMESPACES["red"]["labels"] == {"team": "b", "env": "prod"}


# --------------------------------------------------------------------------- flips


def test_flips_lists_the_flows_a_change_flips():
    old = policy_set([ALLOW_TCP_6379])
    changed = dict(
        ALLOW_TCP_6379, ingress=[{"action": "Allow", "protocol": "TCP", "source": {"selector": "app == 'web'"}, "destination": {"ports": ["6379:6380"]}}]
    )
    new = policy_set([changed])
    got = [(f.src, f.dst, f.what(), f.old.allowed, f.new.allowed) for f in pe.flips(old, new)]
    # blue's web workloads may now reach blue.db-1 on 6380 too; nothing else changes
    assert got == [("blue.web-1", "blue.db-1", "TCP 6380", False, True), ("blue.web-2", "blue.db-1", "TCP 6380", False, True)]
    assert pe.flips(old, old) == []


def test_flips_of_a_new_deny_policy_merge_port_ranges():
    old = policy_set([])
    new = policy_set(
        [
            {
                "name": "no-ssh-to-red",
                "namespace": "red",
                "ingress": [{"action": "Deny", "protocol": "TCP", "destination": {"ports": ["22:23"]}}, {"action": "Allow"}],
            }
        ]
    )
    got = pe.flips(old, new)
    # each red workload, TCP 22-23 only, from the 7 other workloads, and from the node that does not hold it
    # (a node reaches its own workloads): n2 -> red.api-1 (on n1), n1 -> red.web-1 and red.db-1 (on n2)
    assert {f.what() for f in got} == {"TCP 22-23"}
    assert {f.dst for f in got} == {"red.web-1", "red.api-1", "red.db-1"}
    assert all(f.old.allowed and not f.new.allowed for f in got)
    assert len(got) == 3 * 7 + 3
    assert {(f.src, f.dst) for f in got if f.src[0].isdigit()} == {
        ("192.168.50.12", "red.api-1"),
        ("192.168.50.11", "red.web-1"),
        ("192.168.50.11", "red.db-1"),
    }
    texts = [f.text() for f in got if f.src == "blue.web-1" and f.dst == "red.db-1"]
    assert texts == ["blue.web-1 -> red.db-1 TCP 22-23: allow -> deny (now ingress of red.db-1: deny by red/no-ssh-to-red ingress[0])"]


def test_flips_when_a_workloads_labels_change():
    from tests.unit.plugins.module_utils.policy_helpers import WORKLOADS as W

    pol = [{"name": "db-from-web", "namespace": "blue", "selector": "app == 'db'", "ingress": [{"action": "Allow", "source": {"selector": "app == 'web'"}}]}]
    relabelled = dict(W, **{"blue.web-2": ("n2", "10.64.1.1", {"app": "cache"})})
    got = pe.flips(policy_set(pol), policy_set(pol, workloads=relabelled))
    assert {(f.src, f.dst) for f in got} == {("blue.web-2", "blue.db-1")}
    assert all(not f.new.allowed for f in got)
    assert {f.what() for f in got} == {"TCP 0-65535", "UDP 0-65535", "SCTP 0-65535", "ICMP any type", "other protocols"}


@settings(max_examples=40, deadline=None)
@given(policies(max_policies=3), policies(max_policies=3), st.lists(flow_args(), min_size=1, max_size=10))
def test_flips_are_exactly_the_flows_that_flip(old_pols, new_pols, flows):
    old, new = policy_set(old_pols), policy_set(new_pols)
    found = pe.flips(old, new)
    for f in found:  # every flip listed flips, at both ends of its port range
        protocol, port, icmp_type, icmp_code = f.probe.sample
        ports = [port] if f.probe.ports is None else list(f.probe.ports)
        for port in ports:
            a = pe.make_flow(old, f.src, f.dst, protocol, port, icmp_type=icmp_type, icmp_code=icmp_code)
            b = pe.make_flow(new, f.src, f.dst, protocol, port, icmp_type=icmp_type, icmp_code=icmp_code)
            assert pe.verdict(old, a).allowed != pe.verdict(new, b).allowed
    for args in flows:  # every flow between workloads (ephemeral source port) that flips is listed
        if args.get("src_port", pe.EPHEMERAL_PORT) != pe.EPHEMERAL_PORT or args["src"] not in WORKLOADS or args["dst"] not in WORKLOADS:
            continue
        a, b = pe.make_flow(old, **args), pe.make_flow(new, **args)
        if pe.verdict(old, a).allowed == pe.verdict(new, b).allowed:
            continue
        listed = [f for f in found if f.covers(args["src"], args["dst"], a.protocol, a.port, a.icmp_type, a.icmp_code)]
        assert listed, (args, old_pols, new_pols)


def test_flips_name_icmp_classes():
    old = policy_set([{"name": "p", "namespace": "red", "selector": "app == 'db'", "ingress": [{"action": "Allow"}]}])
    new = policy_set(
        [
            {
                "name": "p",
                "namespace": "red",
                "selector": "app == 'db'",
                "ingress": [{"action": "Deny", "protocol": "ICMP", "icmp": {"type": 3, "code": 1}}, {"action": "Allow"}],
            }
        ]
    )
    got = pe.flips(old, new)
    assert {f.what() for f in got} == {"ICMP type 3 code 1"}
    assert {f.dst for f in got} == {"red.db-1"}
    probes = {p.what() for p in pe.probes((new,))}
    assert {"ICMP type 3 code 1", "ICMP type 3 codes other than 1", "ICMP types other than 3", "other protocols", "TCP 0-65535"} <= probes


def test_reachability_is_what_verify_expects_between_every_pair():
    """allow-tcp-6379 (above) with the probe's port 6379: stated by hand for the pairs it touches."""
    expected = pe.reachability(policy_set([ALLOW_TCP_6379]), 6379)
    assert sorted(expected) == sorted(WORKLOADS)
    assert all(sorted(row) == sorted(w for w in WORKLOADS if w != src) for src, row in expected.items())
    # blue.db-1 is selected for ingress: only blue's web workloads may connect, and nobody may ping it
    assert expected["blue.web-1"]["blue.db-1"] == {"icmp": False, "tcp": True}
    assert expected["blue.web-2"]["blue.db-1"] == {"icmp": False, "tcp": True}
    assert expected["red.web-1"]["blue.db-1"] == {"icmp": False, "tcp": False}
    assert expected["default.tool"]["blue.db-1"] == {"icmp": False, "tcp": False}
    # its egress allows everything, and nothing else is selected: all the rest passes
    assert expected["blue.db-1"]["red.db-1"] == {"icmp": True, "tcp": True}
    assert expected["red.api-1"]["green.web-1"] == {"icmp": True, "tcp": True}
    denied = sorted((s, d, k) for s, row in expected.items() for d, kinds in row.items() for k, ok in kinds.items() if not ok)
    assert len(denied) == 7 + 5  # ICMP from the 7 others, TCP from the 5 that are not blue's web workloads


# --------------------------------------------------------------------------- dual stack


def test_which_family_a_rule_applies_to():
    rules = [
        {"action": "Allow"},  # both
        {"action": "Allow", "ipVersion": 6},
        {"action": "Allow", "source": {"nets": ["10.0.0.0/8"]}},  # its nets' family
        {"action": "Allow", "destination": {"not_nets": ["fd00::/8"]}},
        {"action": "Allow", "protocol": "ICMP"},  # ICMP is IPv4's, ICMPv6 IPv6's
        {"action": "Allow", "protocol": "ICMPv6", "icmp": {"type": 128}},
        {"action": "Allow", "not_protocol": "ICMPv6"},  # not a family
        {"action": "Allow", "protocol": "ICMP", "source": {"nets": ["fd00::/8"]}},  # contradicts itself: none
    ]
    (policy,) = policy_set([{"name": "x", "ingress": rules}], dual=True).policies
    assert [sorted(r.families) for r in policy.ingress] == [[4, 6], [6], [4], [6], [4], [6], [4, 6], []]
    assert [r.family for r in policy.ingress] == [None, 6, 4, 6, 4, 6, None, None]


def test_verdicts_per_family_and_explain_of_ipv6_ends():
    pols = [
        {
            "name": "web",
            "namespace": "blue",
            "selector": "app == 'web'",
            "ingress": [
                {"action": "Deny", "ipVersion": 6, "protocol": "TCP", "destination": {"ports": [22]}},
                {"action": "Allow", "source": {"nets": ["2001:db8::/32"]}},
                {"action": "Allow", "protocol": "ICMPv6"},
                {"action": "Allow", "protocol": "TCP"},
            ],
        }
    ]
    ps = policy_set(pols, dual=True)
    v6 = pe.make_flow(ps, "red.api-1", "blue.web-1", port=22, family=6)
    assert v6.family == 6 and not pe.verdict(ps, v6).allowed and pe.verdict(ps, v6).ingress.rule == 0
    v4 = pe.make_flow(ps, "red.api-1", "blue.web-1", port=22)
    assert v4.family == 4 and pe.verdict(ps, v4).allowed and pe.verdict(ps, v4).ingress.rule == 3
    outside = pe.make_flow(ps, "2001:db8::7", "blue.web-1", protocol="UDP", port=53)  # the family of the address
    assert outside.family == 6 and pe.verdict(ps, outside).ingress.rule == 1
    ping6 = pe.make_flow(ps, "red.api-1", "blue.web-1", protocol="ICMPv6")
    assert ping6.family == 6 and ping6.icmp_type == 128 and pe.verdict(ps, ping6).ingress.rule == 2
    ping4 = pe.make_flow(ps, "red.api-1", "blue.web-1", protocol="ICMP")
    assert not pe.verdict(ps, ping4).allowed  # ICMPv6's rule is IPv6's: end of tier
    assert "(IPv6)" in ping6.describe() and "fd00" not in ping6.describe()
    # the host reaches its local workloads over IPv6 too (its IPv6 address)
    host = pe.make_flow(ps, "fd00:50::11", "blue.web-1", port=22)
    assert pe.verdict(ps, host).allowed and pe.verdict(ps, host).ingress.reason == pe.HOST_TO_LOCAL


@pytest.mark.parametrize(
    "args, message",
    [
        ({"src": "red.db-1", "dst": "blue.web-1", "family": 6}, "red.db-1: has no IPv6 address"),
        ({"src": "10.64.0.1", "dst": "fd00:64::2"}, "different IP versions"),
        ({"src": "blue.web-1", "dst": "fd00:64::2", "family": 4}, "different IP versions"),
        ({"src": "blue.web-1", "dst": "fd00::zz"}, "neither a workload"),
        ({"src": "blue.web-1", "dst": "blue.db-1", "family": 5}, "family=5"),
    ],
)
def test_bad_ipv6_flows_are_refused(args, message):
    with pytest.raises(pe.FlowError, match=re.escape(message)):
        pe.make_flow(policy_set([], dual=True), port=80, **args)


def test_flips_list_ipv6_flows_after_the_ipv4_ones():
    deny6 = [{"name": "no6", "namespace": "blue", "selector": "app == 'db'", "ingress": [{"action": "Deny", "ipVersion": 6}, {"action": "Allow"}]}]
    flipped = pe.flips(policy_set([], dual=True), policy_set(deny6, dual=True))
    assert flipped and all(f.family == 6 and f.dst == "blue.db-1" for f in flipped)
    assert any(f.text().startswith("blue.web-1 -> blue.db-1 TCP 0-65535 (IPv6): allow -> deny") for f in flipped), [f.text() for f in flipped]
    assert not pe.flips(policy_set([]), policy_set(deny6))  # no IPv6 address anywhere: nothing flips
