# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Copy the whole IPAM state from one datastore to another (state file <-> etcd), losslessly.

The destination ends up holding exactly the source's objects: blocks (sequence numbers and
unknown fields included), affinities with their state, handles, the IPAM config and the pools.
Only objects that differ are written, through the destination's own transaction, so copying
again is a no-op and a copy into etcd is as safe under concurrency as any other IPAM write.
"""

from __future__ import annotations

from ansible_collections.l3.calico.plugins.module_utils.ipam_model import (
    Affinity,
    Block,
    Handle,
    IpamConfig,
    IpamError,
)
from ansible_collections.l3.calico.plugins.module_utils.ipam_store import IpamState, Store

KINDS = ("pools", "blocks", "affinities", "handles")


class MigrationError(IpamError):
    """A copy that would lose data; nothing was written."""


def _json(kind: str, obj):
    return obj if kind == "pools" else obj.to_json()


def _clone(kind: str, obj):
    if kind == "pools":
        import copy

        return copy.deepcopy(obj)
    cls = {"blocks": Block, "affinities": Affinity, "handles": Handle}[kind]
    return cls.from_json(obj.to_json())


def _touch(state: IpamState, kind: str, key) -> None:
    {"pools": state.touch_pool, "blocks": state.touch_block, "affinities": state.touch_affinity, "handles": state.touch_handle}[kind](key)


def is_empty(state: IpamState) -> bool:
    return not any(getattr(state, kind) for kind in KINDS)


def replace_state(state: IpamState, source: IpamState) -> dict:
    """Make ``state`` hold exactly ``source``'s objects, touching only what differs.

    Returns per kind how many objects are in the source, and how many were added, changed
    and removed in ``state``.
    """
    summary = {}
    for kind in KINDS:
        mine, theirs = getattr(state, kind), getattr(source, kind)
        added = changed = removed = 0
        for key in sorted(set(mine) | set(theirs), key=str):
            if key not in theirs:
                _touch(state, kind, key)
                del mine[key]
                removed += 1
            elif key not in mine or _json(kind, mine[key]) != _json(kind, theirs[key]):
                added += key not in mine
                changed += key in mine
                _touch(state, kind, key)  # before the copy: a block's first touch bumps the old one
                mine[key] = _clone(kind, theirs[key])
        summary[kind] = {"total": len(theirs), "added": added, "changed": changed, "removed": removed}
    config_changed = state.config.to_json() != source.config.to_json()
    if config_changed:
        state.config = IpamConfig.from_json(source.config.to_json())
        state.touch_config()
    summary["config"] = {"changed": config_changed}
    return summary


def copy_state(
    source: Store, destination: Store, *, write: bool, overwrite: bool = False, source_name: str = "source", destination_name: str = "destination"
) -> dict:
    """Copy ``source`` into ``destination``; returns the summary of :func:`replace_state`.

    Refused (nothing written) when the source is empty, or when the destination holds a
    different, non-empty state and ``overwrite`` is false.
    """
    src = source.transact(lambda state: state, write=False)
    if is_empty(src):
        raise MigrationError(f"{source_name} holds no IPAM state (no pool, block, affinity or handle); nothing to copy")

    def plan(state: IpamState) -> dict:
        had_data = not is_empty(state)
        summary = replace_state(state, src)
        if had_data and state.changed and not overwrite:
            counts = ", ".join(f"{len(getattr(src, k))} {k}" for k in KINDS)
            raise MigrationError(
                f"{destination_name} already holds a different IPAM state; copying {counts} from {source_name} would replace it: set overwrite to do so"
            )
        summary["changed"] = state.changed
        return summary

    return destination.transact(plan, write=write)
