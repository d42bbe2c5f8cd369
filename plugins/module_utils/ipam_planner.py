# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The IPAM planner: reconcile the desired inventory with the state, Calico's way.

``plan(desired, state)`` mutates ``state`` (touching what it changes, see ``ipam_store``) and returns a
:class:`Report` of what it did. It is pure apart from that mutation, so a store may re-run it on a fresh
state. It works on integers: block ordinals and each block's ``unallocated`` FIFO, never on per-address
objects.

Order of work (each step Calico's semantics, libcalico-go/lib/ipam):

1. IPAM config and pools recorded; a pool whose ``cidr`` or ``block_size`` changed while it still has
   addresses in use is refused (both are immutable in Calico).
2. Existing addresses checked: a workload keeps its address while it is still in the inventory, on the
   same node, in a pool allowed to serve it, and (if it requests one) at the requested address.
   Anything else is released: its ordinal goes to the tail of the block's ``unallocated`` FIFO.
3. Removed nodes release their affinities: an emptied block is deleted, a block that still holds
   addresses borrowed by others loses its affinity. Empty blocks of a pool that no longer serves the
   node (or of no pool at all) are released the same way.
4. New addresses: first every requested address (so none can be taken by an automatic assignment in
   the same run), then node by node (sorted by name) the tunnel addresses, then the workloads sorted by
   id. Automatic assignment: the node's affine blocks in claim order; else claim a new block (if
   ``auto_allocate_blocks`` and the node has fewer than ``max_blocks_per_host`` blocks, 0 = 20), the
   search starting at a block index drawn from a PRNG seeded with FNV-32(node name) and walking with
   wrap-around; else borrow from another node's block (walking the same way) unless ``strict_affinity``.
   Reserved addresses are skipped (they stay in ``unallocated``); a fully reserved block is never claimed.
"""

from __future__ import annotations

import bisect
import dataclasses
import operator
import random

from ansible_collections.l3.calico.plugins.module_utils import naming
from ansible_collections.l3.calico.plugins.module_utils.ipam_inventory import GROUP, Desired, Node, Pool
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import (
    AFFINITY_PREFIX,
    Affinity,
    Block,
    Handle,
    IpamError,
    ValidationError,
    fnv32,
    format_cidr,
    int_to_ip,
    no_gc,
    parse_cidr,
    prefix_mask,
    tunnel_attribute,
    workload_attribute,
)
from ansible_collections.l3.calico.plugins.module_utils.ipam_store import IpamState

TUNNEL_KINDS = ("ipip", "vxlan")
_NODE = operator.itemgetter("node")
_BY_ID = operator.attrgetter("id")
_SECONDARY = operator.itemgetter("secondary")


@dataclasses.dataclass
class Report:
    """What a plan did, for ``--diff`` and the summary. Addresses are strings."""

    added: list = dataclasses.field(default_factory=list)  # (node, block, [ordinal], [handle id], borrowed)
    released: list = dataclasses.field(default_factory=list)  # (node, block base, block cidr, [ordinal], handle id)
    claimed: list = dataclasses.field(default_factory=list)  # (node, block cidr)
    unclaimed: list = dataclasses.field(default_factory=list)  # (node, block cidr, deleted)
    deleted_blocks: list = dataclasses.field(default_factory=list)  # block cidrs
    config: bool = False
    pools: list = dataclasses.field(default_factory=list)  # (pool name, "recorded" | "removed")

    def diff_lines(self) -> list:
        lines = []
        for node, cidr in self.claimed:
            lines.append(f"+ block {cidr} affine to {node}")
        for node, block, ordinals, hids, borrowed in self.added:
            for ordinal, hid in zip(ordinals, hids, strict=True):
                ip = int_to_ip(block.base + ordinal)
                lines.append(f"+ {ip} {_owner(hid)} on {node} (block {block.cidr}{', borrowed' if borrowed else ''})")
        for node, base, cidr, ordinals, hid in self.released:
            for ordinal in ordinals:
                lines.append(f"- {int_to_ip(base + ordinal)} {_owner(hid)} on {node} (block {cidr})")
        for node, cidr, deleted in self.unclaimed:
            lines.append(f"- block {cidr} affinity to {node}{' (block deleted)' if deleted else ' (block kept: in use)'}")
        for cidr in self.deleted_blocks:
            lines.append(f"- block {cidr} (empty, no pool serves it)")
        if self.config:
            lines.append("~ IPAM config recorded")
        for name, what in self.pools:
            lines.append(f"~ pool {name} {what}")
        return lines


def tunnel_kinds(pool: Pool) -> tuple:
    kinds = []
    if pool.ipip_mode != "Never":
        kinds.append("ipip")
    if pool.vxlan_mode != "Never":
        kinds.append("vxlan")
    return tuple(kinds)


class FreeBlocks:
    """The unclaimed block indexes of a pool as sorted, disjoint, inclusive intervals.

    ``next_from(start)`` (the first free index at or after ``start``, wrapping around) costs one bisect,
    ``take`` and ``give`` one bisect and a list insert: claiming is O(log n) per block, however full the
    pool, and a full pool answers None at once.
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


