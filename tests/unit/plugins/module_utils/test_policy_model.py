# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""policy_model: Calico's policy model read from the inventory, and every bad input refused with ONE error
naming the policy, the rule, the field and the value."""

from __future__ import annotations

import pytest

from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.policy_model import EGRESS, INGRESS, PolicyError, PolicySet
from tests.unit.plugins.module_utils.policy_helpers import policy_set


def one(policy, **kw):
    return PolicySet.from_inventory([policy], **kw).policies[0]


# libcalico-go clientv3 defaultPolicyTypesField: Ingress unless there are egress rules only; both with both
@pytest.mark.parametrize(
    "rules, types",
    [
        ({}, (INGRESS,)),
        ({"ingress": [{"action": "Allow"}]}, (INGRESS,)),
        ({"egress": [{"action": "Allow"}]}, (EGRESS,)),
        ({"ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}]}, (INGRESS, EGRESS)),
        ({"ingress": [], "egress": []}, (INGRESS,)),
        ({"types": ["Egress"]}, (EGRESS,)),
        ({"types": ["Egress", "Ingress"], "ingress": [{"action": "Deny"}]}, (INGRESS, EGRESS)),
        ({"types": [], "egress": [{"action": "Deny"}]}, (EGRESS,)),
    ],
)
def test_types_are_inferred_as_calico_does(rules, types):
    assert one({"name": "p", **rules}).types == types


def test_policies_are_ordered_by_order_then_felix_key_absent_order_last():
    pols = [
        {"name": "z-no-order"},
        {"name": "a-no-order"},
        {"name": "b", "order": 100},
        {"name": "a", "order": 100, "namespace": "blue"},  # felix key blue/a
        {"name": "c", "order": 100},
        {"name": "early", "order": 1.5},
        {"name": "negative", "order": -3},
    ]
    ps = PolicySet.from_inventory(pols)
    assert [p.display for p in ps.policies] == [
        "global/negative",
        "global/early",
        "global/b",  # "b" < "blue/a" < "c"
        "blue/a",
        "global/c",
        "global/a-no-order",
        "global/z-no-order",
    ]


def test_calico_spelling_of_fields_is_accepted():
    p = one(
        {
            "name": "p",
            "namespaceSelector": "team == 'a'",
            "ingress": [
                {
                    "action": "Allow",
                    "protocol": "ICMP",
                    "notICMP": {"type": 8},
                    "notProtocol": "TCP",
                    "source": {"notNets": ["10.0.0.0/8"], "notSelector": "app == 'x'", "namespaceSelector": "all()"},
                }
            ],
            "egress": [{"action": "Deny", "protocol": "TCP", "destination": {"notPorts": ["1:1023"]}}],
        }
    )
    rule = p.ingress[0]
    assert rule.not_icmp.type == 8 and rule.not_protocol == 6 and rule.source.not_nets == ((0x0A000000, 8),)
    assert p.egress[0].destination.not_ports == ((1, 1023),)
    assert p.selection.namespace_selector == "team == 'a'"


def test_nets_are_masked_and_addresses_are_slash_32():
    rule = one({"name": "p", "ingress": [{"action": "Allow", "source": {"nets": ["10.1.2.3/16", "192.0.2.9"]}}]}).ingress[0]
    assert rule.source.nets == ((0x0A010000, 16), (0xC0000209, 32))


def test_selection_scoping_follows_calico():
    ps = policy_set(
        [
            {
                "name": "ns-policy",
                "namespace": "blue",
                "selector": "app == 'web'",
                "ingress": [
                    {"action": "Allow", "source": {"selector": "app == 'db'"}},
                    {"action": "Allow", "source": {"not_selector": "app == 'db'"}},
                    {"action": "Allow", "source": {"namespace_selector": "team == 'b'"}},
                    {"action": "Allow", "source": {"namespace_selector": "global()"}},
                    {"action": "Allow", "source": {"nets": ["10.0.0.0/8"]}},
                ],
            },
            {"name": "global-policy", "selector": "app == 'web'", "namespace_selector": "team == 'a'"},
        ]
    )
    w = ps.workloads
    by_name = {p.display: p for p in ps.policies}
    ns_policy, global_policy = by_name["blue/ns-policy"], by_name["global/global-policy"]
    selected = sorted(i for i in w if ps.selects(ns_policy.selection, w[i]))
    assert selected == ["blue.web-1", "blue.web-2"]  # only its own namespace
    assert sorted(i for i in w if ps.selects(global_policy.selection, w[i])) == ["blue.web-1", "blue.web-2", "green.web-1"]  # team a
    rules = ns_policy.ingress
    assert sorted(i for i in w if ps.selects(rules[0].source.selection, w[i])) == ["blue.db-1"]  # scoped to blue
    # not_selector alone: "in blue" positively, "app == 'db'" negatively (any namespace)
    assert sorted(i for i in w if ps.selects(rules[1].source.selection, w[i])) == ["blue.db-1", "blue.web-1", "blue.web-2"]
    assert sorted(i for i in w if ps.selects(rules[1].source.not_selection, w[i])) == ["blue.db-1", "red.db-1"]
    assert sorted(i for i in w if ps.selects(rules[2].source.selection, w[i])) == ["red.api-1", "red.db-1", "red.web-1"]
    assert [i for i in w if ps.selects(rules[3].source.selection, w[i])] == []  # global(): no namespaced endpoint
    assert rules[4].source.selection is None  # nets only: not scoped


def test_implicit_labels_are_there_for_selectors():
    ps = policy_set([])
    labels = ps.workloads["red.web-1"].selector_labels
    assert labels["projectcalico.org/namespace"] == "red"
    assert labels["pcns.team"] == "b" and labels["pcns.projectcalico.org/name"] == "red"
    assert ps.namespace("red").selector_labels == {"team": "b", "env": "prod", "projectcalico.org/name": "red"}


def test_a_workloads_own_label_wins_over_an_inherited_one():
    ps = PolicySet.from_inventory([], {"blue": {"labels": {"team": "a"}}}, {"n1": [{"name": "w", "namespace": "blue", "labels": {"pcns.team": "z"}}]})
    labels = ps.workloads["blue.w"].selector_labels
    assert labels["pcns.team"] == "z" and labels["pcns.projectcalico.org/name"] == "blue" and labels["projectcalico.org/namespace"] == "blue"


def test_workloads_take_addresses_and_hosts_from_the_ipam_result():
    ps = policy_set([])
    w = ps.workloads["blue.db-1"]
    assert (w.host, w.ip, w.address) == ("n1", "10.64.0.2", 0x0A400002)
    assert ps.nodes["n2"] == 0xC0A8320C


P = "calico_policies[0]"


def bad(policy_changes: dict, rule=None, side=None):
    policy = {"name": "web", "namespace": "blue", "selector": "app == 'web'", "ingress": [{"action": "Allow"}]}
    policy.update(policy_changes)
    if rule is not None:
        policy["ingress"] = [{"action": "Allow", **rule}]
    return [policy]


# (id, policies, strings the message must contain): policy, rule, field and value
CASES = [
    ("unknown-action", bad({}, {"action": "Accept"}), ["policy blue/web", "ingress[0].action", "'Accept'", "unknown action"]),
    ("action-lower-case", bad({}, {"action": "allow"}), ["ingress[0].action", "'allow'", "Allow, Deny, Log, Pass"]),
    ("unknown-protocol", bad({}, {"protocol": "GRE"}), ["ingress[0].protocol", "'GRE'", "unknown protocol"]),
    ("protocol-zero", bad({}, {"protocol": 0}), ["ingress[0].protocol", "0", "1-255"]),
    ("protocol-256", bad({}, {"protocol": 256}), ["ingress[0].protocol", "256"]),
    ("icmpv6-with-ipversion-4", bad({}, {"protocol": "ICMPv6", "ipVersion": 4}), ["ingress[0].ip_version", "4", "ipversion to '6' with protocol icmpv6"]),
    ("icmp-with-ipversion-6", bad({}, {"not_protocol": "ICMP", "ip_version": 6}), ["ingress[0].ip_version", "6", "ipversion to '4' with not_protocol icmp"]),
    ("ipversion-5", bad({}, {"ipVersion": 5}), ["ingress[0].ip_version", "5", "must be 4 or 6"]),
    ("ipversion-string", bad({}, {"ipVersion": "6"}), ["ingress[0].ip_version", "'6'", "must be 4 or 6"]),
    ("ipversion-twice", bad({}, {"ipVersion": 6, "ip_version": 6}), ["ingress[0].ip_version", "given twice"]),
    ("not-protocol-unknown", bad({}, {"not_protocol": "tcp"}), ["ingress[0].not_protocol", "'tcp'"]),
    ("ports-without-protocol", bad({}, {"destination": {"ports": [80]}}), ["ingress[0].destination.ports", "[80]", "TCP, UDP or SCTP", "not set"]),
    ("ports-with-icmp", bad({}, {"protocol": "ICMP", "source": {"not_ports": [80]}}), ["ingress[0].source.not_ports", "ICMP"]),
    ("ports-with-udplite", bad({}, {"protocol": "UDPLite", "destination": {"ports": [80]}}), ["ingress[0].destination.ports", "UDPLite"]),
    (
        "port-range-upside-down",
        bad({}, {"protocol": "TCP", "destination": {"ports": [80, "90:80"]}}),
        ["ingress[0].destination.ports[1]", "'90:80'", "upside down"],
    ),
    ("port-too-big", bad({}, {"protocol": "TCP", "destination": {"ports": [65536]}}), ["ingress[0].destination.ports[0]", "65536"]),
    ("port-garbage", bad({}, {"protocol": "TCP", "destination": {"ports": ["80-90"]}}), ["ingress[0].destination.ports[0]", "'80-90'"]),
    ("port-named", bad({}, {"protocol": "TCP", "destination": {"ports": ["http"]}}), ["ingress[0].destination.ports[0]", "'http'", "named ports"]),
    ("ports-not-a-list", bad({}, {"protocol": "TCP", "destination": {"ports": 80}}), ["ingress[0].destination.ports", "80", "list"]),
    ("bad-selector", bad({"selector": "app = 'web'"}), ["policy blue/web", "selector", "app = 'web'", "syntax error"]),
    ("bad-rule-selector", bad({}, {"source": {"selector": "app == web"}}), ["ingress[0].source.selector", "app == web", "quoted string"]),
    ("bad-namespace-selector", bad({}, {"source": {"namespace_selector": "has(team"}}), ["ingress[0].source.namespace_selector", "has(team"]),
    ("global-in-selector", bad({}, {"source": {"selector": "global()"}}), ["ingress[0].source.selector", "global()", "namespace_selector"]),
    ("global-combined", bad({}, {"source": {"namespace_selector": "global() || team == 'a'"}}), ["ingress[0].source.namespace_selector", "cannot be combined"]),
    ("icmp-with-tcp", bad({}, {"protocol": "TCP", "icmp": {"type": 8}}), ["ingress[0].icmp", "{'type': 8}", "protocol to ICMP", "'TCP'"]),
    ("icmp-without-protocol", bad({}, {"icmp": {"type": 8}}), ["ingress[0].icmp", "protocol to ICMP", "not set"]),
    ("not-icmp-with-udp", bad({}, {"protocol": "UDP", "not_icmp": {"type": 8}}), ["ingress[0].not_icmp", "protocol to ICMP"]),
    ("icmp-code-without-type", bad({}, {"protocol": "ICMP", "icmp": {"code": 1}}), ["ingress[0].icmp.code", "1", "without an ICMP type"]),
    ("icmp-type-255", bad({}, {"protocol": "ICMP", "icmp": {"type": 255}}), ["ingress[0].icmp.type", "255", "0-254"]),
    ("icmp-unknown-key", bad({}, {"protocol": "ICMP", "icmp": {"type": 8, "kode": 0}}), ["ingress[0].icmp.kode", "unknown key"]),
    (
        "duplicate-name",
        [{"name": "web", "namespace": "blue"}, {"name": "web", "namespace": "red"}, {"name": "web", "namespace": "blue"}],
        ["policy blue/web (calico_policies[2])", "name", "'web'", "calico_policies[0] has the same name in namespace blue"],
    ),
    ("duplicate-global-name", [{"name": "g"}, {"name": "g"}], ["policy global/g (calico_policies[1])", "the global policies"]),
    ("unknown-policy-key", bad({"selektor": "all()"}), ["policy blue/web (calico_policies[0])", "selektor", "unknown key"]),
    ("unknown-rule-key", bad({}, {"ports": [80]}), ["ingress[0].ports", "unknown key 'ports' in a rule"]),
    ("unknown-entity-key", bad({}, {"source": {"net": ["10.0.0.0/8"]}}), ["ingress[0].source.net", "unknown key 'net'"]),
    ("both-spellings", bad({}, {"source": {"not_nets": [], "notNets": []}}), ["ingress[0].source.notNets", "given twice"]),
    ("namespace-selector-on-namespaced", bad({"namespace_selector": "team == 'a'"}), ["policy blue/web", "namespace_selector", "only a global policy"]),
    ("global-in-policy-namespace-selector", [{"name": "g", "namespace_selector": "global()"}], ["policy global/g", "namespace_selector", "global()"]),
    ("bad-name", [{"name": "Web_1"}], [P, "name", "'Web_1'"]),
    ("no-name", [{"selector": "all()"}], [P, "name", "None"]),
    ("name-newline", [{"name": "web\n"}], [P, "name", "'web\\n'"]),
    ("bad-namespace", [{"name": "w", "namespace": "Blue"}], [P, "namespace", "'Blue'"]),
    ("bad-order", bad({"order": "first"}), ["policy blue/web", "order", "'first'"]),
    ("order-bool", bad({"order": True}), ["policy blue/web", "order", "True"]),
    ("bad-type", bad({"types": ["ingress"]}), ["types[0]", "'ingress'", "Ingress or Egress"]),
    ("type-twice", bad({"types": ["Ingress", "Ingress"]}), ["types[1]", "more than once"]),
    ("bad-net", bad({}, {"source": {"nets": ["10.0.0.300/8"]}}), ["ingress[0].source.nets[0]", "10.0.0.300/8"]),
    (
        "ipv6-net-with-ipversion-4",
        bad({}, {"ipVersion": 4, "destination": {"not_nets": ["fd00::/8"]}}),
        ["ingress[0].destination.not_nets", "fd00::/8", "doesn't match CIDR version"],
    ),
    (
        "ipv4-net-with-ipversion-6",
        bad({}, {"ipVersion": 6, "source": {"nets": ["10.0.0.0/8"]}}),
        ["ingress[0].source.nets", "10.0.0.0/8", "doesn't match CIDR version"],
    ),
    ("nets-mixing-families", bad({}, {"source": {"nets": ["10.0.0.0/8", "fd00::/8"]}}), ["ingress[0].source.nets", "fd00::/8", "both IPv4 and IPv6 CIDRs"]),
    (
        "rule-mixing-families",
        bad({}, {"source": {"nets": ["10.0.0.0/8"]}, "destination": {"notNets": ["fd00::/8"]}}),
        ["ingress[0].destination.not_nets", "fd00::/8", "both IPv4 and IPv6"],
    ),
    ("bad-ipv6-net", bad({}, {"destination": {"nets": ["fd00::zz/64"]}}), ["ingress[0].destination.nets[0]", "fd00::zz/64", "not an IPv6 network"]),
    ("ipv6-prefix-129", bad({}, {"destination": {"nets": ["fd00::/129"]}}), ["ingress[0].destination.nets[0]", "fd00::/129", "not an IPv6 network"]),
    ("rules-not-a-list", bad({"egress": {"action": "Allow"}}), ["policy blue/web", "egress", "list of rules"]),
    ("rule-not-a-mapping", bad({"egress": ["Allow"]}), ["egress[0]", "'Allow'", "mapping"]),
    ("policies-not-a-list", {"name": "x"}, ["calico_policies", "list of policies"]),
]


@pytest.mark.parametrize("policies, expect", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error(policies, expect):
    with pytest.raises(PolicyError) as err:
        PolicySet.from_inventory(policies)
    assert isinstance(err.value, L3CalicoError) and isinstance(err.value, ValueError)
    for text in expect:
        assert text in str(err.value), (text, str(err.value))


@pytest.mark.parametrize(
    "namespaces, workloads, expect",
    [
        ({"Blue": {}}, None, ["calico_namespaces.Blue", "DNS label"]),
        ({"blue": {"labels": {"team": "a b"}}}, None, ["calico_namespaces.blue.labels.team", "'a b'", "label value"]),
        ({"blue": {"lables": {}}}, None, ["calico_namespaces.blue.lables", "unknown key"]),
        ({"blue": {"labels": {"projectcalico.org/name": "x"}}}, None, ["projectcalico.org/name", "set by Calico"]),
        (None, {"n1": [{"name": "w", "labels": {"app": 5}}]}, ["n1", "calico_workloads[0].labels.app", "5", "string"]),
        (None, {"n1": [{"name": "w", "labels": {"bad key": "x"}}]}, ["n1", "calico_workloads[0].labels.bad key", "label name"]),
        (None, {"n1": [{"name": "w"}], "n2": [{"name": "w"}]}, ["n2", "calico_workloads[0].name", "default.w", "listed twice", "n1"]),
        (None, {"n1": [{"name": "W"}]}, ["n1", "calico_workloads[0].name", "'W'"]),
    ],
)
def test_bad_namespaces_and_workloads_are_refused(namespaces, workloads, expect):
    with pytest.raises(PolicyError) as err:
        PolicySet.from_inventory([], namespaces, workloads)
    for text in expect:
        assert text in str(err.value), (text, str(err.value))


def test_an_inventory_workload_missing_from_the_ipam_result_is_refused():
    from tests.unit.plugins.module_utils.policy_helpers import ipam_result

    with pytest.raises(PolicyError, match=r"n1: calico_workloads='blue.ghost': not in the IPAM result"):
        PolicySet.from_inventory([], {}, {"n1": [{"name": "ghost", "namespace": "blue"}]}, ipam_result())


def test_at_least_the_issues_bad_input_classes():
    ids = {c[0] for c in CASES}
    for needed in ("unknown-action", "unknown-protocol", "ports-without-protocol", "port-range-upside-down", "bad-selector", "icmp-with-tcp", "duplicate-name"):
        assert needed in ids
