# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The IPAM's result as one model, built and checked once, and the questions every consumer asks of it.

Plain Python (no Ansible import, integers under the addresses). :meth:`IpamResult.from_dict` reads
``calico_ipam_result`` (its ``nodes`` - every node with its workloads, or the ``routing`` view with
only the borrowed ones - and its ``pools``, docs/architecture.md) into frozen dataclasses (the
result, its nodes and pools; blocks, workloads and routes, counted in hundreds of thousands, are
named tuples), refusing bad data with an :class:`IpamResultError` naming field and value. Then, in
one place:

- :func:`same_subnet` / :meth:`Node.same_subnet`: Calico's CrossSubnet rule;
- :meth:`Pool.encapsulation`: how traffic from one node to an address another node holds travels;
- :meth:`Node.borrowed`: the addresses a node holds inside blocks not its own;
- :meth:`IpamResult.expected_routes`: every route a node must have, who programs it and how
  (knowing ``disable_bgp_export`` and which nodes run BIRD).

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
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import encapsulation_modes, format_cidr, prefix_mask, tunnel_kinds

WHERE = "calico_ipam_result"
VXLAN, IPIP, NONE = "vxlan", "ipip", "none"
# What a route is for (Route.kind) ...
OWN_BLOCK, WORKLOAD, REMOTE_BLOCK, BORROWED = "own block", "workload", "remote block", "borrowed address"
# ... and who programs it (Route.by): BIRD (static blackholes, routes learned by BGP),
# l3.calico.workloads (a workload's /32 on its veth), l3.calico.tunnels (VXLAN pools, protocol 80).
BY_BIRD, BY_WORKLOADS, BY_TUNNELS = "bird", "workloads", "tunnels"

_PREFIXES = {str(length): length for length in range(33)}


class IpamResultError(L3CalicoError, ValueError):
    """Bad IPAM result data; the message names the field and the value."""

    def __init__(self, field_name: str, value, reason: str):
        self.field, self.value, self.reason = field_name, value, reason
        super().__init__(f"{field_name}={value!r}: {reason}")


# --------------------------------------------------------------------------- addresses


_inet_pton, _AF_INET = socket.inet_pton, socket.AF_INET


def parse_address(value, where: str, key: str = "") -> int:
    """A dotted quad (the whole string, no prefix length, no leading zero: ``inet_pton``) as an integer;
    the field ``where + key`` (joined only on an error: the hot loops read a whole fleet)."""
    try:
        return int.from_bytes(_inet_pton(_AF_INET, value), "big")
    except (OSError, TypeError, ValueError):
        raise IpamResultError(where + key, value, "not an IPv4 address") from None


class Subnet(NamedTuple):
    """An IPv4 network as integers: immutable, hashed and ordered (by address, then prefix length) as a tuple."""

    base: int
    prefix: int

    @classmethod
    def parse(cls, value, where: str) -> Subnet:
        """``a.b.c.d/len``, host bits zero (one spelling per network)."""
        if not isinstance(value, str) or value.count("/") != 1:
            raise IpamResultError(where, value, "not an IPv4 network (address/length)")
        text, _slash, length = value.partition("/")
        prefix = _PREFIXES.get(length)
        if prefix is None:
            raise IpamResultError(where, value, "not an IPv4 network (a prefix length 0..32)")
        base = parse_address(text, where)
        if base & ~prefix_mask(prefix) & 0xFFFFFFFF:
            network = format_cidr(base & prefix_mask(prefix), prefix)
            raise IpamResultError(where, value, f"host bits set (the network is {network})")
        subnet = cls(base, prefix)
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


