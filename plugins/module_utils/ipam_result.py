# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The IPAM's result as one model, built and checked once, and the questions every consumer asks of it.

Plain Python (no Ansible import, integers under the addresses). :meth:`IpamResult.from_dict` reads
``calico_ipam_result`` (its ``nodes`` - every node with its workloads, or the ``routing`` view with
only the borrowed ones - and its ``pools``, docs/architecture.md) into frozen dataclasses (the
result, its nodes and pools; blocks, workloads and routes, counted in hundreds of thousands, are
named tuples), refusing bad data with an :class:`IpamResultError` naming field and value - at once,
or (``lazy=True``: what one host asks of a whole fleet's result, host_audit and bgp) each part when it
is first asked for, by the same reader, as strictly. Then, in one place:

- :func:`same_subnet` / :meth:`Node.same_subnet`: Calico's CrossSubnet rule;
- :meth:`Pool.encapsulation`: how traffic from one node to an address another node holds travels;
- :meth:`Node.borrowed`: the addresses a node holds inside blocks not its own;
- :meth:`IpamResult.expected_routes`: every route a node must have, who programs it and how
  (knowing ``disable_bgp_export`` and which nodes run BIRD).

Dual stack: every question takes the family (``version=4`` by default, so every IPv4 consumer reads
what it always read). The IPv6 side of the result - ``pools_ipv6``, a node's ``ipv6``,
``network_ipv6``, ``blocks_ipv6``, ``borrowed_ipv6``, ``tunnels.vxlan_v6`` and a workload's
``ipv6``, ``pool_ipv6``, ``block_ipv6``, ``borrowed_ipv6`` (docs/architecture.md) - is read into
:class:`Subnet6` networks, ``IpamResult.pools6``, ``Node.address6``/``network6``/``blocks6``/
``workloads6``/``borrowed_ips6``/``vxlan_v6``. IPIP is IPv4-only; an IPv6 pool is VXLAN
(``vxlan-v6.calico``, l3.calico.tunnels) or unencapsulated (BIRD), and only between nodes that both
have an IPv6 address (a node without ``calico_node_ipv6`` gets no IPv6 route from BGP or the tunnels).

``tunnels`` (what it programs), ``bgp`` (the BGP data of bird.conf), ``host_audit`` and ``verify``
(what they expect), the firewall (node addresses) and the ``same_subnet`` filter all ask here, as
``naming`` does for names.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple, Optional

from ansible_collections.l3.calico.plugins.module_utils import naming
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import V4, V6, encapsulation_modes, format_cidr, prefix_mask, tunnel_kinds

WHERE = "calico_ipam_result"
VXLAN, IPIP, NONE = "vxlan", "ipip", "none"
VXLAN_V6 = "vxlan_v6"  # an IPv6 pool's tunnel kind (its encapsulation is VXLAN, over vxlan-v6.calico)
# What a route is for (Route.kind) ...
OWN_BLOCK, WORKLOAD, REMOTE_BLOCK, BORROWED = "own block", "workload", "remote block", "borrowed address"
# ... and who programs it (Route.by): BIRD (static blackholes, routes learned by BGP),
# l3.calico.workloads (a workload's /32 on its veth), l3.calico.tunnels (VXLAN pools, protocol 80).
BY_BIRD, BY_WORKLOADS, BY_TUNNELS = "bird", "workloads", "tunnels"

_PREFIXES = {str(length): length for length in range(33)}
_MASKS = tuple(prefix_mask(length) for length in range(33))
_PREFIXES6 = {str(length): length for length in range(129)}
_MASK128 = (1 << 128) - 1


class IpamResultError(L3CalicoError, ValueError):
    """Bad IPAM result data; the message names the field and the value."""

    def __init__(self, field_name: str, value, reason: str):
        self.field, self.value, self.reason = field_name, value, reason
        super().__init__(f"{field_name}={value!r}: {reason}")


# --------------------------------------------------------------------------- addresses


_inet_pton, _AF_INET, _AF_INET6 = socket.inet_pton, socket.AF_INET, socket.AF_INET6


def parse_address(value, where: str, key: str = "") -> int:
    """A dotted quad (the whole string, no prefix length, no leading zero: ``inet_pton``) as an integer;
    the field ``where + key`` (joined only on an error: the hot loops read a whole fleet)."""
    try:
        return int.from_bytes(_inet_pton(_AF_INET, value), "big")
    except (OSError, TypeError, ValueError):
        raise IpamResultError(where + key, value, "not an IPv4 address") from None


def parse_address6(value, where: str, key: str = "") -> int:
    """An IPv6 address (the whole string, no prefix length: ``inet_pton``) as an integer."""
    try:
        return int.from_bytes(_inet_pton(_AF_INET6, value), "big")
    except (OSError, TypeError, ValueError):
        raise IpamResultError(where + key, value, "not an IPv6 address") from None


class Subnet(NamedTuple):
    """An IPv4 network as integers: immutable, hashed and ordered (by address, then prefix length) as a tuple."""

    base: int
    prefix: int

    @classmethod
    def parse(cls, value, where: str) -> Subnet:
        """``a.b.c.d/len``, host bits zero (one spelling per network)."""
        if not isinstance(value, str) or value.count("/") != 1:
            raise IpamResultError(where, value, "not an IPv4 network (address/length)")
        if ":" in value:
            raise IpamResultError(where, value, "not an IPv4 network (an IPv6 one: the IPv6 side has its own keys, pools_ipv6, blocks_ipv6, ...)")
        text, _slash, length = value.partition("/")
        prefix = _PREFIXES.get(length)
        if prefix is None:
            raise IpamResultError(where, value, "not an IPv4 network (a prefix length 0..32)")
        base = parse_address(text, where)
        if base & ~_MASKS[prefix] & 0xFFFFFFFF:
            network = format_cidr(base & prefix_mask(prefix), prefix)
            raise IpamResultError(where, value, f"host bits set (the network is {network})")
        subnet = _tuple(cls, (base, prefix))  # a fleet's blocks: without the named tuple's Python __new__
        _TEXTS[subnet] = value  # canonical: strict above, so the same text format_cidr gives
        return subnet

    @classmethod
    def around(cls, address: int, prefix: int) -> Subnet:
        """The network of ``address`` with prefix length ``prefix`` (host bits cleared)."""
        return cls(address & prefix_mask(prefix), prefix)

    def __contains__(self, address: int) -> bool:
        return address & prefix_mask(self.prefix) == self.base

    def within(self, other: Subnet) -> bool:
        """Whether this network lies inside ``other`` (or is it)."""
        return self.prefix >= other.prefix and self.base in other

    def __str__(self) -> str:
        text = _TEXTS.get(self)
        return text if text is not None else format_cidr(self.base, self.prefix)


class Subnet6(NamedTuple):
    """An IPv6 network as integers, :class:`Subnet`'s twin. A separate type: an IPv6 network is never
    looked up among IPv4 ones (the integers of the two families overlap)."""

    base: int
    prefix: int

    @classmethod
    def parse(cls, value, where: str) -> Subnet6:
        """``fd00::/64`` in RFC 5952 spelling (as the IPAM writes it), host bits zero."""
        if not isinstance(value, str) or value.count("/") != 1:
            raise IpamResultError(where, value, "not an IPv6 network (address/length)")
        if ":" not in value:
            raise IpamResultError(where, value, "not an IPv6 network (an IPv4 one: the IPv4 side has its own keys)")
        text, _slash, length = value.partition("/")
        prefix = _PREFIXES6.get(length)
        if prefix is None:
            raise IpamResultError(where, value, "not an IPv6 network (a prefix length 0..128)")
        base = parse_address6(text, where)
        if base & ~prefix_mask(prefix, V6) & _MASK128:
            network = format_cidr(base & prefix_mask(prefix, V6), prefix, V6)
            raise IpamResultError(where, value, f"host bits set (the network is {network})")
        subnet = cls(base, prefix)
        _TEXTS6[subnet] = format_cidr(base, prefix, V6)
        return subnet

    @classmethod
    def around(cls, address: int, prefix: int) -> Subnet6:
        return cls(address & prefix_mask(prefix, V6), prefix)

    def __contains__(self, address: int) -> bool:
        return address & prefix_mask(self.prefix, V6) == self.base

    def within(self, other: Subnet6) -> bool:
        return self.prefix >= other.prefix and self.base in other

    def __str__(self) -> str:
        text = _TEXTS6.get(self)
        return text if text is not None else format_cidr(self.base, self.prefix, V6)


# What this process has checked once is remembered (bounded by the fleet's size): a block's text is
# printed again for every route to it, and a process that reads the fleet again (a second consumer,
# another host's BGP data in the same worker) skips the parsing. Ansible forks a worker per task and
# host, so the first reading - "cold" in benchmarks/ipam_result.py - is the one that counts there.
_TEXTS: dict = {}  # Subnet -> its text as parsed
_TEXTS6: dict = {}  # Subnet6 -> its text
_SUBNETS: dict = {}  # text -> Subnet, parsed and checked
_SUBNETS6: dict = {}  # text -> Subnet6
_NODE_NAMES: set = set()  # node names checked (DNS-1123 subdomains)


def subnet(value, where: str) -> Subnet:
    """``a.b.c.d/len`` as :meth:`Subnet.parse` reads it, parsed once per process (:data:`_SUBNETS`): the blocks'
    texts come back in every host's routes (``ip -json route``: host_audit, verify)."""
    found = _SUBNETS.get(value) if isinstance(value, str) else None
    if found is None:
        found = Subnet.parse(value, where)
        _SUBNETS[value] = found
    return found


def same_subnet(subnet, address) -> bool:
    """Calico's CrossSubnet rule: is a peer in this node's subnet?

    True when the peer's ADDRESS lies inside THIS node's subnet (this node's address with its own
    prefix length), as Felix decides it (``nodeInOurSubnet`` in felix/calc/l3_route_resolver.go:
    ``localNodeInfo.V4CIDR.ContainsV4(nodeInfo.V4Addr)``) and BIRD's kernel filter does
    (``bgp_next_hop ~ <this node's subnet>``). The peer's prefix length plays no part, so with
    different prefix lengths the answer is not symmetric; no subnet known: False (encapsulate).
    ``subnet``/``address``: a :class:`Subnet` and an integer, or ``ipaddress`` objects.
    """
    return subnet is not None and address in subnet


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Pool:
    name: str
    cidr: Subnet
    ipip_mode: str = "Never"
    vxlan_mode: str = "Never"
    block_size: Optional[int] = None
    nat_outgoing: bool = False
    disabled: bool = False
    disable_bgp_export: bool = False
    version: int = 4  # 6: an IPv6 pool (``cidr`` a Subnet6)

    @cached_property
    def tunnel_kinds(self) -> tuple:
        """The encapsulations this pool uses (``ipam_model.tunnel_kinds``, as the inventory's pools):
        an IPv6 pool's VXLAN is ``vxlan_v6`` (its own device and tunnel address)."""
        return tunnel_kinds(self.ipip_mode, self.vxlan_mode, V6 if self.version == 6 else 32)

    @property
    def routed_by(self) -> str:
        """Who programs the routes to this pool's remote addresses: l3.calico.tunnels for VXLAN pools
        (BIRD rejects them), BIRD (BGP) for the others - in each family."""
        kinds = self.tunnel_kinds
        return BY_TUNNELS if VXLAN in kinds or VXLAN_V6 in kinds else BY_BIRD

    def encapsulation(self, src: Node, dst: Node) -> str:
        """``vxlan``, ``ipip`` or ``none``: traffic from node ``src`` to an address of this pool that node
        ``dst`` holds. ``CrossSubnet`` encapsulates unless ``dst`` is in ``src``'s subnet (:func:`same_subnet`)
        of this pool's family (an IPv6 pool: the nodes' IPv6 subnet; no IPv6 address: not inside)."""
        return self.encapsulation_if(src.same_subnet(dst, self.version))

    def encapsulation_if(self, inside: bool) -> str:
        """:meth:`encapsulation` towards a node inside this node's subnet (``inside``) or not. An IPv6
        pool's ``ipip_mode`` is always Never (the reader refuses anything else): VXLAN or none."""
        for kind, mode in ((VXLAN, self.vxlan_mode), (IPIP, self.ipip_mode)):
            if mode == "Always" or (mode == "CrossSubnet" and not inside):
                return kind
        return NONE


# Blocks, workloads, borrowed addresses and routes are counted in hundreds of thousands in a fleet's
# result: immutable named tuples (built in C), where nodes, pools and the result are frozen dataclasses.


class Block(NamedTuple):
    cidr: Subnet
    pool: Optional[str] = None


class Workload(NamedTuple):
    id: str
    ip: Optional[str] = None  # None: no address yet
    address: Optional[int] = None
    pool: Optional[str] = None
    block: Optional[Subnet] = None
    borrowed: bool = False


class Borrowed(NamedTuple):
    """An address a node holds inside a block that is not its own (a /32 route towards it everywhere)."""

    ip: str
    address: int
    pool: Optional[str] = None  # the workload's pool (None: the pool holding the address)
    block: Optional[Subnet] = None  # the block it was borrowed from, when known
    workload: Optional[str] = None  # the workload's id, when known


@dataclass(frozen=True)
class Node:
    name: str
    ip: str
    address: int = field(repr=False)
    network: Optional[Subnet] = None  # None: not known (never in the same subnet as anyone)
    blocks: tuple[Block, ...] = ()
    workloads: tuple[Workload, ...] = ()
    borrowed_ips: tuple[str, ...] = ()  # the result's ``borrowed`` list
    ipip: Optional[str] = None  # tunnel addresses
    vxlan: Optional[str] = None
    # The IPv6 side (None / empty: the node has no IPv6 address, or the result no IPv6 pool)
    ipv6: Optional[str] = None
    address6: Optional[int] = field(default=None, repr=False)
    network6: Optional[Subnet6] = None
    blocks6: tuple[Block, ...] = ()
    workloads6: tuple[Workload, ...] = ()  # each workload's IPv6 address (Workload.ip is then the IPv6 one)
    borrowed_ips6: tuple[str, ...] = ()
    vxlan_v6: Optional[str] = None

    def same_subnet(self, other: Node, version: int = 4) -> bool:
        """Whether ``other``'s address of the family lies in this node's subnet of that family (:func:`same_subnet`)."""
        if version == 6:
            return self.network6 is not None and other.address6 is not None and other.address6 in self.network6
        return same_subnet(self.network, other.address)

    def family(self, version: int) -> tuple:
        """``(blocks, workloads, address, text, VXLAN tunnel address)`` of the family ``version``."""
        if version == 6:
            return self.blocks6, self.workloads6, self.address6, self.ipv6, self.vxlan_v6
        return self.blocks, self.workloads, self.address, self.ip, self.vxlan

    def borrowed(self, version: int = 4) -> tuple[Borrowed, ...]:
        """The addresses this node holds inside blocks not its own (of the family ``version``): its workloads
        the IPAM marks ``borrowed`` or whose block is not one of its blocks, then any address of ``borrowed``
        no workload entry carries (the ``routing`` view keeps the borrowed workloads, so normally none)."""
        return self._borrowed6 if version == 6 else self._borrowed

    @cached_property
    def _borrowed(self) -> tuple[Borrowed, ...]:
        return _borrowed_of(self.blocks, self._borrowed_candidates(), self.borrowed_ips, parse_address)

    def _borrowed_candidates(self) -> tuple[Workload, ...]:
        """The workloads :func:`_borrowed_of` must look at: all of them once read; a node read lazily whose
        workloads are not read yet, only those marked ``borrowed`` or whose block is not one of the node's
        (each checked in full; of the others, what decided it - the mapping, ``borrowed``, ``block`` - is checked)."""
        lazy = self.__dict__.get("_unread")
        if lazy is None:
            return self.workloads
        reader, where, raw, pools = lazy
        return reader.borrowed_candidates(where, raw, {str(block.cidr) for block in self.blocks}, pools)

    @cached_property
    def _borrowed6(self) -> tuple[Borrowed, ...]:
        return _borrowed_of(self.blocks6, self.workloads6, self.borrowed_ips6, parse_address6)


class _Workloads:
    """``Node.workloads`` of a node read lazily (:meth:`IpamResult.from_dict` ``lazy=True``): its workloads
    read and checked in full on first use, then kept (a non-data descriptor: the value kept in the node's
    ``__dict__`` is found first, as for a node read at once or built by its constructor)."""

    def __get__(self, node, owner=None):
        if node is None:
            return ()
        reader, where, raw, pools = node.__dict__["_unread"]
        workloads = node.__dict__["workloads"] = reader.workloads(where, raw, pools)  # bad data: refused again next time
        del node.__dict__["_unread"]
        return workloads


Node.workloads = _Workloads()


def _borrowed_of(blocks, workloads, borrowed_ips, parse) -> tuple[Borrowed, ...]:
    own = {block.cidr for block in blocks}
    out = {}
    for w in workloads:
        if w.address is not None and (w.borrowed or (w.block is not None and w.block not in own)):
            out[w.ip] = Borrowed(w.ip, w.address, w.pool, w.block, w.id)
    for ip in borrowed_ips:
        if ip not in out:
            out[ip] = Borrowed(ip, parse(ip, "borrowed"))
    return tuple(out.values())


class Route(NamedTuple):
    """A route a node must have: what for, who programs it, and how (None: any)."""

    dst: Subnet
    kind: str  # OWN_BLOCK, WORKLOAD, REMOTE_BLOCK or BORROWED
    node: str  # the node holding the prefix (the node itself for its own blocks and workloads)
    by: str  # BY_BIRD, BY_WORKLOADS or BY_TUNNELS
    blackhole: bool = False
    gateway: Optional[str] = None  # None: any next hop (a router BGP resolves through, or none)
    dev: Optional[str] = None  # None: whichever device leads to the gateway (the underlay)
    onlink: bool = False
    encap: str = NONE
    pool: Optional[str] = None
    workload: Optional[str] = None  # the workload's id (own workloads, borrowed addresses)
    origin: Optional[Subnet] = None  # a borrowed address: the block it was borrowed from


@dataclass(frozen=True)
class IpamResult:
    nodes: Mapping[str, Node]
    pools: Mapping[str, Pool]  # the IPv4 pools (the result's ``pools``)
    pools6: Mapping[str, Pool] = field(default_factory=dict)  # the IPv6 pools (``pools_ipv6``)

    def family_pools(self, version: int = 4) -> Mapping[str, Pool]:
        return self.pools6 if version == 6 else self.pools

    @classmethod
    def of(cls, value, lazy: bool = False) -> IpamResult:
        """``value`` itself when it is already the model, else :meth:`from_dict` of it."""
        return value if isinstance(value, IpamResult) else cls.from_dict(value, lazy)

    @classmethod
    def from_dict(cls, data, lazy: bool = False) -> IpamResult:
        """The model of ``{"nodes": ..., "pools": ..., "pools_ipv6": ...}`` (other keys ignored), every value checked.

        ``lazy``: what one host asks of a whole fleet's result (host_audit, bgp), read as it asks: the pools
        and every node name at once, a node when it is first looked up (``nodes[name]``, iterating its
        values), its workloads when first used (``Node.workloads``; :meth:`Node.borrowed` reads only those
        it must), a node's address alone by :meth:`node_address`. Every value read is checked as strictly,
        by the same reader, and kept; what is never asked for is never read (nor refused). ``data`` is read
        from as asked: it must not change while the result is in use (a module's parameters do not).
        """
        if not isinstance(data, dict):
            raise IpamResultError(WHERE, _short(data), "not an IPAM result (a mapping with nodes and pools)")
        return _Reader().result(data.get("nodes"), data.get("pools"), data.get("pools_ipv6"), lazy)

    def full_node(self, name: str) -> Optional[Node]:
        """Node ``name`` with all of it read and checked, its workloads too (a host's own node, in a lazy
        reading); None: not a node of the result."""
        node = self.nodes.get(name)
        if node is not None:
            len(node.workloads)  # read now (Node.workloads), not when first used
        return node

    def node_address(self, name: str) -> tuple[str, int]:
        """Node ``name``'s IPv4 address (its text, its integer); read alone, without the rest of the node, when
        the result is read lazily (BGP's peers: every other node's address, nothing else of it)."""
        nodes = self.nodes
        if isinstance(nodes, _Nodes):
            return nodes.address(name)
        node = nodes[name]
        return node.ip, node.address

    # -- lookups

    def pool_containing(self, prefix) -> Optional[Pool]:
        """The pool holding ``prefix`` (None: outside every pool), among the pools of its family (a
        :class:`Subnet6`: the IPv6 pools). A block or a workload names its own pool; this one is for
        prefixes that do not (a route read from the kernel, a bare borrowed address)."""
        pools = self.pools6 if isinstance(prefix, Subnet6) else self.pools
        return next((pool for pool in pools.values() if prefix.within(pool.cidr)), None)

    @cached_property
    def _blocks(self) -> dict:
        return {block.cidr: name for name, node in self.nodes.items() for block in node.blocks}

    @cached_property
    def _blocks6(self) -> dict:
        return {block.cidr: name for name, node in self.nodes.items() for block in node.blocks6}

    def block_owner(self, prefix) -> Optional[str]:
        """The node whose block holds ``prefix`` (None: no node's), among the blocks of its family."""
        six = isinstance(prefix, Subnet6)
        blocks = self._blocks6 if six else self._blocks
        around = Subnet6.around if six else Subnet.around
        for length in sorted({cidr.prefix for cidr in blocks}, reverse=True):
            if length <= prefix.prefix:
                owner = blocks.get(around(prefix.base, length))
                if owner is not None:
                    return owner
        return None

    def node_addresses(self, version: int = 4) -> list:
        """Every node's underlay and tunnel addresses of the family ``version`` (what workloads may not
        reach on the BGP port)."""
        found = {}
        for node in self.nodes.values():
            if version == 6:
                if node.address6 is not None:
                    found[node.address6] = node.ipv6
                if node.vxlan_v6 is not None:
                    found[parse_address6(node.vxlan_v6, "tunnels")] = node.vxlan_v6
                continue
            found[node.address] = node.ip
            for ip in (node.ipip, node.vxlan):
                if ip is not None:
                    found[parse_address(ip, "tunnels")] = ip
        return [found[address] for address in sorted(found)]

    # -- the routes

    def expected_routes(
        self, name: str, bgp_nodes: Optional[Iterable[str]] = None, veth_prefix: str = naming.VETH_PREFIX, version: int = 4
    ) -> tuple[Route, ...]:
        """Every route of the family ``version`` node ``name`` must have, in this order: its own blocks
        (blackholed by BIRD, when it runs BIRD, except /32 blocks - IPv6: /128), its workloads' /32s (/128s)
        on their veths, then per other node (sorted) its blocks and its borrowed addresses, each as
        :func:`remote_path` says.

        ``bgp_nodes``: the nodes that run BIRD (default: every node).
        """
        me = self.nodes[name]
        speakers = set(self.nodes) if bgp_nodes is None else set(bgp_nodes)
        six = version == 6
        host, subnet = (128, Subnet6) if six else (32, Subnet)
        blocks, workloads = (me.blocks6, me.workloads6) if six else (me.blocks, me.workloads)
        out = []
        if name in speakers:
            out += [Route(b.cidr, OWN_BLOCK, name, BY_BIRD, True, pool=b.pool) for b in blocks if b.cidr.prefix < host]
        out += [
            Route(subnet(w.address, host), WORKLOAD, name, BY_WORKLOADS, dev=naming.veth_name(w.id, veth_prefix), pool=w.pool, workload=w.id)
            for w in workloads
            if w.address is not None
        ]
        pools = self.pools6 if six else self.pools
        for other in sorted(self.nodes):
            if other == name:
                continue
            peer = self.nodes[other]
            bgp = name in speakers and other in speakers
            inside = me.same_subnet(peer, version)
            paths: dict = {}  # pool name -> how (the same for every prefix of that pool this peer holds)
            prefixes = [(block.cidr, REMOTE_BLOCK, block.pool, None, None) for block in (peer.blocks6 if six else peer.blocks)]
            prefixes += [(_tuple(subnet, (item.address, host)), BORROWED, item.pool, item.workload, item.block) for item in peer.borrowed(version)]
            for dst, kind, pool_name, workload, origin in prefixes:
                pool = pools[pool_name] if pool_name is not None else self.pool_containing(dst)
                if pool is None:
                    continue  # outside every pool: BIRD imports nothing else, the tunnels program nothing else
                path = paths.get(pool.name, False)
                if path is False:
                    path = paths[pool.name] = remote_path(me, peer, pool, bgp, inside)
                if path is not None:
                    out.append(_tuple(Route, (dst, kind, other, path.by, False, path.gateway, path.dev, path.onlink, path.encap, pool.name, workload, origin)))
        return tuple(out)


class _Nodes(Mapping):
    """The nodes of a result read lazily (:meth:`IpamResult.from_dict` ``lazy=True``): every name checked at
    once, a node read (by :meth:`_Reader.node`, its workloads left for ``Node.workloads``) when first looked
    up, then kept; a read-only mapping like the dict of a result read at once (and equal to it)."""

    __slots__ = ("_raw", "_read", "_addresses", "_reader", "_pools", "_pools6")

    def __init__(self, raw: dict, reader: _Reader, pools: Mapping, pools6: Mapping):
        for name in raw:
            reader.node_name(name)
        self._raw, self._read, self._addresses = raw, {}, {}
        self._reader, self._pools, self._pools6 = reader, pools, pools6

    def __getitem__(self, name) -> Node:
        node = self._read.get(name)
        if node is None:
            raw = self._raw[name]
            node = self._read[name] = self._reader.node(name, raw, self._pools, self._pools6, lazy=True)
        return node

    def __iter__(self):
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, name) -> bool:
        try:
            return name in self._raw
        except TypeError:
            return False

    def __repr__(self) -> str:
        return f"<{len(self._raw)} nodes, {len(self._read)} read>"

    def address(self, name: str) -> tuple[str, int]:
        """:meth:`IpamResult.node_address`: from the node when it is read, else its ``ip`` alone (checked)."""
        node = self._read.get(name)
        if node is not None:
            return node.ip, node.address
        found = self._addresses.get(name)
        if found is None:
            found = self._addresses[name] = self._reader.address(f"{WHERE}.nodes.{name}", self._raw[name])
        return found


