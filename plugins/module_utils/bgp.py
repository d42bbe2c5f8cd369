# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""BGP data of one node, computed from the IPAM result and the inventory.

Plain Python (no Ansible import): the filter ``l3.calico.bird_config`` and the module
``l3.calico.bird`` (option ``bgp``, on the host) are its thin adapters, and ``bird_conf.py``
only prints what :func:`node_config` returns. Every decision lives here, where it is unit-tested:

* router id: the node address, a hash of the node name, or an explicit IPv4;
* peers: node-to-node mesh (one active side per pair: in a session, the side whose
  peer has the greater address is passive, so the greater address connects, as
  Calico's template does), route reflectors (``rr client`` sessions, reflectors leave
  the mesh), external peers (global and per node);
* filter data: the node's own blocks (static blackhole, exported as aggregates), the
  pools (import), the exportable pools (export), the IPIP and VXLAN pools (kernel);
* IPv6 (``ipv6``, :func:`ipv6_config`): as Calico's bird6, separate IPv6 sessions between the nodes'
  IPv6 addresses (``calico_node_ipv6``) with the same mesh / reflector / external peer rules, the
  node's IPv6 blocks and the IPv6 pools; None for a node without an IPv6 address or a result without
  an IPv6 pool (no IPv6 session, no IPv6 route). The router id stays IPv4 (every node has one).

The inventory's BGP settings are read and checked once by :meth:`BgpSettings.from_inventory`
(frozen dataclasses: the settings, each external peer a :class:`Peer`), the IPAM result by
``ipam_result`` (node names, addresses, subnets, blocks, pools). :func:`node_config` then asks
one function per question: the AS of a node (:meth:`BgpSettings.as_of`), the session with
another node (:meth:`BgpSettings.session_with`: mesh, reflector or none), the node peers
(:func:`node_peers`), the external peers (:func:`external_peers`), the pool lists
(:func:`pool_lists`). BIRD applies the CrossSubnet rule itself (``bgp_next_hop ~ <this node's
subnet>``), the same rule as ``ipam_result.same_subnet``.

