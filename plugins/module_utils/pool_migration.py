# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""A pool migration's rounds and printed lines, from the IPAM's evacuation report (``evacuate``).

``playbooks/pool-migrate.yml`` plans every move at once (check mode, ``evacuate.nodes`` = every node),
then runs one round after another: *prepare* (every node learns the new pool, nothing moves), one
round per host - or per batch of hosts (``evacuate.batch``) - with an address to move into the new
pool, *finish* (the leftover tunnel addresses, the old pool). Which rounds run, and the text that shows the plan and each round, are computed here
from :meth:`Planner.evacuation`'s report so that the playbook only loops and prints.

Plain Python, no Ansible import; ``ipam_run.run`` adds :func:`report`'s keys to the evacuation report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

PREPARE = "prepare"
FINISH = "finish"
RELEASED_FOR_GOOD = "(released in the last round: no longer needed)"


def moves_into_new_pool(step: Mapping) -> bool:
    """Whether a node has an address that moves into an enabled pool (not merely a tunnel address
    released without replacement - an encapsulation change - which is the last round's work)."""
    return any(move.get("to") for move in step["moved"])


def batch_name(hosts: list) -> str:
    """A host round's name: the host for a batch of one; the first and last host and the count for
    several (short at any batch size: never the list of the hosts)."""
    return hosts[0] if len(hosts) == 1 else f"{hosts[0]} .. {hosts[-1]} ({len(hosts)} hosts)"


def rounds(evacuation: Mapping, changed: bool, run_nodes: Iterable[str] | None = None, batch: int = 1) -> list:
    """The rounds of the migration planned for every node of ``evacuation``: [{name, nodes, workloads}]
    (``nodes``: whose addresses the round moves; ``workloads``: the hosts whose workloads it converges).

    *prepare* first (no node moves: every node is converged with the new pool, and a host whose move
    an interrupted run recorded but did not apply catches up); then, in name order, the nodes of
    ``run_nodes`` (default every node) with an address moving into the new pool, ``batch`` of them
    (the last round fewer) per round, named by :func:`batch_name`; *finish* (every node, its leftovers)
    last, only while the plan still changes something (the old pool is still in the state) and no node
    with an address to move is left for a later run. Only a host's own round moves its workloads;
    *prepare* and *finish* converge every host's. N hosts to move in batches of B: ceil(N/B) + 2 rounds.
    """
    hosts = sorted(evacuation["nodes"])
    now = set(hosts if run_nodes is None else run_nodes)
    moving = [host for host in hosts if moves_into_new_pool(evacuation["nodes"][host])]
    due = [host for host in moving if host in now]
    result = [{"name": PREPARE, "nodes": [], "workloads": hosts}]
    for start in range(0, len(due), batch):
        group = due[start : start + batch]
        result.append({"name": batch_name(group), "nodes": group, "workloads": group})
    if changed and len(due) == len(moving):
        result.append({"name": FINISH, "nodes": hosts, "workloads": hosts})
    return result


def plan_lines(evacuation: Mapping, pools: Mapping, run_nodes: Iterable[str] | None = None, batch: int = 1) -> list:
    """The plan as pool-migrate.yml prints it: the pools (and the batch size, when more than one host
    moves per round), per node every address that moves (old -> new, and its new block) and every block
    released, then what becomes of the old pool."""
    hosts = sorted(evacuation["nodes"])
    now = sorted(hosts if run_nodes is None else run_nodes)
    new = [(name, pool) for name, pool in pools.items() if not pool.get("disabled")]
    new_names = ", ".join(name for name, _pool in new)
    pace = "host by host" if batch == 1 else f"up to {batch} hosts per round"
    lines = [f"pool migration out of {evacuation['pool']} ({evacuation['cidr']}) into {new_names}, {pace}: {', '.join(hosts)}"]
    if len(now) < len(hosts):
        lines.append(f"this run moves only {', '.join(now)} (calico_migrate_hosts); a later run the others")
    lines.extend(f"new pool {name}: {pool['cidr']}, /{pool['block_size']} blocks, ipip {pool['ipip_mode']}, vxlan {pool['vxlan_mode']}" for name, pool in new)
    for host, step in evacuation["nodes"].items():
        lines.append(f"{host}: {len(step['moved'])} address(es) move, {len(step['released_blocks'])} block(s) released")
        lines.extend(
            f"  {move['owner']} {move['from']} -> {move.get('to') or RELEASED_FOR_GOOD}" + (f" (block {move['block']})" if move.get("block") else "")
            for move in step["moved"]
        )
        lines.extend(f"  block {block} released" for block in step["released_blocks"])
    if evacuation["removed"]:
        lines.append(f"then pool {evacuation['pool']} holds nothing and leaves the IPAM state: drop it from calico_pools")
    else:
        lines.append(f"pool {evacuation['pool']} would still hold {evacuation['remaining']} address(es) in {evacuation['blocks_left']} block(s)")
    return lines


def summary_lines(evacuation: Mapping) -> list:
    """What one round moved, as pool-migrate.yml prints it after the round: per node each address
    (old -> new) and each block released, then what the old pool still holds."""
    lines = []
    for host, step in evacuation["nodes"].items():
        lines.extend(f"{host}: {move['owner']} {move['from']} -> {move.get('to') or '(released)'}" for move in step["moved"])
        lines.extend(f"{host}: block {block} released" for block in step["released_blocks"])
    lines.append(f"pool {evacuation['pool']}: {evacuation['remaining']} address(es) left" + (", removed from the IPAM state" if evacuation["removed"] else ""))
    return lines


def report(evacuation: Mapping, pools: Mapping, changed: bool, run_nodes: Iterable[str] | None = None, batch: int = 1) -> dict:
    """The evacuation report with its ``rounds``, ``plan`` and ``summary`` added (``run_nodes`` and
    ``batch`` shape only ``rounds`` and ``plan``)."""
    run_nodes = None if run_nodes is None else list(run_nodes)
    return dict(
        evacuation,
        rounds=rounds(evacuation, changed, run_nodes, batch),
        plan=plan_lines(evacuation, pools, run_nodes, batch),
        summary=summary_lines(evacuation),
    )