class Planner:
    def __init__(self, desired: Desired, state: IpamState):
        self.d = desired
        self.s = state
        self.report = Report()
        self.pools = desired.pools
        self.config = desired.config
        self._eligible_cache: dict = {}
        self._reserved_cache: dict = {}
        self._seed_cache: dict = {}
        self._draining = False
        # per pool, built at the first claim or borrow (after every release and deletion of the run):
        self._free: dict = {}  # pool name -> FreeBlocks (unclaimed, not fully reserved)
        self._borrowable: dict = {}  # pool name -> sorted indexes of claimed blocks that may have room
        self._full_prefix: dict = {}  # node -> how many of its first blocks (claim order) are full

    # ------------------------------------------------------------------ entry point
    def run(self) -> Report:
        with no_gc():
            self._record_config_and_pools()
            self._index()
            needs = self._check_existing()
            self._release_affinities()
            self._allocate(needs)
            if self.d.evacuate is not None:
                self._drop_emptied_pool()
        return self.report

    def evacuation(self) -> dict | None:
        """With ``evacuate``: per evacuated node what moved out of the old pool (old -> new address) and
        which of its blocks were released; how many addresses the old pool still holds; whether it left
        the state. Built from the report, so check mode shows exactly what a real run does."""
        ev = self.d.evacuate
        if ev is None:
            return None
        pool = ev.pool
        nodes = {name: {"moved": [], "released_blocks": []} for name in sorted(ev.nodes)}
        new = {}
        for _node, block, ordinals, hids, _borrowed in self.report.added:
            for ordinal, hid in zip(ordinals, hids, strict=True):
                new[hid] = (int_to_ip(block.base + ordinal), block.cidr)
        for node, base, _cidr, ordinals, hid in self.report.released:
            if node not in nodes or not pool.contains(base):
                continue
            to, to_block = new.get(hid, (None, None))
            for ordinal in ordinals:
                nodes[node]["moved"].append({"owner": _owner(hid), "from": int_to_ip(base + ordinal), "to": to,
                                             "block": to_block})
        for node, cidr, _deleted in self.report.unclaimed:
            if node in nodes and pool.contains(parse_cidr(cidr)[0]):
                nodes[node]["released_blocks"].append(cidr)
        for entry in nodes.values():
            entry["moved"].sort(key=lambda m: m["owner"])
        remaining = self._in_use_within(pool.cidr, None)
        return {"pool": pool.name, "cidr": pool.cidr, "nodes": nodes, "remaining": remaining,
                "blocks_left": self._in_use_within(pool.cidr, None, blocks=True),
                "removed": pool.name not in self.s.pools}

    # ------------------------------------------------------------------ step 1
    def _record_config_and_pools(self) -> None:
        s = self.s
        if s.config != self.config:
            s.config = self.config
            s.touch_config()
            self.report.config = True
        # Immutability: a stored pool whose cidr/blockSize changed must not hold addresses any more,
        # and no block inside a pool may have another size while it holds addresses.
        for pool in self.pools:
            old = s.pools.get(pool.name)
            if old and (old.get("cidr"), old.get("blockSize")) != (pool.cidr, pool.block_size):
                field = "cidr" if old.get("cidr") != pool.cidr else "block_size"
                value = pool.cidr if field == "cidr" else pool.block_size
                in_use = self._in_use_within(old.get("cidr"), old.get("blockSize"))
                if in_use:
                    raise ValidationError(
                        GROUP, f"calico_pools[{pool.index}] ({pool.name}).{field}", value,
                        f"{field} is immutable while the pool has addresses in use "
                        f"({in_use} in {old.get('cidr')} with /{old.get('blockSize')} blocks); "
                        "create a new pool and move the workloads, then remove the old one")
        for cidr, block in s.blocks.items():
            for pool in self.pools:
                overlaps = pool.contains(block.base) or (block.prefix < pool.prefix and
                                                         (pool.base & prefix_mask(block.prefix)) == block.base)
                if overlaps and block.prefix != pool.block_size and not block.is_empty():
                    raise ValidationError(
                        GROUP, f"calico_pools[{pool.index}] ({pool.name}).block_size", pool.block_size,
                        f"block_size is immutable while the pool has addresses in use (block {cidr} holds "
                        f"{block.in_use()})")
        wanted = {p.name: p.spec() for p in self.pools}
        ev = self.d.evacuate
        if ev is not None and ev.pool.name not in s.pools and not self._in_use_within(ev.pool.cidr, None, blocks=True):
            del wanted[ev.pool.name]  # migrated away from and removed: not recorded again
        for name, spec in wanted.items():
            if s.pools.get(name) != spec:
                s.pools[name] = spec
                s.touch_pool(name)
                self.report.pools.append((name, "recorded"))
        if self.d.only_node is None:
            for name in [n for n in s.pools if n not in wanted]:
                del s.pools[name]
                s.touch_pool(name)
                self.report.pools.append((name, "removed"))

    def _in_use_within(self, cidr, block_size, blocks: bool = False) -> int:
        """Addresses in use in the blocks inside ``cidr`` (with ``blocks``: how many blocks are there)."""
        try:
            pool = Pool("old", cidr, *parse_cidr(cidr), block_size or 26)
        except (ValueError, TypeError):
            return 0
        inside = [b for b in self.s.blocks.values() if pool.contains(b.base)]
        return len(inside) if blocks else sum(b.in_use() for b in inside)

    def _drop_emptied_pool(self) -> None:
        """The last step of a migration: the old pool holds no block any more, it leaves the state."""
        pool = self.d.evacuate.pool
        if pool.name in self.s.pools and not self._in_use_within(pool.cidr, None, blocks=True):
            del self.s.pools[pool.name]
            self.s.touch_pool(pool.name)
            self.report.pools.append((pool.name, "removed: it holds no address any more (drop it from calico_pools)"))

    # ------------------------------------------------------------------ indexes
    def _index(self) -> None:
        s = self.s
        self.block_pool: dict = {}
        self.claimed: dict = {p.name: set() for p in self.pools}
        for cidr, block in s.blocks.items():
            owner = None
            for pool in self.pools:
                if pool.contains(block.base) and block.prefix == pool.block_size:
                    owner = pool
                    self.claimed[pool.name].add(pool.block_index(block.base))
                    break
            self.block_pool[cidr] = owner
        ev = self.d.evacuate
        if ev is not None:
            # Other nodes still hold addresses in the old pool (workloads, or tunnel addresses their
            # blocks keep): its blocks are still routed, through the tunnels (see _tunnel_stays).
            for cidr, block in s.blocks.items():
                if self.block_pool[cidr] is ev.pool and any(
                        (a.get("secondary") or {}).get("node") not in ev.nodes for a in block.attributes):
                    self._draining = True
                    break
        self.node_blocks: dict = {}
        for (node, cidr), aff in s.affinities.items():
            block = s.blocks.get(cidr)
            if aff.state == "confirmed" and block is not None and block.affinity == AFFINITY_PREFIX + node:
                self.node_blocks.setdefault(node, []).append(cidr)

    def eligible(self, node: Node, namespace: str | None, pool_name: str | None, kind: str | None = None,
                 keep: bool = False) -> list:
        """Pools that may serve a workload (namespace, pool) or a tunnel (kind) on ``node``, in order.

        With ``keep``, the pools in which an existing address may stay: a disabled pool hands out no new
        address but keeps the ones it has (as in Calico), workloads' and tunnels' alike — except on the
        nodes an evacuation moves out of it (a pool migration step, see :meth:`evacuating`).
        """
        key = (node.name, namespace, pool_name, kind, keep)
        pools = self._eligible_cache.get(key)
        if pools is None:
            pools = []
            listed = self.d.listed_namespaces
            for pool in self.pools:
                if (pool.disabled and not keep) or not pool.selects(node.labels):
                    continue
                if keep and self.evacuating(node.name, pool):
                    if kind is None or not self._tunnel_stays(node, pool, kind):
                        continue
                if kind is not None:
                    if kind in tunnel_kinds(pool):
                        pools.append(pool)
                    continue
                if pool_name is not None and pool.name != pool_name:
                    continue
                if pool.namespaces:
                    if namespace not in pool.namespaces:
                        continue
                elif namespace in listed:
                    continue
                pools.append(pool)
            self._eligible_cache[key] = pools
        return pools

    def evacuating(self, node: str, pool: Pool) -> bool:
        """Whether this run moves ``node``'s addresses out of ``pool`` (option ``evacuate``)."""
        ev = self.d.evacuate
        return ev is not None and ev.pool is pool and node in ev.nodes

    def _tunnel_stays(self, node: Node, pool: Pool, kind: str) -> bool:
        """An evacuated node keeps its ``kind`` tunnel address in the old pool only when no enabled pool
        of that encapsulation selects it (an encapsulation change, e.g. IPIP -> VXLAN) and other nodes
        still hold addresses in the old pool (workloads, or their own tunnel addresses): their blocks
        are still routed through that tunnel. So the old pool's tunnel addresses all leave together,
        in the run that evacuates every node (pool-migrate.yml's last round), never one node's
        before the others' (its tunnel device would be gone while BIRD still routes their blocks
        through it)."""
        return self._draining and not any(not p.disabled and kind in tunnel_kinds(p) and p.selects(node.labels)
                                          for p in self.pools)

    def tunnel_needs(self, node: Node) -> list:
        """The tunnels ``node`` needs: those of an enabled pool, and those whose address it may keep in a
        disabled pool (the old pool of a migration still routes its blocks through them)."""
        needs = []
        for kind in TUNNEL_KINDS:
            if self.eligible(node, None, None, kind):
                needs.append(kind)
                continue
            hid = naming.tunnel_handle_id(kind, node.name)
            if hid in self.s.handles and self._valid(hid, node.name, self.eligible(node, None, None, kind, keep=True), None):
                needs.append(kind)
        return needs

    # ------------------------------------------------------------------ step 2
    def _check_existing(self) -> list:
        """Keep the valid addresses, release the others; return what still needs an address."""
        s = self.s
        handles = s.handles
        blocks = s.blocks
        block_pool = self.block_pool
        only = self.d.only_node
        needs: dict = {}  # node name -> ([tunnel kind], [workload]) still without a valid address
        kept = 0
        release = self._release
        for node in self.d.nodes.values():
            if only is not None and node.name != only:
                continue
            name = node.name
            for kind in self.tunnel_needs(node):
                hid = naming.tunnel_handle_id(kind, name)
                if self._valid(hid, name, self.eligible(node, None, None, kind, keep=True), None):
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
                                key = (wl.namespace, wl.pool)
                                allowed = cache.get(key)
                                if allowed is None:
                                    allowed = cache[key] = frozenset(self.eligible(node, wl.namespace, wl.pool, keep=True))
                                ok = (block_pool.get(cidr) in allowed
                                      and (block.attributes[block.allocations[ordinal]].get("secondary") or {}).get("node") == name
                                      and (wl.ip is None or wl.ip == block.base + ordinal))
                if ok:
                    kept += 1
                else:
                    release(hid)
                    needs.setdefault(name, ([], []))[1].append(wl)
        # Handles nobody wants any more (workloads or nodes removed, tunnels no longer needed).
        if len(handles) != kept:
            wanted = set()
            for node in self.d.nodes.values():
                if only is None or node.name == only:
                    wanted.update(wl.handle for wl in node.workloads)
                    wanted.update(naming.tunnel_handle_id(k, node.name) for k in self.tunnel_needs(node))
            for hid in [h for h in handles if h not in wanted]:
                if only is None or self._handle_node(hid) == only:
                    release(hid)
        return needs

    def _verified(self, node: Node) -> set:
        """Handle ids of ``node``'s workloads whose address is valid, checked group by group with set
        operations over the node's own blocks (the common case; anything else takes the slow path)."""
        own = self.node_blocks.get(node.name)
        if not own or not node.groups:
            return set()
        blocks = self.s.blocks
        clean = []
        for cidr in own:
            block = blocks[cidr]
            try:
                owners = set(map(_NODE, map(_SECONDARY, block.attributes)))
            except (KeyError, TypeError):
                continue
            if owners <= {node.name}:
                clean.append((self.block_pool[cidr], block.by_handle))
        verified: set = set()
        for (namespace, pool_name), hids in node.groups.items():
            allowed = self.eligible(node, namespace, pool_name, keep=True)
            present: set = set()
            for pool, by_handle in clean:
                if pool in allowed:
                    present.update(by_handle)
            verified.update(present.intersection(hids))
        return verified

    def _valid(self, hid: str, node: str, pools: list, want_ip: int | None) -> bool:
        handle = self.s.handles.get(hid)
        if handle is None or len(handle.block) != 1:
            return False
        ((cidr, count),) = handle.block.items()
        block = self.s.blocks.get(cidr)
        if count != 1 or block is None or self.block_pool.get(cidr) not in pools:
            return False
        ordinal = block.by_handle.get(hid)
        if ordinal is None:
            return False
        attr = block.attributes[block.allocations[ordinal]]
        return (attr.get("secondary") or {}).get("node") == node and (want_ip is None or want_ip == block.base + ordinal)

    def _handle_node(self, hid: str) -> str | None:
        handle = self.s.handles.get(hid)
        for cidr in handle.block if handle else ():
            block = self.s.blocks.get(cidr)
            ordinal = block.by_handle.get(hid) if block else None
            if ordinal is not None:
                return (block.attributes[block.allocations[ordinal]].get("secondary") or {}).get("node")
        return None

    def _release(self, hid: str) -> None:
        s = self.s
        handle = s.handles.pop(hid, None)
        s.touch_handle(hid)
        if handle is None:
            return
        for cidr in handle.block:
            block = s.blocks.get(cidr)
            if block is None:
                continue
            ordinal = block.by_handle.get(hid)
            node = (block.attributes[block.allocations[ordinal]].get("secondary") or {}).get("node") if ordinal is not None else None
            released = block.release_handle(hid)
            if released:
                self.report.released.append((node, block.base, cidr, released, hid))
            s.touch_block(cidr)

    # ------------------------------------------------------------------ step 3
    def _release_affinities(self) -> None:
        s = self.s
        only = self.d.only_node
        nodes = self.d.nodes
        blocks = s.blocks
        block_pool = self.block_pool
        drop = []
        for key, aff in s.affinities.items():
            node, cidr = key
            if only is not None and node != only:
                continue
            block = blocks.get(cidr)
            if block is None or node not in nodes or block.affinity != AFFINITY_PREFIX + node:
                drop.append(key)
                continue
            if len(block.unallocated) == len(block.allocations):
                # An empty block of a pool that can no longer serve this node goes back to the pool.
                pool = block_pool.get(cidr)
                if pool is None or pool.disabled or not pool.selects(nodes[node].labels):
                    drop.append(key)
                    continue
            if aff.state != "confirmed":
                # Finish a two-phase claim left half done (Calico: pending, then block, then confirmed).
                aff.state = "confirmed"
                s.touch_affinity(key)
                if cidr not in self.node_blocks.setdefault(node, []):
                    self.node_blocks[node].append(cidr)
        for node, cidr in drop:
            del s.affinities[(node, cidr)]
            s.touch_affinity((node, cidr))
            if cidr in self.node_blocks.get(node, ()):
                self.node_blocks[node].remove(cidr)
            block = blocks.get(cidr)
            deleted = False
            if block is not None and block.affinity == AFFINITY_PREFIX + node:
                if block.is_empty():
                    self._delete_block(cidr)
                    deleted = True
                else:
                    block.affinity = None
                    s.touch_block(cidr)
            self.report.unclaimed.append((node, cidr, deleted))
        affinities = s.affinities
        for cidr, block in list(blocks.items()):
            affinity = block.affinity
            if affinity is not None and affinity.startswith(AFFINITY_PREFIX):
                owner = affinity[len(AFFINITY_PREFIX):]
                if (owner, cidr) in affinities or (only is not None and owner != only):
                    continue
                # Affine to a host without an affinity object for it (a claim whose affinity was lost):
                # restore the affinity if the node is still here, else release it like a removed node's.
                pool = block_pool.get(cidr)
                if owner in nodes and pool is not None and (not block.is_empty() or pool.selects(nodes[owner].labels)):
                    affinities[(owner, cidr)] = Affinity("confirmed")
                    s.touch_affinity((owner, cidr))
                    self.node_blocks.setdefault(owner, []).append(cidr)
                    continue
                self.report.unclaimed.append((owner, cidr, block.is_empty()))
                block.affinity = None
                s.touch_block(cidr)
                if not block.is_empty():
                    continue
                self._delete_block(cidr)
                continue
            if only is None and len(block.unallocated) == len(block.allocations) and \
                    (affinity is None or block_pool.get(cidr) is None):
                self._delete_block(cidr)
                self.report.deleted_blocks.append(cidr)

    def _delete_block(self, cidr: str) -> None:
        block = self.s.blocks.pop(cidr)
        self.s.touch_block(cidr)
        pool = self.block_pool.pop(cidr, None)
        if pool is not None:
            self.claimed[pool.name].discard(pool.block_index(block.base))
            self._free.pop(pool.name, None)  # rebuilt at the next claim
            self._borrowable.pop(pool.name, None)

    # ------------------------------------------------------------------ step 4
    def _allocate(self, needs: dict) -> None:
        nodes = self.d.nodes
        requested = [(wl.id, name, wl) for name, (_tunnels, wls) in needs.items() for wl in wls if wl.ip is not None]
        requested.sort(key=_first)
        for _id, name, wl in requested:
            self._assign_requested(nodes[name], wl)
        for name in sorted(needs):
            node = nodes[name]
            tunnels, workloads = needs[name]
            for kind in tunnels:
                hid = naming.tunnel_handle_id(kind, name)
                self._assign_auto(node, self.eligible(node, None, None, kind), [hid],
                                  [tunnel_attribute(hid, name, kind)], f"{kind} tunnel address", "calico_pools")
            if requested:
                workloads = [wl for wl in workloads if wl.ip is None]
            workloads.sort(key=_BY_ID)
            if len(node.groups) == 1 and workloads:
                groups = {next(iter(node.groups)): workloads}  # one (namespace, pool) on this node
            else:
                groups = {}
                for wl in workloads:
                    key = (wl.namespace, wl.pool)
                    group = groups.get(key)
                    if group is None:
                        groups[key] = [wl]
                    else:
                        group.append(wl)
            for (namespace, pool_name), group in groups.items():
                pools = self.eligible(node, namespace, pool_name)
                hids = [wl.handle for wl in group]
                attributes = [{"handle_id": hid, "secondary": {"node": name, "namespace": namespace, "workload": wl.name}}
                              for hid, wl in zip(hids, group, strict=True)]
                self._assign_auto(node, pools, hids, attributes, group[0].id, group[0].field, group)

    def _assign_requested(self, node: Node, wl) -> None:
        s = self.s
        pool = next(p for p in self.pools if p.contains(wl.ip))
        index = pool.block_index(wl.ip)
        base = pool.block_base(index)
        cidr = format_cidr(base, pool.block_size)
        block = s.blocks.get(cidr)
        if block is None:
            block = self._claim(node.name, pool, index)
        ordinal = wl.ip - base
        if block.allocations[ordinal] is not None:
            holder = block.attributes[block.allocations[ordinal]]
            raise ValidationError(node.name, f"{wl.field}.ip", int_to_ip(wl.ip),
                                  f"already taken by {_owner(holder['handle_id'])} on node "
                                  f"{holder['secondary'].get('node')}")
        block.unallocated.remove(ordinal)
        self._give(node.name, block, [ordinal], [wl.handle],
                   [workload_attribute(wl.handle, node.name, wl.namespace, wl.name)])

    def _assign_auto(self, node: Node, pools: list, hids: list, attributes: list, what: str, field: str,
                     owners=None) -> None:
        """Give each handle of ``hids`` (with its attribute) one address, a block at a time.

        ``owners`` (the workloads of the batch, if any) name the first one left without an address."""
        name = node.name
        total = len(hids)
        if not pools:
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
        blocks = self.s.blocks
        # 1. The node's own blocks, in claim order. Allocation only fills blocks (every release came
        #    before it): the full ones at the front are passed for good (a cursor), so thousands of
        #    own blocks cost nothing per address.
        mine = self.node_blocks.get(name, ())
        cursor = self._full_prefix.get(name, 0)
        while cursor < len(mine) and not (blocks[mine[cursor]].unallocated and self._has_free(blocks[mine[cursor]])):
            cursor += 1
        self._full_prefix[name] = cursor
        for position in range(cursor, len(mine)):
            cidr = mine[position]
            block = blocks[cidr]
            if block.unallocated and self.block_pool[cidr] in pools and self._has_free(block):
                return block
        # 2. Claim a new block (searching from the node's seed, with wrap-around).
        if self.config.auto_allocate_blocks and len(mine) < self.config.block_limit:
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
        held = len(self.node_blocks.get(name, ()))
        limit = self.config.block_limit
        if self.config.strict_affinity:
            why = (f"it may claim no more blocks (max_blocks_per_host {limit})" if held >= limit
                   else "no unclaimed block is left")
            reason = (f"no address left in pool(s) {names} under strict_affinity: the node's {held} block(s) are "
                      f"full and {why}; it needs {need} more address(es)")
        else:
            unclaimed = sum(self._free_blocks(p).count for p in pools)
            if unclaimed and (held >= limit or not self.config.auto_allocate_blocks):
                # Not the pool: the limit on the node's blocks (say which one, and that the pool has room).
                cap = (f"max_blocks_per_host {limit}" + (" (0 means 20)" if not self.config.max_blocks_per_host else "")
                       if self.config.auto_allocate_blocks else "auto_allocate_blocks false")
                reason = (f"no address left for the node: it holds {held} block(s), all full, and {cap} lets it "
                          f"claim no more, while pool(s) "
                          f"{names} still have {unclaimed} unclaimed block(s) and no other node's block has a free "
                          f"address; it needs {need} more address(es): raise calico_ipam_config.max_blocks_per_host")
            else:
                reason = (f"pool(s) {names} exhausted: no free address left and no unclaimed block (the node holds "
                          f"{held} block(s)); it needs {need} more address(es)")
        if self.d.evacuate is not None:
            reason += (f", moving out of pool {self.d.evacuate.pool.name}: the new pool(s) cannot hold the addresses "
                       "moved there (capacity, block size x nodes, max_blocks_per_host)")
        raise ValidationError(name, field, what, reason)

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
            if self.d.reservations:
                last = block.base + len(block.allocations) - 1
                ranges = self.d.reserved_in(block.base, last)
                if ranges:
                    cached = frozenset(o - block.base for lo, hi in ranges for o in range(lo, hi + 1))
            self._reserved_cache[block.cidr] = cached
        return cached

    def _give(self, node: str, block: Block, ordinals: list, hids: list, attributes: list) -> None:
        """Assign ``ordinals`` of ``block`` to the handles ``hids``, with their ``attributes``."""
        s = self.s
        cidr = block.cidr
        allocations = block.allocations
        start = len(block.attributes)
        for index, ordinal in enumerate(ordinals, start):
            allocations[ordinal] = index
        block.attributes.extend(attributes)
        # A batch only ever holds handles that have no address (absent, or released in step 2).
        block.by_handle.update(zip(hids, ordinals, strict=True))
        new_handle = Handle.new
        s.handles.update({hid: new_handle(cidr) for hid in hids})
        s.touch_handles(hids)
        s.touch_block(cidr)
        self.report.added.append((node, block, ordinals, hids, block.affinity != AFFINITY_PREFIX + node))

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
            shift = 32 - pool.block_size
            full = [((max(lo, pool.base) - pool.base + (1 << shift) - 1) >> shift,
                     ((min(hi, pool.base + pool.capacity - 1) - pool.base + 1) >> shift) - 1)
                    for lo, hi in self.d.reserved_in(pool.base, pool.base + pool.capacity - 1)]
            free = self._free[pool.name] = FreeBlocks(pool.nblocks, self.claimed[pool.name], full)
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
            indexes = self._borrowable[pool.name] = sorted(self.claimed[pool.name])
        if not indexes:
            return None
        blocks = self.s.blocks
        affine = AFFINITY_PREFIX + name
        start = bisect.bisect_left(indexes, self._seed(pool, name))
        i = start
        for _attempt in range(len(indexes)):
            if i >= len(indexes):
                i = 0
            block = blocks[format_cidr(pool.block_base(indexes[i]), pool.block_size)]
            if block.unallocated and self._has_free(block):
                if block.affinity != affine:
                    return block
                i += 1  # this node's own block without a confirmed affinity: not borrowed by it, others may
            else:
                del indexes[i]  # full: stays out
        return None

    def _claim(self, node: str, pool: Pool, index: int) -> Block:
        s = self.s
        block = Block.new(pool.block_base(index), pool.block_size, node)
        s.blocks[block.cidr] = block
        s.touch_block(block.cidr)
        s.affinities[(node, block.cidr)] = Affinity("confirmed")
        s.touch_affinity((node, block.cidr))
        self.block_pool[block.cidr] = pool
        self.claimed[pool.name].add(index)
        if pool.name in self._free:
            self._free[pool.name].take(index)
        if pool.name in self._borrowable:
            bisect.insort(self._borrowable[pool.name], index)
        self.node_blocks.setdefault(node, []).append(block.cidr)
        self.report.claimed.append((node, block.cidr))
        return block


def _first(item):
    return item[0]


def _owner(hid: str) -> str:
    """What a handle stands for in messages: the workload id, or the handle itself for tunnels."""
    prefix = "l3-workload."
    return hid[len(prefix):] if hid.startswith(prefix) else hid


def plan(desired: Desired, state: IpamState) -> Report:
    """Reconcile ``state`` with ``desired`` (see the module docstring); raise IpamError on bad input."""
    return Planner(desired, state).run()


__all__ = ["plan", "Planner", "Report", "IpamError", "tunnel_kinds", "TUNNEL_KINDS"]
