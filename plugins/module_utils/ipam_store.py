# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Where the IPAM state lives: the in-memory state and the datastore interface.

The datastore interface (shared by the file store below and the etcd store)
===========================================================================

:class:`IpamState` holds the Calico objects in memory (models in ``ipam_model``)::

    state.blocks:      dict[str, Block]                  # key: block cidr "172.17.0.0/26"
    state.affinities:  dict[tuple[str, str], Affinity]   # (node, block cidr) -> {state, deleted}
    state.handles:     dict[str, Handle]                 # handle id -> {block: {cidr: n}, deleted}
    state.config:      IpamConfig                        # the IPAMConfig singleton
    state.pools:       dict[str, dict]                   # pool name -> v3 IPPool spec (cidr, blockSize, ...)

Whoever changes an object marks it with ``state.touch_block(cidr)``, ``touch_affinity((node, cidr))``,
``touch_handle(hid)`` (or ``touch_handles(hids)``), ``touch_pool(name)`` or ``touch_config()`` (the planner does). A key that is
touched and still in its dict is to be written (created or updated); a touched key that is no longer in
its dict is to be deleted. ``state.changes()`` returns those dirty keys (:class:`Changes`), so a store
writes only what changed; ``state.changed`` says whether there is anything at all. The first touch of a
block increments its ``sequenceNumber`` (Calico bumps it on every block write).

A :class:`Store` runs a planning function inside one transaction::

    Store.transact(plan_fn: Callable[[IpamState], T], *, write: bool) -> T

``plan_fn`` gets a freshly loaded state, mutates it (touching what it changes) and returns anything.
It must be re-runnable on a fresh state: pure apart from mutating the state it is given, so a store
may call it again after a conflict. With ``write=False`` (check mode) nothing is ever written.

- :class:`FileStore` (here): takes an exclusive ``fcntl.flock`` on ``<file>.lock`` for the whole
  load-plan-write, loads the JSON file, calls ``plan_fn`` once, and if ``write`` and the state changed
  writes the whole file atomically (``fileutil.atomic_write``: temporary file in the same directory,
  fsync, ``os.replace``, fsync of the directory), mode 0600. A corrupt or unknown-format file raises
  :class:`StateError` and is never overwritten.
- The etcd store (``ipam_etcd``): loads every object with its ModRevision, calls ``plan_fn``, writes only
  ``state.changes()`` in compare-and-swap transactions, and on a conflict reloads and calls ``plan_fn``
  again (bounded retries).