class Path(NamedTuple):
    """How a node reaches a prefix another node holds (the route without its destination)."""

    by: str  # BY_BIRD or BY_TUNNELS
    gateway: Optional[str]  # None: any next hop (a router BGP resolves through)
    dev: Optional[str] = None  # None: whichever device leads to the gateway (the underlay)
    onlink: bool = False
    encap: str = NONE


def remote_path(me: Node, owner: Node, pool: Pool, bgp: bool, inside: Optional[bool] = None) -> Optional[Path]:
    """How node ``me`` reaches an address of ``pool`` that node ``owner`` holds (a block, a borrowed /32);
    None: no route is due. ``bgp``: both nodes run BIRD; ``inside``: ``me.same_subnet(owner)``, if known.

    An IPv6 pool: the same, in IPv6 - the VTEPs are the nodes' ``vxlan_v6`` addresses on
    ``vxlan-v6.calico``, the next hop the owner's IPv6 address; a node without an IPv6 address
    (``calico_node_ipv6``) neither reaches nor is reached by IPv6 routes (as Calico: no IPv6 BGP
    session without one, and Felix's IPv6 VTEP needs the node's IPv6 address as its parent).

    - VXLAN pool (l3.calico.tunnels, BGP or not), only when this node has a VTEP (as Felix: its
      VXLAN device and its data device come from its own VTEP; without one the tunnel address is the
      problem): encapsulated ``via <owner's VTEP> dev vxlan.calico onlink`` when the owner has a VTEP
      too; not encapsulated (CrossSubnet, owner in this node's subnet) ``via <owner>`` on the
      underlay, whatever the owner's VTEP.
    - Other pools, only when both run BIRD and the pool is exported (``disable_bgp_export`` false):
      learned by BGP, IPIP ``via <owner> dev tunl0 onlink``; otherwise ``via <owner>`` in this node's
      subnet, via whatever router leads there across subnets (``gateway recursive``).
    """
    if pool.version == 6:
        return _remote_path6(me, owner, pool, bgp, inside)
    if inside is None:
        inside = me.same_subnet(owner)
    encap = pool.encapsulation_if(inside)
    if pool.routed_by == BY_TUNNELS:
        if me.vxlan is None:
            return None
        if encap == VXLAN:
            if owner.vxlan is None:
                return None
            return Path(BY_TUNNELS, owner.vxlan, naming.VXLAN_DEVICE, True, encap)
        return Path(BY_TUNNELS, owner.ip, encap=encap)
    if not bgp or pool.disable_bgp_export:
        return None
    if encap == IPIP:
        return Path(BY_BIRD, owner.ip, naming.IPIP_DEVICE, True, encap)
    return Path(BY_BIRD, owner.ip if inside else None, encap=encap)


