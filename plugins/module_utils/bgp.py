# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""BGP data of one node, computed from the IPAM result and the inventory.

Plain Python (no Ansible import): the filter ``l3.calico.bird_config`` is its thin
adapter and the template ``roles/calico_bgp/templates/bird.conf.j2`` only prints
what :func:`node_config` returns. Every decision lives here, where it is unit-tested:

* router id: the node address, a hash of the node name, or an explicit IPv4;
* peers: node-to-node mesh (one active side per pair: in a session, the side whose
  peer has the greater address is passive, so the greater address connects, as
  Calico's template does), route reflectors (``rr client`` sessions, reflectors leave
  the mesh), external peers (global and per node);
* filter data: the node's own blocks (static blackhole, exported as aggregates), the
  pools (import), the exportable pools (export), the IPIP and VXLAN pools (kernel).

The IPAM result is read and checked once by ``ipam_result`` (node names, addresses, subnets,
blocks, pools); the pool lists come from its model. BIRD applies the CrossSubnet rule itself
(``bgp_next_hop ~ <this node's subnet>``), the same rule as ``ipam_result.same_subnet``.

Secrets (MD5 passwords) never enter the main config text: each peer with a password
refers to a BIRD constant (``define CALICO_PW_<protocol> = "...";``) that the role
writes to a separate file, so bird.conf can be shown in diffs.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections import Counter
from typing import Any

from ansible_collections.l3.calico.plugins.module_utils import naming
from ansible_collections.l3.calico.plugins.module_utils.ipam_result import BY_TUNNELS, IpamResult, IpamResultError
from ansible_collections.l3.calico.plugins.module_utils.naming import IPIP_DEVICE, VETH_PREFIX

DEFAULT_AS = 64512
AS_MAX = 4294967295
DEFAULT_RESTART_TIME = 120  # BIRD's graceful restart time, Calico's BGPPeer maxRestartTime
# TCP-MD5 keys are at most 80 bytes (TCP_MD5SIG_MAXKEYLEN); BIRD strings cannot hold '"' or '\'.
PASSWORD_MAX = 80
PASSWORD_RE = re.compile(r'[^"\\\x00-\x1f\x7f]+')
PROTO_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


class BgpConfigError(ValueError):
    """Bad inventory or IPAM data; the message names the host, the field and the value."""


def _err(node: str, field: str, value: Any, why: str) -> BgpConfigError:
    return BgpConfigError(f"host {node}: {field}={value!r}: {why}")


def _ipv4(node: str, field: str, value: Any) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        raise _err(node, field, value, "not an IPv4 address") from None


def _int(node: str, field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise _err(node, field, value, f"must be an integer in {low}..{high}")
    try:
        number = int(str(value), 10)
    except ValueError:
        raise _err(node, field, value, f"must be an integer in {low}..{high}") from None
    if not low <= number <= high:
        raise _err(node, field, value, f"must be an integer in {low}..{high}")
    return number


def _bool(node: str, field: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _err(node, field, value, "must be a boolean (true or false)")


def _node_name(node: Any, field: str, value: Any) -> str:
    """A node name as it reaches bird.conf (comments, protocol descriptions): a DNS-1123 subdomain."""
    if not naming.is_node_name(value):
        raise _err(str(node), field, value, naming.NODE_NAME_REASON)
    return value


def _password(node: str, field: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = str(value)
    if len(text.encode("utf-8")) > PASSWORD_MAX or not PASSWORD_RE.fullmatch(text):
        # Never echo a secret: name the field only.
        raise BgpConfigError(
            f"host {node}: {field}: a TCP-MD5 password must be 1..{PASSWORD_MAX} bytes "
            'without quotes ("), backslashes or control characters'
        )
    return text


def proto_suffix(address: ipaddress.IPv4Address) -> str:
    """Calico's protocol name suffix: the address with dots as underscores."""
    return str(address).replace(".", "_")


def hash_router_id(node: str) -> str:
    """A stable router id from a node name: the first 4 bytes of SHA-256(name) as IPv4.

    For nodes whose address is not unique (NAT, several clusters) or not IPv4.
    """
    digest = hashlib.sha256(node.encode("utf-8")).digest()[:4]
    if digest == b"\x00\x00\x00\x00":  # pragma: no cover - 1 in 2**32
        digest = b"\x00\x00\x00\x01"
    return str(ipaddress.IPv4Address(digest))


def router_id(node: str, address: ipaddress.IPv4Address, mode: Any) -> str:
    """Router id: ``address`` (default), ``hash`` or an explicit IPv4 address."""
    if mode in (None, "", "address"):
        return str(address)
    if mode == "hash":
        return hash_router_id(node)
    return str(_ipv4(node, "calico_bgp_router_id", mode))


def _peer_entry(node: str, field: str, raw: Any, kind: str) -> dict:
    """Validate one external peer of the inventory (``calico_bgp_peers`` / ``calico_bgp_node_peers``)."""
    if not isinstance(raw, dict):
        raise _err(node, field, raw, "an external peer must be a mapping with address and as")
    unknown = sorted(
        set(raw)
        - {
            "name",
            "address",
            "as",
            "password",
            "ttl_security",
            "multihop",
            "keep_next_hop",
            "port",
            "passive",
            "import_default_route",
        }
    )
    if unknown:
        raise _err(node, field, unknown, "unknown keys of an external peer")
    address = _ipv4(node, f"{field}.address", raw.get("address"))
    peer_as = _int(node, f"{field}.as", raw.get("as"), 1, AS_MAX)
    name = raw.get("name") or f"{kind}_{proto_suffix(address)}"
    if not PROTO_NAME_RE.fullmatch(str(name)):
        raise _err(node, f"{field}.name", name, "a BIRD protocol name: a letter, then letters, digits or _")
    multihop = raw.get("multihop")
    return {
        "name": str(name),
        "kind": kind.lower(),
        "address": str(address),
        "_address": address,
        "as": peer_as,
        "password": _password(node, f"{field}.password", raw.get("password")),
        "ttl_security": _bool(node, f"{field}.ttl_security", raw.get("ttl_security", False)),
        "multihop": None if multihop in (None, "") else _int(node, f"{field}.multihop", multihop, 1, 255),
        "keep_next_hop": _bool(node, f"{field}.keep_next_hop", raw.get("keep_next_hop", False)),
        "port": _int(node, f"{field}.port", raw.get("port", 179), 1, 65535),
        "passive": _bool(node, f"{field}.passive", raw.get("passive", False)),
        "import_default_route": _bool(node, f"{field}.import_default_route", raw.get("import_default_route", False)),
        "rr_client": False,
    }


def node_config(ipam: dict, node: str, settings: dict | None = None) -> dict:
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
    """
    settings = settings or {}
    _node_name(node, "inventory_hostname", node)
    try:
        result = IpamResult.of(ipam)  # every node name, address, subnet, block and pool checked once
    except IpamResultError as exc:
        raise BgpConfigError(f"host {node}: {exc}") from None
    nodes = result.nodes
    if node not in nodes:
        raise _err(node, "calico_ipam_result.nodes", sorted(nodes), "this host is not a node of the IPAM result")
    me = nodes[node]
    my_ip = ipaddress.IPv4Address(me.address)
    if me.network is None:
        raise _err(node, f"calico_ipam_result.nodes.{node}.network", None,
                   "the node's subnet is needed (CrossSubnet decides by it)")
    my_as = _int(node, "calico_bgp_as", settings.get("as", DEFAULT_AS), 1, AS_MAX)
    default_as = _int(node, "calico_bgp_as (default)", settings.get("default_as", my_as), 1, AS_MAX)
    node_as = {}
    for name, value in (settings.get("node_as") or {}).items():
        _node_name(name, "calico_bgp_as (node)", name)
        node_as[name] = _int(name, "calico_bgp_as", value, 1, AS_MAX)
    node_as[node] = my_as

    pools = [pool for _, pool in sorted(result.pools.items())]
    if not pools:
        raise _err(node, "calico_ipam_result.pools", {}, "no pool: nothing to route")

    # Own blocks: a blackhole each (not /32 blocks, as Calico), exported as aggregates.
    own_blocks = []
    for index, block in enumerate(me.blocks):
        if result.pool_containing(block.cidr) is None:
            raise _err(node, f"nodes.{node}.blocks[{index}].cidr", str(block.cidr), "outside every pool")
        own_blocks.append(block.cidr)
    own_blocks = sorted(set(own_blocks))

    # Route reflectors: {node: cluster id}.
    reflectors = {}
    for name, cluster in (settings.get("route_reflectors") or {}).items():
        _node_name(name, "calico_route_reflectors", name)
        if name not in nodes:
            raise _err(name, "calico_route_reflectors", name, "a route reflector must be a node of the IPAM result")
        if cluster in (None, ""):
            raise _err(name, "calico_bgp_rr_cluster_id", cluster, "a route reflector needs a cluster id")
        reflectors[name] = str(_ipv4(name, "calico_bgp_rr_cluster_id", cluster))
    my_cluster = reflectors.get(node)
    mesh = _bool(node, "calico_bgp_node_mesh", settings.get("node_mesh", True))
    mesh_password = _password(node, "calico_bgp_mesh_password", settings.get("mesh_password"))

    peers: list[dict] = []
    for other in sorted(nodes):
        if other == node:
            continue
        other_ip = ipaddress.IPv4Address(nodes[other].address)
        if other_ip == my_ip:
            raise _err(other, "nodes.ip", str(other_ip), f"same address as {node}")
        other_as = node_as.get(other, default_as)
        other_cluster = reflectors.get(other)
        if my_cluster is not None:
            kind = "rr"  # a reflector peers with every node
            rr_client = other_as == my_as and other_cluster != my_cluster
        elif other_cluster is not None:
            kind, rr_client = "rr", False  # a client peers with every reflector
        elif mesh:
            kind, rr_client = "mesh", False
        else:
            continue
        peers.append(
            {
                "name": f"{'Mesh' if kind == 'mesh' else 'RR'}_{proto_suffix(other_ip)}",
                "kind": kind,
                "node": other,
                "address": str(other_ip),
                "_address": other_ip,
                "as": other_as,
                "password": mesh_password,
                "ttl_security": False,
                # eBGP between nodes (per-node AS) may cross subnets: allow it, as Calico's mesh does.
                "multihop": 255 if other_as != my_as else None,
                "keep_next_hop": False,
                "port": 179,
                # One active side per pair: towards a greater address we listen, it connects.
                "passive": other_ip > my_ip,
                "import_default_route": False,
                "rr_client": rr_client,
            }
        )

    node_ips = {p["_address"] for p in peers}
    external = [("Global", "calico_bgp_peers", i, p) for i, p in enumerate(settings.get("peers") or [])]
    external += [("Node", "calico_bgp_node_peers", i, p) for i, p in enumerate(settings.get("node_peers") or [])]
    for kind, var, index, raw in external:
        field = f"{var}[{index}]"
        peer = _peer_entry(node, field, raw, kind)
        peer["_password_source"] = {"var": var, "index": index}
        if peer["_address"] == my_ip:
            continue  # a global peer list may name this very node (a reflector outside the cluster)
        if peer["_address"] in node_ips:
            raise _err(node, f"{field}.address", peer["address"], "already a peer (a node, or listed twice)")
        node_ips.add(peer["_address"])
        peers.append(peer)

    # Counted once (names.count per name was peers x peers per host: quadratic in the fleet).
    duplicate = sorted(n for n, count in Counter(p["name"] for p in peers).items() if count > 1)
    if duplicate:
        raise _err(node, "peer names", duplicate, "two peers with the same protocol name")

    # Passwords stay out of the returned data (it is shown by set_fact and diffs): a peer
    # names the BIRD constant it uses, ``secrets`` says which variable holds the value.
    secrets = {}
    for peer in peers:
        password = peer.pop("password")
        source = peer.pop("_password_source", {"var": "calico_bgp_mesh_password", "index": None})
        peer["password_symbol"] = None
        if password:
            peer["password_symbol"] = f"CALICO_PW_{peer['name'].upper()}"
            secrets[peer["password_symbol"]] = source
        peer["ibgp"] = peer["as"] == my_as
        del peer["_address"]

    def cidrs(keep) -> list[str]:
        return [str(p.cidr) for p in pools if keep(p)]

    return {
        "node": node,
        "router_id": router_id(node, my_ip, settings.get("router_id")),
        "as": my_as,
        "address": str(my_ip),
        "network": str(me.network),
        "route_reflector_cluster_id": my_cluster,
        "own_blocks": [str(b) for b in own_blocks],
        "blackholes": [str(b) for b in own_blocks if b.prefix < 32],
        "pools": cidrs(lambda p: True),
        "export_pools": cidrs(lambda p: not p.disable_bgp_export),
        "no_export_pools": cidrs(lambda p: p.disable_bgp_export),
        "ipip_always_pools": cidrs(lambda p: p.ipip_mode == "Always"),
        # BIRD decides these per route: through tunl0 unless the next hop (the peer's address) lies in
        # this node's subnet - ipam_result.same_subnet, Calico's rule, evaluated by BIRD's kernel filter.
        "ipip_cross_subnet_pools": cidrs(lambda p: p.ipip_mode == "CrossSubnet"),
        "vxlan_pools": cidrs(lambda p: p.routed_by == BY_TUNNELS),
        "import_default_route": _bool(
            node, "calico_bgp_import_default_route", settings.get("import_default_route", False)
        ),
        "graceful_restart": _bool(node, "calico_bgp_graceful_restart", settings.get("graceful_restart", True)),
        "graceful_restart_time": _int(
            node, "calico_bgp_graceful_restart_time", settings.get("graceful_restart_time", DEFAULT_RESTART_TIME), 0, 4095
        ),
        "tunnel_device": IPIP_DEVICE,
        "workload_interfaces": VETH_PREFIX + "*",
        "peers": peers,
        "secrets": secrets,
    }