The (de)serialisers of each object are ``Block/Affinity/Handle/IpamConfig.to_json/from_json``, and the
etcd keys ``block_key``, ``affinity_key``, ``handle_key``, ``CONFIG_KEY``, ``pool_key`` in ``ipam_model``.
"""

from __future__ import annotations

import abc
import dataclasses
import errno
import fcntl
import json
import os
import time
from collections.abc import Callable
from itertools import pairwise
from typing import TypeVar

from ansible_collections.l3.calico.plugins.module_utils import naming
from ansible_collections.l3.calico.plugins.module_utils.fileutil import atomic_write, remove_stale_temporaries
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import (
    AFFINITY_PREFIX,
    V4,
    V6,
    Affinity,
    Block,
    Handle,
    IpamConfig,
    StateError,
    format_cidr,
    no_gc,
    parse_network,
    prefix_mask,
)

T = TypeVar("T")

FORMAT_NAME = "l3.calico/ipam"
FORMAT_VERSION = 1


@dataclasses.dataclass
class Changes:
    """Keys of the objects a plan touched (present in the state: write; absent: delete)."""

    blocks: set = dataclasses.field(default_factory=set)
    affinities: set = dataclasses.field(default_factory=set)
    handles: set = dataclasses.field(default_factory=set)
    pools: set = dataclasses.field(default_factory=set)
    config: bool = False

    def __bool__(self) -> bool:
        return bool(self.blocks or self.affinities or self.handles or self.pools or self.config)


class IpamState:
    """The IPAM objects in memory, plus the keys changed since load (see the module docstring)."""

    def __init__(self):
        self.blocks: dict[str, Block] = {}
        self.affinities: dict[tuple[str, str], Affinity] = {}
        self.handles: dict[str, Handle] = {}
        self.config: IpamConfig = IpamConfig()
        self.pools: dict[str, dict] = {}
        self._changes = Changes()

    # -- change tracking
    def touch_block(self, cidr: str) -> None:
        if cidr not in self._changes.blocks:
            self._changes.blocks.add(cidr)
            block = self.blocks.get(cidr)
            if block is not None:
                block.sequence_number += 1

    def touch_affinity(self, key: tuple[str, str]) -> None:
        self._changes.affinities.add(key)

    def touch_handle(self, handle_id: str) -> None:
        self._changes.handles.add(handle_id)

    def touch_handles(self, handle_ids) -> None:
        self._changes.handles.update(handle_ids)

    def touch_pool(self, name: str) -> None:
        self._changes.pools.add(name)

    def touch_config(self) -> None:
        self._changes.config = True

    def changes(self) -> Changes:
        return self._changes

    @property
    def changed(self) -> bool:
        return bool(self._changes)

    def blocks_inside(self, cidr) -> list:
        """The blocks of ``cidr``'s family whose first address is inside it (a pool's, maybe as recorded: []
        when malformed)."""
        try:
            base, prefix, bits = parse_network(cidr)
        except ValueError:
            return []
        mask = prefix_mask(prefix, bits)
        return [b for b in self.blocks.values() if (b.base & mask) == base and b.bits == bits]

    # -- (de)serialisation of the whole state as one document (the file store's format)
    def to_document(self) -> dict:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "config": self.config.to_json(),
            "pools": self.pools,
            "blocks": [b.to_json() for b in self.blocks.values()],
            "affinities": [{"node": node, "cidr": cidr, **aff.to_json()} for (node, cidr), aff in self.affinities.items()],
            "handles": {hid: h.to_json() for hid, h in self.handles.items()},
        }

    @classmethod
    def from_document(cls, doc, origin: str = "state") -> IpamState:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
            raise StateError(f"{origin}: not an l3.calico IPAM state (format {FORMAT_NAME!r} expected)")
        if doc.get("version") != FORMAT_VERSION:
            raise StateError(f"{origin}: unknown format version {doc.get('version')!r} (this code reads {FORMAT_VERSION})")
        state = cls()
        try:
            state.config = IpamConfig.from_json(doc.get("config", {}))
            pools = doc.get("pools", {})
            if not isinstance(pools, dict):
                raise StateError(f"pools={pools!r}: must be an object")
            state.pools = pools
            for name, kind in (("blocks", list), ("affinities", list), ("handles", dict)):
                if not isinstance(doc.get(name), kind):
                    raise StateError(f"{name}={doc.get(name)!r}: must be a{'n object' if kind is dict else ' list'}")
            for value in doc["blocks"]:
                block = Block.from_json(value)
                if block.cidr in state.blocks:
                    raise StateError(f"block {block.cidr}: cidr={block.cidr!r}: the block appears twice")
                state.blocks[block.cidr] = block
            for index, value in enumerate(doc["affinities"]):
                if not isinstance(value, dict) or not isinstance(value.get("node"), str) or not isinstance(value.get("cidr"), str):
                    raise StateError(f"affinities[{index}]={value!r}: must be an object with node, cidr and state")
                key = (value["node"], value["cidr"])
                if key in state.affinities:
                    raise StateError(f"affinity of {key[0]} for block {key[1]}: listed twice")
                state.affinities[key] = Affinity.from_json(value)
            handles = state.handles
            for hid, value in doc["handles"].items():
                if not isinstance(value, dict) or not isinstance(value.get("block"), dict):
                    raise StateError(f"handle {hid}: {value!r}: must be an object with a block map")
                handles[hid] = Handle(value["block"], value.get("deleted", False))
            check_state(state)
        except StateError as exc:
            raise StateError(f"{origin}: {exc}") from None
        return state


AFFINITY_STATES = ("pending", "confirmed", "pendingDeletion")
# A handle id reaches an etcd key (/calico/ipam/v2/handle/<id>) and printed commands: no '/', no space.
HANDLE_ID_MAX = 512


def _is_handle_id(value) -> bool:
    return isinstance(value, str) and 0 < len(value) <= HANDLE_ID_MAX and naming.SAFE_ID_RE.fullmatch(value) is not None


def _int(value, low: int, high: int | None = None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)


def _canonical(cidr) -> bool:
    try:
        base, prefix, bits = parse_network(cidr)
    except ValueError:
        return False
    return format_cidr(base, prefix, bits) == cidr


# Block sizes Calico allows per family (api/pkg/apis/projectcalico/v3/ippool.go: 20..32 for IPv4,
# 116..128 for IPv6): a block read back, and a pool's blockSize, of another size is refused.
BLOCK_SIZES = {V4: (20, 32), V6: (116, 128)}


def fault(what: str, field: str, value, why: str) -> str:
    """How a fault of the state is worded - refused on load (:func:`check_state`) or found by the audit."""
    return f"{what}: {field}={value!r}: {why}"


def free_list_fault(block: Block) -> tuple | None:
    """The first fault of ``block``'s free list as ``(field, value, why)``: an ordinal that is not one of the
    block's, listed twice (it would be handed out twice), or free and also allocated; None when sound."""
    size = block.size
    free = block.unallocated
    allocations = block.allocations
    # the common case in C-speed steps; the loop below only runs to name what is wrong
    if not free or (
        set(map(type, free)) == {int}
        and len(set(free)) == len(free)
        and min(free) >= 0
        and max(free) < size
        and [allocations[o] for o in free].count(None) == len(free)
    ):
        return None
    seen = set()
    for index, ordinal in enumerate(free):
        field = f"unallocated[{index}]"
        if not _int(ordinal, 0, size - 1):
            return field, ordinal, f"an ordinal is an integer from 0 to {size - 1}"
        if ordinal in seen:
            return field, ordinal, "listed twice (it would be handed out twice)"
        seen.add(ordinal)
        if allocations[ordinal] is not None:
            return (
                field,
                ordinal,
                (f"free and also allocated (address {block.address(ordinal)}, allocations[{ordinal}]={allocations[ordinal]})"),
            )
    return None


