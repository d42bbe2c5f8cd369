# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""What the IPAM returns (the contract of docs/architecture.md) and its audit (``calicoctl ipam check``)."""

from __future__ import annotations

import dataclasses

from ansible_collections.l3.calico.plugins.module_utils import naming
from ansible_collections.l3.calico.plugins.module_utils.ipam_inventory import Desired
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import (
    AFFINITY_PREFIX,
    TUNNEL_KINDS,
    TUNNEL_TYPES,
    V4,
    V6,
    int_to_ip,
    no_gc,
)
from ansible_collections.l3.calico.plugins.module_utils.ipam_store import (
    IpamState,
    fault,
    free_list_fault,
    overlap_faults,
)


def build_result(desired: Desired, state: IpamState, block_pool: dict | None = None) -> dict:
    """``{"nodes": ..., "pools": ...}`` exactly as docs/architecture.md describes."""
    with no_gc():
        return _build_result(desired, state, block_pool)


def _build_result(desired: Desired, state: IpamState, block_pool: dict | None) -> dict:
    if block_pool is None:
        block_pool = desired.pool_of_blocks(state.blocks)
    blocks = state.blocks
    handles = state.handles
    node_blocks: dict = {}
    node_blocks6: dict = {}
    for (node, cidr), aff in state.affinities.items():
        block = blocks.get(cidr)
        if aff.state == "confirmed" and block is not None and block.affinity == AFFINITY_PREFIX + node:
            pool = block_pool.get(cidr)
            (node_blocks if block.bits == V4 else node_blocks6).setdefault(node, []).append({"cidr": cidr, "pool": pool.name if pool else None})
    # A dual-stack result (calico_pools holds an IPv6 pool): every workload entry also carries its IPv6
    # address (ipv6, pool_ipv6, block_ipv6, borrowed_ipv6); an IPv4-only result is what it always was.
    dual = any(p.bits == V6 for p in desired.pools)
    nodes = {}
    for name, node in desired.nodes.items():
        affine = AFFINITY_PREFIX + name
        workloads = []
        borrowed = []
        borrowed6 = []
        entries = node.workloads
        if dual:
            # one entry per workload: its IPv4 entry, or its IPv6 one when it asks for no IPv4 address
            # (then looked up under a handle no address has: ip null)
            entries = [wl for wl in entries if wl.bits == V4]
            by_id = {wl.id: wl for wl in node.workloads if wl.bits == V6}
            v4_ids = {wl.id for wl in entries}
            entries += [_without_ipv4(wl) for wid, wl in by_id.items() if wid not in v4_ids]
        for wl in sorted(entries, key=lambda w: w.id):
            entry = {"id": wl.id, "name": wl.name, "namespace": wl.namespace, "pool": None, "ip": None, "block": None, "borrowed": False}
            handle = handles.get(wl.handle)
            if handle is not None:
                for cidr in handle.block:
                    block = blocks.get(cidr)
                    ordinal = block.by_handle.get(wl.handle) if block is not None else None
                    if ordinal is not None:
                        pool = block_pool.get(cidr)
                        ip = int_to_ip(block.base + ordinal)
                        entry.update(pool=pool.name if pool else None, ip=ip, block=cidr, borrowed=block.affinity != affine)
                        if entry["borrowed"]:
                            borrowed.append(ip)
                        break
            if dual:
                entry.update(ipv6=None, pool_ipv6=None, block_ipv6=None, borrowed_ipv6=False)
                wl6 = by_id.get(wl.id)
                found = _held(state, block_pool, wl6.handle) if wl6 is not None else None
                if found is not None:
                    ip6, pool6, cidr6, lent = found[0], found[1], found[2], found[3] != affine
                    entry.update(ipv6=ip6, pool_ipv6=pool6, block_ipv6=cidr6, borrowed_ipv6=lent)
                    if lent:
                        borrowed6.append(ip6)
            workloads.append(entry)
        tunnels = {}
        for kind in TUNNEL_KINDS:
            tunnels[kind] = _address_of(state, naming.tunnel_handle_id(kind, name))
        nodes[name] = {
            "ip": node.ip,
            "network": node.network,
            "blocks": node_blocks.get(name, []),
            "workloads": workloads,
            "borrowed": borrowed,
            "tunnels": tunnels,
            "ipv6": node.ipv6,
            "network_ipv6": node.network6,
            "blocks_ipv6": node_blocks6.get(name, []),
            "borrowed_ipv6": borrowed6,
        }
    pools = {}
    pools6 = {}
    for pool in desired.pools:
        mine = [b for cidr, b in blocks.items() if block_pool.get(cidr) is pool]
        (pools if pool.bits == V4 else pools6)[pool.name] = {
            "cidr": pool.cidr,
            "block_size": pool.block_size,
            "ipip_mode": pool.ipip_mode,
            "vxlan_mode": pool.vxlan_mode,
            "nat_outgoing": pool.nat_outgoing,
            "disabled": pool.disabled,
            "disable_bgp_export": pool.disable_bgp_export,
            "namespaces": list(pool.namespaces),
            "blocks": len(mine),
            "allocated": sum(b.in_use() for b in mine),
            "capacity": pool.capacity,
        }
    return {"nodes": nodes, "pools": pools, "pools_ipv6": pools6}


