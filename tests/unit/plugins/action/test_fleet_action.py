# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The action plugins of the modules that take every node's routing data (plugin_utils/fleet_action.py).

What they promise: a task that leaves the fleet option out runs the module with the host's calico_ipam_result
in its arguments, while the task's own arguments - which ansible-core sends back to the controller's main
process for every host and keeps until the task ends - stay as the task gave them, whatever the fleet's size.
"""

from __future__ import annotations

import importlib
import json
from types import SimpleNamespace

import pytest
from ansible.errors import AnsibleActionFail

IPAM = {
    "nodes": {
        "a": {"ip": "192.168.100.11", "network": "192.168.100.0/24", "blocks": ["10.64.0.0/26"], "workloads": {"w1": "10.64.0.1"}},
        "b": {"ip": "192.168.100.12", "network": "192.168.100.0/24", "blocks": ["10.64.0.64/26"], "workloads": {}},
    },
    "routing": {
        "a": {"ip": "192.168.100.11", "network": "192.168.100.0/24", "blocks": ["10.64.0.0/26"]},
        "b": {"ip": "192.168.100.12", "network": "192.168.100.0/24", "blocks": ["10.64.0.64/26"]},
    },
    "pools": {"p": {"cidr": "10.64.0.0/16", "ipip_mode": "Always"}},
}
PROGRAM = {"workloads": {"cali0a": {"ip": "10.64.0.1"}}, "sets": {}}  # its shape is the module's business
POLICY_PLAN = {"hosts": {"a": PROGRAM, "b": {"workloads": {}, "sets": {}}}, "flips": []}


def action(name: str, args: dict):
    """The collection's action plugin ``name`` on a task with ``args``; the module run is recorded, not made."""
    plugin = importlib.import_module(f"ansible_collections.l3.calico.plugins.action.{name}")
    task = SimpleNamespace(args=args, async_val=0, check_mode=False, action=f"l3.calico.{name}")
    connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir="/tmp/not-used"))
    act = plugin.ActionModule(task, connection, None, None, None)
    act.ran = []

    def execute_module(module_name, module_args, task_vars):
        act.ran.append((module_name, module_args))
        return {"changed": False, "module_args": module_args}

    act._execute_module = execute_module
    return act


@pytest.mark.parametrize(
    ("name", "args", "path", "expected"),
    [
        ("node", {"node": "a", "pools": {}}, ("nodes",), IPAM["routing"]),
        ("tunnels", {"node": "a", "pools": {}}, ("nodes",), IPAM["routing"]),
        ("bird", {"bgp": {"node": "a", "pools": {}}, "supervisor_script": "#!/bin/sh"}, ("bgp", "nodes"), IPAM["routing"]),
        ("host_audit", {"node": "a"}, ("ipam",), {"nodes": IPAM["nodes"], "pools": IPAM["pools"]}),
        ("policy", {"state": "present", "firewall_backend": "nftables"}, ("program",), PROGRAM),
    ],
)
def test_the_fleet_goes_to_the_module_not_into_the_task(name, args, path, expected):
    given = json.loads(json.dumps(args))
    act = action(name, args)
    act.run(task_vars={"inventory_hostname": "a", "calico_ipam_result": IPAM, "calico_policy_plan": POLICY_PLAN})
    [(module, module_args)] = act.ran
    assert module == f"l3.calico.{name}"
    value = module_args
    for key in path:
        value = value[key]
    assert isinstance(value, str) and json.loads(value) == expected  # one JSON text: the module's dict option reads it
    assert act._task.args == given  # the task's own arguments, untouched (nested ones too)
    assert {key: module_args[key] for key in given if key != path[0]} == {key: given[key] for key in given if key != path[0]}


