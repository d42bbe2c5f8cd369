# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""etcd v3 key-value access for the IPAM: Calico's keys, consistent reads, CAS transactions.

Plain Python (no Ansible). The transport is etcd3gw (OpenStack's client for etcd's
grpc-gateway JSON API): pure Python over ``requests``, no gRPC/protobuf wheels to
match, maintained, and it exposes the raw ``/kv/txn`` call with compares.

Layout (Calico's libcalico-go ``model`` package, etcdv3 backend), below an optional prefix:

=================  ==================================================  ===========================
object             key                                                 value
=================  ==================================================  ===========================
block              /calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26   AllocationBlock JSON
                   /calico/ipam/v2/assignment/ipv6/block/fd00::-122    (an IPv6 block)
affinity           /calico/ipam/v2/host/<node>/ipv4/block/10.0.0.0-26  {"state":..,"deleted":..}
                   /calico/ipam/v2/host/<node>/ipv6/block/fd00::-122   (an IPv6 block's)
handle             /calico/ipam/v2/handle/<handle id>                  {"block":{cidr:n},"deleted":..}
IPAM config        /calico/ipam/v2/config                              {"strict_affinity":..,...}
IP pool            /calico/resources/v3/projectcalico.org/ippools/<n>  v3 IPPool resource
=================  ==================================================  ===========================

Writes: :func:`plan_txns` turns "what was read" and "what should be" into transactions in
which every written key carries a compare on what was read (``version == 0`` to create,
``mod_revision == r`` to update or delete), as Calico's etcdv3 backend does. Keys that
must change together (a block, the handles counting addresses in it, its affinities) form
one *unit* and always go into the same transaction, so a crash or a conflict between two
transactions leaves every object consistent with the others.
"""

from __future__ import annotations

import base64
import random
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ansible_collections.l3.calico.plugins.module_utils.ipam_model import IpamError

ROOT = "/calico/ipam/v2"
BLOCK_DIR = ROOT + "/assignment/ipv4/block/"
BLOCK_DIR_V6 = ROOT + "/assignment/ipv6/block/"
HOST_DIR = ROOT + "/host/"
HANDLE_DIR = ROOT + "/handle/"
CONFIG_KEY = ROOT + "/config"
#: Held (with a lease) by a run whose plan needs several transactions; outside Calico's tree.
WRITE_LOCK_KEY = "/l3.calico/ipam-write-lock"
#: IP pools are v3 resources (the planner keeps them to refuse cidr/blockSize changes).
POOL_DIR = "/calico/resources/v3/projectcalico.org/ippools/"

#: etcd's defaults: --max-txn-ops 128, --max-request-bytes 1.5 MiB (we keep a margin).
DEFAULT_MAX_TXN_OPS = 128
DEFAULT_MAX_TXN_BYTES = 1024 * 1024


class EtcdError(IpamError):
    """An etcd datastore error whose message says what happened and what to do."""


class EtcdUnavailableError(EtcdError):
    """No endpoint answered (or TLS failed): nothing was written by the failing call."""


class EtcdConflictError(EtcdError):
    """A transaction kept conflicting with other writers beyond the retry budget."""


# ---------------------------------------------------------------- keys


def cidr_to_key_part(cidr: str) -> str:
    return cidr.replace("/", "-")


def key_part_to_cidr(part: str) -> str:
    addr, _sep, length = part.rpartition("-")
    return f"{addr}/{length}"


def block_key(cidr: str, prefix: str = "") -> str:
    """Calico's key of a block: ``.../assignment/ipv4/block/...`` or, for an IPv6 block, ``ipv6``."""
    return f"{prefix}{BLOCK_DIR_V6 if ':' in cidr else BLOCK_DIR}{cidr_to_key_part(cidr)}"


def affinity_key(node: str, cidr: str, prefix: str = "") -> str:
    family = "ipv6" if ":" in cidr else "ipv4"
    return f"{prefix}{HOST_DIR}{node}/{family}/block/{cidr_to_key_part(cidr)}"


def handle_key(handle_id: str, prefix: str = "") -> str:
    return f"{prefix}{HANDLE_DIR}{handle_id}"


def config_key(prefix: str = "") -> str:
    return prefix + CONFIG_KEY


def pool_key(name: str, prefix: str = "") -> str:
    return prefix + POOL_DIR + name


def parse_key(key: str, prefix: str = "") -> tuple[str, Any] | None:
    """``("block", cidr)``, ``("affinity", (node, cidr))``, ``("handle", id)``, ``("config", None)``,
    ``("pool", name)``.

    None for keys this IPAM does not manage (``virtual`` affinities, IPAMHost markers, ...): they are
    read past and never written. A block or affinity key whose cidr is not of its directory's family
    (an IPv4 cidr under ``ipv6``) is not Calico's either: read past the same way.
    """
    if not key.startswith(prefix):
        return None
    rest = key[len(prefix) :]
    if rest.startswith(POOL_DIR):
        name = rest[len(POOL_DIR) :]
        return ("pool", name) if name and "/" not in name else None
    if not rest.startswith(ROOT + "/"):
        return None
    if rest == CONFIG_KEY:
        return ("config", None)
    if rest.startswith(BLOCK_DIR):
        part = rest[len(BLOCK_DIR) :]
        return ("block", key_part_to_cidr(part)) if "/" not in part and "-" in part and ":" not in part else None
    if rest.startswith(BLOCK_DIR_V6):
        part = rest[len(BLOCK_DIR_V6) :]
        return ("block", key_part_to_cidr(part)) if "/" not in part and "-" in part and ":" in part else None
    if rest.startswith(HANDLE_DIR):
        handle = rest[len(HANDLE_DIR) :]
        return ("handle", handle) if handle else None
    if rest.startswith(HOST_DIR):
        parts = rest[len(HOST_DIR) :].split("/")
        if len(parts) == 4 and parts[2] == "block" and parts[0] and "-" in parts[3]:
            if (parts[1] == "ipv4" and ":" not in parts[3]) or (parts[1] == "ipv6" and ":" in parts[3]):
                return ("affinity", (parts[0], key_part_to_cidr(parts[3])))
    return None


# ---------------------------------------------------------------- settings and transport


@dataclass
class EtcdSettings:
    """Where etcd is and how to talk to it (the module's ``etcd_*`` options)."""

    endpoints: list[str]
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    prefix: str = ""
    timeout: float = 5.0
    retries: int = 50
    max_txn_ops: int = DEFAULT_MAX_TXN_OPS
    max_txn_bytes: int = DEFAULT_MAX_TXN_BYTES

    def validate(self) -> None:
        if not self.endpoints:
            raise EtcdError("etcd_endpoints: at least one endpoint is needed (e.g. https://10.0.0.1:2379)")
        for ep in self.endpoints:
            _split_endpoint(ep, tls=self.ca_cert is not None)
        if (self.client_cert is None) != (self.client_key is None):
            raise EtcdError("etcd_cert and etcd_key: give both (client certificate and its key) or neither")
        if self.prefix and (not self.prefix.startswith("/") or self.prefix.endswith("/")):
            raise EtcdError(f"etcd_prefix: {self.prefix!r} must start with '/' and not end with '/' (e.g. /site-a); empty means Calico's own keys")
        if self.max_txn_ops < 4:
            raise EtcdError(f"etcd max_txn_ops: {self.max_txn_ops} is too small (etcd's default is 128)")
        if self.retries < 1:
            raise EtcdError(f"etcd_retries: {self.retries} must be at least 1")


def _split_endpoint(endpoint: str, tls: bool) -> tuple[str, str, int]:
    text = endpoint if "://" in endpoint else ("https://" if tls else "http://") + endpoint
    try:
        parts = urlsplit(text)
        port = parts.port or 2379
    except ValueError as exc:
        raise EtcdError(f"etcd_endpoints: {endpoint!r} is not host:port or a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise EtcdError(f"etcd_endpoints: {endpoint!r} is not http(s)://host:port")
    return parts.scheme, parts.hostname, port


def _b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text) if text else b""


def _prefix_end(prefix: bytes) -> bytes:
    """The range end covering every key that starts with ``prefix``."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


@dataclass
class Snapshot:
    """Every managed key as read at one revision: key -> (value, mod_revision)."""

    revision: int
    kvs: dict[str, tuple[bytes, int]] = field(default_factory=dict)


class EtcdKV:
    """Range reads and transactions against the first endpoint that answers."""

    PAGE = 10000  # keys per range request (one round trip for most sites)

    def __init__(self, settings: EtcdSettings) -> None:
        settings.validate()
        self.settings = settings
        self._clients: list[Any] = []
        self._current = 0

    def _client(self, index: int):
        try:
            import etcd3gw  # deferred: the file datastore must not need it
        except ImportError as exc:
            import sys

            raise EtcdError(
                f"the etcd datastore needs the Python package etcd3gw (pinned 2.7.0 in "
                f"requirements.txt), which {sys.executable} cannot import ({exc}): install "
                "it there, or run the module with a Python that has it"
            ) from None

        import requests  # etcd3gw's transport

        while len(self._clients) <= index:
            scheme, host, port = _split_endpoint(self.settings.endpoints[len(self._clients)], tls=self.settings.ca_cert is not None)
            # Our own session: with trust_env (requests' default) REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE
            # would silently replace etcd_ca_cert, and HTTP(S)_PROXY would route etcd through a proxy.
            session = requests.Session()
            session.trust_env = False
            session.verify = self.settings.ca_cert or True
            if self.settings.client_cert:
                session.cert = (self.settings.client_cert, self.settings.client_key)
            self._clients.append(etcd3gw.Etcd3Client(host=host, port=port, protocol=scheme, timeout=self.settings.timeout, session=session, api_path="/v3/"))
        return self._clients[index]

    def call(self, path: str, payload: dict) -> dict:
        """POST to the v3 JSON API, trying each endpoint once, the last good one first."""
        from etcd3gw import exceptions as exc

        errors = []
        count = len(self.settings.endpoints)
        for step in range(count):
            index = (self._current + step) % count
            client = self._client(index)
            try:
                result = client.post(client.get_url(path), json=payload)
            except (exc.ConnectionFailedError, exc.ConnectionTimeoutError) as err:
                errors.append(f"{self.settings.endpoints[index]}: {_reason(err)}")
                continue
            except exc.Etcd3Exception as err:
                raise EtcdError(f"etcd at {self.settings.endpoints[index]} refused {path}: {_reason(err)}") from None
            except OSError as err:  # TLS files unreadable, ...
                errors.append(f"{self.settings.endpoints[index]}: {err}")
                continue
            self._current = index
            return result
        raise EtcdUnavailableError("etcd unreachable: " + "; ".join(errors))

    def read_prefix(self, prefix: str, revision: int = 0) -> Snapshot:
        """Every key under ``prefix`` at one revision (paged, linearizable); 0 = the current one."""
        start, end = prefix.encode(), _prefix_end(prefix.encode())
        snap: Snapshot | None = Snapshot(revision=revision) if revision else None
        while True:
            payload = {"key": _b64(start), "range_end": _b64(end), "limit": self.PAGE}
            if snap is not None:
                payload["revision"] = snap.revision
            result = self.call("/kv/range", payload)
            if snap is None:
                snap = Snapshot(revision=int(result["header"]["revision"]))
            kvs = result.get("kvs", [])
            for kv in kvs:
                snap.kvs[_unb64(kv["key"]).decode("utf-8")] = (_unb64(kv.get("value", "")), int(kv["mod_revision"]))
            if not result.get("more") or not kvs:
                return snap
            start = _unb64(kvs[-1]["key"]) + b"\0"

    def txn(self, compares: list[dict], success: list[dict]) -> bool:
        result = self.call("/kv/txn", {"compare": compares, "success": success, "failure": []})
        return bool(result.get("succeeded", False))

    def get(self, key: str) -> bytes | None:
        kvs = self.call("/kv/range", {"key": _b64(key)}).get("kvs", [])
        return _unb64(kvs[0].get("value", "")) if kvs else None

    def grant(self, ttl: int) -> str:
        return str(self.call("/lease/grant", {"TTL": ttl, "ID": 0})["ID"])

    def revoke(self, lease: str) -> None:
        self.call("/kv/lease/revoke", {"ID": lease})

    def keepalive(self, lease: str) -> int:
        """Refresh a lease; its TTL now (0 or less: it had expired)."""
        result = self.call("/lease/keepalive", {"ID": lease}).get("result", {})
        return int(result.get("TTL", 0))

    def wipe(self, prefix: str) -> None:
        """Delete every key under ``prefix`` (tests and migrations only)."""
        self.call("/kv/deleterange", {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix.encode()))})


def lock_free(key: str) -> dict:
    """The compare every single-transaction write carries: no multi-transaction plan in progress."""
    return {"key": _b64(key), "target": "VERSION", "result": "EQUAL", "version": "0"}


def lock_mine(key: str, token: str) -> dict:
    """The compare every transaction of a multi-transaction plan carries: the lock is still ours."""
    return {"key": _b64(key), "target": "VALUE", "result": "EQUAL", "value": _b64(token)}


def _reason(err: Exception) -> str:
    detail = getattr(err, "detail_text", None) or ""
    text = str(detail or err)
    return text if len(text) < 300 else text[:300] + "..."


# ---------------------------------------------------------------- write planning


@dataclass
class Txn:
    """One etcd transaction: ``compares`` guard ``ops``; ``keys`` for messages."""

    compares: list[dict] = field(default_factory=list)
    ops: list[dict] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    size: int = 0


def _guard_and_op(key: str, old_rev: int, value: bytes | None) -> tuple[dict, dict, int]:
    bkey = _b64(key)
    if old_rev:
        compare = {"key": bkey, "target": "MOD", "result": "EQUAL", "mod_revision": str(old_rev)}
    else:
        compare = {"key": bkey, "target": "VERSION", "result": "EQUAL", "version": "0"}
    if value is None:
        op = {"request_delete_range": {"key": bkey}}
        size = 2 * len(bkey)
    else:
        bval = _b64(value)
        op = {"request_put": {"key": bkey, "value": bval}}
        size = 2 * len(bkey) + len(bval)
    return compare, op, size + 96


def _handle_blocks(value: bytes | None) -> set[str]:
    import json

    if not value:
        return set()
    try:
        return set((json.loads(value).get("block") or {}).keys())
    except (ValueError, AttributeError):
        return set()


def diff(old: dict[str, tuple[bytes, int]], new: dict[str, bytes]) -> dict[str, tuple[int, bytes | None]]:
    """Changed keys: key -> (mod_revision read or 0, new value or None to delete)."""
    changes: dict[str, tuple[int, bytes | None]] = {}
    for key, value in new.items():
        was = old.get(key)
        if was is None or was[0] != value:
            changes[key] = (was[1] if was else 0, value)
    for key, (_value, rev) in old.items():
        if key not in new:
            changes[key] = (rev, None)
    return changes


def units(changes: dict[str, tuple[int, bytes | None]], old: dict[str, tuple[bytes, int]], prefix: str = "") -> list[list[str]]:
    """Group changed keys that must commit together (union-find).

    A block, the affinities of its CIDR and every changed handle that counts (before or
    after) an address in it are one unit; the IPAM config and each pool are units of their
    own. Ordered: pools and config first, then units holding a block, then the rest.
    """
    parent = {key: key for key in changes}

    def find(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    by_cidr: dict[str, list[str]] = {}
    for key, (_rev, value) in changes.items():
        kind = parse_key(key, prefix)
        if kind is None:
            continue
        if kind[0] == "block":
            by_cidr.setdefault(kind[1], []).append(key)
        elif kind[0] == "affinity":
            by_cidr.setdefault(kind[1][1], []).append(key)
        elif kind[0] == "handle":
            before = old.get(key, (None, 0))[0]
            for cidr in _handle_blocks(before) | _handle_blocks(value):
                by_cidr.setdefault(cidr, []).append(key)
    for keys in by_cidr.values():
        for other in keys[1:]:
            union(keys[0], other)

    groups: dict[str, list[str]] = {}
    for key in sorted(changes):
        groups.setdefault(find(key), []).append(key)

    def rank(group: list[str]) -> tuple[int, str]:
        kinds = {(parse_key(k, prefix) or ("other",))[0] for k in group}
        return (0 if kinds & {"config", "pool"} else 1 if "block" in kinds else 2, group[0])

    order = {"pool": 0, "config": 0, "block": 1, "handle": 2, "affinity": 3}
    return [sorted(g, key=lambda k: (order.get((parse_key(k, prefix) or ("other",))[0], 4), k)) for g in sorted(groups.values(), key=rank)]


def plan_txns(
    changes: dict[str, tuple[int, bytes | None]],
    old: dict[str, tuple[bytes, int]],
    prefix: str = "",
    max_ops: int = DEFAULT_MAX_TXN_OPS,
    max_bytes: int = DEFAULT_MAX_TXN_BYTES,
) -> tuple[list[Txn], int]:
    """Pack units into as few transactions as etcd accepts.

    Returns the transactions and how many units had to be split because one unit alone
    exceeds the limits (only with blocks larger than /26 and more than ~120 changed
    handles in one block in one run); a split unit commits block first, handles after.
    """
    txns: list[Txn] = []
    split = 0
    current = Txn()
    for unit in units(changes, old, prefix):
        parts = [_guard_and_op(key, *changes[key]) for key in unit]
        unit_size = sum(p[2] for p in parts)
        if len(unit) > max_ops or unit_size > max_bytes:
            split += 1
        elif current.ops and (len(current.ops) + len(unit) > max_ops or current.size + unit_size > max_bytes):
            txns.append(current)
            current = Txn()
        for key, (compare, op, size) in zip(unit, parts, strict=True):
            if current.ops and (len(current.ops) >= max_ops or current.size + size > max_bytes):
                txns.append(current)
                current = Txn()
            current.compares.append(compare)
            current.ops.append(op)
            current.keys.append(key)
            current.size += size
    if current.ops:
        txns.append(current)
    return txns, split


def backoff(attempt: int, base: float = 0.005, cap: float = 0.25) -> None:
    """Full-jitter exponential backoff between conflicting attempts."""
    time.sleep(random.uniform(0, min(cap, base * (2 ** min(attempt, 10)))))
