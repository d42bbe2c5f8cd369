# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Calico IPAM objects with their exact JSON shapes, and the integer maths of both families under them.

Plain Python (no Ansible, no netaddr): the planner works on integers and block ordinals.
Each object converts to and from the JSON value Calico stores under its etcd key
(libcalico-go/lib/backend/model): the file store and the etcd store use the same
``to_json``/``from_json`` and the same key helpers below.

========================  =====================================================  ==========================
object                    etcd key                                               JSON value
========================  =====================================================  ==========================
:class:`Block`            ``/calico/ipam/v2/assignment/ipv4/block/<cidr with ->``  AllocationBlock
                          (IPv6 blocks: ``.../assignment/ipv6/block/...``)
:class:`Affinity`         ``/calico/ipam/v2/host/<node>/ipv4/block/<cidr with ->``  ``{state, deleted}``
                          (IPv6 blocks: ``.../host/<node>/ipv6/block/...``)
:class:`Handle`           ``/calico/ipam/v2/handle/<handle id>``                  ``{block: {cidr: n}, deleted}``
:class:`IpamConfig`       ``/calico/ipam/v2/config``                               IPAMConfig
pool spec (dict)          ``/calico/resources/v3/projectcalico.org/ippools/<name>``  IPPool (v3 resource)
========================  =====================================================  ==========================