def overlap_faults(blocks: dict) -> list:
    """Every two blocks of one family that overlap, as ``(what, field, value, why)`` of the later one."""
    ordered = sorted(blocks.values(), key=lambda b: (b.bits, b.base))
    return [
        (f"block {after.cidr}", "cidr", after.cidr, f"overlaps block {before.cidr}")
        for before, after in pairwise(ordered)
        if before.bits == after.bits and before.base + before.size > after.base
    ]


def check_state(state: IpamState) -> None:
    """Refuse a state read back from a datastore (the file, etcd) unless every value in it is sound.

    As strictly as the inventory, and before anything is planned on it (so nothing is written): blocks
    in canonical spelling (``172.17.0.64/26``, not ``/026``; IPv6 in RFC 5952 spelling), of 20..32 bits
    (IPv6: 116..128), none twice or overlapping;
    ordinals integers inside the block, each listed once in ``unallocated`` and never also allocated;
    attributes objects with a well-formed handle id and a secondary of strings (its node a node name);
    ``sequenceNumber`` an integer, ``deleted`` a boolean; affinities ``host:<node name>``, their keys a
    node name and a canonical block, their state one of Calico's; handles well-formed ids holding
    counts >= 1 in canonical blocks; the config's booleans booleans and ``maxBlocksPerHost`` >= 0; each
    pool a DNS label with a canonical cidr and a block size of 20..32 (IPv6: 116..128). Raises :class:`StateError` naming
    the object, the field and the value.
    """

    def bad(what: str, field: str, value, why: str):
        raise StateError(fault(what, field, value, why))

    # Hot at a million addresses: names and blocks already found good are not checked again.
    good_nodes: set = set()

    def node_ok(name) -> bool:
        if name in good_nodes:
            return True
        if naming.is_node_name(name):
            good_nodes.add(name)
            return True
        return False

    handle_ok = naming.SAFE_ID_RE.fullmatch
    good_handles: set = set()
    for hid, handle in state.handles.items():
        what = f"handle {hid!r}"
        if not _is_handle_id(hid):
            bad(what, "id", hid, "a handle id is letters, digits, '.', '_' and '-'")
        good_handles.add(hid)
        if not isinstance(handle.deleted, bool):
            bad(what, "deleted", handle.deleted, "must be true or false")
        for cidr, count in handle.block.items():
            if cidr not in state.blocks and not _canonical(cidr):  # the blocks' keys are canonical (above)
                bad(what, "block", cidr, "not a block in canonical spelling")
            if not _int(count, 1):
                bad(what, f"block[{cidr}]", count, "a count of addresses is an integer >= 1")
    for key, block in state.blocks.items():
        what = f"block {block.cidr}"
        if key != block.cidr or not _canonical(block.cidr):
            bad(
                what,
                "cidr",
                block.cidr,
                f"not the canonical spelling of {format_cidr(block.base, block.prefix, block.bits)}" if key == block.cidr else f"stored under {key}",
            )
        if block.bits == V4:
            if not 20 <= block.prefix <= 32:
                bad(what, "cidr", block.cidr, "a block is a /20 to a /32")
        elif not 116 <= block.prefix <= 128:
            bad(what, "cidr", block.cidr, "an IPv6 block is a /116 to a /128")
        if block.affinity is not None and not (
            isinstance(block.affinity, str) and block.affinity.startswith(AFFINITY_PREFIX) and node_ok(block.affinity[len(AFFINITY_PREFIX) :])
        ):
            bad(what, "affinity", block.affinity, "must be null or host:<node name> (a DNS-1123 subdomain)")
        if not _int(block.sequence_number, 0):
            bad(what, "sequenceNumber", block.sequence_number, "must be an integer >= 0")
        if not isinstance(block.deleted, bool):
            bad(what, "deleted", block.deleted, "must be true or false")
        for index, attr in enumerate(block.attributes):
            hid = attr.get("handle_id") if isinstance(attr, dict) else None
            if not isinstance(hid, str) or (hid not in good_handles and (len(hid) > HANDLE_ID_MAX or handle_ok(hid) is None)):
                bad(what, f"attributes[{index}]", attr, "must be an object with a handle_id of letters, digits, '.', '_' and '-'")
            secondary = attr.get("secondary")
            if secondary is not None:  # JSON object keys are strings: only the values need a look
                if not isinstance(secondary, dict):
                    bad(what, f"attributes[{index}].secondary", secondary, "must be null or an object of strings")
                for value in secondary.values():
                    if not isinstance(value, str):
                        bad(what, f"attributes[{index}].secondary", secondary, "must be null or an object of strings")
                node = secondary.get("node")
                if node is not None and node not in good_nodes and not node_ok(node):
                    bad(what, f"attributes[{index}].secondary.node", node, naming.NODE_NAME_REASON)
        wrong = free_list_fault(block)
        if wrong is not None:
            bad(what, *wrong)
    for wrong in overlap_faults(state.blocks):
        bad(*wrong)
    for key, aff in state.affinities.items():
        node, cidr = key
        what = f"affinity of {node!r} for block {cidr!r}"
        if not node_ok(node):
            bad(what, "node", node, naming.NODE_NAME_REASON)
        if cidr not in state.blocks and not _canonical(cidr):
            bad(what, "cidr", cidr, "not a block in canonical spelling (a.b.c.d/len, host bits zero)")
        if aff.state not in AFFINITY_STATES:
            bad(what, "state", aff.state, f"must be one of {', '.join(AFFINITY_STATES)}")
        if not isinstance(aff.deleted, bool):
            bad(what, "deleted", aff.deleted, "must be true or false")
    config = state.config
    for field in ("strict_affinity", "auto_allocate_blocks"):
        if not isinstance(getattr(config, field), bool):
            bad("IPAMConfig", field, getattr(config, field), "must be true or false")
    if not _int(config.max_blocks_per_host, 0):
        bad("IPAMConfig", "maxBlocksPerHost", config.max_blocks_per_host, "must be an integer >= 0")
    for name, spec in state.pools.items():
        what = f"pool {name!r}"
        if not naming.is_label(name):
            bad(what, "name", name, "a pool name is a DNS label")
        if not isinstance(spec, dict):
            bad(what, "spec", spec, "must be an object")
        if not _canonical(spec.get("cidr")):
            bad(what, "cidr", spec.get("cidr"), "not an IPv4 or IPv6 network in canonical spelling")
        low, high = BLOCK_SIZES[V6 if ":" in spec["cidr"] else V4]
        if not _int(spec.get("blockSize"), low, high):
            bad(what, "blockSize", spec.get("blockSize"), f"must be an integer from {low} to {high}")


