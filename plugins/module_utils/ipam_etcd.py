# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The etcd v3 IPAM datastore: Calico's keys and values, compare-and-swap, bounded retries.

:class:`EtcdStore` implements :class:`ipam_store.Store` (see its docstring for the contract)::

    load    one consistent read (one etcd revision) of /calico/ipam/v2/ and of the IP pools,
            every key with its ModRevision
    plan    plan_fn(state) marks what it changes (state.changes())
    write   only the changed objects, each guarded by a compare on what was read:
            create  if Version(key) == 0, update/delete  if ModRevision(key) == read revision
    retry   any compare failing = another writer got there first: nothing of that transaction
            is written; re-load, re-plan, again (bounded, full-jitter backoff)

A plan small enough for one etcd transaction (< --max-txn-ops changed keys, 128 by default:
every per-host run and any controller run changing up to ~120 objects) is written all or
nothing. A larger plan first takes the writer lock (a key with a lease, which every
single-transaction write checks is absent), then reads and plans again under it, so no other
run of this IPAM can make one of its transactions conflict; it is cut between *units* — a block
together with its affinity and every handle counting addresses in it — never inside one, blocks
first. A crash in between (the lease then frees the lock) leaves each object consistent with the
others (no address held twice, none without its handle), and the next run's plan completes the rest.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ansible_collections.l3.calico.plugins.module_utils import etcd_kv as kv
from ansible_collections.l3.calico.plugins.module_utils.etcd_kv import (
    EtcdConflictError,
    EtcdError,
    EtcdSettings,
    EtcdUnavailableError,
)
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import (
    Affinity,
    Block,
    Handle,
    IpamConfig,
    StateError,
)
from ansible_collections.l3.calico.plugins.module_utils.ipam_store import IpamState, Store, check_state

T = TypeVar("T")

__all__ = ["EtcdStore", "EtcdSettings", "EtcdError", "EtcdUnavailableError", "EtcdConflictError", "state_to_kvs", "state_from_kvs", "encode"]

POOL_API = {"kind": "IPPool", "apiVersion": "projectcalico.org/v3"}


def encode(value) -> bytes:
    """JSON as Go's encoding/json writes it: compact, fields in declaration order."""
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def pool_resource(name: str, spec: dict, previous: dict | None = None) -> dict:
    """The v3 IPPool resource stored for a pool spec (metadata read earlier is kept)."""
    resource = dict(previous) if isinstance(previous, dict) else {}
    resource.update(POOL_API)
    metadata = dict(resource.get("metadata") or {})
    metadata["name"] = name
    resource["metadata"] = metadata
    resource["spec"] = spec
    return {
        "kind": resource.pop("kind"),
        "apiVersion": resource.pop("apiVersion"),
        "metadata": resource.pop("metadata"),
        "spec": resource.pop("spec"),
        **resource,
    }


def _value_of(state: IpamState, kind: str, ident, prefix: str, previous: dict):
    """(key, JSON value or None when absent) of one object of ``state``."""
    if kind == "block":
        obj = state.blocks.get(ident)
        return kv.block_key(ident, prefix), None if obj is None else obj.to_json()
    if kind == "affinity":
        obj = state.affinities.get(ident)
        return kv.affinity_key(ident[0], ident[1], prefix), None if obj is None else obj.to_json()
    if kind == "handle":
        obj = state.handles.get(ident)
        return kv.handle_key(ident, prefix), None if obj is None else obj.to_json()
    if kind == "pool":
        spec = state.pools.get(ident)
        key = kv.pool_key(ident, prefix)
        return key, None if spec is None else pool_resource(ident, spec, previous.get(key))
    return kv.config_key(prefix), state.config.to_json()


def _touched(state: IpamState):
    changes = state.changes()
    for cidr in sorted(changes.blocks):
        yield "block", cidr
    for key in sorted(changes.affinities):
        yield "affinity", key
    for hid in sorted(changes.handles):
        yield "handle", hid
    for name in sorted(changes.pools):
        yield "pool", name
    if changes.config:
        yield "config", None


