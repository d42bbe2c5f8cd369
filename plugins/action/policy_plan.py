# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Action plugin l3.calico.policy_plan: Calico network policy compiled once for the fleet, on the controller.

Like l3.calico.ipam: the workloads (each host's ``calico_workloads`` of the group, for their labels) are
read from ``hostvars`` in Python, once, values templated only where they hold Jinja; the arguments are
checked against the module's argument spec (held equal to its DOCUMENTATION by a unit test); ``module_utils.policy_model`` checks the
policy model, ``policy_compile`` compiles it, ``policy_eval`` explains one flow or lists the flips of a
change. Nothing is sent to any host. Run it with ``run_once``.
"""

from __future__ import annotations

import json

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.l3.calico.plugins.action.ipam import nodes_from_hostvars
from ansible_collections.l3.calico.plugins.module_utils import policy_compile, policy_eval
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.ipam_result import IpamResult
from ansible_collections.l3.calico.plugins.module_utils.policy_model import PolicySet
from ansible_collections.l3.calico.plugins.modules.policy_plan import ARGUMENT_SPEC as _SPEC


def workloads_by_host(hostvars, groups, group: str, templar) -> dict:
    """``{host: calico_workloads}`` of the hosts of ``group`` (read once per host, as the IPAM reads them)."""
    return {node["name"]: node["workloads"] for node in nodes_from_hostvars(hostvars, groups, group, templar)}


def explain_lines(flow: policy_eval.Flow, verdict: policy_eval.Verdict, raw_rules: dict) -> list:
    """What policy-explain.yml prints: the flow, the verdict, each direction and the rule that decided it."""

    def end(endpoint) -> str:
        if isinstance(endpoint, policy_eval.Workload):
            ip = endpoint.ip6 if flow.family == 6 else endpoint.ip
            return f"{endpoint.id} ({ip or 'no address'}, on {endpoint.host})"
        return policy_eval.endpoint_text(endpoint, flow.family)

    proto = policy_eval.PROTOCOL_NAMES.get(flow.protocol, str(flow.protocol))
    what = f"{proto} port {flow.port} (source port {flow.src_port})" if flow.port is not None else proto
    if flow.icmp_type is not None:
        what += f" type {flow.icmp_type}" + (f" code {flow.icmp_code}" if flow.icmp_code is not None else "")
    if flow.family == 6:
        what += ", IPv6"
    lines = [f"flow: {end(flow.src)} -> {end(flow.dst)}, {what}", f"verdict: {'ALLOW' if verdict.allowed else 'DENY'}"]
    for decision in (verdict.egress, verdict.ingress):
        lines.append(decision.text())
        for ref in decision.logged:
            lines.append(f"  logged by {ref}")
        rule = raw_rules.get((decision.policy, decision.direction, decision.rule))
        if rule is not None:
            lines.append(f"  rule: {json.dumps(rule, sort_keys=True)}")
    if not verdict.allowed:
        lines.append(f"denied by: {verdict.decided_by.text()}")
    return lines


def read_record(path) -> dict:
    """The policy model last applied (``{"policies": [...], "namespaces": {...}}``, role calico_policy's
    record on the controller), or {} when there is none. Read back as strictly as the inventory: a record
    that is not one fails naming the file; its policies are then checked by the model like any."""
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise AnsibleActionFail(f"previous_file {path}: unreadable policy record ({exc})") from None
    if not (isinstance(record, dict) and set(record) == {"policies", "namespaces"}):
        raise AnsibleActionFail(f"previous_file {path}: not a policy record (a mapping of exactly policies and namespaces)")
    if not isinstance(record["policies"], list) or not isinstance(record["namespaces"], dict):
        raise AnsibleActionFail(f"previous_file {path}: policies must be a list and namespaces a mapping")
    return record


def _raw_rules(policy_set: PolicySet, policies: list) -> dict:
    """(policy, direction, index) -> the rule as the inventory wrote it."""
    out = {}
    for policy in policy_set.policies:
        raw = policies[policy.index]
        for direction in ("ingress", "egress"):
            for i, rule in enumerate(raw.get(direction) or []):
                out[(policy.display, direction, i)] = rule
    return out


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(_SPEC)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp  # not used: nothing is transferred

        checked = ArgumentSpecValidator(_SPEC).validate(dict(self._task.args))
        if checked.error_messages:
            raise AnsibleActionFail("; ".join(checked.error_messages))
        args = checked.validated_parameters
        workloads = workloads_by_host(task_vars["hostvars"], task_vars["groups"], args["group"], self._templar)
        result["changed"] = False
        try:
            ipam = IpamResult.of(args["ipam_result"])
            policy_set = PolicySet.from_inventory(args["policies"], args["namespaces"], workloads, ipam)
            if args["explain"]:
                result["explain"] = self._explain(policy_set, args["policies"], args["explain"])
                return result
            if args["matrix"]:
                result["expected"] = policy_eval.reachability(policy_set, args["matrix"]["tcp_port"])
                result["expected_ipv6"] = policy_eval.reachability(policy_set, args["matrix"]["tcp_port"], family=6)
                return result
            programs = policy_compile.host_programs(policy_set, ipam, args["veth_prefix"])
            result["hosts"] = programs
            result["summary"] = dict(policy_compile.summary(programs), policies=len(policy_set.policies))
            previous = args["previous"] or read_record(args["previous_file"])
            # The model as the role records it (JSON): equal to the previous one, nothing flips and the
            # record need not be written again.
            result["record_current"] = previous == json.loads(json.dumps({"policies": args["policies"], "namespaces": args["namespaces"]}))
            if previous:
                flips = []
                if not result["record_current"]:
                    before = PolicySet.from_inventory(previous["policies"], previous["namespaces"], workloads, ipam)
                    flips = [flip.text() for flip in policy_eval.flips(before, policy_set)]
                result["flips"] = flips
                if self._task.diff and flips:
                    result["diff"] = {"prepared": "\n".join(flips)}
        except (L3CalicoError, ValueError) as exc:
            result.update(failed=True, msg=str(exc))
        return result

    @staticmethod
    def _explain(policy_set: PolicySet, policies: list, explain: dict) -> dict:
        flow = policy_eval.make_flow(
            policy_set,
            explain["src"],
            explain["dst"],
            explain["protocol"],
            explain["port"],
            explain["src_port"],
            explain["icmp_type"],
            explain["icmp_code"],
            explain["family"],
        )
        verdict = policy_eval.verdict(policy_set, flow)
        raw = _raw_rules(policy_set, policies)
        out = verdict.as_dict()
        out["flow"] = flow.describe()
        out["rule"] = raw.get((verdict.decided_by.policy, verdict.decided_by.direction, verdict.decided_by.rule))
        out["lines"] = explain_lines(flow, verdict, raw)
        return out