def _without_ipv4(wl):
    """A workload's IPv6 entry standing in for its IPv4 one (``assign_ipv4: false``): no handle, no address."""
    return dataclasses.replace(wl, handle="", bits=V4)


def _held(state: IpamState, block_pool: dict, hid: str) -> tuple | None:
    """``(address, pool name, block cidr, block affinity)`` of the address handle ``hid`` holds; None: none."""
    handle = state.handles.get(hid)
    for cidr in handle.block if handle else ():
        block = state.blocks.get(cidr)
        ordinal = block.by_handle.get(hid) if block is not None else None
        if ordinal is not None:
            pool = block_pool.get(cidr)
            return block.address(ordinal), pool.name if pool else None, cidr, block.affinity
    return None


def _address_of(state: IpamState, hid: str) -> str | None:
    handle = state.handles.get(hid)
    for cidr in handle.block if handle else ():
        block = state.blocks.get(cidr)
        ordinal = block.by_handle.get(hid) if block is not None else None
        if ordinal is not None:
            return block.address(ordinal)
    return None


def audit(desired: Desired, state: IpamState, block_pool: dict | None = None) -> list:
    """Inconsistencies in the state, as ``calicoctl ipam check`` reports them (strings, sorted by kind)."""
    if block_pool is None:
        block_pool = desired.pool_of_blocks(state.blocks)
    # The blocks' own soundness is the load check's (ipam_store): here it finds what a plan broke.
    problems = [fault(*wrong) for wrong in overlap_faults(state.blocks)]
    counts: dict = {}
    known_nodes = desired.nodes if desired.only_node is None else None
    for cidr, block in state.blocks.items():
        size = block.size
        wrong = free_list_fault(block)
        if wrong is not None:
            problems.append(fault(f"block {cidr}", *wrong))
        free_set = set(block.unallocated)
        used = [o for o, a in enumerate(block.allocations) if a is not None]
        if len(used) + len(free_set) < size:
            lost = size - len(used) - len(free_set)
            problems.append(f"block {cidr}: {lost} ordinal(s) neither allocated nor unallocated (leaked)")
        referenced = {block.allocations[o] for o in used}
        if len(referenced) != len(block.attributes):
            problems.append(f"block {cidr}: {len(block.attributes) - len(referenced)} attribute(s) no address uses")
        if block_pool.get(cidr) is None:
            problems.append(f"block {cidr} belongs to no pool (or has the wrong size for its pool)")
        node = block.node
        if node is not None:
            aff = state.affinities.get((node, cidr))
            if aff is None:
                problems.append(f"block {cidr} is affine to {node} but {node} has no affinity for it")
            elif aff.state != "confirmed":
                problems.append(f"affinity of {node} for block {cidr} is {aff.state}, not confirmed")
            if known_nodes is not None and node not in known_nodes:
                problems.append(f"block {cidr} is affine to {node}, which is not in the inventory")
        elif block.affinity is not None:
            problems.append(f"block {cidr} has affinity {block.affinity!r}, which is not a host")
        attrs = block.attributes
        reservations = desired.reservations if block.bits == V4 else desired.reservations6
        for o in used:
            attr = attrs[block.allocations[o]]
            hid = attr.get("handle_id")
            per = counts.get(hid)
            if per is None:
                per = counts[hid] = {}
            per[cidr] = per.get(cidr, 0) + 1
            if reservations and desired.reserved(block.base + o, block.bits):
                problems.append(f"address {block.address(o)} ({hid}) is reserved by calico_reservations")
            if known_nodes is not None:
                owner = block.owner_node(o)
                if owner not in known_nodes:
                    problems.append(f"address {block.address(o)} ({hid}) belongs to {owner}, which is not in the inventory")
    for node, cidr in state.affinities:
        block = state.blocks.get(cidr)
        if block is None:
            problems.append(f"affinity of {node} for block {cidr}: the block does not exist")
        elif block.affinity != AFFINITY_PREFIX + node:
            problems.append(f"affinity of {node} for block {cidr}: the block is affine to {block.affinity!r}")
    handles = state.handles
    if len(counts) != len(handles) or any(handles.get(h) is None or handles[h].block != c for h, c in counts.items()):
        for hid, per in counts.items():
            handle = handles.get(hid)
            if handle is None:
                problems.append(f"handle {hid} holds {sum(per.values())} address(es) but has no handle object (leaked)")
            elif handle.block != per:
                problems.append(f"handle {hid} counts {handle.block} but the blocks hold {per}")
        for hid in handles:
            if hid not in counts:
                problems.append(f"handle {hid} holds no address (dangling handle object)")
    return problems


