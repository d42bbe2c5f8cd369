# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""What one IPAM plan works on: the inventory, the state, and the indexes built once from them.

Every phase of the planner (``ipam_planner``) gets the same :class:`PlanContext`. Its indexes are built
in the constructor, once, and kept current by the phases that change them (a claim adds a block, the
affinity release deletes some); its ``report`` (``ipam_changes``) records what each phase did.
"""

from __future__ import annotations

from ansible_collections.l3.calico.plugins.module_utils.ipam_changes import Report
from ansible_collections.l3.calico.plugins.module_utils.ipam_evacuation import NoEvacuation, policy
from ansible_collections.l3.calico.plugins.module_utils.ipam_inventory import Desired, Node
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import V4
from ansible_collections.l3.calico.plugins.module_utils.ipam_store import IpamState


class PlanContext:
    """The inputs of one plan and the indexes every phase shares, built here once.

    - ``block_pool``: block cidr -> the pool holding it (or None), :meth:`Desired.pool_of_blocks`;
    - ``claimed``: pool name -> the block indexes claimed in it;
    - ``node_blocks``: node -> the cidrs of its affine blocks (confirmed affinity), in claim order;
    - ``evacuation``: the evacuation policy (``ipam_evacuation``), a no-op without ``evacuate``.
    """

    def __init__(self, desired: Desired, state: IpamState):
        self.desired = desired
        self.state = state
        self.pools = desired.pools
        self.config = desired.config
        self.report = Report()
        blocks = state.blocks
        self.block_pool: dict = desired.pool_of_blocks(blocks)
        self.claimed: dict = {p.name: set() for p in self.pools}
        for cidr, block in blocks.items():
            pool = self.block_pool[cidr]
            if pool is not None:
                self.claimed[pool.name].add(pool.block_index(block.base))
        self.node_blocks: dict = {}
        for (node, cidr), aff in state.affinities.items():
            block = blocks.get(cidr)
            if aff.state == "confirmed" and block is not None and block.node == node:
                self.node_blocks.setdefault(node, []).append(cidr)
        self.evacuation: NoEvacuation = policy(desired, state, self.block_pool)
        self._eligible: dict = {}

    def eligible(self, node: Node, namespace: str | None, pool_name: str | None, kind: str | None = None, keep: bool = False, bits: int = V4) -> list:
        """Pools that may serve a workload (namespace, pool, family ``bits``) or a tunnel (kind) on ``node``,
        in order. Each family's pools are chosen on their own, as Calico's autoAssign does for
        Num4 and Num6 (libcalico-go/lib/ipam/ipam.go: one pool list per IP version).

        With ``keep``, the pools in which an existing address may stay: a disabled pool hands out no new
        address but keeps the ones it has (as in Calico), workloads' and tunnels' alike - except on the
        nodes the evacuation policy moves out of it (a pool migration step).

        A ``vxlan_v6`` tunnel address comes from the enabled IPv6 pools with VXLAN that select the node,
        whether or not the node has an IPv6 address, as Calico's calico-node allocates it
        (node/pkg/allocateip/allocateip.go, determineEnabledPoolCIDRs for AttributeTypeVXLANV6: VXLAN mode,
        not disabled, IP version 6, selects the node); the routes through it need both nodes' IPv6
        addresses (ipam_result.remote_path).
        """
        key = (node.name, namespace, pool_name, kind, keep, bits)
        pools = self._eligible.get(key)
        if pools is None:
            pools = []
            listed = self.desired.listed_namespaces
            evacuation = self.evacuation
            for pool in self.pools:
                if (pool.disabled and not keep) or not pool.selects(node.labels):
                    continue
                if kind is None and pool.bits != bits:
                    continue
                if keep and evacuation.moves(node.name, pool):
                    if kind is None or not evacuation.keeps_tunnel(node, kind):
                        continue
                if kind is not None:
                    if kind in pool.tunnel_kinds:
                        pools.append(pool)
                    continue
                if pool_name is not None and pool.name != pool_name:
                    continue
                if pool.namespaces:
                    if namespace not in pool.namespaces:
                        continue
                elif (namespace, bits) in listed:
                    continue
                pools.append(pool)
            self._eligible[key] = pools
        return pools