def state_to_kvs(state: IpamState, prefix: str = "") -> dict[str, bytes]:
    """Every object of ``state`` as etcd key -> Calico JSON value (migration, tests)."""
    out = {kv.config_key(prefix): encode(state.config.to_json())}
    for name, spec in state.pools.items():
        out[kv.pool_key(name, prefix)] = encode(pool_resource(name, spec))
    for cidr, block in state.blocks.items():
        out[kv.block_key(cidr, prefix)] = encode(block.to_json())
    for (node, cidr), aff in state.affinities.items():
        out[kv.affinity_key(node, cidr, prefix)] = encode(aff.to_json())
    for hid, handle in state.handles.items():
        out[kv.handle_key(hid, prefix)] = encode(handle.to_json())
    return out


def state_from_kvs(kvs: dict[str, bytes], prefix: str = "", origin: str = "etcd") -> tuple[IpamState, dict]:
    """Build the state from etcd values; also return the decoded pool resources by key.

    Keys this IPAM does not manage are ignored; so are values marked ``deleted: true``
    (Calico's soft delete), as Calico's readers do.
    """
    state = IpamState()
    resources: dict[str, dict] = {}
    for key, raw in kvs.items():
        parsed = kv.parse_key(key, prefix)
        if parsed is None:
            continue
        kind, ident = parsed
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise StateError(f"{origin}: key {key} does not hold JSON ({exc}); refusing to plan on it") from None
        if not isinstance(value, dict):
            raise StateError(f"{origin}: key {key} holds {type(value).__name__}, not a JSON object")
        if value.get("deleted") is True:
            continue
        try:
            if kind == "block":
                block = Block.from_json(value)
                if block.cidr != ident:
                    raise StateError(f"block cidr {block.cidr} does not match its key")
                state.blocks[ident] = block
            elif kind == "affinity":
                state.affinities[ident] = Affinity.from_json(value)
            elif kind == "handle":
                state.handles[ident] = Handle.from_json(value)
            elif kind == "config":
                state.config = IpamConfig.from_json(value)
            elif kind == "pool":
                spec = value.get("spec")
                if not isinstance(spec, dict):
                    raise StateError("IPPool resource without a spec")
                state.pools[ident] = spec
                resources[key] = value
        except StateError as exc:
            raise StateError(f"{origin}: key {key}: {exc}; refusing to plan on it") from None
    try:
        check_state(state)  # the same check as the file's (ipam_store.check_state)
    except StateError as exc:
        raise StateError(f"{origin}: {exc}; refusing to plan on it") from None
    return state, resources


#: The argument spec matching doc fragment ``l3.calico.etcd``.
ETCD_ARGUMENT_SPEC = {
    "etcd_endpoints": {"type": "list", "elements": "str", "default": []},
    "etcd_ca_cert": {"type": "path"},
    "etcd_cert": {"type": "path"},
    "etcd_key": {"type": "path"},
    "etcd_prefix": {"type": "str", "default": ""},
    "etcd_timeout": {"type": "float", "default": 5.0},
    "etcd_retries": {"type": "int", "default": 50},
}


def settings_from_params(params: dict) -> EtcdSettings:
    """EtcdSettings from module parameters (validated: errors name the option and value)."""
    settings = EtcdSettings(
        endpoints=list(params.get("etcd_endpoints") or []),
        ca_cert=params.get("etcd_ca_cert"),
        client_cert=params.get("etcd_cert"),
        client_key=params.get("etcd_key"),
        prefix=params.get("etcd_prefix") or "",
        timeout=float(params.get("etcd_timeout") or 5.0),
        retries=int(params.get("etcd_retries") or 50),
    )
    settings.validate()
    return settings


def store_from_params(params: dict, datastore: str, state_file: str | None = None, lock_timeout: float | None = None) -> Store:
    """FileStore(state_file) or EtcdStore(etcd_* parameters), as ``datastore`` says."""
    if datastore == "etcd":
        return EtcdStore(settings_from_params(params))
    from ansible_collections.l3.calico.plugins.module_utils.ipam_store import FileStore

    if not state_file:
        raise EtcdError("state_file: a path is needed when datastore is file")
    return FileStore(state_file) if lock_timeout is None else FileStore(state_file, lock_timeout=lock_timeout)


