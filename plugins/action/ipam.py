# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Action plugin l3.calico.ipam: the IPAM planned in-process on the controller, once for the fleet.

Controller work the way Ansible intends it (like ``template`` or ``assemble``): the nodes are read
from ``hostvars`` of the group in Python, the task's arguments are checked against the module's
argument spec once (``nodes`` only for its type: the IPAM validates every node and workload itself,
naming host, field and value), and ``module_utils.ipam_run.run`` plans and records in this process -
no module is shipped to a host or to localhost. Run with ``run_once``, the result registered is every
host's: ``nodes[inventory_hostname]`` is its own part, ``routing`` the fleet without its workloads
(what a node needs of the others) and ``routing_json`` the same as one JSON text (what the node and BGP
modules' action plugins send every host: serialised here once), ``summary`` the lines the role prints.

With ``node`` (per-host use, the etcd datastore) the module runs on the host, as before: each host
allocates its own addresses.
"""

from __future__ import annotations

import json

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.ipam_run import ARGUMENT_SPEC, REQUIRED_IF, REQUIRED_ONE_OF, run

# Checked by the spec: everything but the nodes (a list, its items checked by the IPAM).
_SPEC = {name: spec for name, spec in ARGUMENT_SPEC.items() if name != "nodes"}


_INVENTORY_KEYS = (
    ("ip", "calico_node_ip", None),
    ("ipv6", "calico_node_ipv6", None),
    ("labels", "calico_node_labels", {}),
    ("workloads", "calico_workloads", []),
)
_MARKERS = ("{{", "{%", "{#")


def _has_template(value) -> bool:
    """Whether a Jinja expression hides anywhere in ``value`` (inventory data is nearly always plain)."""
    if isinstance(value, str):
        return any(marker in value for marker in _MARKERS)
    if isinstance(value, dict):
        return any(_has_template(k) or _has_template(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_template(v) for v in value)
    return False


def nodes_from_hostvars(hostvars, groups, group: str, templar) -> list:
    """The IPAM's node list from the inventory: each host of ``group`` with its name, calico_node_ip,
    calico_node_ipv6 (optional), calico_node_labels and calico_workloads, read once per host.

    Each host's variables are read as Ansible computes them (``hostvars``, every source and precedence);
    a value is templated with that host's variables only when it holds an expression - templating plain
    data costs more than reading it, and the IPAM validates the values anyway.
    """
    if group not in groups:
        raise AnsibleActionFail(f"group={group!r}: not a group of the inventory")
    nodes = []
    for host in groups[group]:
        variables = hostvars.raw_get(host)
        node = {"name": host}
        for field, key, default in _INVENTORY_KEYS:
            value = variables.get(key, default)
            if _has_template(value):
                value = templar.copy_with_new_env(available_variables=variables).template(value)
            node[field] = value
        nodes.append(node)
    return plain(nodes)


def plain(data):
    """``data`` as plain JSON types: inventory strings carry Ansible's tags (origin, trust), which the
    result would carry on, costing at every step its fleet-sized copy goes through (worker to
    controller, callbacks, register). A value JSON cannot hold is left to the IPAM to refuse."""
    try:
        return json.loads(json.dumps(data))
    except (TypeError, ValueError):
        return data


def routing(nodes: dict) -> dict:
    """What a node needs of the others: address, subnet, blocks, borrowed addresses, tunnel addresses,
    and only the borrowed workloads (their pool) - the fleet without its workloads."""
    return {
        name: {
            "ip": node["ip"],
            "network": node["network"],
            "blocks": node["blocks"],
            "borrowed": node["borrowed"],
            "tunnels": node["tunnels"],
            "workloads": [w for w in node["workloads"] if w.get("borrowed") or w.get("borrowed_ipv6")],
            "ipv6": node.get("ipv6"),
            "network_ipv6": node.get("network_ipv6"),
            "blocks_ipv6": node.get("blocks_ipv6", []),
            "borrowed_ipv6": node.get("borrowed_ipv6", []),
        }
        for name, node in nodes.items()
    }


def summary(result: dict) -> list:
    """The lines the role prints: per node its blocks, addresses, borrowed and tunnel addresses; per pool
    its utilisation; the problems."""
    lines = []
    for name, node in result["nodes"].items():
        tunnels = node["tunnels"]
        lines.append(
            f"node {name}: {len(node['blocks'])} block(s) {' '.join(b['cidr'] for b in node['blocks'])}; "
            f"{sum(1 for w in node['workloads'] if w.get('ip'))} workload address(es); borrowed: "
            f"{' '.join(node['borrowed']) or 'none'}; tunnels: ipip {tunnels.get('ipip') or '-'}, "
            f"vxlan {tunnels.get('vxlan') or '-'}"
        )
        if node.get("blocks_ipv6") or tunnels.get("vxlan_v6"):
            lines[-1] += (
                f"; IPv6: {len(node['blocks_ipv6'])} block(s) {' '.join(b['cidr'] for b in node['blocks_ipv6'])}; "
                f"{sum(1 for w in node['workloads'] if w.get('ipv6'))} address(es); borrowed: {' '.join(node.get('borrowed_ipv6') or []) or 'none'}; "
                f"vxlan-v6 {tunnels.get('vxlan_v6') or '-'}"
            )
    for name, pool in [*result["pools"].items(), *result.get("pools_ipv6", {}).items()]:
        lines.append(
            f"pool {name} {pool['cidr']}: {pool['blocks']} block(s) of /{pool['block_size']}, "
            f"{pool['allocated']}/{pool['capacity']} addresses in use "
            f"({100.0 * pool['allocated'] / pool['capacity']:.2f}%)"
        )
    lines.extend(f"problem: {problem}" for problem in result["problems"])
    if not result["problems"]:
        lines.append("problems: none (the state is consistent)")
    return lines


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp  # not used: nothing is transferred

        args = dict(self._task.args)
        if args.get("nodes") is None and args.get("group"):
            args["nodes"] = nodes_from_hostvars(task_vars["hostvars"], task_vars["groups"], args["group"], self._templar)

        if args.get("node"):
            # Per-host use: the module allocates this host's addresses on the host.
            args.pop("group", None)
            result.update(self._execute_module(module_name="l3.calico.ipam", module_args=args, task_vars=task_vars))
            return result

        nodes = args.pop("nodes", None)
        checked = ArgumentSpecValidator(_SPEC, required_if=REQUIRED_IF).validate(args)
        if checked.error_messages:
            raise AnsibleActionFail("; ".join(checked.error_messages))
        if nodes is None:
            raise AnsibleActionFail(f"one of the following is required: {', '.join(REQUIRED_ONE_OF[0])}")
        if not isinstance(nodes, list):
            raise AnsibleActionFail(f"nodes: a list of nodes is needed, got {type(nodes).__name__}")
        params = dict(checked.validated_parameters, nodes=nodes)

        try:
            planned, diff = run(params, bool(self._task.check_mode))
        except L3CalicoError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        result.update(planned)
        result["routing"] = routing(planned["nodes"])
        result["routing_json"] = json.dumps(result["routing"], separators=(",", ":"))  # once, not per host and module
        result["summary"] = summary(planned)
        if self._task.diff and diff:
            result["diff"] = {"prepared": diff}
        return result