Addresses are integers of their family: an IPv4 one below 2**32, an IPv6 one below 2**128. The two
ranges overlap, so a family always travels with them - as ``bits`` (32 or 128, the address width):
a block knows its own (``Block.bits``, from its cidr's spelling), a pool its own, a request its own.
IPv6 blocks are /116../128, IPv4 blocks /20../32: a block's prefix length alone also tells them apart.
"""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import operator
import socket
import struct
import time
from typing import Optional

from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError

_new_object = object.__new__
AFFINITY_PREFIX = "host:"
# The tunnel addresses of a node and their attribute types (libcalico-go lib/ipam: AttributeTypeIPIP,
# AttributeTypeVXLAN, AttributeTypeVXLANV6; node/pkg/allocateip/allocateip.go allocates them).
TUNNEL_TYPES = {"ipip": "ipipTunnelAddress", "vxlan": "vxlanTunnelAddress", "vxlan_v6": "vxlanV6TunnelAddress"}
TUNNEL_KINDS = tuple(TUNNEL_TYPES)  # ("ipip", "vxlan", "vxlan_v6")
V4, V6 = 32, 128  # address widths: the family of an address, a block, a pool
FAMILY = {V4: "IPv4", V6: "IPv6"}
_NODE = operator.itemgetter("node")
_SECONDARY = operator.itemgetter("secondary")

BLOCK_KEY_PREFIX = "/calico/ipam/v2/assignment/ipv4/block/"
BLOCK_KEY_PREFIX_V6 = "/calico/ipam/v2/assignment/ipv6/block/"
HOST_KEY_PREFIX = "/calico/ipam/v2/host/"
HANDLE_KEY_PREFIX = "/calico/ipam/v2/handle/"
CONFIG_KEY = "/calico/ipam/v2/config"
POOL_KEY_PREFIX = "/calico/resources/v3/projectcalico.org/ippools/"


class IpamError(L3CalicoError):
    """Base of every IPAM error; the message is meant for the user as it is."""


class ValidationError(IpamError):
    """Bad input, detected before anything is written. Names host, field and value."""

    def __init__(self, host: str, field: str, value, reason: str):
        self.host, self.field, self.value, self.reason = host, field, value, reason
        super().__init__(f"{host}: {field}={value!r}: {reason}")


class StateError(IpamError):
    """A state that cannot be trusted (corrupt file, unknown format, broken object)."""


ENCAP_MODES = ("Never", "Always", "CrossSubnet")  # a pool's ipip_mode and vxlan_mode, as Calico's IPPool


def encapsulation_modes(raw, bits: int = V4) -> tuple[tuple[str, str], Optional[tuple[str, object, str]]]:
    """A pool's ``(ipip_mode, vxlan_mode)`` read from its mapping (absent or empty = ``Never``), and the
    first fault as ``(key, value, reason)`` or None. The one rule for the inventory's pools
    (``ipam_inventory``) and the IPAM result's (``ipam_result``), each raising its own error with it;
    ``bits``: the pool's family (``V4`` or ``V6``)."""
    modes = []
    for key in ("ipip_mode", "vxlan_mode"):
        mode = raw.get(key) or "Never"
        if mode not in ENCAP_MODES:
            return ("Never", "Never"), (key, mode, f"unknown mode (one of {', '.join(ENCAP_MODES)})")
        modes.append(mode)
    ipip, vxlan = modes
    if bits == V6 and ipip != "Never":
        # Calico: "IPIP is not supported on an IPv6 IP pool" (libcalico-go's IPPool validator).
        return (ipip, vxlan), ("ipip_mode", ipip, "IPIP is IPv4-only: an IPv6 pool uses vxlan_mode (VXLAN over IPv6, vxlan-v6.calico) or no encapsulation")
    if ipip != "Never" and vxlan != "Never":
        return (ipip, vxlan), ("vxlan_mode", vxlan, f"IPIP ({ipip}) and VXLAN cannot both be on in one pool")
    return (ipip, vxlan), None


def tunnel_kinds(ipip_mode: str, vxlan_mode: str, bits: int = V4) -> tuple:
    """The encapsulations a pool with these modes uses, of ``TUNNEL_KINDS`` (every mode but ``Never``): the
    tunnel addresses a node it selects needs. The one answer for the inventory's pools (``ipam_inventory``),
    the IPAM result's (``ipam_result``) and the workload MTU (``node``).

    An IPv6 pool (``bits`` 128) knows only VXLAN, over its own device and address (``vxlan_v6``: Calico's
    vxlan-v6.calico and ``vxlanV6TunnelAddress``); IPIP is IPv4-only (Calico refuses ipipMode on an IPv6
    pool, api/pkg/apis/projectcalico/v3/ippool.go and libcalico-go's validator)."""
    if bits == V6:
        return ("vxlan_v6",) if vxlan_mode != "Never" else ()
    return tuple(kind for kind, mode in zip(("ipip", "vxlan"), (ipip_mode, vxlan_mode), strict=True) if mode != "Never")


@contextlib.contextmanager
def no_gc():
    """Pause the cyclic garbage collector: a plan creates millions of small acyclic objects, and the
    collector's generation scans would otherwise make it quadratic. Reference counting still frees them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            # What survived is long-lived (the state): move it out of the collector's sight, or the
            # first collection after this would scan all of it again.
            gc.freeze()
            gc.enable()


# --------------------------------------------------------------------------- IPv4 and IPv6 maths

_PACK = struct.Struct("!I")
_ntop, _AF_INET6 = socket.inet_ntop, socket.AF_INET6


def ip_to_int(text: str) -> int:
    """Dotted quad to integer, parsed strictly by the standard library."""
    try:
        return int(ipaddress.IPv4Address(text))
    except (ipaddress.AddressValueError, TypeError):
        raise ValueError(f"not an IPv4 address: {text!r}") from None


def int_to_ip(value: int) -> str:
    # The hot path (a million addresses formatted per result): one C call per address.
    return socket.inet_ntoa(_PACK.pack(value))


def int_to_ip6(value: int) -> str:
    """An IPv6 integer in RFC 5952 spelling (lower case, longest zero run compressed: what Go's
    ``net.IP.String()`` writes in Calico's keys and values)."""
    return _ntop(_AF_INET6, value.to_bytes(16, "big"))


def address_text(value: int, bits: int) -> str:
    """An address of the family ``bits`` (32 or 128) as text."""
    return int_to_ip(value) if bits == V4 else int_to_ip6(value)


def ip6_to_int(text: str) -> int:
    """An IPv6 address (no prefix length, no zone) to integer, parsed strictly by the standard library."""
    try:
        return int(ipaddress.IPv6Address(text))
    except (ipaddress.AddressValueError, TypeError):
        raise ValueError(f"not an IPv6 address: {text!r}") from None


def bits_of(text) -> int:
    """The family of an address or network by its spelling: 128 when it holds a ':', else 32."""
    return V6 if isinstance(text, str) and ":" in text else V4


def parse_cidr(text: str, strict: bool = True) -> tuple[int, int]:
    """``"a.b.c.d/len"`` to ``(network int, prefix length)``; strict refuses host bits."""
    if not isinstance(text, str) or "/" not in text:
        raise ValueError(f"not an IPv4 CIDR: {text!r}")
    if not text.rpartition("/")[2].isdigit():  # a prefix length, not a netmask: one spelling per network
        raise ValueError(f"bad prefix length in {text!r}")
    try:
        network = ipaddress.IPv4Network(text, strict=strict)
    except ipaddress.NetmaskValueError:
        raise ValueError(f"bad prefix length in {text!r}") from None
    except ipaddress.AddressValueError:
        raise ValueError(f"not an IPv4 CIDR: {text!r}") from None
    except ValueError:  # host bits set
        loose = ipaddress.IPv4Network(text, strict=False)
        raise ValueError(f"{text!r} has host bits set (the network is {loose})") from None
    return int(network.network_address), network.prefixlen


def parse_cidr6(text: str, strict: bool = True) -> tuple[int, int]:
    """``"fd00::/64"`` to ``(network int, prefix length)``; strict refuses host bits (as :func:`parse_cidr`)."""
    if not isinstance(text, str) or "/" not in text:
        raise ValueError(f"not an IPv6 CIDR: {text!r}")
    if not text.rpartition("/")[2].isdigit():
        raise ValueError(f"bad prefix length in {text!r}")
    try:
        network = ipaddress.IPv6Network(text, strict=strict)
    except ipaddress.NetmaskValueError:
        raise ValueError(f"bad prefix length in {text!r}") from None
    except ipaddress.AddressValueError:
        raise ValueError(f"not an IPv6 CIDR: {text!r}") from None
    except ValueError:  # host bits set
        loose = ipaddress.IPv6Network(text, strict=False)
        raise ValueError(f"{text!r} has host bits set (the network is {loose})") from None
    return int(network.network_address), network.prefixlen


def parse_network(text: str, strict: bool = True) -> tuple[int, int, int]:
    """A network of either family: ``(network int, prefix length, bits)``, the family by its spelling."""
    if bits_of(text) == V6:
        return (*parse_cidr6(text, strict), V6)
    return (*parse_cidr(text, strict), V4)


def prefix_mask(prefix: int, bits: int = V4) -> int:
    if bits == V4:
        return (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return ((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1)


def format_cidr(base: int, prefix: int, bits: int = V4) -> str:
    if bits == V4:
        return f"{int_to_ip(base)}/{prefix}"
    return f"{int_to_ip6(base)}/{prefix}"


def fnv32(text: str) -> int:
    """FNV-1 32-bit hash (Go's ``hash/fnv.New32``), Calico's seed for a host's block search."""
    value = 0x811C9DC5
    for byte in text.encode("utf-8"):
        value = (value * 0x01000193) & 0xFFFFFFFF
        value ^= byte
    return value


def key_cidr(cidr: str) -> str:
    """The CIDR as it appears in an etcd key: ``10.0.0.0/26`` -> ``10.0.0.0-26``."""
    return cidr.replace("/", "-")


def ip_version_dir(cidr: str) -> str:
    """``ipv4`` or ``ipv6``: the family part of Calico's block and affinity keys (model/block.go,
    model/block_affinity.go: ``/calico/ipam/v2/assignment/ipv<N>/block/``, ``/host/<node>/ipv<N>/block/``)."""
    return "ipv6" if ":" in cidr else "ipv4"


def block_key(cidr: str) -> str:
    return (BLOCK_KEY_PREFIX_V6 if ":" in cidr else BLOCK_KEY_PREFIX) + key_cidr(cidr)


def affinity_key(node: str, cidr: str) -> str:
    return f"{HOST_KEY_PREFIX}{node}/{ip_version_dir(cidr)}/block/{key_cidr(cidr)}"


def handle_key(handle_id: str) -> str:
    return HANDLE_KEY_PREFIX + handle_id


def pool_key(name: str) -> str:
    return POOL_KEY_PREFIX + name


# --------------------------------------------------------------------------- objects


def _attribute_node(attribute: dict) -> str | None:
    """The node an allocation attribute names (``secondary.node``), None when it names none."""
    secondary = attribute.get("secondary")
    return secondary.get("node") if secondary else None


class Block:
    """An AllocationBlock (libcalico-go model/block.go).

    ``allocations[ordinal]`` is None or an index into ``attributes``; ``unallocated`` is the FIFO of
    free ordinals (head handed out first, released ordinals appended at the tail). ``attributes``
    are kept as Calico-shaped dicts ``{"handle_id", "secondary"}``. ``by_handle`` (derived, not
    stored) maps a handle id to its first ordinal in this block, so a lookup never scans.
    """

    __slots__ = (
        "cidr",
        "base",
        "prefix",
        "affinity",
        "allocations",
        "unallocated",
        "attributes",
        "sequence_number",
        "deleted",
        "extra",
        "by_handle",
        "bits",
    )

    def __init__(self, cidr: str, base: int, prefix: int, affinity: str | None = None, sequence_number: int | None = None, bits: int = V4):
        size = 1 << (bits - prefix)
        self.bits = bits
        self.cidr = cidr
        self.base = base
        self.prefix = prefix
        self.affinity = affinity
        self.allocations: list[int | None] = [None] * size
        self.unallocated: list[int] = list(range(size))
        self.attributes: list[dict] = []
        # Calico initialises the sequence number to the creation time in ns, so a re-created block
        # never repeats one; every write increments it.
        self.sequence_number = time.time_ns() if sequence_number is None else sequence_number
        self.deleted = False
        self.extra: dict = {}
        self.by_handle: dict[str, int] = {}

    @classmethod
    def new(cls, base: int, prefix: int, node: str | None, bits: int = V4) -> Block:
        return cls(format_cidr(base, prefix, bits), base, prefix, None if node is None else AFFINITY_PREFIX + node, bits=bits)

    @property
    def size(self) -> int:
        return len(self.allocations)

    @property
    def node(self) -> str | None:
        """The host this block is affine to (None when not affine or affine to a non-host)."""
        aff = self.affinity
        if aff and aff.startswith(AFFINITY_PREFIX):
            return aff[5:]
        return None

    def address(self, ordinal: int) -> str:
        return address_text(self.base + ordinal, self.bits)

    def owner_node(self, ordinal: int) -> str | None:
        """The node the address at ``ordinal`` was given to (its attribute's ``secondary.node``); None
        when the address is free or its attribute names no node."""
        index = self.allocations[ordinal]
        return None if index is None else _attribute_node(self.attributes[index])

    def owner_nodes(self) -> set:
        """The nodes the block's attributes name (None among them for an attribute that names none)."""
        attributes = self.attributes
        try:
            return set(map(_NODE, map(_SECONDARY, attributes)))  # the common case, in C
        except (KeyError, TypeError):
            return set(map(_attribute_node, attributes))

    def in_use(self) -> int:
        return self.size - len(self.unallocated)

    def is_empty(self) -> bool:
        return len(self.unallocated) == len(self.allocations)

    def assign(self, ordinal: int, attribute: dict) -> None:
        """Give ``ordinal`` (already removed from ``unallocated``) to a new attribute."""
        self.allocations[ordinal] = len(self.attributes)
        self.attributes.append(attribute)
        self.by_handle.setdefault(attribute["handle_id"], ordinal)

    def release_handle(self, handle_id: str) -> list[int]:
        """Release every ordinal of ``handle_id``; compact unreferenced attributes (as Calico)."""
        indexes = {i for i, a in enumerate(self.attributes) if a.get("handle_id") == handle_id}
        released = [o for o, a in enumerate(self.allocations) if a in indexes]
        for o in released:
            self.allocations[o] = None
            self.unallocated.append(o)
        self.by_handle.pop(handle_id, None)
        if indexes:
            self._compact()
        return released

    def _compact(self) -> None:
        used = sorted({a for a in self.allocations if a is not None})
        remap = {old: new for new, old in enumerate(used)}
        self.attributes = [self.attributes[i] for i in used]
        self.allocations = [None if a is None else remap[a] for a in self.allocations]

    def to_json(self) -> dict:
        value = {
            "cidr": self.cidr,
            "affinity": self.affinity,
            "allocations": self.allocations,
            "unallocated": self.unallocated,
            "attributes": self.attributes,
            "sequenceNumber": self.sequence_number,
            "deleted": self.deleted,
        }
        if self.extra:
            value.update(self.extra)
        return value

    @classmethod
    def from_json(cls, value: dict) -> Block:
        """The block as stored; only its shape is checked here (every value: ``ipam_store.check_state``)."""
        if not isinstance(value, dict):
            raise StateError(f"an AllocationBlock is not an object: {value!r}")
        cidr = value.get("cidr")
        try:
            base, prefix, bits = parse_network(cidr)
        except ValueError as exc:
            raise StateError(f"block {cidr!r}: cidr={cidr!r}: {exc}") from None
        block = cls.__new__(cls)
        block.cidr, block.base, block.prefix, block.bits = cidr, base, prefix, bits
        for name in ("allocations", "unallocated", "attributes"):
            field = value.get(name, [] if name == "attributes" else None)
            if name == "attributes" and field is None:
                field = []
            if not isinstance(field, list):
                raise StateError(f"block {cidr}: {name}={field!r}: must be a list")
        block.affinity = value.get("affinity")
        block.allocations = list(value["allocations"])
        block.unallocated = list(value["unallocated"])
        block.attributes = list(value.get("attributes") or [])
        block.sequence_number = value.get("sequenceNumber", 0)
        block.deleted = value.get("deleted", False)
        known = {"cidr", "affinity", "allocations", "unallocated", "attributes", "sequenceNumber", "deleted"}
        block.extra = {k: v for k, v in value.items() if k not in known}
        size = 1 << (bits - prefix)
        if len(block.allocations) != size:
            raise StateError(f"block {cidr}: allocations: {len(block.allocations)} entries for {size} addresses")
        attrs = block.attributes
        used = [(ordinal, index) for ordinal, index in enumerate(block.allocations) if index is not None]
        nattr = len(attrs)
        for ordinal, index in used:
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < nattr:
                raise StateError(f"block {cidr}: allocations[{ordinal}]={index!r}: points at no attribute (there are {nattr})")
        # first ordinal of each handle wins: build from the last one backwards (an attribute that is not
        # an object with a string handle_id is left out here and refused by ipam_store.check_state)
        by_handle = {}
        for ordinal, index in reversed(used):
            attr = attrs[index]
            handle_id = attr.get("handle_id") if isinstance(attr, dict) else None
            if isinstance(handle_id, str):
                by_handle[handle_id] = ordinal
        block.by_handle = by_handle
        return block


class Affinity:
    """A BlockAffinity value: ``{"state": "pending|confirmed|pendingDeletion", "deleted": false}``."""

    __slots__ = ("state", "deleted")

    def __init__(self, state: str = "confirmed", deleted: bool = False):
        self.state, self.deleted = state, deleted

    def to_json(self) -> dict:
        return {"state": self.state, "deleted": self.deleted}

    @classmethod
    def from_json(cls, value: dict) -> Affinity:
        if not isinstance(value, dict) or "state" not in value:
            raise StateError(f"BlockAffinity value {value!r} has no state")
        return cls(value["state"], value.get("deleted", False))  # values checked by ipam_store.check_state

    def __eq__(self, other):
        return isinstance(other, Affinity) and (self.state, self.deleted) == (other.state, other.deleted)


class Handle:
    """An IPAMHandle value: ``{"block": {"<block cidr>": <addresses held>}, "deleted": false}``."""

    __slots__ = ("block", "deleted")

    def __init__(self, block: dict[str, int], deleted: bool = False):
        self.block = block
        self.deleted = deleted

    @classmethod
    def new(cls, cidr: str) -> Handle:
        """A handle holding one address in block ``cidr`` (the planner's hot path: no __init__ call)."""
        handle = _new_object(cls)
        handle.block = {cidr: 1}
        handle.deleted = False
        return handle

    def to_json(self) -> dict:
        return {"block": self.block, "deleted": self.deleted}

    @classmethod
    def from_json(cls, value: dict) -> Handle:
        if not isinstance(value, dict) or not isinstance(value.get("block"), dict):
            raise StateError(f"IPAMHandle value {value!r} has no block map")
        return cls(dict(value["block"]), value.get("deleted", False))  # values checked by ipam_store.check_state


class IpamConfig:
    """The IPAMConfig singleton; JSON keys as Calico spells them (note the camelCase one)."""

    __slots__ = ("strict_affinity", "auto_allocate_blocks", "max_blocks_per_host")

    def __init__(self, strict_affinity: bool = False, auto_allocate_blocks: bool = True, max_blocks_per_host: int = 0):
        self.strict_affinity = strict_affinity
        self.auto_allocate_blocks = auto_allocate_blocks
        self.max_blocks_per_host = max_blocks_per_host

    @property
    def block_limit(self) -> int:
        """Blocks a host may claim: ``max_blocks_per_host``, 0 meaning Calico's default of 20."""
        return self.max_blocks_per_host or 20

    def to_json(self) -> dict:
        return {
            "strict_affinity": self.strict_affinity,
            "auto_allocate_blocks": self.auto_allocate_blocks,
            "maxBlocksPerHost": self.max_blocks_per_host,
        }

    @classmethod
    def from_json(cls, value: dict) -> IpamConfig:
        if not isinstance(value, dict):
            raise StateError(f"IPAMConfig value {value!r} is not an object")
        # as stored: ipam_store.check_state refuses what is not a boolean / an integer >= 0
        return cls(value.get("strict_affinity", False), value.get("auto_allocate_blocks", True), value.get("maxBlocksPerHost", 0))

    def __eq__(self, other):
        return isinstance(other, IpamConfig) and self.to_json() == other.to_json()


def workload_attribute(handle_id: str, node: str, namespace: str, workload: str) -> dict:
    return {"handle_id": handle_id, "secondary": {"node": node, "namespace": namespace, "workload": workload}}


def tunnel_attribute(handle_id: str, node: str, kind: str) -> dict:
    return {"handle_id": handle_id, "secondary": {"node": node, "type": TUNNEL_TYPES[kind]}}