class EtcdStore(Store):
    """IPAM objects in etcd v3 under Calico's keys (see the module docstring)."""

    def __init__(self, settings: EtcdSettings):
        self.settings = settings
        self.kv = kv.EtcdKV(settings)
        self.prefix = settings.prefix
        # figures of the last transact(), for the module's result and the benchmark
        self.attempts = 0
        self.conflicts = 0
        self.txns = 0
        self.keys_written = 0
        self.last_load_seconds = 0.0
        self.last_write_seconds = 0.0

    def _keep_alive(self, lease: str) -> LeaseKeeper:
        keeper = LeaseKeeper(kv.EtcdKV(self.settings), lease, self.LOCK_TTL)
        keeper.start()
        return keeper

    def read(self) -> tuple[kv.Snapshot, IpamState, dict]:
        """One consistent snapshot: the IPAM tree and the pools at the same revision."""
        snap = self.kv.read_prefix(self.prefix + kv.ROOT + "/")
        pools = self.kv.read_prefix(self.prefix + kv.POOL_DIR, revision=snap.revision)
        snap.kvs.update(pools.kvs)
        state, resources = state_from_kvs({k: v for k, (v, _rev) in snap.kvs.items()}, self.prefix, origin=f"etcd {self.settings.endpoints[self.kv._current]}")
        return snap, state, resources

    def load(self) -> IpamState:
        return self.read()[1]

    #: seconds the writer lock outlives its holder (refreshed while it commits)
    LOCK_TTL = 10
    #: seconds a run waits for another run's multi-transaction plan to finish
    LOCK_WAIT = 300.0

    def transact(self, plan_fn: Callable[[IpamState], T], *, write: bool) -> T:
        self.attempts = self.conflicts = self.txns = self.keys_written = 0
        self._committed = 0
        lock_key = self.prefix + kv.WRITE_LOCK_KEY
        lock: tuple[str, str] | None = None  # (token, lease) while we hold the writer lock
        keeper: LeaseKeeper | None = None  # refreshes the lock's lease for as long as we hold it
        try:
            attempt = 0
            while attempt < self.settings.retries:
                self.attempts = attempt + 1
                started = time.perf_counter()
                snap, state, resources = self._guarded(self.read)
                self.last_load_seconds = time.perf_counter() - started
                result = plan_fn(state)
                if not write or not state.changed:
                    return result
                started = time.perf_counter()
                txns = self._plan_writes(state, snap, resources)
                if len(txns) > 1 and lock is None:
                    lock = self._guarded(lambda: self._take_lock(lock_key))
                    keeper = self._keep_alive(lock[1])  # from now: the reload and plan may outlast the TTL
                    continue  # read and plan again under the lock
                guard = kv.lock_free(lock_key) if lock is None else kv.lock_mine(lock_key, lock[0])
                done = 0
                for txn in txns:
                    if keeper is not None and keeper.lost:
                        break
                    if not self._guarded(lambda txn=txn, guard=guard: self.kv.txn(txn.compares + [guard], txn.ops)):
                        break
                    done += 1
                    self._committed += 1
                    self.txns += 1
                    self.keys_written += len(txn.ops)
                self.last_write_seconds = time.perf_counter() - started
                if done == len(txns):
                    return result
                holder = self._guarded(lambda: self.kv.get(lock_key))
                if lock is not None and (keeper.lost or holder != lock[0].encode()):
                    # Not other writers: our lease ran out under us. Say so, and what was written.
                    keeper.stop()
                    raise EtcdConflictError(
                        f"etcd {','.join(self.settings.endpoints)}: this run lost the IPAM writer lock ({lock_key}): "
                        f"{keeper.lost or 'its key is gone or holds another token'} (lease {lock[1]}, "
                        f"TTL {self.LOCK_TTL}s); {_written(self._committed)}"
                    )
                if lock is None and holder is not None:
                    self._guarded(lambda: self._wait_lock(lock_key))  # not a conflict: wait our turn
                    continue
                self.conflicts += 1
                kv.backoff(attempt)
                attempt += 1
        finally:
            if keeper is not None:
                keeper.stop()
            if lock is not None:
                self._release_lock(lock_key, *lock)
        raise EtcdConflictError(
            f"etcd {','.join(self.settings.endpoints)}: the IPAM transaction still conflicted with other "
            f"writers after {self.settings.retries} attempts; {_written(self._committed)}"
        )

    def _guarded(self, call):
        """Run an etcd call; if etcd is unreachable say what this run has written so far."""
        try:
            return call()
        except EtcdUnavailableError as exc:
            raise EtcdUnavailableError(f"{exc}; {_written(self._committed)}") from None

    def _plan_writes(self, state: IpamState, snap: kv.Snapshot, resources: dict) -> list[kv.Txn]:
        """The transactions writing what the plan touched and actually changed."""
        changes: dict[str, tuple[int, bytes | None]] = {}
        for kind, ident in _touched(state):
            key, value = _value_of(state, kind, ident, self.prefix, resources)
            data = None if value is None else encode(value)
            old = snap.kvs.get(key)
            if data is None and old is None:
                continue  # created and deleted within the plan
            if old is not None and old[0] == data:
                continue  # touched, not changed
            changes[key] = (old[1] if old else 0, data)
        # one compare of every transaction is the writer-lock guard
        txns, _split = kv.plan_txns(changes, snap.kvs, self.prefix, self.settings.max_txn_ops - 1, self.settings.max_txn_bytes)
        return txns

    def _take_lock(self, key: str) -> tuple[str, str]:
        import uuid

        token = f"{uuid.uuid4()}"
        deadline = time.monotonic() + self.LOCK_WAIT
        while True:
            lease = self.kv.grant(self.LOCK_TTL)
            put = {"request_put": {"key": kv._b64(key), "value": kv._b64(token), "lease": lease}}
            if self.kv.txn([kv.lock_free(key)], [put]):
                return token, lease
            self.kv.revoke(lease)
            if time.monotonic() > deadline:
                raise EtcdConflictError(
                    f"etcd {','.join(self.settings.endpoints)}: another run held the IPAM writer lock "
                    f"({key}) for more than {self.LOCK_WAIT:.0f}s; nothing was written"
                )
            self._wait_lock(key)

    def _wait_lock(self, key: str) -> None:
        deadline = time.monotonic() + self.LOCK_WAIT
        delay = 0.01
        while self.kv.get(key) is not None:
            if time.monotonic() > deadline:
                raise EtcdConflictError(
                    f"etcd {','.join(self.settings.endpoints)}: another run held the IPAM writer lock "
                    f"({key}) for more than {self.LOCK_WAIT:.0f}s; {_written(self._committed)}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _release_lock(self, key: str, token: str, lease: str) -> None:
        try:  # revoking the lease deletes the key; only ours, by construction
            self.kv.revoke(lease)
        except EtcdError:
            pass  # etcd frees it when the lease expires


class LeaseKeeper(threading.Thread):
    """Refreshes an etcd lease every third of its TTL until stopped (its own connection: the planning
    thread keeps using the store's). ``lost`` says why it could not, once it could not."""

    def __init__(self, client: kv.EtcdKV, lease: str, ttl: float):
        super().__init__(name=f"etcd-lease-{lease}", daemon=True)
        self.client, self.lease, self.ttl = client, lease, ttl
        self.lost: str | None = None
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.ttl / 3):
            try:
                left = self.client.keepalive(self.lease)
            except EtcdError as exc:
                self.lost = f"its lease could not be refreshed ({exc})"
                return
            if left <= 0:
                self.lost = "its lease expired before it could be refreshed (etcd answered TTL 0)"
                return

    def stop(self) -> None:
        self._done.set()
        if self is not threading.current_thread() and self.is_alive():
            self.join(timeout=self.ttl)


def _written(committed: int) -> str:
    if committed == 0:
        return "nothing was written"
    return (
        f"{committed} transaction(s) of this run were committed, each leaving blocks, handles and "
        "affinities consistent with one another: run again to complete the plan"
    )