def _remote_path6(me: Node, owner: Node, pool: Pool, bgp: bool, inside: Optional[bool]) -> Optional[Path]:
    """:func:`remote_path` for an IPv6 pool (no IPIP; VXLAN over vxlan-v6.calico; both nodes need an IPv6 address)."""
    if me.address6 is None or owner.address6 is None:
        return None
    if inside is None:
        inside = me.same_subnet(owner, 6)
    encap = pool.encapsulation_if(inside)
    if pool.routed_by == BY_TUNNELS:
        if me.vxlan_v6 is None:
            return None
        if encap == VXLAN:
            if owner.vxlan_v6 is None:
                return None
            return Path(BY_TUNNELS, owner.vxlan_v6, naming.VXLAN_V6_DEVICE, True, encap)
        return Path(BY_TUNNELS, owner.ipv6, encap=encap)
    if not bgp or pool.disable_bgp_export:
        return None
    return Path(BY_BIRD, owner.ipv6 if inside else None, encap=encap)


# --------------------------------------------------------------------------- reading

# A fleet's result holds tens of thousands of nodes and blocks, hundreds of thousands of workloads, read
# on every host (and on the controller for every host): the reader builds its values checked, without
# the per-field checks of the generated constructors (a frozen dataclass's __init__ sets each field
# through object.__setattr__, a named tuple's __new__ is Python).
_tuple = tuple.__new__
_FIELDS = ("name", "ip", "address", "network", "blocks", "workloads", "borrowed_ips", "ipip", "vxlan")
_FIELDS6 = ("ipv6", "address6", "network6", "blocks6", "workloads6", "borrowed_ips6", "vxlan_v6")
_NO_IPV6 = dict.fromkeys(_FIELDS6)
_NO_IPV6.update(blocks6=(), workloads6=(), borrowed_ips6=())


