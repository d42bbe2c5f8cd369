# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""fleet_args.invocation: a fleet-wide option comes back summarised, everything else as given."""

from __future__ import annotations

from ansible_collections.l3.calico.plugins.module_utils.fleet_args import invocation, summary

NODES = {"a": {"ip": "192.168.0.1"}, "b": {"ip": "192.168.0.2"}}


def test_a_top_level_option_is_summarised_and_the_params_are_left_alone():
    params = {"node": "a", "nodes": NODES, "pools": {"p": {}}}
    assert invocation(params, ("nodes",)) == {"module_args": {"node": "a", "nodes": "(2 nodes: not returned)", "pools": {"p": {}}}}
    assert params["nodes"] is NODES


def test_a_suboption_is_summarised_in_a_copy():
    params = {"bgp": {"node": "a", "nodes": NODES, "settings": {"as": 1}}, "config": None}
    out = invocation(params, ("bgp", "nodes"))
    assert out["module_args"]["bgp"] == {"node": "a", "nodes": "(2 nodes: not returned)", "settings": {"as": 1}}
    assert params["bgp"]["nodes"] is NODES


def test_absent_values_stay_as_they_are():
    assert invocation({"bgp": None, "nodes": None}, ("bgp", "nodes"), ("nodes",)) == {"module_args": {"bgp": None, "nodes": None}}
    assert summary(["x"]) == "(not returned)"
