# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The IPAM planner: reconcile the desired inventory with the state, Calico's way, phase by phase.

``plan(desired, state)`` mutates ``state`` (touching what it changes, see ``ipam_store``) and returns a
:class:`~ipam_changes.Report` of what it did. It is pure apart from that mutation, so a store may re-run
it on a fresh state. It works on integers: block ordinals and each block's ``unallocated`` FIFO, never
on per-address objects.

The :class:`~ipam_context.PlanContext` (inputs, and the indexes built once from them) is built first;
then the phases run in order, each Calico's semantics (libcalico-go/lib/ipam):

1. ``ipam_reconcile.Recorder``: IPAM config and pools recorded; a pool whose ``cidr`` or ``block_size``
   changed while it still has addresses in use is refused (both are immutable in Calico).
2. ``ipam_reconcile.ExistingCheck``: a workload keeps its address while it is still in the inventory, on
   the same node, in a pool allowed to serve it, and (if it requests one) at the requested address.
   Anything else is released: its ordinal goes to the tail of the block's ``unallocated`` FIFO.
3. ``ipam_reconcile.AffinityRelease``: removed nodes release their affinities: an emptied block is
   deleted, a block that still holds addresses borrowed by others loses its affinity. Empty blocks of a
   pool that no longer serves the node (or of no pool at all) are released the same way.
4. ``ipam_alloc.Allocator``: new addresses - requested ones first, then per node its tunnel addresses and
   its workloads, from its own blocks, a new claim searched from its FNV-32 seed, else a borrow.

A pool migration step (``evacuate``) changes some of these answers; the phases ask the context's
evacuation policy (``ipam_evacuation``), which is a no-op when nothing is evacuated, and its ``finish``
ends the run (the emptied old pool leaves the state).
"""

from __future__ import annotations

from ansible_collections.l3.calico.plugins.module_utils.ipam_alloc import Allocator
from ansible_collections.l3.calico.plugins.module_utils.ipam_changes import Report
from ansible_collections.l3.calico.plugins.module_utils.ipam_context import PlanContext
from ansible_collections.l3.calico.plugins.module_utils.ipam_inventory import Desired
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import no_gc
from ansible_collections.l3.calico.plugins.module_utils.ipam_reconcile import AffinityRelease, ExistingCheck, Recorder
from ansible_collections.l3.calico.plugins.module_utils.ipam_store import IpamState


class Planner:
    """One plan of ``desired`` on ``state``: the context built once, then the phases in order."""

    allocator = Allocator  # phase 4 (benchmarks/ipam.py puts the plain scans it replaced in its place)

    def __init__(self, desired: Desired, state: IpamState):
        with no_gc():
            self.context = PlanContext(desired, state)

    @property
    def block_pool(self) -> dict:
        """Block cidr -> the pool holding it (or None), kept current by the plan."""
        return self.context.block_pool

    def run(self) -> Report:
        ctx = self.context
        with no_gc():
            Recorder(ctx).run()
            needs = ExistingCheck(ctx).run()
            AffinityRelease(ctx).run()
            self.allocator(ctx).run(needs)
            ctx.evacuation.finish(ctx.state, ctx.report)
        return ctx.report

    def evacuation(self) -> dict | None:
        """With ``evacuate``, what the run moved (the module's ``evacuation`` result); else None."""
        return self.context.evacuation.result(self.context.state, self.context.report)


def plan(desired: Desired, state: IpamState) -> Report:
    """Reconcile ``state`` with ``desired`` (see the module docstring); raise IpamError on bad input."""
    return Planner(desired, state).run()
