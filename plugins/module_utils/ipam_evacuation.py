# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The evacuation policy of a plan: what a pool migration step (option ``evacuate``) changes; a no-op without one.

The planner asks the policy at each point where a migration step differs from an ordinary run, and
never tests for ``evacuate`` itself: :class:`NoEvacuation` answers "nothing moves" everywhere, and
:class:`PoolEvacuation` moves the nodes' addresses out of the disabled old pool (Calico's way: new
pool added, old one disabled, workloads re-addressed host by host, old pool removed once empty).
"""

from __future__ import annotations

from ansible_collections.l3.calico.plugins.module_utils import naming
from ansible_collections.l3.calico.plugins.module_utils.ipam_changes import PoolChange
from ansible_collections.l3.calico.plugins.module_utils.ipam_inventory import Desired, Evacuation, Node, Pool
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import address_text, bits_of, parse_network
from ansible_collections.l3.calico.plugins.module_utils.ipam_store import IpamState


class NoEvacuation:
    """No migration step in this run: nothing moves, every pool is recorded, nothing more to say."""

    def moves(self, node: str, pool: Pool) -> bool:
        """Whether this run moves ``node``'s addresses out of ``pool``."""
        return False

    def keeps_tunnel(self, node: Node, kind: str) -> bool:
        """Whether a node this run moves keeps its ``kind`` tunnel address in the old pool."""
        return False

    def not_recorded(self, state: IpamState) -> tuple:
        """Names of the pools of the inventory that are not to be recorded again."""
        return ()

    def exhausted(self) -> str:
        """What to add when the new pools run out of addresses."""
        return ""

    def finish(self, state: IpamState, report) -> None:
        """The last step of the run, after every address was allocated."""

    def result(self, state: IpamState, report) -> dict | None:
        """The module's ``evacuation`` result (None: not returned)."""
        return None


NOTHING = NoEvacuation()


class PoolEvacuation(NoEvacuation):
    """The nodes of ``evacuate.nodes`` leave the disabled pool ``evacuate.pool``: their addresses there are
    released and new ones allocated from the enabled pools; the old pool leaves the state once empty."""

    def __init__(self, evacuate: Evacuation, pools: list, state: IpamState, block_pool: dict):
        self.pool = evacuate.pool
        self.nodes = evacuate.nodes
        self.pools = pools
        # Other nodes still hold addresses in the old pool (workloads, or tunnel addresses their blocks
        # keep): its blocks are still routed, through the tunnels (see keeps_tunnel).
        self.draining = any(block_pool[cidr] is self.pool and not block.owner_nodes() <= self.nodes for cidr, block in state.blocks.items())

    def moves(self, node: str, pool: Pool) -> bool:
        return pool is self.pool and node in self.nodes

    def keeps_tunnel(self, node: Node, kind: str) -> bool:
        """An evacuated node keeps its ``kind`` tunnel address in the old pool only when no enabled pool
        of that encapsulation selects it (an encapsulation change, e.g. IPIP -> VXLAN) and other nodes
        still hold addresses in the old pool (workloads, or their own tunnel addresses): their blocks
        are still routed through that tunnel. So the old pool's tunnel addresses all leave together,
        in the run that evacuates every node (pool-migrate.yml's last round), never one node's
        before the others' (its tunnel device would be gone while BIRD still routes their blocks
        through it)."""
        return self.draining and not any(not p.disabled and kind in p.tunnel_kinds and p.selects(node.labels) for p in self.pools)

    def not_recorded(self, state: IpamState) -> tuple:
        """The old pool once migrated away from and removed from the state."""
        pool = self.pool
        return (pool.name,) if pool.name not in state.pools and not state.blocks_inside(pool.cidr) else ()

    def exhausted(self) -> str:
        return (
            f", moving out of pool {self.pool.name}: the new pool(s) cannot hold the addresses moved there (capacity, block size x nodes, max_blocks_per_host)"
        )

    def finish(self, state: IpamState, report) -> None:
        """The old pool holds no block any more: it leaves the state."""
        name = self.pool.name
        if name in state.pools and not state.blocks_inside(self.pool.cidr):
            del state.pools[name]
            state.touch_pool(name)
            report.pools.append(PoolChange(name, "removed: it holds no address any more (drop it from calico_pools)"))

    def result(self, state: IpamState, report) -> dict:
        """Per evacuated node what moved out of the old pool (old -> new address) and which of its blocks
        were released; how many addresses and blocks the old pool still holds; whether it left the state.
        Built from the report, so check mode shows exactly what a real run does."""
        pool = self.pool
        nodes = {name: {"moved": [], "released_blocks": []} for name in sorted(self.nodes)}
        new = {}
        for added in report.added:
            block = added.block
            for ordinal, hid in zip(added.ordinals, added.handles, strict=True):
                new[hid] = (block.address(ordinal), block.cidr)
        for released in report.released:
            bits = bits_of(released.cidr)
            if released.node not in nodes or not pool.contains(released.base, bits):
                continue
            to, to_block = new.get(released.handle, (None, None))
            for ordinal in released.ordinals:
                nodes[released.node]["moved"].append(
                    {"owner": naming.handle_owner(released.handle), "from": address_text(released.base + ordinal, bits), "to": to, "block": to_block}
                )
        for unclaimed in report.unclaimed:
            if unclaimed.node in nodes and pool.contains(*parse_network(unclaimed.cidr)[::2]):
                nodes[unclaimed.node]["released_blocks"].append(unclaimed.cidr)
        for entry in nodes.values():
            entry["moved"].sort(key=lambda m: m["owner"])
        left = state.blocks_inside(pool.cidr)
        return {
            "pool": pool.name,
            "cidr": pool.cidr,
            "nodes": nodes,
            "remaining": sum(b.in_use() for b in left),
            "blocks_left": len(left),
            "removed": pool.name not in state.pools,
        }


def policy(desired: Desired, state: IpamState, block_pool: dict) -> NoEvacuation:
    """The policy of this run: :data:`NOTHING` without ``evacuate``."""
    if desired.evacuate is None:
        return NOTHING
    return PoolEvacuation(desired.evacuate, desired.pools, state, block_pool)
