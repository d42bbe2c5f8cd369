# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""One IPAM run, as the module l3.calico.ipam and its action plugin both do it.

The module (on a host, per-host etcd mode) and the action plugin (in-process on the controller,
the usual way) share the argument spec and ``run``: validate, plan (or audit) and record in one
transaction of the datastore; the planner itself is ipam_planner's.
"""

from __future__ import annotations

from ansible_collections.l3.calico.plugins.module_utils.ipam_etcd import ETCD_ARGUMENT_SPEC, store_from_params
from ansible_collections.l3.calico.plugins.module_utils.ipam_inventory import validate
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import IpamError
from ansible_collections.l3.calico.plugins.module_utils.ipam_planner import Planner
from ansible_collections.l3.calico.plugins.module_utils.ipam_report import audit, audit_with_fixes, build_result
from ansible_collections.l3.calico.plugins.module_utils.pool_migration import report as migration_report

ARGUMENT_SPEC = dict(
    pools=dict(type="list", elements="dict", default=[]),
    config=dict(type="dict", default={}),
    reservations=dict(type="list", elements="str", default=[]),
    # Types only: the IPAM checks every node and workload (validate), each refusal naming host, field and value.
    nodes=dict(type="list", elements="dict"),
    group=dict(type="str"),
    node=dict(type="str"),
    remove_nodes=dict(type="list", elements="str", default=[]),
    # Types only: the IPAM checks the values (validate_evacuate), each refusal naming host, field and value.
    evacuate=dict(
        type="dict",
        options=dict(pool=dict(type="str"), nodes=dict(type="list", elements="str"), run_nodes=dict(type="list", elements="str"), batch=dict(type="int")),
    ),
    audit=dict(type="bool", default=False),
    datastore=dict(type="str", choices=["file", "etcd"], default="file"),
    state_file=dict(type="path"),
    lock_timeout=dict(type="float", default=600.0),
    **ETCD_ARGUMENT_SPEC,
)
REQUIRED_IF = [("datastore", "file", ["state_file"]), ("datastore", "etcd", ["etcd_endpoints"])]
REQUIRED_ONE_OF = [("nodes", "group")]


def refuse_introduced_problems(already: set, problems: list) -> None:
    """A plan whose audit finds a problem the state did not have before it is never written."""
    introduced = [p for p in problems if p not in already]
    if introduced:
        raise IpamError(
            f"calico_nodes: plan: the audit of the planned state finds {len(introduced)} problem(s) the "
            f"recorded state did not have ({'; '.join(introduced[:5])}); nothing was written - "
            "this is a bug of l3.calico, please report it with the inventory"
        )


def run(params: dict, check_mode: bool) -> tuple[dict, str]:
    """Validate, plan and (unless check mode) record; return the result and the diff text."""
    desired = validate(
        params["pools"], params["config"], params["reservations"], params["nodes"], params["node"], params.get("remove_nodes") or [], params.get("evacuate")
    )

    if params.get("audit"):

        def audit_fn(state):
            block_pool = desired.pool_of_blocks(state.blocks)
            result = build_result(desired, state, block_pool)
            result["audit"] = audit_with_fixes(desired, state, block_pool)
            result["problems"] = [entry["problem"] for entry in result["audit"]]
            result["changed"] = False
            return result

        store = store_from_params(params, params.get("datastore") or "file", params.get("state_file"), params.get("lock_timeout", 600.0))
        return store.transact(audit_fn, write=False), ""

    def plan_fn(state):
        planner = Planner(desired, state)
        report = planner.run()
        result = build_result(desired, state, planner.block_pool)
        result["problems"] = audit(desired, state, planner.block_pool)
        result["changed"] = state.changed
        if result["problems"] and state.changed:
            # Rare: the state as recorded (read again, under the same lock) is audited only then.
            refuse_introduced_problems(set(audit(desired, store.load())), result["problems"])
        evacuation = planner.evacuation()
        if evacuation is not None:  # only with evacuate
            result["evacuation"] = migration_report(evacuation, result["pools"], result["changed"], desired.evacuate.run_nodes, desired.evacuate.batch)
        return result, report

    store = store_from_params(params, params.get("datastore") or "file", params.get("state_file"), params.get("lock_timeout", 600.0))
    result, report = store.transact(plan_fn, write=not check_mode)
    lines = report.diff_lines()
    return result, "".join(line + "\n" for line in lines)
