# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Phase 4 of a plan, the allocator: new addresses from the node's blocks, a new claim, else a borrow.

First every requested address (so none can be taken by an automatic assignment in the same run), then
node by node (sorted by name) the tunnel addresses, then the workloads sorted by id. Automatic
assignment: the node's affine blocks in claim order; else claim a new block (if ``auto_allocate_blocks``
and the node has fewer than ``max_blocks_per_host`` blocks, 0 = 20), the search starting at a block
index drawn from a PRNG seeded with FNV-32(node name) and walking with wrap-around; else borrow from
another node's block (walking the same way) unless ``strict_affinity``. Reserved addresses are skipped
(they stay in ``unallocated``); a fully reserved block is never claimed.
"""

from __future__ import annotations

import bisect
import operator
import random

from ansible_collections.l3.calico.plugins.module_utils import naming
from ansible_collections.l3.calico.plugins.module_utils.ipam_changes import Added, Claimed
from ansible_collections.l3.calico.plugins.module_utils.ipam_context import PlanContext
from ansible_collections.l3.calico.plugins.module_utils.ipam_inventory import Node, Pool
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import (
    AFFINITY_PREFIX,
    V4,
    V6,
    Affinity,
    Block,
    Handle,
    ValidationError,
    address_text,
    fnv32,
    format_cidr,
    tunnel_attribute,
    workload_attribute,
)

_BY_ID = operator.attrgetter("id")
_FIRST = operator.itemgetter(0)


class FreeBlocks:
    """The unclaimed block indexes of a pool as sorted, disjoint, inclusive intervals.

    ``next_from(start)`` (the first free index at or after ``start``, wrapping around) costs one bisect,
    ``take`` one bisect and a list insert: claiming is O(log n) per block, however full the pool, and a
    full pool answers None at once.
    """

    __slots__ = ("starts", "ends", "count")

    def __init__(self, total: int, taken, excluded=()):
        """``total`` indexes, minus the ``taken`` ones (any iterable) and the ``excluded`` (lo, hi) ranges."""
        cuts = sorted([(i, i) for i in taken] + [r for r in excluded if r[0] <= r[1]])
        self.starts, self.ends = [], []
        position = 0
        for lo, hi in cuts:
            if lo > position:
                self.starts.append(position)
                self.ends.append(lo - 1)
            position = max(position, hi + 1)
        if position < total:
            self.starts.append(position)
            self.ends.append(total - 1)
        self.count = sum(e - s + 1 for s, e in zip(self.starts, self.ends, strict=True))

    def next_from(self, start: int) -> int | None:
        starts = self.starts
        if not starts:
            return None
        i = bisect.bisect_right(starts, start) - 1
        if i >= 0 and self.ends[i] >= start:
            return start
        return starts[i + 1] if i + 1 < len(starts) else starts[0]

    def take(self, index: int) -> None:
        i = bisect.bisect_right(self.starts, index) - 1
        if i < 0 or self.ends[i] < index:
            return  # not free (claimed by a request for that very block)
        lo, hi = self.starts[i], self.ends[i]
        if lo == hi:
            del self.starts[i], self.ends[i]
        elif index == lo:
            self.starts[i] = lo + 1
        elif index == hi:
            self.ends[i] = hi - 1
        else:
            self.ends[i] = index - 1
            self.starts.insert(i + 1, index + 1)
            self.ends.insert(i + 1, hi)
        self.count -= 1


class Allocator:
    """Phase 4: give an address to everything ``ExistingCheck`` left without one (see the module docstring).

    Its indexes are built at the first claim or borrow, after every release and deletion of the run:
    per pool the unclaimed blocks (:class:`FreeBlocks`, fully reserved ones cut out) and the claimed
    blocks that may still have room; per node how many of its first blocks (claim order) are full.
    """

    def __init__(self, ctx: PlanContext):
        self.ctx = ctx
        self.config = ctx.config
        self._free: dict = {}  # pool name -> FreeBlocks (unclaimed, not fully reserved)
        self._borrowable: dict = {}  # pool name -> sorted indexes of claimed blocks that may have room
        self._full_prefix: dict = {}  # node -> how many of its first blocks (claim order) are full
        self._reserved_cache: dict = {}  # block cidr -> reserved ordinals
        self._seed_cache: dict = {}  # (pool name, node) -> start index of the node's block search
        self._dual: bool | None = None  # whether blocks of both families may be held (worked out at the first claim)

    def run(self, needs: dict) -> None:
        """``needs``: per node name ``([tunnel kind], [workload])`` still without a valid address."""
        ctx = self.ctx
        nodes = ctx.desired.nodes
        requested = [(wl.id, name, wl) for name, (_tunnels, wls) in needs.items() for wl in wls if wl.ip is not None]
        requested.sort(key=_FIRST)
        for _id, name, wl in requested:
            self._assign_requested(nodes[name], wl)
        for name in sorted(needs):
            node = nodes[name]
            tunnels, workloads = needs[name]
            for kind in tunnels:
                hid = naming.tunnel_handle_id(kind, name)
                self._assign_auto(
                    node, ctx.eligible(node, None, None, kind), [hid], [tunnel_attribute(hid, name, kind)], f"{kind} tunnel address", "calico_pools"
                )
            if requested:
                workloads = [wl for wl in workloads if wl.ip is None]
            workloads.sort(key=_BY_ID)
            if len(node.groups) == 1 and workloads:
                groups = {next(iter(node.groups)): workloads}  # one (namespace, pool, family) on this node
            else:
                groups = {}
                for wl in workloads:
                    key = (wl.namespace, wl.pool, wl.bits)
                    group = groups.get(key)
                    if group is None:
                        groups[key] = [wl]
                    else:
                        group.append(wl)
            for (namespace, pool_name, bits), group in groups.items():
                # Each family from its own pools (Calico's autoAssign: Num4 from IPv4 pools, Num6 from IPv6 ones).
                pools = ctx.eligible(node, namespace, pool_name, bits=bits)
                hids = [wl.handle for wl in group]
                attributes = [workload_attribute(hid, name, namespace, wl.name) for hid, wl in zip(hids, group, strict=True)]
                self._assign_auto(node, pools, hids, attributes, group[0].id, group[0].field, group, bits)

    def _assign_requested(self, node: Node, wl) -> None:
        ctx = self.ctx
        pool = next(p for p in ctx.pools if p.contains(wl.ip, wl.bits))
        index = pool.block_index(wl.ip)
        base = pool.block_base(index)
        cidr = format_cidr(base, pool.block_size, pool.bits)
        block = ctx.state.blocks.get(cidr)
        if block is None:
            block = self._claim(node.name, pool, index)
        ordinal = wl.ip - base
        if block.allocations[ordinal] is not None:
            holder = block.attributes[block.allocations[ordinal]]
            raise ValidationError(
                node.name,
                f"{wl.field}.{wl.ip_key}",
                address_text(wl.ip, wl.bits),
                f"already taken by {naming.handle_owner(holder['handle_id'])} on node {block.owner_node(ordinal)}",
            )
        block.unallocated.remove(ordinal)
        self._give(node.name, block, [ordinal], [wl.handle], [workload_attribute(wl.handle, node.name, wl.namespace, wl.name)])

    def _assign_auto(self, node: Node, pools: list, hids: list, attributes: list, what: str, field: str, owners=None, bits: int = V4) -> None:
        """Give each handle of ``hids`` (with its attribute) one address, a block at a time.

        ``owners`` (the workloads of the batch, if any) name the first one left without an address."""
        name = node.name
        total = len(hids)
        if not pools:
            if bits == V6:
                raise ValidationError(
                    name, field, what, "no enabled IPv6 pool selects this node and may serve it (assign_ipv6: false asks for no IPv6 address)"
                )
            raise ValidationError(name, field, what, "no enabled pool selects this node and may serve it")
        done = 0
        while done < total:
            block = self._next_block(name, pools)
            if block is None:
                if owners:
                    what, field = owners[done].id, owners[done].field
                self._exhausted(name, pools, total - done, what, field)
            ordinals = self._take(block, total - done)
            if ordinals:
                end = done + len(ordinals)
                if done == 0 and end == total:
                    self._give(name, block, ordinals, hids, attributes)
                else:
                    self._give(name, block, ordinals, hids[done:end], attributes[done:end])
                done = end

    def _next_block(self, name: str, pools: list) -> Block | None:
        """A block with a free address for ``name``: its own, else a new claim, else a borrowed one."""
        ctx = self.ctx
        blocks = ctx.state.blocks
        # 1. The node's own blocks, in claim order. Allocation only fills blocks (every release came
        #    before it): the full ones at the front are passed for good (a cursor), so thousands of
        #    own blocks cost nothing per address.
        mine = ctx.node_blocks.get(name, ())
        cursor = self._full_prefix.get(name, 0)
        while cursor < len(mine) and not (blocks[mine[cursor]].unallocated and self._has_free(blocks[mine[cursor]])):
            cursor += 1
        self._full_prefix[name] = cursor
        block_pool = ctx.block_pool
        for position in range(cursor, len(mine)):
            cidr = mine[position]
            block = blocks[cidr]
            if block.unallocated and block_pool[cidr] in pools and self._has_free(block):
                return block
        # 2. Claim a new block (searching from the node's seed, with wrap-around).
        if self.config.auto_allocate_blocks and self._held(name, pools) < self.config.block_limit:
            for pool in pools:
                index = self._find_unclaimed(pool, name)
                if index is not None:
                    return self._claim(name, pool, index)
        # 3. Borrow from another node's block, unless strict affinity.
        if not self.config.strict_affinity:
            for pool in pools:
                block = self._borrow(pool, name)
                if block is not None:
                    return block
        return None

    def _exhausted(self, name: str, pools: list, need: int, what: str, field: str):
        names = ", ".join(p.name for p in pools)
        held = self._held(name, pools)
        config = self.config
        limit = config.block_limit
        if config.strict_affinity:
            why = f"it may claim no more blocks (max_blocks_per_host {limit})" if held >= limit else "no unclaimed block is left"
            reason = (
                f"no address left in pool(s) {names} under strict_affinity: the node's {held} block(s) are full and {why}; it needs {need} more address(es)"
            )
        else:
            unclaimed = sum(self._free_blocks(p).count for p in pools)
            if unclaimed and (held >= limit or not config.auto_allocate_blocks):
                # Not the pool: the limit on the node's blocks (say which one, and that the pool has room).
                cap = (
                    f"max_blocks_per_host {limit}" + (" (0 means 20)" if not config.max_blocks_per_host else "")
                    if config.auto_allocate_blocks
                    else "auto_allocate_blocks false"
                )
                reason = (
                    f"no address left for the node: it holds {held} block(s), all full, and {cap} lets it "
                    f"claim no more, while pool(s) "
                    f"{names} still have {unclaimed} unclaimed block(s) and no other node's block has a free "
                    f"address; it needs {need} more address(es): raise calico_ipam_config.max_blocks_per_host"
                )
            else:
                reason = (
                    f"pool(s) {names} exhausted: no free address left and no unclaimed block (the node holds {held} block(s)); it needs {need} more address(es)"
                )
        raise ValidationError(name, field, what, reason + self.ctx.evacuation.exhausted())

    def _held(self, name: str, pools: list) -> int:
        """How many blocks node ``name`` holds of the family of ``pools`` (one family: ``ctx.eligible``).
        Calico counts max_blocks_per_host per IP version: autoAssign compares the host's affine blocks
        of the version it assigns (libcalico-go/lib/ipam/ipam.go, getAffineBlocks by version)."""
        mine = self.ctx.node_blocks.get(name, ())
        if self._dual is None:  # IPv6 pools in the inventory, or IPv6 blocks in the state
            self._dual = any(p.bits != V4 for p in self.ctx.pools) or any(b.bits != V4 for b in self.ctx.state.blocks.values())
        if not self._dual:
            return len(mine)
        bits = pools[0].bits
        blocks = self.ctx.state.blocks
        return sum(1 for cidr in mine if blocks[cidr].bits == bits)

    def _has_free(self, block: Block) -> bool:
        reserved = self._reserved(block)
        return not reserved or any(o not in reserved for o in block.unallocated)

    def _take(self, block: Block, count: int) -> list:
        """Pop up to ``count`` ordinals from the head of the FIFO, skipping reserved ones (they stay)."""
        free = block.unallocated
        reserved = self._reserved(block)
        if not reserved:
            taken = free[:count]
            del free[:count]
            return taken
        taken, kept = [], []
        for i, ordinal in enumerate(free):
            if len(taken) == count:
                kept.extend(free[i:])
                break
            (kept if ordinal in reserved else taken).append(ordinal)
        free[:] = kept
        return taken

    def _reserved(self, block: Block) -> frozenset:
        cached = self._reserved_cache.get(block.cidr)
        if cached is None:
            cached = frozenset()
            desired = self.ctx.desired
            if desired.reservations if block.bits == V4 else desired.reservations6:
                last = block.base + len(block.allocations) - 1
                ranges = desired.reserved_in(block.base, last, block.bits)
                if ranges:
                    cached = frozenset(o - block.base for lo, hi in ranges for o in range(lo, hi + 1))
            self._reserved_cache[block.cidr] = cached
        return cached

    def _give(self, node: str, block: Block, ordinals: list, hids: list, attributes: list) -> None:
        """Assign ``ordinals`` of ``block`` to the handles ``hids``, with their ``attributes``."""
        s = self.ctx.state
        cidr = block.cidr
        allocations = block.allocations
        start = len(block.attributes)
        for index, ordinal in enumerate(ordinals, start):
            allocations[ordinal] = index
        block.attributes.extend(attributes)
        # A batch only ever holds handles that have no address (absent, or released in phase 2).
        block.by_handle.update(zip(hids, ordinals, strict=True))
        new_handle = Handle.new
        s.handles.update({hid: new_handle(cidr) for hid in hids})
        s.touch_handles(hids)
        s.touch_block(cidr)
        self.ctx.report.added.append(Added(node, block, ordinals, hids, block.affinity != AFFINITY_PREFIX + node))

    def _seed(self, pool: Pool, node: str) -> int:
        key = (pool.name, node)
        start = self._seed_cache.get(key)
        if start is None:
            # Calico seeds a PRNG with FNV-32 of the host name and draws the start index from it
            # (randomBlockGenerator). random.Random (not Go's math/rand) is deterministic across runs and
            # Python versions: the start block is stable, but not the one Calico would pick.
            start = self._seed_cache[key] = random.Random(fnv32(node)).randrange(pool.nblocks)
        return start

    def _free_blocks(self, pool: Pool) -> FreeBlocks:
        free = self._free.get(pool.name)
        if free is None:
            # Fully reserved blocks are never claimed: cut out as whole ranges of indexes, not tried one by one.
            shift = pool.bits - pool.block_size
            full = [
                ((max(lo, pool.base) - pool.base + (1 << shift) - 1) >> shift, ((min(hi, pool.base + pool.capacity - 1) - pool.base + 1) >> shift) - 1)
                for lo, hi in self.ctx.desired.reserved_in(pool.base, pool.base + pool.capacity - 1, pool.bits)
            ]
            free = self._free[pool.name] = FreeBlocks(pool.nblocks, self.ctx.claimed[pool.name], full)
        return free

    def _find_unclaimed(self, pool: Pool, node: str) -> int | None:
        """The first unclaimed, not fully reserved block index from the node's seed, with wrap-around."""
        return self._free_blocks(pool).next_from(self._seed(pool, node))

    def _borrow(self, pool: Pool, name: str) -> Block | None:
        """The first block of ``pool`` from the node's seed (wrapping around) that is another node's and has
        a free address. A block passed over is full (the node's own were tried first): it leaves the
        candidates until an address of it is released, so each full block is looked at once per run."""
        indexes = self._borrowable.get(pool.name)
        if indexes is None:
            indexes = self._borrowable[pool.name] = sorted(self.ctx.claimed[pool.name])
        if not indexes:
            return None
        blocks = self.ctx.state.blocks
        affine = AFFINITY_PREFIX + name
        start = bisect.bisect_left(indexes, self._seed(pool, name))
        i = start
        for _attempt in range(len(indexes)):
            if i >= len(indexes):
                i = 0
            block = blocks[format_cidr(pool.block_base(indexes[i]), pool.block_size, pool.bits)]
            if block.unallocated and self._has_free(block):
                if block.affinity != affine:
                    return block
                i += 1  # this node's own block without a confirmed affinity: not borrowed by it, others may
            else:
                del indexes[i]  # full: stays out
        return None

    def _claim(self, node: str, pool: Pool, index: int) -> Block:
        ctx = self.ctx
        s = ctx.state
        block = Block.new(pool.block_base(index), pool.block_size, node, pool.bits)
        s.blocks[block.cidr] = block
        s.touch_block(block.cidr)
        s.affinities[(node, block.cidr)] = Affinity("confirmed")
        s.touch_affinity((node, block.cidr))
        ctx.block_pool[block.cidr] = pool
        ctx.claimed[pool.name].add(index)
        if pool.name in self._free:
            self._free[pool.name].take(index)
        if pool.name in self._borrowable:
            bisect.insort(self._borrowable[pool.name], index)
        ctx.node_blocks.setdefault(node, []).append(block.cidr)
        ctx.report.claimed.append(Claimed(node, block.cidr))
        return block