def dump_document(doc: dict) -> str:
    """The state as JSON with one object per line (a block, an affinity, a handle): readable, diffable
    with line tools, and as quick to write as one compact dump. Ends with a newline."""
    compact = json.JSONEncoder(separators=(",", ":")).encode
    parts = []
    for key, value in doc.items():
        if isinstance(value, list) and value:
            body = ",\n".join("  " + compact(item) for item in value)
            parts.append(f" {compact(key)}: [\n{body}\n ]")
        elif isinstance(value, dict) and value and key != "config":
            body = ",\n".join(f"  {compact(k)}: {compact(v)}" for k, v in value.items())
            parts.append(f" {compact(key)}: {{\n{body}\n }}")
        else:
            parts.append(f" {compact(key)}: {compact(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


class Store(abc.ABC):
    """A datastore of IPAM objects that runs a planning function in one transaction."""

    @abc.abstractmethod
    def transact(self, plan_fn: Callable[[IpamState], T], *, write: bool) -> T:
        """Load a fresh state, return ``plan_fn(state)``; persist the touched objects if ``write``."""


class FileStore(Store):
    """The whole state in one JSON file, guarded by an flock on ``<path>.lock``."""

    def __init__(self, path: str, lock_timeout: float = 600.0):
        self.path = os.path.abspath(path)
        self.lock_path = self.path + ".lock"
        self.lock_timeout = lock_timeout
        self.last_write_seconds = 0.0
        self.last_load_seconds = 0.0

    def transact(self, plan_fn: Callable[[IpamState], T], *, write: bool) -> T:
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            raise StateError(f"state file {self.path}: directory {directory} does not exist")
        lock_fd = self._lock(exclusive=write)
        try:
            started = time.perf_counter()
            with no_gc():
                state = self.load()
            self.last_load_seconds = time.perf_counter() - started
            result = plan_fn(state)
            if write and state.changed:
                started = time.perf_counter()
                remove_stale_temporaries(self.path)  # a killed writer's (the lock is ours: none is live)
                self.write(state)
                self.last_write_seconds = time.perf_counter() - started
            return result
        finally:
            if lock_fd is not None:
                os.close(lock_fd)  # closing the descriptor releases the flock

    def _lock(self, exclusive: bool) -> int | None:
        if exclusive:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        else:
            # A read-only (check mode) run creates nothing: without a lock file there is no writer
            # to wait for, and os.replace makes every read see a whole file anyway.
            try:
                fd = os.open(self.lock_path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return None
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
                return fd
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
            if time.monotonic() > deadline:
                os.close(fd)
                raise StateError(f"state file {self.path}: still locked by another run after {self.lock_timeout:.0f}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def load(self) -> IpamState:
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return IpamState()
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise StateError(
                f"state file {self.path} is corrupt ({exc}); refusing to use or overwrite it "
                "(restore it from a backup, or move it away to start from an empty state)"
            ) from None
        try:
            return IpamState.from_document(doc, origin=f"state file {self.path}")
        except StateError as exc:
            raise StateError(f"{exc}; refusing to use or overwrite it") from None

    def write(self, state: IpamState) -> None:
        with no_gc():
            doc = state.to_document()
        atomic_write(self.path, dump_document(doc), 0o600)