Secrets (MD5 passwords) never enter the model: a password is checked where it enters and only
where to read it is kept (:class:`PasswordSource`: the variable, the peer's index). A peer with
one refers to a BIRD constant (``define CALICO_PW_<protocol> = "...";``) that the role writes to
a separate file from that source, so bird.conf and the returned data can be shown in diffs.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from ansible_collections.l3.calico.plugins.module_utils import naming
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.ipam_result import BY_TUNNELS, IpamResult, IpamResultError, Node
from ansible_collections.l3.calico.plugins.module_utils.naming import IPIP_DEVICE, VETH_PREFIX

DEFAULT_AS = 64512
AS_MAX = 4294967295
DEFAULT_RESTART_TIME = 120  # BIRD's graceful restart time, Calico's BGPPeer maxRestartTime
# TCP-MD5 keys are at most 80 bytes (TCP_MD5SIG_MAXKEYLEN); BIRD strings cannot hold '"' or '\'.
PASSWORD_MAX = 80
PASSWORD_RE = re.compile(r'[^"\\\x00-\x1f\x7f]+')
PROTO_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
# Peer kinds (Peer.kind): sessions with other nodes, and external peers.
MESH, RR, GLOBAL, NODE = "mesh", "rr", "global", "node"
# The external peers of the settings: (settings key, inventory variable, protocol name prefix).
EXTERNAL_PEERS = (("peers", "calico_bgp_peers", "Global"), ("node_peers", "calico_bgp_node_peers", "Node"))
PEER_KEYS = frozenset({"name", "address", "as", "password", "ttl_security", "multihop", "keep_next_hop", "port", "passive", "import_default_route"})


_inet_ntop, _AF_INET6 = socket.inet_ntop, socket.AF_INET6


class BgpConfigError(L3CalicoError, ValueError):
    """Bad inventory or IPAM data; the message names the host, the field and the value."""


def _err(node: str, field_name: str, value: Any, why: str) -> BgpConfigError:
    return BgpConfigError(f"host {node}: {field_name}={value!r}: {why}")


def _ipv4(node: str, field_name: str, value: Any) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        raise _err(node, field_name, value, "not an IPv4 address") from None


def _peer_ip(node: str, field_name: str, value: Any):
    """An external peer's address: IPv4 (an IPv4 session) or IPv6 (an IPv6 session, as Calico's peer_v6).
    A link-local IPv6 address (BIRD needs its interface) or an IPv4-mapped one (an IPv4 peer) is refused."""
    if isinstance(value, str) and ":" in value:
        try:
            address = ipaddress.IPv6Address(value)
        except ValueError:
            raise _err(node, field_name, value, "not an IPv6 address") from None
        if address.is_link_local:
            raise _err(node, field_name, value, "a link-local IPv6 address (BIRD needs its interface): give the peer's global or unique local address")
        if address.ipv4_mapped is not None:
            raise _err(node, field_name, value, f"an IPv4-mapped IPv6 address: an IPv4 peer is given as {address.ipv4_mapped}")
        return address
    return _ipv4(node, field_name, value)


def _int(node: str, field_name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise _err(node, field_name, value, f"must be an integer in {low}..{high}")
    try:
        number = int(str(value), 10)
    except ValueError:
        raise _err(node, field_name, value, f"must be an integer in {low}..{high}") from None
    if not low <= number <= high:
        raise _err(node, field_name, value, f"must be an integer in {low}..{high}")
    return number


def _bool(node: str, field_name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _err(node, field_name, value, "must be a boolean (true or false)")


def _node_name(node: Any, field_name: str, value: Any) -> str:
    """A node name as it reaches bird.conf (comments, protocol descriptions): a DNS-1123 subdomain."""
    if not naming.is_node_name(value):
        raise _err(str(node), field_name, value, naming.NODE_NAME_REASON)
    return value


def proto_suffix(address) -> str:
    """Calico's protocol name suffix: the address with dots (IPv6: colons) as underscores."""
    return str(address).replace(".", "_").replace(":", "_")


def hash_router_id(node: str) -> str:
    """A stable router id from a node name: the first 4 bytes of SHA-256(name) as IPv4.

    For nodes whose address is not unique (NAT, several clusters) or not IPv4.
    """
    digest = hashlib.sha256(node.encode("utf-8")).digest()[:4]
    if digest == b"\x00\x00\x00\x00":  # pragma: no cover - 1 in 2**32
        digest = b"\x00\x00\x00\x01"
    return str(ipaddress.IPv4Address(digest))


def _router_id_mode(node: str, mode: Any) -> str:
    """``calico_bgp_router_id`` checked: ``address`` (also when unset), ``hash`` or an IPv4 address."""
    if mode in (None, "", "address"):
        return "address"
    if mode == "hash":
        return "hash"
    return str(_ipv4(node, "calico_bgp_router_id", mode))


def router_id(node: str, address, mode: Any) -> str:
    """Router id: ``address`` (default), ``hash`` or an explicit IPv4 address."""
    mode = _router_id_mode(node, mode)
    if mode == "address":
        return str(address)
    if mode == "hash":
        return hash_router_id(node)
    return mode


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class PasswordSource:
    """Where a peer's TCP-MD5 password is read (the role's secrets template): an inventory variable,
    and the peer's index in it (None: the variable is the password). The password itself is checked
    where it enters (:func:`password_source`) and never kept."""

    var: str
    index: Optional[int] = None

    def as_dict(self) -> dict:
        return {"var": self.var, "index": self.index}


MESH_PASSWORD = PasswordSource("calico_bgp_mesh_password")
# Where each PasswordSource.var is found in the settings (node_config's ``settings``).
PASSWORD_SETTINGS = {MESH_PASSWORD.var: "mesh_password", **{var: key for key, var, _prefix in EXTERNAL_PEERS}}


def password_source(node: str, field_name: str, value: Any, source: PasswordSource) -> Optional[PasswordSource]:
    """``source`` when ``value`` is a usable TCP-MD5 password, None when there is none; a bad one is
    refused naming the field only (never a secret in a message)."""
    if value is None or value == "":
        return None
    text = str(value)
    if len(text.encode("utf-8")) > PASSWORD_MAX or not PASSWORD_RE.fullmatch(text):
        raise BgpConfigError(
            f'host {node}: {field_name}: a TCP-MD5 password must be 1..{PASSWORD_MAX} bytes without quotes ("), backslashes or control characters'
        )
    return source


@dataclass(frozen=True)
class Peer:
    """One BGP session of this node: with another node (``mesh``, ``rr``) or an external peer (``global``, ``node``)."""

    name: str  # the BIRD protocol name
    kind: str  # MESH, RR, GLOBAL or NODE
    ip: str  # the peer's address as bird.conf prints it
    address: int = field(repr=False)  # the same, compared as a number
    asn: int
    node: Optional[str] = None  # the peer node (mesh, rr)
    ttl_security: bool = False
    multihop: Optional[int] = None
    keep_next_hop: bool = False
    port: int = 179
    passive: bool = False
    import_default_route: bool = False
    rr_client: bool = False
    password: Optional[PasswordSource] = None  # where its password is read; None: no password
    where: Optional[str] = field(default=None, repr=False, compare=False)  # the inventory entry (external peers)
    version: int = 4  # 6: an IPv6 session (``ip`` an IPv6 address)

    @classmethod
    def from_inventory(cls, node: str, var: str, index: int, raw: Any, prefix: str) -> Peer:
        """External peer ``index`` of ``var`` (``calico_bgp_peers`` / ``calico_bgp_node_peers``), checked."""
        where = f"{var}[{index}]"
        if not isinstance(raw, dict):
            raise _err(node, where, raw, "an external peer must be a mapping with address and as")
        unknown = sorted(set(raw) - PEER_KEYS)
        if unknown:
            raise _err(node, where, unknown, "unknown keys of an external peer")
        address = _peer_ip(node, f"{where}.address", raw.get("address"))
        peer_as = _int(node, f"{where}.as", raw.get("as"), 1, AS_MAX)
        name = raw.get("name") or f"{prefix}_{proto_suffix(address)}"
        if not PROTO_NAME_RE.fullmatch(str(name)):
            raise _err(node, f"{where}.name", name, "a BIRD protocol name: a letter, then letters, digits or _")
        multihop = raw.get("multihop")
        return cls(
            str(name),
            prefix.lower(),
            str(address),
            int(address),
            peer_as,
            password=password_source(node, f"{where}.password", raw.get("password"), PasswordSource(var, index)),
            ttl_security=_bool(node, f"{where}.ttl_security", raw.get("ttl_security", False)),
            multihop=None if multihop in (None, "") else _int(node, f"{where}.multihop", multihop, 1, 255),
            keep_next_hop=_bool(node, f"{where}.keep_next_hop", raw.get("keep_next_hop", False)),
            port=_int(node, f"{where}.port", raw.get("port", 179), 1, 65535),
            passive=_bool(node, f"{where}.passive", raw.get("passive", False)),
            import_default_route=_bool(node, f"{where}.import_default_route", raw.get("import_default_route", False)),
            where=where,
            version=address.version,
        )

    @property
    def password_symbol(self) -> Optional[str]:
        """The BIRD constant holding its password (``CALICO_PW_<PROTOCOL>``); None: no password."""
        return None if self.password is None else f"CALICO_PW_{self.name.upper()}"

    def as_dict(self, local_as: int) -> dict:
        """The peer as bird_conf.py prints it: the constant of its password, never where it is read."""
        out = {"name": self.name, "kind": self.kind}
        if self.node is not None:
            out["node"] = self.node
        out.update(
            {
                "address": self.ip,
                "as": self.asn,
                "ttl_security": self.ttl_security,
                "multihop": self.multihop,
                "keep_next_hop": self.keep_next_hop,
                "port": self.port,
                "passive": self.passive,
                "import_default_route": self.import_default_route,
                "rr_client": self.rr_client,
                "password_symbol": self.password_symbol,
                "ibgp": self.asn == local_as,
            }
        )
        return out


@dataclass(frozen=True)
class BgpSettings:
    """The BGP settings of one node (the role's ``settings``), checked: see :func:`node_config`."""

    node: str
    local_as: int = DEFAULT_AS
    default_as: int = DEFAULT_AS  # the AS of nodes absent from node_as
    node_as: Mapping[str, int] = field(default_factory=dict)  # this node included
    router_id: str = "address"  # ``address``, ``hash`` or an IPv4 address
    node_mesh: bool = True
    mesh_password: Optional[PasswordSource] = None  # of the node-to-node sessions (mesh and reflectors)
    route_reflectors: Mapping[str, str] = field(default_factory=dict)  # node -> cluster id
    peers: tuple[Peer, ...] = ()  # external: global, then this node's
    import_default_route: bool = False
    graceful_restart: bool = True
    graceful_restart_time: int = DEFAULT_RESTART_TIME

    @classmethod
    def from_inventory(cls, node: str, settings: Optional[Mapping] = None) -> BgpSettings:
        """The settings of ``node`` checked, each refusal naming host, field and value."""
        settings = settings or {}
        _node_name(node, "inventory_hostname", node)
        local_as = _int(node, "calico_bgp_as", settings.get("as", DEFAULT_AS), 1, AS_MAX)
        default_as = _int(node, "calico_bgp_as (default)", settings.get("default_as", local_as), 1, AS_MAX)
        node_as = {}
        for name, value in (settings.get("node_as") or {}).items():
            _node_name(name, "calico_bgp_as (node)", name)
            node_as[name] = _int(name, "calico_bgp_as", value, 1, AS_MAX)
        node_as[node] = local_as
        reflectors = {}
        for name, cluster in (settings.get("route_reflectors") or {}).items():
            _node_name(name, "calico_route_reflectors", name)
            if cluster in (None, ""):
                raise _err(name, "calico_bgp_rr_cluster_id", cluster, "a route reflector needs a cluster id")
            reflectors[name] = str(_ipv4(name, "calico_bgp_rr_cluster_id", cluster))
        mesh = _bool(node, "calico_bgp_node_mesh", settings.get("node_mesh", True))
        mesh_password = password_source(node, "calico_bgp_mesh_password", settings.get("mesh_password"), MESH_PASSWORD)
        peers = tuple(
            Peer.from_inventory(node, var, index, raw, prefix) for key, var, prefix in EXTERNAL_PEERS for index, raw in enumerate(settings.get(key) or [])
        )
        return cls(
            node,
            local_as,
            default_as,
            node_as,
            _router_id_mode(node, settings.get("router_id")),
            mesh,
            mesh_password,
            reflectors,
            peers,
            _bool(node, "calico_bgp_import_default_route", settings.get("import_default_route", False)),
            _bool(node, "calico_bgp_graceful_restart", settings.get("graceful_restart", True)),
            _int(node, "calico_bgp_graceful_restart_time", settings.get("graceful_restart_time", DEFAULT_RESTART_TIME), 0, 4095),
        )

    @property
    def cluster_id(self) -> Optional[str]:
        """This node's route reflector cluster id; None: not a reflector."""
        return self.route_reflectors.get(self.node)

    def as_of(self, name: str) -> int:
        """The AS of node ``name``: its ``calico_bgp_as``, else ``default_as``."""
        return self.node_as.get(name, self.default_as)

    def session_with(self, name: str, peer_as: int) -> Optional[tuple[str, bool]]:
        """This node's session with node ``name`` (of AS ``peer_as``): ``(kind, rr_client)``, None: none.

        A reflector peers with every node; its clients are the nodes of its AS that are not reflectors
        of its cluster. A client peers with every reflector. Nodes that are not reflectors mesh while
        the mesh is on.
        """
        mine, theirs = self.cluster_id, self.route_reflectors.get(name)
        if mine is not None:
            return RR, peer_as == self.local_as and theirs != mine
        if theirs is not None:
            return RR, False
        return (MESH, False) if self.node_mesh else None


# --------------------------------------------------------------------------- one node's BGP data


def node_config(ipam: dict, node: str, settings: Optional[dict] = None) -> dict:
    """Everything bird.conf needs for ``node``; raise :class:`BgpConfigError` on bad input.

    ``ipam`` is ``calico_ipam_result`` (docs/architecture.md). ``settings`` (all optional):

    ``as``                 this node's AS (default 64512)
    ``node_as``            {node: AS} of the other nodes (missing: ``default_as``)
    ``default_as``         the AS of nodes absent from ``node_as`` (default: ``as``)
    ``router_id``          ``address`` | ``hash`` | IPv4
    ``node_mesh``          full mesh between the nodes that are not reflectors (default true)
    ``mesh_password``      TCP-MD5 password of the node-to-node sessions (mesh and reflectors)
    ``route_reflectors``   {node: cluster id} of the reflectors
    ``peers``              global external peers, ``node_peers`` this node's own
    ``import_default_route`` accept 0.0.0.0/0 from every peer
    ``graceful_restart``   announce graceful restart (default true)
    ``graceful_restart_time`` seconds the peers keep this node's routes stale, 0..4095 (default 120):
                           BIRD parses any number, but the capability carries 12 bits

    The settings are checked first (:meth:`BgpSettings.from_inventory`), then the IPAM result.
    The peers come with the BIRD constant of their password (``password_symbol``); ``secrets``
    maps each constant to where its password is read, built beside them from the same peers.

    ``ipv6``: the IPv6 sessions and filter data (:func:`ipv6_config`), None without IPv6 BGP on this
    node; an external peer with an IPv6 address is an IPv6 session (Calico's ``peer_v6``).
    """
    bgp = BgpSettings.from_inventory(node, settings)
    result, me = ipam_node(ipam, node)
    blocks = own_blocks(result, me)
    check_reflectors(bgp, result)
    try:
        peers = node_peers(bgp, result, me)
    except IpamResultError as exc:  # another node's address, read here
        raise BgpConfigError(f"host {node}: {exc}") from None
    peers += external_peers(bgp, me, peers)
    six = ipv6_config(bgp, result, me)
    peers6 = six.pop("peers") if six is not None else []
    check_peer_names(node, peers + peers6)
    if six is not None:
        six["peers"] = [peer.as_dict(bgp.local_as) for peer in peers6]
    return {
        "node": node,
        "router_id": router_id(node, me.ip, bgp.router_id),
        "as": bgp.local_as,
        "address": me.ip,
        "network": str(me.network),
        "route_reflector_cluster_id": bgp.cluster_id,
        "own_blocks": [str(b) for b in blocks],
        "blackholes": [str(b) for b in blocks if b.prefix < 32],
        **pool_lists(result),
        "import_default_route": bgp.import_default_route,
        "graceful_restart": bgp.graceful_restart,
        "graceful_restart_time": bgp.graceful_restart_time,
        "tunnel_device": IPIP_DEVICE,
        "workload_interfaces": VETH_PREFIX + "*",
        "peers": [peer.as_dict(bgp.local_as) for peer in peers],
        "secrets": {peer.password_symbol: peer.password.as_dict() for peer in peers + peers6 if peer.password is not None},
        "ipv6": six,
    }


def ipv6_config(bgp: BgpSettings, result: IpamResult, me: Node) -> Optional[dict]:
    """The IPv6 side of bird.conf, as Calico's bird6.cfg: IPv6 sessions between the nodes' IPv6 addresses
    (the same mesh / reflector / external peer rules as IPv4; a node without an IPv6 address is nobody's
    IPv6 peer), this node's IPv6 blocks (blackholes but /128, exported as aggregates) and the IPv6 pools.
    None - no IPv6 session, no IPv6 route - when this node has no IPv6 address (``calico_node_ipv6``)
    or the result no IPv6 pool (nothing to route); an IPv6 peer of this node's own is then refused
    (a global one is skipped, as Calico's bird6 skips its peers on a node without an IPv6 address)."""
    if me.address6 is None or not result.pools6:
        why = "this node has no IPv6 address (calico_node_ipv6)" if me.address6 is None else "the IPAM result has no IPv6 pool"
        for peer in bgp.peers:
            if peer.version == 6 and peer.kind == NODE:
                raise _err(me.name, f"{peer.where}.address", peer.ip, f"an IPv6 peer, but {why}: no IPv6 BGP on this node")
        return None
    blocks = own_blocks(result, me, 6)
    peers = node_peers(bgp, result, me, 6)
    peers += external_peers(bgp, me, peers, 6)
    return {
        "address": _ipv6_text(me.address6),
        "network": None if me.network6 is None else str(me.network6),
        "own_blocks": [str(b) for b in blocks],
        "blackholes": [str(b) for b in blocks if b.prefix < 128],
        **pool_lists(result, 6),
        "peers": peers,
    }


def _ipv6_text(address: int) -> str:
    """An IPv6 address in its one spelling (RFC 5952, the C library's ``inet_ntop`` as BIRD prints it), as
    bird.conf and the protocol names print it: once per IPv6 peer of a full mesh (``ipaddress``'s ``str``
    cost 10 times more)."""
    return _inet_ntop(_AF_INET6, address.to_bytes(16, "big"))


def ipam_node(ipam, node: str) -> tuple[IpamResult, Node]:
    """The IPAM result (read and checked by ``ipam_result``) and ``node`` in it, with what BGP needs:
    the node's subnet, and a pool. A dict is read lazily (``IpamResult.from_dict`` ``lazy=True``): the
    pools, every node name and this node (all of it) at once; of the other nodes only their addresses, by
    :func:`node_peers` (bird.conf names nothing else of them)."""
    try:
        result = IpamResult.of(ipam, lazy=True)
        me = result.full_node(node)  # its borrowed workloads too (the routing view's)
    except IpamResultError as exc:
        raise BgpConfigError(f"host {node}: {exc}") from None
    if me is None:
        raise _err(node, "calico_ipam_result.nodes", sorted(result.nodes), "this host is not a node of the IPAM result")
    if me.network is None:
        raise _err(node, f"calico_ipam_result.nodes.{node}.network", None, "the node's subnet is needed (CrossSubnet decides by it)")
    if not result.pools:
        raise _err(node, "calico_ipam_result.pools", {}, "no pool: nothing to route")
    return result, me


def own_blocks(result: IpamResult, me: Node, version: int = 4) -> list:
    """The node's blocks of the family ``version``, sorted, each inside a pool of that family: a blackhole
    each (not /32 - IPv6: /128 - blocks, as Calico), exported as aggregates."""
    blocks, key = (me.blocks6, "blocks_ipv6") if version == 6 else (me.blocks, "blocks")
    for index, block in enumerate(blocks):
        if result.pool_containing(block.cidr) is None:
            raise _err(me.name, f"nodes.{me.name}.{key}[{index}].cidr", str(block.cidr), "outside every pool")
    return sorted({block.cidr for block in blocks})


def check_reflectors(bgp: BgpSettings, result: IpamResult) -> None:
    """Every route reflector is a node of the IPAM result."""
    for name in bgp.route_reflectors:
        if name not in result.nodes:
            raise _err(name, "calico_route_reflectors", name, "a route reflector must be a node of the IPAM result")


def node_peers(bgp: BgpSettings, result: IpamResult, me: Node, version: int = 4) -> list:
    """The sessions with the other nodes (by name), as :meth:`BgpSettings.session_with` decides; each
    with the mesh password, eBGP ones multihop (per-node AS may cross subnets, as Calico's mesh), and
    passive towards a greater address (one active side per pair: the greater address connects).
    ``version=6``: the IPv6 sessions, between the IPv6 addresses (nodes without one are skipped)."""
    peers = []
    six = version == 6
    mine = me.address6 if six else me.address
    for name in sorted(result.nodes):
        if name == me.name:
            continue
        if six:
            other = result.nodes[name]  # its IPv6 side: read with the node
            if other.address6 is None:
                continue
            address, ip = other.address6, _ipv6_text(other.address6)
            if address == mine:
                raise _err(name, "nodes.ipv6", other.ipv6, f"same IPv6 address as {me.name}")
        else:
            ip, address = result.node_address(name)  # read alone (a lazy result): the rest of that node is not needed
            if address == mine:
                raise _err(name, "nodes.ip", ip, f"same address as {me.name}")
        peer_as = bgp.as_of(name)
        session = bgp.session_with(name, peer_as)
        if session is None:
            continue
        kind, rr_client = session
        peers.append(
            _peer(
                f"{'Mesh' if kind == MESH else 'RR'}_{proto_suffix(ip)}",
                kind,
                ip,
                address,
                peer_as,
                name,
                False,  # ttl_security
                None if peer_as == bgp.local_as else 255,  # multihop
                False,  # keep_next_hop
                179,  # port
                address > mine,  # passive
                False,  # import_default_route
                rr_client,
                bgp.mesh_password,
                None,  # where
                version,
            )
        )
    return peers


# In a full mesh a node has a session with every other node: 10,000 Peers per host in a fleet of
# 10,000. They are built as ipam_result builds its nodes, without the generated __init__ of a frozen
# dataclass (an object.__setattr__ per field), which made node_config 7 % slower than the dicts it
# replaced; test_bgp holds them equal to Peer(...).
_PEER_FIELDS = tuple(f.name for f in fields(Peer))


def _peer(*values) -> Peer:
    peer = object.__new__(Peer)
    peer.__dict__.update(zip(_PEER_FIELDS, values, strict=True))
    return peer


def external_peers(bgp: BgpSettings, me: Node, sessions: list, version: int = 4) -> list:
    """The external peers of the family ``version`` of the settings but this node itself (a global list may
    name it: a reflector outside the cluster); the address of one of ``sessions`` (the node peers), or one
    listed twice, is refused."""
    peers = []
    taken = {peer.address for peer in sessions}
    mine = me.address6 if version == 6 else me.address
    for peer in bgp.peers:
        if peer.version != version or peer.address == mine:
            continue
        if peer.address in taken:
            raise _err(bgp.node, f"{peer.where}.address", peer.ip, "already a peer (a node, or listed twice)")
        taken.add(peer.address)
        peers.append(peer)
    return peers


def check_peer_names(node: str, peers: list) -> None:
    """No two peers with the same protocol name (counted once: names.count per name was quadratic in the fleet)."""
    duplicate = sorted(name for name, count in Counter(peer.name for peer in peers).items() if count > 1)
    if duplicate:
        raise _err(node, "peer names", duplicate, "two peers with the same protocol name")


def pool_lists(result: IpamResult, version: int = 4) -> dict:
    """The pools bird.conf's filters name, by pool name: all of them (import), the exported ones and the
    others, the IPIP ``Always`` ones, the IPIP ``CrossSubnet`` ones (BIRD decides these per route: through
    tunl0 unless the next hop lies in this node's subnet - ipam_result.same_subnet, Calico's rule) and
    the VXLAN ones (l3.calico.tunnels programs them). ``version=6``: the IPv6 pools, without the IPIP
    lists (IPIP is IPv4-only)."""
    pools = [pool for _name, pool in sorted(result.family_pools(version).items())]

    def cidrs(keep) -> list:
        return [str(p.cidr) for p in pools if keep(p)]

    if version == 6:
        return {
            "pools": cidrs(lambda p: True),
            "export_pools": cidrs(lambda p: not p.disable_bgp_export),
            "no_export_pools": cidrs(lambda p: p.disable_bgp_export),
            "vxlan_pools": cidrs(lambda p: p.routed_by == BY_TUNNELS),
        }
    return {
        "pools": cidrs(lambda p: True),
        "export_pools": cidrs(lambda p: not p.disable_bgp_export),
        "no_export_pools": cidrs(lambda p: p.disable_bgp_export),
        "ipip_always_pools": cidrs(lambda p: p.ipip_mode == "Always"),
        "ipip_cross_subnet_pools": cidrs(lambda p: p.ipip_mode == "CrossSubnet"),
        "vxlan_pools": cidrs(lambda p: p.routed_by == BY_TUNNELS),
    }