# What this process has checked once is remembered (bounded by the fleet's size): a block's text is
# printed again for every route to it, and a process that reads the fleet again (a second consumer,
# another host's BGP data in the same worker) skips the parsing. Ansible forks a worker per task and
# host, so the first reading - "cold" in benchmarks/ipam_result.py - is the one that counts there.
_TEXTS: dict = {}  # Subnet -> its text as parsed
_SUBNETS: dict = {}  # text -> Subnet, parsed and checked
_NODE_NAMES: set = set()  # node names checked (DNS-1123 subdomains)


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

    @cached_property
    def tunnel_kinds(self) -> tuple:
        """The encapsulations this pool uses (``ipam_model.tunnel_kinds``, as the inventory's pools)."""
        return tunnel_kinds(self.ipip_mode, self.vxlan_mode)

    @property
    def routed_by(self) -> str:
        """Who programs the routes to this pool's remote addresses: l3.calico.tunnels for VXLAN pools
        (BIRD rejects them), BIRD (BGP) for the others."""
        return BY_TUNNELS if VXLAN in self.tunnel_kinds else BY_BIRD

    def encapsulation(self, src: Node, dst: Node) -> str:
        """``vxlan``, ``ipip`` or ``none``: traffic from node ``src`` to an address of this pool that node
        ``dst`` holds. ``CrossSubnet`` encapsulates unless ``dst`` is in ``src``'s subnet (:func:`same_subnet`)."""
        return self.encapsulation_if(src.same_subnet(dst))

    def encapsulation_if(self, inside: bool) -> str:
        """:meth:`encapsulation` towards a node inside this node's subnet (``inside``) or not."""
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

    def same_subnet(self, other: Node) -> bool:
        """Whether ``other``'s address lies in this node's subnet (:func:`same_subnet`)."""
        return same_subnet(self.network, other.address)

    def borrowed(self) -> tuple[Borrowed, ...]:
        """The addresses this node holds inside blocks not its own: its workloads the IPAM marks
        ``borrowed`` or whose block is not one of its blocks, then any address of ``borrowed`` no
        workload entry carries (the ``routing`` view keeps the borrowed workloads, so normally none)."""
        return self._borrowed

    @cached_property
    def _borrowed(self) -> tuple[Borrowed, ...]:
        own = {block.cidr for block in self.blocks}
        out = {}
        for w in self.workloads:
            if w.address is not None and (w.borrowed or (w.block is not None and w.block not in own)):
                out[w.ip] = Borrowed(w.ip, w.address, w.pool, w.block, w.id)
        for ip in self.borrowed_ips:
            if ip not in out:
                out[ip] = Borrowed(ip, parse_address(ip, "borrowed"))
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
    pools: Mapping[str, Pool]

    @classmethod
    def of(cls, value) -> IpamResult:
        """``value`` itself when it is already the model, else :meth:`from_dict` of it."""
        return value if isinstance(value, IpamResult) else cls.from_dict(value)

    @classmethod
    def from_dict(cls, data) -> IpamResult:
        """The model of ``{"nodes": ..., "pools": ...}`` (other keys ignored), every value checked."""
        if not isinstance(data, dict):
            raise IpamResultError(WHERE, _short(data), "not an IPAM result (a mapping with nodes and pools)")
        return _Reader().result(data.get("nodes"), data.get("pools"))

    # -- lookups

    def pool_containing(self, prefix: Subnet) -> Optional[Pool]:
        """The pool holding ``prefix`` (None: outside every pool). A block or a workload names its own pool;
        this one is for prefixes that do not (a route read from the kernel, a bare borrowed address)."""
        return next((pool for pool in self.pools.values() if prefix.within(pool.cidr)), None)

    @cached_property
    def _blocks(self) -> dict:
        return {block.cidr: name for name, node in self.nodes.items() for block in node.blocks}

    def block_owner(self, prefix: Subnet) -> Optional[str]:
        """The node whose block holds ``prefix`` (None: no node's)."""
        blocks = self._blocks
        for length in sorted({cidr.prefix for cidr in blocks}, reverse=True):
            if length <= prefix.prefix:
                owner = blocks.get(Subnet.around(prefix.base, length))
                if owner is not None:
                    return owner
        return None

    def node_addresses(self) -> list:
        """Every node's underlay and tunnel addresses (what workloads may not reach on the BGP port)."""
        found = {}
        for node in self.nodes.values():
            found[node.address] = node.ip
            for ip in (node.ipip, node.vxlan):
                if ip is not None:
                    found[parse_address(ip, "tunnels")] = ip
        return [found[address] for address in sorted(found)]

    # -- the routes

    def expected_routes(self, name: str, bgp_nodes: Optional[Iterable[str]] = None, veth_prefix: str = naming.VETH_PREFIX) -> tuple[Route, ...]:
        """Every route node ``name`` must have, in this order: its own blocks (blackholed by BIRD, when
        it runs BIRD, except /32 blocks), its workloads' /32s on their veths, then per other node
        (sorted) its blocks and its borrowed addresses, each as :func:`remote_path` says.

        ``bgp_nodes``: the nodes that run BIRD (default: every node).
        """
        me = self.nodes[name]
        speakers = set(self.nodes) if bgp_nodes is None else set(bgp_nodes)
        out = []
        if name in speakers:
            out += [Route(b.cidr, OWN_BLOCK, name, BY_BIRD, True, pool=b.pool) for b in me.blocks if b.cidr.prefix < 32]
        out += [
            Route(Subnet(w.address, 32), WORKLOAD, name, BY_WORKLOADS, dev=naming.veth_name(w.id, veth_prefix), pool=w.pool, workload=w.id)
            for w in me.workloads
            if w.address is not None
        ]
        pools, network = self.pools, me.network
        for other in sorted(self.nodes):
            if other == name:
                continue
            peer = self.nodes[other]
            bgp = name in speakers and other in speakers
            inside = same_subnet(network, peer.address)
            paths: dict = {}  # pool name -> how (the same for every prefix of that pool this peer holds)
            prefixes = [(block.cidr, REMOTE_BLOCK, block.pool, None, None) for block in peer.blocks]
            prefixes += [(_tuple(Subnet, (item.address, 32)), BORROWED, item.pool, item.workload, item.block) for item in peer.borrowed()]
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

    - VXLAN pool (l3.calico.tunnels, BGP or not), only when this node has a VTEP (as Felix: its
      VXLAN device and its data device come from its own VTEP; without one the tunnel address is the
      problem): encapsulated ``via <owner's VTEP> dev vxlan.calico onlink`` when the owner has a VTEP
      too; not encapsulated (CrossSubnet, owner in this node's subnet) ``via <owner>`` on the
      underlay, whatever the owner's VTEP.
    - Other pools, only when both run BIRD and the pool is exported (``disable_bgp_export`` false):
      learned by BGP, IPIP ``via <owner> dev tunl0 onlink``; otherwise ``via <owner>`` in this node's
      subnet, via whatever router leads there across subnets (``gateway recursive``).
    """
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


# --------------------------------------------------------------------------- reading

# A fleet's result holds tens of thousands of nodes and blocks, hundreds of thousands of workloads, read
# on every host (and on the controller for every host): the reader builds its values checked, without
# the per-field checks of the generated constructors (a frozen dataclass's __init__ sets each field
# through object.__setattr__, a named tuple's __new__ is Python).
_tuple = tuple.__new__
_FIELDS = ("name", "ip", "address", "network", "blocks", "workloads", "borrowed_ips", "ipip", "vxlan")


def _node(*values) -> Node:
    node = object.__new__(Node)
    node.__dict__.update(zip(_FIELDS, values, strict=True))
    return node


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


class _Reader:
    """One reading of a result, every value checked (a subnet's text, a node name: once per process)."""

    @staticmethod
    def subnet(value, where: str) -> Subnet:
        """``value`` parsed and checked (once per process: :data:`_SUBNETS`)."""
        found = _SUBNETS.get(value) if isinstance(value, str) else None
        if found is None:
            found = Subnet.parse(value, where)
            _SUBNETS[value] = found
        return found

    def result(self, nodes, pools) -> IpamResult:
        pools = {} if pools is None else pools
        nodes = {} if nodes is None else nodes
        if not isinstance(pools, dict):
            raise IpamResultError(f"{WHERE}.pools", _short(pools), "must be a mapping of pool name to pool")
        if not isinstance(nodes, dict):
            raise IpamResultError(f"{WHERE}.nodes", _short(nodes), "must be a mapping of node name to node")
        model_pools = {name: self.pool(name, pool) for name, pool in pools.items()}
        return IpamResult({name: self.node(name, node, model_pools) for name, node in nodes.items()}, model_pools)

    def pool(self, name, raw) -> Pool:
        if not naming.is_label(name):
            raise IpamResultError(f"{WHERE}.pools", name, "a pool name is a DNS-1123 label")
        where = f"{WHERE}.pools.{name}"
        if not isinstance(raw, dict):
            raise IpamResultError(where, _short(raw), "a pool must be a mapping")
        (ipip_mode, vxlan_mode), fault = encapsulation_modes(raw)
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
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= 32):
            raise IpamResultError(f"{where}.block_size", size, "must be a prefix length 0..32")
        return Pool(name, self.subnet(raw.get("cidr"), f"{where}.cidr"), block_size=size, ipip_mode=ipip_mode, vxlan_mode=vxlan_mode, **flags)

    def node(self, name, raw, pools: Mapping) -> Node:
        # Once per node of the fleet, on every host: the fields are named only on an error.
        if name not in _NODE_NAMES:
            if not naming.is_node_name(name):
                raise IpamResultError(f"{WHERE}.nodes", name, naming.NODE_NAME_REASON)
            _NODE_NAMES.add(name)
        where = f"{WHERE}.nodes.{name}"
        if not isinstance(raw, dict):
            raise IpamResultError(where, _short(raw), "a node must be a mapping")
        get = raw.get
        ip, network, tunnels = get("ip"), get("network"), get("tunnels") or {}
        address = parse_address(ip, where, ".ip")
        if network is not None:
            network = self.subnet(network, f"{where}.network")
            if address & prefix_mask(network.prefix) != network.base:
                raise IpamResultError(f"{where}.network", str(network), f"does not contain the node address {ip}")
        if not isinstance(tunnels, dict):
            raise IpamResultError(f"{where}.tunnels", _short(tunnels), "must be a mapping (ipip, vxlan)")
        ipip, vxlan = tunnels.get("ipip"), tunnels.get("vxlan")
        if ipip is not None:
            parse_address(ipip, where, ".tunnels.ipip")
        if vxlan is not None:
            parse_address(vxlan, where, ".tunnels.vxlan")
        blocks = tuple(self.block(where, i, b, pools) for i, b in enumerate(self.items(get("blocks"), where, "blocks")))
        workloads = tuple(self.workload(where, i, w, pools) for i, w in enumerate(self.items(get("workloads"), where, "workloads")))
        borrowed = self.items(get("borrowed"), where, "borrowed")
        for i, item in enumerate(borrowed):
            parse_address(item, where, f".borrowed[{i}]")
        return _node(name, ip, address, network, blocks, workloads, tuple(borrowed), ipip, vxlan)

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