@pytest.mark.parametrize("name", ["node", "tunnels", "bird"])
def test_the_routing_view_serialised_once_by_the_ipam_is_sent_as_it_is(name):
    """The IPAM action serialises its routing view once for the fleet (routing_json); every host's module gets that
    very text - nothing is serialised per host and module."""
    text = json.dumps(IPAM["routing"], separators=(",", ":"))
    args = {"bgp": {"node": "a", "pools": {}}} if name == "bird" else {"node": "a", "pools": {}}
    act = action(name, args)
    act.run(task_vars={"inventory_hostname": "a", "calico_ipam_result": {**IPAM, "routing_json": text}})
    [(_module, module_args)] = act.ran
    assert (module_args["bgp"] if name == "bird" else module_args)["nodes"] is text


def test_a_routing_text_without_its_routing_view_is_not_trusted():
    """routing_json is used only beside the routing view it was made from; alone (a result put together by hand), the
    view the result holds is serialised."""
    act = action("node", {"node": "a"})
    act.run(task_vars={"inventory_hostname": "a", "calico_ipam_result": {"nodes": IPAM["nodes"], "pools": {}, "routing_json": '{"z": {}}'}})
    assert json.loads(act.ran[0][1]["nodes"]) == IPAM["nodes"]


def test_the_ipam_action_serialises_its_routing_view_once(tmp_path):
    """The IPAM action, run for real on a file state: routing_json is its routing view, compact, and the node and
    BGP actions send that text on."""
    nodes = [
        {"name": "a", "ip": "192.168.100.11/24", "workloads": [{"name": "w1"}]},
        {"name": "b", "ip": "192.168.100.12/24", "workloads": []},
    ]
    pools = [{"name": "p", "cidr": "10.64.0.0/16", "block_size": 26, "ipip_mode": "Always"}]
    act = action("ipam", {"nodes": nodes, "pools": pools, "state_file": str(tmp_path / "ipam.json")})
    act._task.diff = False
    result = act.run(task_vars={})
    assert result.get("failed") is not True, result
    assert set(result["routing"]) == {"a", "b"} and "workloads" in result["nodes"]["a"]
    assert json.loads(result["routing_json"]) == result["routing"]
    assert ", " not in result["routing_json"] and ": " not in result["routing_json"]  # compact: sent to every host
    bird = action("bird", {"bgp": {"node": "a", "pools": {}}})
    bird.run(task_vars={"inventory_hostname": "a", "calico_ipam_result": result})
    assert bird.ran[0][1]["bgp"]["nodes"] is result["routing_json"]


def test_the_nodes_alone_without_a_routing_view():
    act = action("node", {"node": "a"})
    act.run(task_vars={"inventory_hostname": "a", "calico_ipam_result": {"nodes": IPAM["nodes"], "pools": {}}})
    assert json.loads(act.ran[0][1]["nodes"]) == IPAM["nodes"]


# This host's own part of the IPAM result, read by the action plugin, not by a Jinja expression indexing the
# fleet's nodes on every host (ansible-core wraps the whole mapping at each use).
IPAM_V6 = {**IPAM, "nodes": {**IPAM["nodes"], "b": {**IPAM["nodes"]["b"], "ipv6": "fd00::12", "workloads": [{"name": "w2"}]}}}


@pytest.mark.parametrize(
    ("name", "host", "expected"),
    [
        ("node", "a", {"workloads": IPAM["nodes"]["a"]["workloads"]}),
        ("workloads", "a", {"workloads": IPAM["nodes"]["a"]["workloads"], "ipv6": False}),
        ("workloads", "b", {"workloads": [{"name": "w2"}], "ipv6": True}),
    ],
)
def test_this_hosts_own_part_is_read_from_the_ipam_result(name, host, expected):
    act = action(name, {"node": host} if name == "node" else {})
    act.run(task_vars={"inventory_hostname": host, "calico_ipam_result": IPAM_V6})
    module_args = act.ran[0][1]
    assert {key: module_args[key] for key in expected} == expected
    assert act._task.args == ({"node": host} if name == "node" else {})  # the task's own arguments, untouched


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("node", {"node": "a", "workloads": [{"name": "mine"}]}),
        ("workloads", {"workloads": [{"name": "mine"}], "ipv6": False}),
        ("workloads", {"workloads": []}),  # a node leaving (node-remove.yml): ipv6 from the IPAM result only
    ],
)
def test_what_the_task_gives_wins(name, args):
    act = action(name, dict(args))
    act.run(task_vars={"inventory_hostname": "b", "calico_ipam_result": IPAM_V6})
    module_args = act.ran[0][1]
    assert {key: module_args[key] for key in args} == args
    if args == {"workloads": []}:
        assert module_args["ipv6"] is True


