# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""What a plan changed, entry by entry: the report behind ``--diff`` and an evacuation's result."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from ansible_collections.l3.calico.plugins.module_utils import naming
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import V4, Block, address_text, bits_of, int_to_ip, int_to_ip6


class Added(NamedTuple):
    """Addresses given in one block: ``ordinals[i]`` to handle ``handles[i]``."""

    node: str
    block: Block
    ordinals: list
    handles: list
    borrowed: bool  # the block is not affine to the node


class Released(NamedTuple):
    """The addresses a handle held in one block, released (``node`` is the one they were given to)."""

    node: str | None
    base: int
    cidr: str
    ordinals: list
    handle: str


class Claimed(NamedTuple):
    node: str
    cidr: str


class Unclaimed(NamedTuple):
    """A node's affinity for a block released; the block deleted when empty, kept when still in use."""

    node: str
    cidr: str
    deleted: bool


class PoolChange(NamedTuple):
    name: str
    what: str  # "recorded", "removed", ...


@dataclasses.dataclass
class Report:
    """What a plan did, for ``--diff``, the summary and an evacuation's result."""

    added: list = dataclasses.field(default_factory=list)  # [Added]
    released: list = dataclasses.field(default_factory=list)  # [Released]
    claimed: list = dataclasses.field(default_factory=list)  # [Claimed]
    unclaimed: list = dataclasses.field(default_factory=list)  # [Unclaimed]
    deleted_blocks: list = dataclasses.field(default_factory=list)  # block cidrs (empty, no pool serves them)
    config: bool = False
    pools: list = dataclasses.field(default_factory=list)  # [PoolChange]

    def diff_lines(self) -> list:
        lines = []
        for claim in self.claimed:
            lines.append(f"+ block {claim.cidr} affine to {claim.node}")
        for added in self.added:
            block = added.block
            where = f"on {added.node} (block {block.cidr}{', borrowed' if added.borrowed else ''})"
            text = int_to_ip if block.bits == V4 else int_to_ip6
            for ordinal, hid in zip(added.ordinals, added.handles, strict=True):
                lines.append(f"+ {text(block.base + ordinal)} {naming.handle_owner(hid)} {where}")
        for released in self.released:
            bits = bits_of(released.cidr)
            for ordinal in released.ordinals:
                lines.append(
                    f"- {address_text(released.base + ordinal, bits)} {naming.handle_owner(released.handle)} on {released.node} (block {released.cidr})"
                )
        for unclaimed in self.unclaimed:
            kept = " (block deleted)" if unclaimed.deleted else " (block kept: in use)"
            lines.append(f"- block {unclaimed.cidr} affinity to {unclaimed.node}{kept}")
        for cidr in self.deleted_blocks:
            lines.append(f"- block {cidr} (empty, no pool serves it)")
        if self.config:
            lines.append("~ IPAM config recorded")
        for change in self.pools:
            lines.append(f"~ pool {change.name} {change.what}")
        return lines