# -- The audit of a recorded state against the inventory (playbooks/audit.yml) -------------------------

RUN_IPAM = "ansible-playbook -i INVENTORY playbooks/ipam.yml"


def fix_for(problem: str) -> str:
    """The command that fixes a problem :func:`audit` reports."""
    if "which is not in the inventory" in problem:
        return f"{RUN_IPAM}   (releases what belongs to nodes no longer in the inventory)"
    if "reserved by calico_reservations" in problem:
        return f"give the workload another address (calico_workloads: ip:) or drop the reservation, then {RUN_IPAM}"
    return "the state itself is damaged: restore the state file (or etcd) from a backup; do not edit it by hand"


def audit_inventory(desired: Desired, state: IpamState) -> list:
    """What the recorded state and the inventory disagree on, each ``(problem, fix)``.

    Every allocation must have a live owner: a workload the inventory lists on that node, or the tunnel
    of a node of the inventory; every workload of the inventory must hold exactly one address.
    """
    found = []
    wanted = {wl.handle: (name, wl) for name, node in desired.nodes.items() for wl in node.workloads}
    held: dict = {}
    for block in state.blocks.values():
        for ordinal, index in enumerate(block.allocations):
            if index is None:
                continue
            attr = block.attributes[index]
            hid = attr.get("handle_id")
            secondary = attr.get("secondary") or {}
            owner = block.owner_node(ordinal)
            ip = block.address(ordinal)
            held.setdefault(hid, []).append(ip)
            if owner not in desired.nodes:
                continue  # audit() reports it (a node not in the inventory)
            kind = secondary.get("type")
            if kind in TUNNEL_TYPES.values():
                continue
            entry = wanted.get(hid)
            workload = f"{secondary.get('namespace', '?')}.{secondary.get('workload', '?')}"
            if entry is None:
                found.append(
                    (
                        f"address {ip} ({hid}) belongs to workload {workload} on {owner}, which the inventory no longer lists (a leak)",
                        f"{RUN_IPAM}   (releases it)",
                    )
                )
            elif entry[0] != owner:
                found.append(
                    (
                        f"address {ip} ({hid}) is recorded on {owner} but the inventory lists workload {workload} on {entry[0]}",
                        f"{RUN_IPAM}   (moves it), then " + naming.run_site(owner, entry[0]),
                    )
                )
    for hid, ips in held.items():
        if len(ips) > 1:
            found.append(
                (f"handle {hid} holds {len(ips)} addresses ({', '.join(ips)}): a workload with two addresses", f"{RUN_IPAM}   (keeps one, releases the others)")
            )
    for hid, (name, wl) in sorted(wanted.items()):
        if hid not in held:
            found.append((f"workload {wl.id} on {name} has no address in the IPAM yet", f"{RUN_IPAM}   (or {naming.run_site(name)})"))
    return found


def audit_with_fixes(desired: Desired, state: IpamState, block_pool: dict | None = None) -> list:
    """:func:`audit` and :func:`audit_inventory` together, each problem ``{"problem", "fix"}``."""
    out = [{"problem": p, "fix": fix_for(p)} for p in audit(desired, state, block_pool)]
    out += [{"problem": p, "fix": f} for p, f in audit_inventory(desired, state)]
    return out
