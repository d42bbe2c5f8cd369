# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Phases 1 to 3 of a plan: config and pools recorded, existing addresses checked, affinities released.

Each phase is a class built on the plan's :class:`~ipam_context.PlanContext` with one ``run()``; the
order and Calico's semantics of each step are in ``ipam_planner``'s docstring.
"""

from __future__ import annotations

from ansible_collections.l3.calico.plugins.module_utils import naming
from ansible_collections.l3.calico.plugins.module_utils.ipam_changes import PoolChange, Released, Unclaimed
from ansible_collections.l3.calico.plugins.module_utils.ipam_context import PlanContext
from ansible_collections.l3.calico.plugins.module_utils.ipam_inventory import GROUP, Node
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import (
    TUNNEL_KINDS,
    Affinity,
    Handle,
    ValidationError,
    prefix_mask,
)


class Recorder:
    """Phase 1: the IPAM config and the pools recorded; a pool whose ``cidr`` or ``block_size`` changed
    while it still has addresses in use is refused (both are immutable in Calico)."""

    def __init__(self, ctx: PlanContext):
        self.ctx = ctx

    def run(self) -> None:
        ctx = self.ctx
        s = ctx.state
        report = ctx.report
        if s.config != ctx.config:
            s.config = ctx.config
            s.touch_config()
            report.config = True
        self._refuse_immutable_changes()
        wanted = {p.name: p.spec() for p in ctx.pools}
        for name in ctx.evacuation.not_recorded(s):
            del wanted[name]
        for name, spec in wanted.items():
            if s.pools.get(name) != spec:
                s.pools[name] = spec
                s.touch_pool(name)
                report.pools.append(PoolChange(name, "recorded"))
        if ctx.desired.only_node is None:
            for name in [n for n in s.pools if n not in wanted]:
                del s.pools[name]
                s.touch_pool(name)
                report.pools.append(PoolChange(name, "removed"))

    def _refuse_immutable_changes(self) -> None:
        """A stored pool whose cidr/blockSize changed must not hold addresses any more, and no block
        inside a pool may have another size while it holds addresses."""
        s = self.ctx.state
        pools = self.ctx.pools
        for pool in pools:
            old = s.pools.get(pool.name)
            if old and (old.get("cidr"), old.get("blockSize")) != (pool.cidr, pool.block_size):
                field = "cidr" if old.get("cidr") != pool.cidr else "block_size"
                value = pool.cidr if field == "cidr" else pool.block_size
                in_use = sum(b.in_use() for b in s.blocks_inside(old.get("cidr")))
                if in_use:
                    raise ValidationError(
                        GROUP,
                        f"calico_pools[{pool.index}] ({pool.name}).{field}",
                        value,
                        f"{field} is immutable while the pool has addresses in use "
                        f"({in_use} in {old.get('cidr')} with /{old.get('blockSize')} blocks); "
                        "create a new pool and move the workloads, then remove the old one",
                    )
        for cidr, block in s.blocks.items():
            for pool in pools:
                if block.bits != pool.bits:
                    continue  # the other family: never inside this pool
                overlaps = pool.contains(block.base, block.bits) or (
                    block.prefix < pool.prefix and (pool.base & prefix_mask(block.prefix, block.bits)) == block.base
                )
                if overlaps and block.prefix != pool.block_size and not block.is_empty():
                    raise ValidationError(
                        GROUP,
                        f"calico_pools[{pool.index}] ({pool.name}).block_size",
                        pool.block_size,
                        f"block_size is immutable while the pool has addresses in use (block {cidr} holds {block.in_use()})",
                    )


class ExistingCheck:
    """Phase 2: a workload keeps its address while it is still in the inventory, on the same node, in a pool
    allowed to serve it, and (if it requests one) at the requested address; a tunnel address likewise.
    Anything else is released. ``run()`` returns what still needs an address, per node
    ``([tunnel kind], [workload])``."""

    def __init__(self, ctx: PlanContext):
        self.ctx = ctx
        # The tunnel kinds some pool of the inventory uses (enabled or not): a node needs no other (no
        # pool of that kind may serve or keep its address), so the others are not asked about per node.
        self.kinds = tuple(kind for kind in TUNNEL_KINDS if any(kind in pool.tunnel_kinds for pool in ctx.pools))

    def run(self) -> dict:
        ctx = self.ctx
        s = ctx.state
        handles = s.handles
        blocks = s.blocks
        block_pool = ctx.block_pool
        eligible = ctx.eligible
        only = ctx.desired.only_node
        needs: dict = {}  # node name -> ([tunnel kind], [workload]) still without a valid address
        kept = 0
        release = self._release
        for node in ctx.desired.nodes.values():
            if only is not None and node.name != only:
                continue
            name = node.name
            for kind in self.tunnel_needs(node):
                hid = naming.tunnel_handle_id(kind, name)
                if self._valid(hid, name, eligible(node, None, None, kind, keep=True), None):
                    kept += 1
                else:
                    if hid in handles:
                        release(hid)
                    needs.setdefault(name, ([], []))[0].append(kind)
            verified = self._verified(node)
            if len(verified) == len(node.workloads):
                kept += len(verified)
                continue
            cache: dict = {}
            missing = None
            for wl in node.workloads:
                hid = wl.handle
                if hid in verified:
                    kept += 1
                    continue
                handle = handles.get(hid)
                if handle is None:
                    if missing is None:
                        missing = needs.setdefault(name, ([], []))[1]
                    missing.append(wl)
                    continue
                # Inline fast path of _valid for the common case (one address, one block).
                ok = False
                if len(handle.block) == 1:
                    for cidr, count in handle.block.items():
                        block = blocks.get(cidr)
                        if count == 1 and block is not None:
                            ordinal = block.by_handle.get(hid)
                            if ordinal is not None:
                                key = (wl.namespace, wl.pool, wl.bits)
                                allowed = cache.get(key)
                                if allowed is None:
                                    allowed = cache[key] = frozenset(eligible(node, wl.namespace, wl.pool, keep=True, bits=wl.bits))
                                ok = block_pool.get(cidr) in allowed and block.owner_node(ordinal) == name and (wl.ip is None or wl.ip == block.base + ordinal)
                if ok:
                    kept += 1
                else:
                    release(hid)
                    needs.setdefault(name, ([], []))[1].append(wl)
        if kept > len(handles):
            self._restore_handles(only)
        # Handles nobody wants any more (workloads or nodes removed, tunnels no longer needed).
        if len(handles) != kept:
            wanted = set()
            for node in ctx.desired.nodes.values():
                if only is None or node.name == only:
                    wanted.update(wl.handle for wl in node.workloads)
                    wanted.update(naming.tunnel_handle_id(k, node.name) for k in self.tunnel_needs(node))
            for hid in [h for h in handles if h not in wanted]:
                if only is None or self._handle_node(hid) == only:
                    release(hid)
        return needs

    def _restore_handles(self, only) -> None:
        """More addresses kept than handle objects: some workload's address (found in its own block by
        ``_verified``) lost its handle object (``calicoctl ipam check``: a leaked address). The address is
        the workload's, so its handle is written back (one address in that block) rather than the result
        showing the workload without an address. Never runs when every kept address has its handle."""
        ctx = self.ctx
        s = ctx.state
        handles, blocks = s.handles, s.blocks
        for node in ctx.desired.nodes.values():
            if only is not None and node.name != only:
                continue
            own = ctx.node_blocks.get(node.name, ())
            for wl in node.workloads:
                hid = wl.handle
                if hid in handles:
                    continue
                cidr = next((c for c in own if hid in blocks[c].by_handle), None)
                if cidr is not None:
                    handles[hid] = Handle.new(cidr)
                    s.touch_handle(hid)

    def tunnel_needs(self, node: Node) -> list:
        """The tunnels ``node`` needs: those of an enabled pool, and those whose address it may keep in a
        disabled pool (the old pool of a migration still routes its blocks through them)."""
        eligible = self.ctx.eligible
        handles = self.ctx.state.handles
        needs = []
        for kind in self.kinds:
            if eligible(node, None, None, kind):
                needs.append(kind)
                continue
            hid = naming.tunnel_handle_id(kind, node.name)
            if hid in handles and self._valid(hid, node.name, eligible(node, None, None, kind, keep=True), None):
                needs.append(kind)
        return needs

    def _verified(self, node: Node) -> set:
        """Handle ids of ``node``'s workloads whose address is valid, checked group by group with set
        operations over the node's own blocks (the common case; anything else takes the slow path)."""
        ctx = self.ctx
        own = ctx.node_blocks.get(node.name)
        if not own or not node.groups:
            return set()
        blocks = ctx.state.blocks
        block_pool = ctx.block_pool
        mine = {node.name}
        clean = []
        for cidr in own:
            block = blocks[cidr]
            if block.owner_nodes() <= mine:
                clean.append((block_pool[cidr], block.by_handle))
        verified: set = set()
        for (namespace, pool_name, bits), hids in node.groups.items():
            allowed = ctx.eligible(node, namespace, pool_name, keep=True, bits=bits)
            present: set = set()
            for pool, by_handle in clean:
                if pool in allowed:
                    present.update(by_handle)
            verified.update(present.intersection(hids))
        return verified

    def _valid(self, hid: str, node: str, pools: list, want_ip: int | None) -> bool:
        s = self.ctx.state
        handle = s.handles.get(hid)
        if handle is None or len(handle.block) != 1:
            return False
        ((cidr, count),) = handle.block.items()
        block = s.blocks.get(cidr)
        if count != 1 or block is None or self.ctx.block_pool.get(cidr) not in pools:
            return False
        ordinal = block.by_handle.get(hid)
        if ordinal is None:
            return False
        return block.owner_node(ordinal) == node and (want_ip is None or want_ip == block.base + ordinal)

    def _handle_node(self, hid: str) -> str | None:
        s = self.ctx.state
        handle = s.handles.get(hid)
        for cidr in handle.block if handle else ():
            block = s.blocks.get(cidr)
            ordinal = block.by_handle.get(hid) if block else None
            if ordinal is not None:
                return block.owner_node(ordinal)
        return None

    def _release(self, hid: str) -> None:
        """Release every address of handle ``hid``: each ordinal goes to the tail of its block's FIFO."""
        s = self.ctx.state
        handle = s.handles.pop(hid, None)
        s.touch_handle(hid)
        if handle is None:
            return
        for cidr in handle.block:
            block = s.blocks.get(cidr)
            if block is None:
                continue
            ordinal = block.by_handle.get(hid)
            node = block.owner_node(ordinal) if ordinal is not None else None
            released = block.release_handle(hid)
            if released:
                self.ctx.report.released.append(Released(node, block.base, cidr, released, hid))
            s.touch_block(cidr)