def test_without_an_ipam_result_the_module_defaults_stand():
    """The node module's workloads (none) and the workloads module's ipv6 are the modules' defaults when there is no
    IPAM result to read them from."""
    node = action("node", {"node": "a", "nodes": {}})
    node.run(task_vars={"inventory_hostname": "a"})
    assert "workloads" not in node.ran[0][1]
    workloads = action("workloads", {"workloads": []})
    workloads.run(task_vars={"inventory_hostname": "a"})
    assert workloads.ran[0][1] == {"workloads": []}


@pytest.mark.parametrize(
    ("ipam", "message"),
    [
        (None, r"^a: calico_ipam_result \(undefined\): the result of role l3.calico.calico_ipam is needed"),
        ({"nodes": {"b": {}}, "pools": {}}, r"^a: calico_ipam_result.nodes has no entry for this host"),
    ],
)
def test_no_workloads_to_read_fails_naming_the_host_before_any_module_runs(ipam, message):
    act = action("workloads", {})
    with pytest.raises(AnsibleActionFail, match=message):
        act.run(task_vars={"inventory_hostname": "a"} if ipam is None else {"inventory_hostname": "a", "calico_ipam_result": ipam})
    assert act.ran == []


def test_a_fleet_option_given_by_the_task_is_passed_as_it_is():
    act = action("node", {"node": "a", "nodes": {"a": {"ip": "192.168.100.11"}}})
    act.run(task_vars={})  # no IPAM result needed
    assert act.ran[0][1]["nodes"] == {"a": {"ip": "192.168.100.11"}}


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("node", {"state": "absent", "node": "a"}),  # a removal takes what it is given
        ("bird", {"state": "absent"}),  # no bgp: the fleet option's parent is not given
        ("bird", {"config": "router id 1.1.1.1;"}),
        ("policy", {"state": "absent"}),
    ],
)
def test_nothing_is_read_where_the_module_does_not_take_the_fleet(name, args):
    act = action(name, args)
    act.run(task_vars={})
    assert act.ran[0][1] == args


@pytest.mark.parametrize(
    ("ipam", "what"),
    [
        (None, "undefined"),
        ("not a result", "str"),
        ({"pools": {}}, "dict"),
        ({"nodes": ["a"], "pools": {}}, "dict"),
        ({"nodes": {}}, "dict"),
    ],
)
def test_no_usable_ipam_result_fails_naming_the_host_before_any_module_runs(ipam, what):
    act = action("bird", {"bgp": {"node": "a", "pools": {}}})
    task_vars = {"inventory_hostname": "a"} if ipam is None else {"inventory_hostname": "a", "calico_ipam_result": ipam}
    with pytest.raises(AnsibleActionFail, match=rf"^a: calico_ipam_result \({what}\): the result of role l3.calico.calico_ipam is needed"):
        act.run(task_vars=task_vars)
    assert act.ran == []


@pytest.mark.parametrize(
    ("plan", "what"),
    [
        (None, "undefined"),
        ({"skipped": True, "changed": False}, "dict"),  # the role's policy_plan task skipped (calico_policy_compile false)
        ({"hosts": {"b": {}}}, "dict"),  # compiled for other hosts only
        ({"hosts": {"a": "not a program"}}, "dict"),
    ],
)
def test_no_program_for_this_host_fails_naming_it(plan, what):
    act = action("policy", {"state": "present"})
    task_vars = {"inventory_hostname": "a"} if plan is None else {"inventory_hostname": "a", "calico_policy_plan": plan}
    with pytest.raises(AnsibleActionFail, match=rf"^a: calico_policy_plan \({what}\): the result of l3.calico.policy_plan is needed"):
        act.run(task_vars=task_vars)
    assert act.ran == []