def _node(*values, six: Optional[tuple] = None) -> Node:
    node = object.__new__(Node)
    node.__dict__.update(zip(_FIELDS, values, strict=True))
    node.__dict__.update(_NO_IPV6 if six is None else zip(_FIELDS6, six, strict=True))
    return node


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


class _Reader:
    """One reading of a result, every value checked (a subnet's text, a node name: once per process)."""

    subnet = staticmethod(subnet)  # ``value`` parsed and checked (once per process: :data:`_SUBNETS`)

    @staticmethod
    def subnet6(value, where: str) -> Subnet6:
        """An IPv6 network, parsed and checked (once per process: :data:`_SUBNETS6`)."""
        found = _SUBNETS6.get(value) if isinstance(value, str) else None
        if found is None:
            found = Subnet6.parse(value, where)
            _SUBNETS6[value] = found
        return found

    def result(self, nodes, pools, pools6=None, lazy: bool = False) -> IpamResult:
        pools = {} if pools is None else pools
        pools6 = {} if pools6 is None else pools6
        nodes = {} if nodes is None else nodes
        if not isinstance(pools, dict):
            raise IpamResultError(f"{WHERE}.pools", _short(pools), "must be a mapping of pool name to pool")
        if not isinstance(pools6, dict):
            raise IpamResultError(f"{WHERE}.pools_ipv6", _short(pools6), "must be a mapping of pool name to pool")
        if not isinstance(nodes, dict):
            raise IpamResultError(f"{WHERE}.nodes", _short(nodes), "must be a mapping of node name to node")
        model_pools = {name: self.pool(name, pool) for name, pool in pools.items()}
        model_pools6 = {name: self.pool(name, pool, 6) for name, pool in pools6.items()}
        both = sorted(set(model_pools) & set(model_pools6))
        if both:
            raise IpamResultError(f"{WHERE}.pools_ipv6", both[0], "a pool name is in both pools and pools_ipv6 (pool names are unique)")
        if lazy:
            return IpamResult(_Nodes(nodes, self, model_pools, model_pools6), model_pools, model_pools6)
        return IpamResult({name: self.node(name, node, model_pools, model_pools6) for name, node in nodes.items()}, model_pools, model_pools6)

    def pool(self, name, raw, version: int = 4) -> Pool:
        key = "pools_ipv6" if version == 6 else "pools"
        if not naming.is_label(name):
            raise IpamResultError(f"{WHERE}.{key}", name, "a pool name is a DNS-1123 label")
        where = f"{WHERE}.{key}.{name}"
        if not isinstance(raw, dict):
            raise IpamResultError(where, _short(raw), "a pool must be a mapping")
        (ipip_mode, vxlan_mode), fault = encapsulation_modes(raw, V6 if version == 6 else V4)
        if fault:
            key, value, reason = fault
            raise IpamResultError(f"{where}.{key}", value, reason)
        flags = {}
        for key in ("nat_outgoing", "disabled", "disable_bgp_export"):
            value = raw.get(key, False)
            if not isinstance(value, bool):
                raise IpamResultError(f"{where}.{key}", value, "must be a boolean (true or false)")
            flags[key] = value
        size = raw.get("block_size")
        top = 128 if version == 6 else 32
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= top):
            raise IpamResultError(f"{where}.block_size", size, f"must be a prefix length 0..{top}")
        if version == 6:
            return Pool(name, self.subnet6(raw.get("cidr"), f"{where}.cidr"), block_size=size, version=6, ipip_mode=ipip_mode, vxlan_mode=vxlan_mode, **flags)
        return Pool(name, self.subnet(raw.get("cidr"), f"{where}.cidr"), block_size=size, ipip_mode=ipip_mode, vxlan_mode=vxlan_mode, **flags)

    @staticmethod
    def node_name(name) -> None:
        """A node's name checked (a DNS-1123 subdomain; once per process: :data:`_NODE_NAMES`)."""
        if name not in _NODE_NAMES:
            if not naming.is_node_name(name):
                raise IpamResultError(f"{WHERE}.nodes", name, naming.NODE_NAME_REASON)
            _NODE_NAMES.add(name)

    @staticmethod
    def address(where: str, raw) -> tuple[str, int]:
        """A node's ``ip`` (its text, its integer), checked; ``raw`` the node's mapping."""
        if not isinstance(raw, dict):
            raise IpamResultError(where, _short(raw), "a node must be a mapping")
        ip = raw.get("ip")
        return ip, parse_address(ip, where, ".ip")

    def node(self, name, raw, pools: Mapping, pools6: Optional[Mapping] = None, lazy: bool = False) -> Node:
        """Node ``name`` read and checked; ``lazy``: its workloads left for ``Node.workloads`` (their list checked)."""
        # Once per node of the fleet, on every host: the fields are named only on an error.
        self.node_name(name)
        where = f"{WHERE}.nodes.{name}"
        ip, address = self.address(where, raw)
        get = raw.get
        network, tunnels = get("network"), get("tunnels") or {}
        if network is not None:
            known = _SUBNETS.get(network) if isinstance(network, str) else None
            network = known if known is not None else self.subnet(network, f"{where}.network")
            if address & _MASKS[network.prefix] != network.base:
                raise IpamResultError(f"{where}.network", str(network), f"does not contain the node address {ip}")
        if not isinstance(tunnels, dict):
            raise IpamResultError(f"{where}.tunnels", _short(tunnels), "must be a mapping (ipip, vxlan)")
        ipip, vxlan = tunnels.get("ipip"), tunnels.get("vxlan")
        if ipip is not None:
            parse_address(ipip, where, ".tunnels.ipip")
        if vxlan is not None:
            parse_address(vxlan, where, ".tunnels.vxlan")
        blocks = tuple(self.block(where, i, b, pools) for i, b in enumerate(self.items(get("blocks"), where, "blocks")))
        raw_workloads = self.items(get("workloads"), where, "workloads")
        workloads = None if lazy else self.workloads(where, raw_workloads, pools)
        borrowed = self.items(get("borrowed"), where, "borrowed")
        for i, item in enumerate(borrowed):
            parse_address(item, where, f".borrowed[{i}]")
        six = None
        if pools6 or get("ipv6") is not None or get("blocks_ipv6") or tunnels.get("vxlan_v6") is not None:
            six = self.node6(where, raw, tunnels, pools6 or {})
        node = _node(name, ip, address, network, blocks, workloads, tuple(borrowed), ipip, vxlan, six=six)
        if lazy:
            del node.__dict__["workloads"]  # read by Node.workloads on first use
            node.__dict__["_unread"] = (self, where, raw_workloads, pools)
        return node

    def workloads(self, where: str, raw: list, pools: Mapping) -> tuple[Workload, ...]:
        """A node's workloads (``raw``: its list, checked to be one), every one read and checked."""
        return tuple(self.workload(where, i, w, pools) for i, w in enumerate(raw))

    def borrowed_candidates(self, where: str, raw: list, own: set, pools: Mapping) -> tuple[Workload, ...]:
        """The workloads of ``raw`` that may be borrowed (``Node.borrowed``'s rule decides), each read and
        checked in full: those not marked ``borrowed`` (false, checked) whose ``block`` is none or the text of
        one of the node's blocks ``own`` (checked: one spelling per network, :meth:`Subnet.parse`) are left out."""
        out = []
        for i, w in enumerate(raw):
            if w.__class__ is dict and w.get("borrowed", False) is False:
                block = w.get("block")
                if block is None or (block.__class__ is str and block in own):
                    continue
            out.append(self.workload(where, i, w, pools))
        return tuple(out)

    def node6(self, where: str, raw: dict, tunnels: dict, pools6: Mapping) -> tuple:
        """The IPv6 side of a node (its values in the order of ``_FIELDS6``); every value checked."""
        get = raw.get
        ipv6, network6, vxlan_v6 = get("ipv6"), get("network_ipv6"), tunnels.get("vxlan_v6")
        address6 = None
        if ipv6 is not None:
            address6 = parse_address6(ipv6, where, ".ipv6")
        if network6 is not None:
            network6 = self.subnet6(network6, f"{where}.network_ipv6")
            if address6 is None or address6 not in network6:
                raise IpamResultError(f"{where}.network_ipv6", str(network6), f"does not contain the node's IPv6 address {ipv6}")
        if vxlan_v6 is not None:
            parse_address6(vxlan_v6, where, ".tunnels.vxlan_v6")
        blocks6 = []
        for i, b in enumerate(self.items(get("blocks_ipv6"), where, "blocks_ipv6")):
            if not isinstance(b, dict):
                raise IpamResultError(f"{where}.blocks_ipv6[{i}]", _short(b), "a block must be a mapping with cidr and pool")
            self.pool_name(b.get("pool"), f"{where}.blocks_ipv6[{i}].pool", pools6)
            blocks6.append(_tuple(Block, (self.subnet6(b.get("cidr"), f"{where}.blocks_ipv6[{i}].cidr"), b.get("pool"))))
        workloads6 = []
        for i, w in enumerate(self.items(get("workloads"), where, "workloads")):
            if isinstance(w, dict) and "ipv6" in w:
                workloads6.append(self.workload6(where, i, w, pools6))
        borrowed6 = self.items(get("borrowed_ipv6"), where, "borrowed_ipv6")
        for i, item in enumerate(borrowed6):
            parse_address6(item, where, f".borrowed_ipv6[{i}]")
        return ipv6, address6, network6, tuple(blocks6), tuple(workloads6), tuple(borrowed6), vxlan_v6

    def workload6(self, node: str, index: int, raw: dict, pools6: Mapping) -> Workload:
        """A workload's IPv6 address (``ipv6``, ``pool_ipv6``, ``block_ipv6``, ``borrowed_ipv6``) as a Workload."""
        where = f"{node}.workloads[{index}]"
        ip, pool, block, borrowed = raw.get("ipv6"), raw.get("pool_ipv6"), raw.get("block_ipv6"), raw.get("borrowed_ipv6", False)
        wid = raw.get("id")
        if not isinstance(wid, str) or not wid:  # as workload() (a lazy reading may read this side alone)
            raise IpamResultError(f"{where}.id", wid, "a workload needs its id (<namespace>.<name>)")
        if borrowed is not True and borrowed is not False:
            raise IpamResultError(f"{where}.borrowed_ipv6", borrowed, "must be a boolean (true or false)")
        self.pool_name(pool, f"{where}.pool_ipv6", pools6)
        address = None if ip is None else parse_address6(ip, where, ".ipv6")
        if block is not None:
            block = self.subnet6(block, f"{where}.block_ipv6")
        return _tuple(Workload, (wid, ip, address, pool, block, borrowed))

    @staticmethod
    def items(value, where: str, key: str) -> list:
        if value is None:
            return []
        if value.__class__ is not list and not isinstance(value, (list, tuple)):
            raise IpamResultError(f"{where}.{key}", _short(value), "must be a list")
        return value

    @staticmethod
    def pool_name(value, where: str, pools: Mapping) -> Optional[str]:
        if value is not None and value not in pools:
            raise IpamResultError(where, value, f"not a pool of the IPAM result ({', '.join(sorted(pools)) or 'none'})")
        return value

    def block(self, node: str, index: int, raw, pools: Mapping) -> Block:
        if not isinstance(raw, dict):
            raise IpamResultError(f"{node}.blocks[{index}]", _short(raw), "a block must be a mapping with cidr and pool")
        pool = raw.get("pool")
        if pool is not None and pool not in pools:
            self.pool_name(pool, f"{node}.blocks[{index}].pool", pools)
        cidr = raw.get("cidr")
        subnet = _SUBNETS.get(cidr) if isinstance(cidr, str) else None
        if subnet is None:
            subnet = self.subnet(cidr, f"{node}.blocks[{index}].cidr")
        return _tuple(Block, (subnet, pool))

    def workload(self, node: str, index: int, raw, pools: Mapping) -> Workload:
        # The hot loop of a whole fleet's result (every workload): the field named only on an error.
        if not isinstance(raw, dict):
            raise IpamResultError(f"{node}.workloads[{index}]", _short(raw), "a workload must be a mapping")
        wid, ip, pool, block, borrowed = (raw.get("id"), raw.get("ip"), raw.get("pool"), raw.get("block"), raw.get("borrowed", False))
        if not isinstance(wid, str) or not wid:
            raise IpamResultError(f"{node}.workloads[{index}].id", wid, "a workload needs its id (<namespace>.<name>)")
        if borrowed is not True and borrowed is not False:
            raise IpamResultError(f"{node}.workloads[{index}].borrowed", borrowed, "must be a boolean (true or false)")
        if pool is not None and pool not in pools:
            self.pool_name(pool, f"{node}.workloads[{index}].pool", pools)
        if ip is None:
            address = None
        else:
            try:
                address = int.from_bytes(_inet_pton(_AF_INET, ip), "big")
            except (OSError, TypeError, ValueError):
                raise IpamResultError(f"{node}.workloads[{index}].ip", ip, "not an IPv4 address") from None
        if block is not None:
            cidr = _SUBNETS.get(block) if isinstance(block, str) else None
            block = cidr if cidr is not None else self.subnet(block, f"{node}.workloads[{index}].block")
        return _tuple(Workload, (wid, ip, address, pool, block, borrowed))