class AffinityRelease:
    """Phase 3: removed nodes release their affinities - an emptied block is deleted, a block that still
    holds addresses borrowed by others loses its affinity. Empty blocks of a pool that no longer serves
    the node (or of no pool at all) are released the same way; a half-done claim is finished."""

    def __init__(self, ctx: PlanContext):
        self.ctx = ctx

    def run(self) -> None:
        ctx = self.ctx
        s = ctx.state
        report = ctx.report
        only = ctx.desired.only_node
        nodes = ctx.desired.nodes
        blocks = s.blocks
        block_pool = ctx.block_pool
        node_blocks = ctx.node_blocks
        drop = []
        for key, aff in s.affinities.items():
            node, cidr = key
            if only is not None and node != only:
                continue
            block = blocks.get(cidr)
            if block is None or node not in nodes or block.node != node:
                drop.append(key)
                continue
            if block.is_empty():
                # An empty block of a pool that can no longer serve this node goes back to the pool.
                pool = block_pool.get(cidr)
                if pool is None or pool.disabled or not pool.selects(nodes[node].labels):
                    drop.append(key)
                    continue
            if aff.state != "confirmed":
                # Finish a two-phase claim left half done (Calico: pending, then block, then confirmed).
                aff.state = "confirmed"
                s.touch_affinity(key)
                if cidr not in node_blocks.setdefault(node, []):
                    node_blocks[node].append(cidr)
        for node, cidr in drop:
            del s.affinities[(node, cidr)]
            s.touch_affinity((node, cidr))
            if cidr in node_blocks.get(node, ()):
                node_blocks[node].remove(cidr)
            block = blocks.get(cidr)
            deleted = False
            if block is not None and block.node == node:
                if block.is_empty():
                    self._delete_block(cidr)
                    deleted = True
                else:
                    block.affinity = None
                    s.touch_block(cidr)
            report.unclaimed.append(Unclaimed(node, cidr, deleted))
        affinities = s.affinities
        for cidr, block in list(blocks.items()):
            owner = block.node
            if owner is not None:
                if (owner, cidr) in affinities or (only is not None and owner != only):
                    continue
                # Affine to a host without an affinity object for it (a claim whose affinity was lost):
                # restore the affinity if the node is still here, else release it like a removed node's.
                pool = block_pool.get(cidr)
                if owner in nodes and pool is not None and (not block.is_empty() or pool.selects(nodes[owner].labels)):
                    affinities[(owner, cidr)] = Affinity("confirmed")
                    s.touch_affinity((owner, cidr))
                    node_blocks.setdefault(owner, []).append(cidr)
                    continue
                report.unclaimed.append(Unclaimed(owner, cidr, block.is_empty()))
                block.affinity = None
                s.touch_block(cidr)
                if block.is_empty():
                    self._delete_block(cidr)
                continue
            if only is None and block.is_empty() and (block.affinity is None or block_pool.get(cidr) is None):
                self._delete_block(cidr)
                report.deleted_blocks.append(cidr)

    def _delete_block(self, cidr: str) -> None:
        ctx = self.ctx
        block = ctx.state.blocks.pop(cidr)
        ctx.state.touch_block(cidr)
        pool = ctx.block_pool.pop(cidr, None)
        if pool is not None:
            ctx.claimed[pool.name].discard(pool.block_index(block.base))
