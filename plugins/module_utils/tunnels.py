# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""A node's tunnels as Felix programs them: ``tunl0`` (IPIP) and ``vxlan.calico`` with its peers.

Input is the IPAM result (``nodes`` and ``pools`` of ``calico_ipam_result``, read by
``ipam_result``, which decides every route) and the node's name; output is one ``ip -batch`` and
(for VXLAN forwarding entries) one ``bridge -batch``.

- IPIP: the kernel's fallback device ``tunl0`` (created by loading ``ipip``), up, MTU underlay-20,
  exactly the node's IPIP tunnel address /32. Routes through it are BIRD's job (BGP role).
- VXLAN: ``vxlan.calico`` (VNI 4096, UDP 4789, ``local`` = node address, ``dev`` = underlay
  interface, learning off, MAC ``66`` + SHA-1(node)[:5], MTU underlay-50, its tunnel address /32),
  and because BIRD cannot program VXLAN routes, per remote node with a VTEP: a permanent
  neighbour entry (VTEP IP -> VTEP MAC), an FDB entry (VTEP MAC -> node address) and routes
  ``<remote block> via <remote VTEP> dev vxlan.calico onlink`` for its blocks (and borrowed /32s)
  in VXLAN pools — for ``CrossSubnet`` pools only when the remote node's address is outside this
  node's subnet (``ipam_result.same_subnet``); inside it, ``<remote block> via <remote node> dev
  <underlay> proto 80``, unencapsulated, as Felix does (whether the remote node has a VTEP or not).
  A node without a VTEP of its own gets no route of a VXLAN pool (Felix: no device, no data device).

- VXLAN for IPv6 pools: ``vxlan-v6.calico`` over the IPv6 underlay, as Felix's IPv6 VXLAN manager
  makes it (felix/dataplane/linux/vxlan_mgr.go ``device``: the same ``VXLANVNI`` and ``VXLANPort`` as
  IPv4 - Felix has no separate IPv6 defaults, only ``VXLANMTUV6``; ``local`` = the node's IPv6
  address; MAC ``66`` + SHA-1(``<node>-v6``)[:5], felix/calc/vxlan_resolver.go ``vtepMACForHost``),
  MTU underlay-70 (an IPv6 outer header is 20 bytes longer), its ``vxlan_v6`` tunnel address /128,
  and per remote node with an IPv6 VTEP the same neighbour, FDB entry and routes - the IPv6 blocks
  :meth:`IpamResult.expected_routes` (``version=6``) gives this node, the one answer. Only a node
  with an IPv6 address and a ``vxlan_v6`` tunnel address gets the device.

Ownership: ``vxlan.calico`` carries the alias ``l3.calico:vxlan`` (``vxlan-v6.calico``:
``l3.calico:vxlan-v6``; a foreign device of either name is an error); everything on it is ours. ``tunl0`` is the kernel's: the module only manages its
address, MTU and state, and marks it ``l3.calico:ipip`` so it can undo that when IPIP goes away.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from ansible_collections.l3.calico.plugins.module_utils import iproute, naming
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.ipam_result import (
    BY_TUNNELS,
    VXLAN,
    IpamResult,
    IpamResultError,
    parse_address,
)

IPIP_OVERHEAD = 20
VXLAN_OVERHEAD = 50
VXLAN_V6_OVERHEAD = 70  # outer IPv6 (40) + UDP (8) + VXLAN (8) + Ethernet (14): Calico's MTU table
DEFAULT_VNI = 4096
DEFAULT_PORT = 4789
VXLAN_ALIAS = "l3.calico:vxlan"
VXLAN_V6_ALIAS = "l3.calico:vxlan-v6"
# Routes through vxlan.calico carry Felix's protocol number, so other route daemons (BIRD's
# kernel protocol: krt_source = 80) can tell them apart and leave them alone.
ROUTE_PROTO = "80"
IPIP_ALIAS = "l3.calico:ipip"


class TunnelError(L3CalicoError, ValueError):
    """Bad input, a missing kernel feature, or a foreign device in the way (before any change)."""


@dataclass(frozen=True)
class Peer:
    node: str
    ip: str  # underlay address
    vtep: Optional[str]  # VXLAN tunnel address (None: a peer reached only directly)
    mac: str
    routes: tuple[str, ...]  # CIDRs routed through this VTEP
    direct: tuple[str, ...] = ()  # CIDRs of CrossSubnet VXLAN pools routed straight to the node


@dataclass
class Desired:
    node: str
    node_ip: str
    network: Optional[str]
    ipip: Optional[str] = None  # tunl0 address
    vxlan: Optional[str] = None  # vxlan.calico address
    peers: list[Peer] = field(default_factory=list)
    # IPv6 (None / empty: no IPv6 address, or no VXLAN IPv6 pool selects the node)
    node_ip6: Optional[str] = None
    vxlan_v6: Optional[str] = None  # vxlan-v6.calico address
    peers6: list[Peer] = field(default_factory=list)  # ip: the peer's IPv6 address, vtep: its vxlan_v6


def load(ipam) -> IpamResult:
    """The IPAM result (``{"nodes": ..., "pools": ...}`` or the model itself) as the model, checked once;
    bad data as a :class:`TunnelError`."""
    try:
        return IpamResult.of(ipam)
    except IpamResultError as exc:
        raise TunnelError(str(exc)) from None


def desired_tunnels(node: str, ipam) -> Desired:
    """What this node's tunnels must look like: the routes of VXLAN pools the IPAM result's model
    expects on this node (:meth:`IpamResult.expected_routes`, programmed by this module), per peer."""
    result = load(ipam)
    if node not in result.nodes:
        raise TunnelError(f"node {node!r} is not in the IPAM result (nodes: {', '.join(sorted(result.nodes)) or 'none'})")
    me = result.nodes[node]
    desired = Desired(node=node, node_ip=me.ip, network=None if me.network is None else str(me.network), ipip=me.ipip, vxlan=me.vxlan)
    desired.peers = _peers(result, node, 4)
    if me.address6 is not None:  # a node without an IPv6 address gets nothing IPv6 (no VTEP, no route)
        desired.node_ip6, desired.vxlan_v6 = me.ipv6, me.vxlan_v6
        desired.peers6 = _peers(result, node, 6)
    return desired


def _peers(result: IpamResult, node: str, version: int) -> list[Peer]:
    """Per other node, its VTEP (when this node has one too) and the routes of VXLAN pools of the family
    :meth:`IpamResult.expected_routes` expects on this node (programmed here, BY_TUNNELS)."""
    me = result.nodes[node]
    routes: dict[str, tuple[set, set]] = {}
    for route in result.expected_routes(node, bgp_nodes=(), version=version):
        if route.by == BY_TUNNELS:
            encap, direct = routes.setdefault(route.node, (set(), set()))
            (encap if route.encap == VXLAN else direct).add(route.dst)
    mine = me.vxlan_v6 if version == 6 else me.vxlan
    peers = []
    for other in sorted(result.nodes):
        peer = result.nodes[other]
        encap, direct = routes.get(other, ((), ()))
        theirs = peer.vxlan_v6 if version == 6 else peer.vxlan
        vtep = theirs if mine is not None and (version == 4 or peer.address6 is not None) else None  # neighbour + FDB entry per peer
        if other == node or (vtep is None and not direct):
            continue
        peers.append(
            Peer(
                node=other,
                ip=peer.ipv6 if version == 6 else peer.ip,
                vtep=vtep,
                mac=naming.vxlan_mac_v6(other) if version == 6 else naming.vxlan_mac(other),
                routes=tuple(str(dst) for dst in sorted(encap)),
                direct=tuple(str(dst) for dst in sorted(direct)),
            )
        )
    return peers


def _net_key(cidr: str):
    net = ipaddress.ip_network(cidr)
    return (int(net.network_address), net.prefixlen)


# ----------------------------------------------------------------------------------------------
# State, plan, apply
# ----------------------------------------------------------------------------------------------


@dataclass
class State:
    links: dict[str, dict]
    routes: list[dict]
    neighbours: list[dict]
    fdb: list[dict]
    ipip_loaded: bool
    routes6: list[dict] = field(default_factory=list)  # main table, IPv6 unicast
    fdb6: list[dict] = field(default_factory=list)  # vxlan-v6.calico's


@dataclass
class Plan:
    ip_lines: list[str] = field(default_factory=list)
    bridge_lines: list[str] = field(default_factory=list)
    load_ipip: bool = False
    changes: list[str] = field(default_factory=list)
    underlay: Optional[str] = None
    underlay_mtu: Optional[int] = None
    ipip_mtu: Optional[int] = None
    vxlan_mtu: Optional[int] = None
    vxlan_mac: Optional[str] = None
    underlay6: Optional[str] = None  # the interface holding the node's IPv6 address
    vxlan_v6_mtu: Optional[int] = None
    vxlan_v6_mac: Optional[str] = None
    creates: list[str] = field(default_factory=list)  # devices that exist only once applied
    kept: list[str] = field(default_factory=list)  # what a removal leaves alone because it is not ours
    removal: bool = False  # planned by plan_removal

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def result(self) -> dict:
        """What the modules return for this part."""
        if self.removal:
            return {"changes": self.changes, "kept": self.kept}
        return {
            "changes": self.changes,
            "underlay_interface": self.underlay,
            "underlay_mtu": self.underlay_mtu,
            "ipip_mtu": self.ipip_mtu,
            "vxlan_mtu": self.vxlan_mtu,
            "vxlan_mac": self.vxlan_mac,
            "vxlan_v6_mtu": self.vxlan_v6_mtu,
            "vxlan_v6_mac": self.vxlan_v6_mac,
        }

    def diff(self) -> Optional[dict]:
        """What differs and the batches that fix it (None when nothing changes)."""
        if not self.changed:
            return None
        if self.removal:
            return {
                "before_header": "tunnels (what goes)",
                "after_header": "tunnels (ip -batch to run)",
                "before": "".join(line + "\n" for line in self.changes),
                "after": "".join(line + "\n" for line in self.ip_lines),
            }
        return {
            "before_header": "tunnels (what differs)",
            "after_header": "tunnels (ip -batch / bridge -batch to run)",
            "before": "".join(line + "\n" for line in self.changes),
            "after": "".join(line + "\n" for line in self.ip_lines + self.bridge_lines),
        }


# IPv6 routes in the same `ip -json -batch` (iproute2 takes the family from the prefix; other
# tables' entries carry a "table" key and are dropped).
ROUTES6_COMMAND = "route show table all root ::/0 type unicast"


def read_state(runner: iproute.Runner, sys_module: str = "/sys/module", proc_sys: str = "/proc/sys") -> State:
    six = os.path.isdir(os.path.join(proc_sys, "net/ipv6"))
    commands = ["addr show", "route show table main", "neigh show"] + ([ROUTES6_COMMAND] if six else [])
    answers = iproute.ip_json_batch(runner, commands, details=True)
    links, routes, neighbours = answers[:3]
    links = {link["ifname"]: link for link in links}

    def fdb_of(dev: str) -> list:
        if dev not in links:
            return []
        out = iproute.check(runner, ["bridge", "-json", "fdb", "show", "dev", dev]).strip()
        return json.loads(out) if out else []

    return State(
        links=links,
        routes=routes,
        neighbours=neighbours,
        fdb=fdb_of(naming.VXLAN_DEVICE),
        ipip_loaded=os.path.isdir(os.path.join(sys_module, "ipip")) or naming.IPIP_DEVICE in links,
        routes6=[r for r in answers[3] if r.get("table", "main") == "main"] if six else [],
        fdb6=fdb_of(naming.VXLAN_V6_DEVICE),
    )


def ipip_missing_message(detail: str = "") -> str:
    return (
        f"this kernel ({platform.release()}) has no ipip driver: it is not built in and `modprobe ipip` "
        f"cannot load it{': ' + detail if detail else ''}. IPIP pools need it (device tunl0). Install the "
        "kernel's modules (Debian: the linux-image package of the running kernel, or build with "
        "CONFIG_NET_IPIP=m), point modprobe_dir at the directory holding lib/modules/<version> (User-mode "
        "Linux: /usr/lib/uml/modules/..), or use VXLAN for the pool (vxlan_mode) instead."
    )


def ipip_probe(runner: iproute.Runner, modprobe_dir: Optional[str]) -> tuple[bool, str]:
    """Can ``ipip`` be loaded? ``modprobe -n`` (dry run, changes nothing)."""
    argv = ["modprobe"] + (["-d", modprobe_dir] if modprobe_dir else []) + ["-n", "ipip"]
    try:
        result = runner(argv, None)
    except FileNotFoundError:
        return False, "modprobe is missing (package kmod)"
    return result.rc == 0, (result.stderr or result.stdout).strip()


def plan(
    desired: Desired,
    state: State,
    underlay_interface: Optional[str] = None,
    underlay_mtu: Optional[int] = None,
    vni: int = DEFAULT_VNI,
    port: int = DEFAULT_PORT,
) -> Plan:
    result = Plan()
    explicit = underlay_interface is not None
    if underlay_interface is None:
        underlay_interface = _interface_of(state.links, desired.node_ip)
        if underlay_interface is None and (desired.ipip or desired.vxlan or any(p.direct for p in desired.peers)):
            raise TunnelError(
                f"node {desired.node}: address {desired.node_ip} is on no interface of this host; set the underlay interface explicitly or fix calico_node_ip"
            )
    elif underlay_interface not in state.links:
        raise TunnelError(f"node {desired.node}: underlay interface {underlay_interface!r} does not exist")
    result.underlay = underlay_interface
    if underlay_mtu is None and underlay_interface is not None:
        underlay_mtu = state.links[underlay_interface].get("mtu")
    result.underlay_mtu = underlay_mtu
    _plan_ipip(desired, state, result)
    _plan_vxlan(desired, state, result, vni, port)
    _plan_direct(desired, state, result)
    _plan_v6(desired, state, result, underlay_interface if explicit else None, vni, port)
    return result


def _plan_v6(desired: Desired, state: State, result: Plan, underlay_interface: Optional[str], vni: int, port: int) -> None:
    """vxlan-v6.calico and the same-subnet routes of CrossSubnet IPv6 VXLAN pools (a node with an IPv6 address)."""
    dev = naming.VXLAN_V6_DEVICE
    link = state.links.get(dev)
    if link is not None and link.get("ifalias") != VXLAN_V6_ALIAS:
        raise TunnelError(f"interface {dev} exists but was not created by l3.calico (alias is not {VXLAN_V6_ALIAS})")
    wanted = desired.vxlan_v6 is not None or any(p.direct for p in desired.peers6)
    # The IPv6 underlay; also when nothing IPv6 is wanted, so that our routes left on it go.
    underlay = underlay_interface or (_interface_of(state.links, desired.node_ip6, "inet6") if desired.node_ip6 else None)
    result.underlay6 = underlay
    if wanted:
        if underlay is None:
            raise TunnelError(
                f"node {desired.node}: IPv6 address {desired.node_ip6} is on no interface of this host; set the underlay "
                "interface explicitly or fix calico_node_ipv6"
            )
    if desired.vxlan_v6 is None:
        if link is not None:
            result.ip_lines.append(f"link del dev {dev}")
            result.changes.append(f"{dev}: IPv6 VXLAN no longer used, device removed")
    else:
        mtu = state.links[result.underlay6].get("mtu") if result.underlay_mtu is None else result.underlay_mtu
        result.vxlan_v6_mtu = mtu - VXLAN_V6_OVERHEAD
        result.vxlan_v6_mac = naming.vxlan_mac_v6(desired.node)
        _plan_vxlan_device(6, desired.vxlan_v6, desired.node_ip6, result.underlay6, desired.peers6, state, result, vni, port)
    _plan_direct_routes(6, result.underlay6, desired.peers6, state.routes6, result)


def _interface_of(links: Mapping, address: str, family: str = "inet") -> Optional[str]:
    for name, link in sorted(links.items()):
        for addr in link.get("addr_info", []):
            if addr.get("family") == family and addr.get("local") == address:
                return name
    return None


def _inet(link: Optional[dict], family: str = "inet") -> list[str]:
    """The addresses of ``family`` on ``link`` (IPv6: not the link-local ones the kernel gives it)."""
    if not link:
        return []
    six = family == "inet6"
    return [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a.get("family") == family and not (six and a.get("scope") == "link")]


def _plan_ipip(desired: Desired, state: State, result: Plan) -> None:
    dev = naming.IPIP_DEVICE
    link = state.links.get(dev)
    if desired.ipip is None:
        if link is not None and link.get("ifalias") == IPIP_ALIAS:
            for addr in _inet(link):
                result.ip_lines.append(f"addr del {addr} dev {dev}")
            result.ip_lines.append(f'link set dev {dev} down alias ""')
            result.changes.append(f"{dev}: IPIP no longer used, address removed and device down")
        return
    mtu = result.underlay_mtu - IPIP_OVERHEAD
    result.ipip_mtu = mtu
    if link is None:
        result.load_ipip = not state.ipip_loaded
        result.creates.append(dev)
        result.changes.append(f"{dev}: created (modprobe ipip) with {desired.ipip}/32, mtu {mtu}")
        result.ip_lines += [f"link set dev {dev} alias {IPIP_ALIAS} mtu {mtu} up", f"addr add {desired.ipip}/32 dev {dev}"]
        return
    if link.get("mtu") != mtu or "UP" not in link.get("flags", []) or link.get("ifalias") != IPIP_ALIAS:
        result.changes.append(f"{dev}: mtu {link.get('mtu')} -> {mtu}, up")
        result.ip_lines.append(f"link set dev {dev} alias {IPIP_ALIAS} mtu {mtu} up")
    _plan_addresses(dev, link, desired.ipip, result)


def _plan_addresses(dev: str, link: Optional[dict], address: str, result: Plan, version: int = 4) -> None:
    host = 128 if version == 6 else 32
    current = _inet(link, "inet6" if version == 6 else "inet")
    # The new address first: removing the last IPv4 address of a device flushes every route through it
    # (a tunnel address that moves, e.g. in a pool migration, would take the routes to the peers along).
    if f"{address}/{host}" not in current:
        result.ip_lines.append(f"addr add {address}/{host} dev {dev}")
        result.changes.append(f"{dev}: address {address}/{host} added")
    for addr in current:
        if addr != f"{address}/{host}":
            result.ip_lines.append(f"addr del {addr} dev {dev}")
            result.changes.append(f"{dev}: address {addr} removed")


def _plan_vxlan(desired: Desired, state: State, result: Plan, vni: int, port: int) -> None:
    dev = naming.VXLAN_DEVICE
    link = state.links.get(dev)
    if link is not None and link.get("ifalias") != VXLAN_ALIAS:
        raise TunnelError(f"interface {dev} exists but was not created by l3.calico (alias is not {VXLAN_ALIAS})")
    if desired.vxlan is None:
        if link is not None:
            result.ip_lines.append(f"link del dev {dev}")
            result.changes.append(f"{dev}: VXLAN no longer used, device removed")
        return
    result.vxlan_mtu, result.vxlan_mac = result.underlay_mtu - VXLAN_OVERHEAD, naming.vxlan_mac(desired.node)
    _plan_vxlan_device(4, desired.vxlan, desired.node_ip, result.underlay, desired.peers, state, result, vni, port)


def _plan_vxlan_device(version: int, address: str, local: str, underlay: str, peers: list[Peer], state: State, result: Plan, vni: int, port: int) -> None:
    """One VXLAN device as Felix makes it (``vxlan.calico``, IPv6: ``vxlan-v6.calico``), its address, and per
    remote VTEP its neighbour, FDB entry and routes. ``result.vxlan[_v6]_mtu`` / ``_mac`` are set by the caller."""
    six = version == 6
    dev, alias = (naming.VXLAN_V6_DEVICE, VXLAN_V6_ALIAS) if six else (naming.VXLAN_DEVICE, VXLAN_ALIAS)
    mtu, mac = (result.vxlan_v6_mtu, result.vxlan_v6_mac) if six else (result.vxlan_mtu, result.vxlan_mac)
    link = state.links.get(dev)
    info = ((link or {}).get("linkinfo") or {}).get("info_data") or {}
    wanted = {"id": vni, "local": local, "link": underlay, "port": port, "learning": False}
    current = dict(info, local=info.get("local6" if six else "local"))
    fresh = link is None or any(current.get(k) != v for k, v in wanted.items())
    if fresh:
        if link is not None:
            result.ip_lines.append(f"link del dev {dev}")
            diffs = ", ".join(f"{k} {current.get(k)} -> {v}" for k, v in wanted.items() if current.get(k) != v)
            result.changes.append(f"{dev}: recreated ({diffs})")
        else:
            result.changes.append(f"{dev}: created (vni {vni}, port {port}, local {local}, dev {underlay})")
            result.creates.append(dev)
        result.ip_lines += [
            f"link add {dev} mtu {mtu} address {mac} type vxlan id {vni} local {local} dev {underlay} dstport {port} nolearning",
            f"link set dev {dev} alias {alias} up",
        ]
        link = None
    elif link.get("mtu") != mtu or link.get("address") != mac or "UP" not in link.get("flags", []):
        result.ip_lines.append(f"link set dev {dev} address {mac} mtu {mtu} up")
        result.changes.append(f"{dev}: mtu {link.get('mtu')} -> {mtu}, mac {link.get('address')} -> {mac}, up")
    _plan_addresses(dev, link, address, result, version)

    # Per remote VTEP: neighbour, FDB, routes. After a (re)creation the device is empty.
    state_routes, state_fdb = (state.routes6, state.fdb6) if six else (state.routes, state.fdb)
    neigh = {} if link is None else {n["dst"]: n.get("lladdr") for n in state.neighbours if n.get("dev") == dev and "PERMANENT" in n.get("state", [])}
    fdb = (
        {}
        if link is None
        else {f["mac"]: f.get("dst") for f in state_fdb if f.get("dst") and "self" in f.get("flags", []) and f.get("mac") != "00:00:00:00:00:00"}
    )
    routes = (
        {}
        if link is None
        else {_dst(r): (r.get("gateway"), str(r.get("protocol", "boot"))) for r in state_routes if r.get("dev") == dev and "onlink" in r.get("flags", [])}
    )
    stray_routes = (
        []
        if link is None
        else [
            _dst(r)
            for r in state_routes
            # IPv6: the kernel's own routes (fe80::/64, the address's prefix route) are not strays
            if r.get("dev") == dev and "onlink" not in r.get("flags", []) and r.get("scope") != "link" and not (six and str(r.get("protocol")) == "kernel")
        ]
    )
    want_neigh = {p.vtep: p.mac for p in peers if p.vtep is not None}
    want_fdb = {p.mac: p.ip for p in peers if p.vtep is not None}
    want_routes = {cidr: p.vtep for p in peers for cidr in p.routes}
    route_lines, neigh_lines = [], []
    for dst in sorted(set(routes) - set(want_routes), key=_net_key) + sorted(stray_routes, key=_net_key):
        route_lines.append(f"route del {dst} dev {dev}")
        result.changes.append(f"route {dst} dev {dev} removed")
    for ip in sorted(set(neigh) - set(want_neigh)):
        neigh_lines.append(f"neigh del {ip} dev {dev}")
        result.changes.append(f"neighbour {ip} dev {dev} removed")
    for ip, mac_ in sorted(want_neigh.items()):
        if neigh.get(ip) != mac_:
            neigh_lines.append(f"neigh replace {ip} lladdr {mac_} dev {dev} nud permanent")
            result.changes.append(f"neighbour {ip} lladdr {mac_} dev {dev}")
    for dst, vtep in sorted(want_routes.items(), key=lambda item: _net_key(item[0])):
        if routes.get(dst) != (vtep, ROUTE_PROTO):
            route_lines.append(f"route replace {dst} via {vtep} dev {dev} onlink proto {ROUTE_PROTO}")
            result.changes.append(f"route {dst} via {vtep} dev {dev} onlink")
    # Routes are removed before neighbours go and added after they exist.
    result.ip_lines = [line for line in route_lines if line.startswith("route del")] + result.ip_lines
    result.ip_lines += neigh_lines + [line for line in route_lines if not line.startswith("route del")]
    for mac_, ip in sorted(fdb.items()):
        if mac_ not in want_fdb:
            result.bridge_lines.append(f"fdb del {mac_} dev {dev} dst {ip} self")
            result.changes.append(f"fdb {mac_} dev {dev} removed")
    for mac_, ip in sorted(want_fdb.items()):
        if fdb.get(mac_) != ip:
            result.bridge_lines.append(f"fdb replace {mac_} dev {dev} dst {ip} self permanent")
            result.changes.append(f"fdb {mac_} dst {ip} dev {dev}")


def _plan_direct(desired: Desired, state: State, result: Plan) -> None:
    """Same-subnet routes of CrossSubnet VXLAN pools: ``<block> via <node> dev <underlay> proto 80``.

    BIRD leaves VXLAN pools alone, so these are programmed here like the encapsulated ones; the
    routes with protocol 80 on the underlay are ours, and those no longer wanted are removed.
    """
    _plan_direct_routes(4, result.underlay, desired.peers, state.routes, result)


def _plan_direct_routes(version: int, dev: Optional[str], peers: list[Peer], state_routes: list[dict], result: Plan) -> None:
    if dev is None:
        return
    current = {_dst(r): r.get("gateway") for r in state_routes if r.get("dev") == dev and str(r.get("protocol")) == ROUTE_PROTO}
    wanted = {cidr: p.ip for p in peers for cidr in p.direct}
    for dst in sorted(set(current) - set(wanted), key=_net_key):
        result.ip_lines.append(f"route del {dst} dev {dev} proto {ROUTE_PROTO}")
        result.changes.append(f"route {dst} dev {dev} removed")
    for dst, gateway in sorted(wanted.items(), key=lambda item: _net_key(item[0])):
        if current.get(dst) != gateway:
            result.ip_lines.append(f"route replace {dst} via {gateway} dev {dev} proto {ROUTE_PROTO}")
            result.changes.append(f"route {dst} via {gateway} dev {dev} (same subnet, not encapsulated)")


def _dst(route: dict) -> str:
    dst = route.get("dst", "default")
    if dst == "default" or "/" in dst:
        return dst
    return f"{dst}/128" if ":" in dst else f"{dst}/32"


def plan_removal(state: State, pools: Mapping = (), ipip_address: Optional[str] = None, pools6: Mapping = ()) -> Plan:
    """Take away what :func:`plan` set up, for a node that leaves the cluster (nothing else).

    - ``vxlan.calico``: deleted when it carries our alias (its neighbours, FDB entries and routes go
      with it); a foreign device of that name is left alone and said so.
    - ``tunl0`` is the kernel's fallback device of the ``ipip`` module: never deleted, the module is
      not unloaded. Its tunnel address goes: ``ipip_address`` (the node's IPIP tunnel address of the
      IPAM, if given) and, when it carries our alias, the /32s inside ``pools`` (any /32 when
      neither is known: all :func:`plan` ever sets); other addresses stay. With our alias it is
      also set down and the alias cleared (we brought it up).
    - Routes with our protocol (80) inside ``pools`` on other devices (the direct routes of
      CrossSubnet VXLAN pools) are deleted.
    - ``vxlan-v6.calico`` likewise (alias ``l3.calico:vxlan-v6``), and the IPv6 routes with protocol 80
      inside ``pools6`` (the IPAM result's ``pools_ipv6``) on other devices.
    """
    result = Plan(removal=True)
    nets = []
    for name, pool in (pools or {}).items():
        try:
            nets.append(ipaddress.IPv4Network(str(pool.get("cidr"))))
        except ValueError:
            raise TunnelError(f"pool {name}: cidr {pool.get('cidr')!r} is not an IPv4 network") from None
    nets6 = []
    for name, pool in (pools6 or {}).items():
        try:
            nets6.append(ipaddress.IPv6Network(str(pool.get("cidr"))))
        except ValueError:
            raise TunnelError(f"pools_ipv6 {name}: cidr {pool.get('cidr')!r} is not an IPv6 network") from None

    def in_pools(cidr: str) -> bool:
        return any(ipaddress.ip_network(cidr, strict=False).subnet_of(net) for net in nets)

    dev = naming.IPIP_DEVICE
    link = state.links.get(dev)
    if link is not None:
        ours = link.get("ifalias") == IPIP_ALIAS

        def tunnel_address(addr: str) -> bool:
            if addr.partition("/")[0] == ipip_address:
                return True
            if not ours or not addr.endswith("/32"):
                return False
            return in_pools(addr) if nets or ipip_address else True  # unknown pools: what plan() sets

        addresses = [a for a in _inet(link) if tunnel_address(a)]
        for addr in addresses:
            result.ip_lines.append(f"addr del {addr} dev {dev}")
            result.changes.append(f"{dev}: address {addr} removed")
        if ours:
            foreign = [a for a in _inet(link) if a not in addresses]
            if foreign:  # someone else's addresses live on it: it stays up for them
                result.ip_lines.append(f'link set dev {dev} alias ""')
                result.changes.append(f"{dev}: alias {IPIP_ALIAS} cleared, kept up for {', '.join(foreign)}")
            else:
                result.ip_lines.append(f'link set dev {dev} down alias ""')
                result.changes.append(f"{dev}: set down, alias {IPIP_ALIAS} cleared (the device is the kernel's, kept)")
    dev = naming.VXLAN_DEVICE
    link = state.links.get(dev)
    if link is not None:
        if link.get("ifalias") == VXLAN_ALIAS:
            result.ip_lines.append(f"link del dev {dev}")
            result.changes.append(f"{dev}: removed (with its neighbours, FDB entries and routes)")
        else:
            result.kept.append(f"{dev}: not created by l3.calico (alias is not {VXLAN_ALIAS}), left alone")
    for route in state.routes:
        if str(route.get("protocol")) != ROUTE_PROTO or route.get("dev") in (naming.VXLAN_DEVICE, None):
            continue
        dst = _dst(route)
        if dst != "default" and in_pools(dst):
            result.ip_lines.append(f"route del {dst} dev {route['dev']} proto {ROUTE_PROTO}")
            result.changes.append(f"route {dst} dev {route['dev']} removed")
    dev = naming.VXLAN_V6_DEVICE
    link = state.links.get(dev)
    if link is not None:
        if link.get("ifalias") == VXLAN_V6_ALIAS:
            result.ip_lines.append(f"link del dev {dev}")
            result.changes.append(f"{dev}: removed (with its neighbours, FDB entries and routes)")
        else:
            result.kept.append(f"{dev}: not created by l3.calico (alias is not {VXLAN_V6_ALIAS}), left alone")
    for route in state.routes6:
        if str(route.get("protocol")) != ROUTE_PROTO or route.get("dev") in (dev, None):
            continue
        dst = _dst(route)
        if dst != "default" and any(ipaddress.ip_network(dst, strict=False).subnet_of(net) for net in nets6):
            result.ip_lines.append(f"route del {dst} dev {route['dev']} proto {ROUTE_PROTO}")
            result.changes.append(f"route {dst} dev {route['dev']} removed")
    return result


def remove(
    pools: Mapping = (),
    ipip_address: Optional[str] = None,
    check_mode: bool = False,
    runner: iproute.Runner = iproute.subprocess_runner,
    pools6: Mapping = (),
) -> Plan:
    """Read, plan the removal, apply it unless check mode."""
    the_plan = plan_removal(read_state(runner), pools, ipip_address, pools6)
    if not check_mode and the_plan.changed:
        apply(runner, the_plan)
    return the_plan


def apply(runner: iproute.Runner, the_plan: Plan, modprobe_dir: Optional[str] = None) -> None:
    if the_plan.load_ipip:
        argv = ["modprobe"] + (["-d", modprobe_dir] if modprobe_dir else []) + ["ipip"]
        result = runner(argv, None)
        if result.rc != 0:
            raise TunnelError(ipip_missing_message((result.stderr or result.stdout).strip()))
    iproute.batch(runner, the_plan.ip_lines)
    if the_plan.bridge_lines:
        iproute.check(runner, ["bridge", "-batch", "-"], "".join(line + "\n" for line in the_plan.bridge_lines))


# The options of this part, as modules l3.calico.tunnels and l3.calico.node take them (documented once,
# by doc fragment l3.calico.tunnels): the IPAM result's node, nodes and pools, and the settings of :class:`Options`.
ARGUMENT_SPEC: dict[str, dict[str, Any]] = dict(
    node=dict(type="str"),
    nodes=dict(type="dict"),
    pools=dict(type="dict"),
    pools_ipv6=dict(type="dict"),
    underlay_interface=dict(type="str"),
    underlay_mtu=dict(type="int"),
    vxlan_vni=dict(type="int", default=DEFAULT_VNI),
    vxlan_port=dict(type="int", default=DEFAULT_PORT),
    modprobe_dir=dict(type="path"),
)


@dataclass(frozen=True)
class Options:
    """The part's settings (:data:`ARGUMENT_SPEC` but the IPAM result)."""

    underlay_interface: Optional[str] = None
    underlay_mtu: Optional[int] = None
    vni: int = DEFAULT_VNI
    port: int = DEFAULT_PORT
    modprobe_dir: Optional[str] = None

    @classmethod
    def from_params(cls, params: Mapping) -> Options:
        return cls(
            underlay_interface=params["underlay_interface"],
            underlay_mtu=params["underlay_mtu"],
            vni=params["vxlan_vni"],
            port=params["vxlan_port"],
            modprobe_dir=params["modprobe_dir"],
        )


def ipip_address(nodes: Mapping, node: Optional[str]) -> Optional[str]:
    """The IPIP tunnel address the IPAM result gives ``node`` (None when it has none or is not there).
    Read from the raw result, not its model: a node leaving the cluster may have only part of an
    entry left. What is there is still checked: a value that is not an IPv4 address is refused
    (:class:`IpamResultError` naming the field)."""
    if node is None:
        return None
    address = ((nodes.get(node) or {}).get("tunnels") or {}).get("ipip")
    if address is not None:
        parse_address(address, f"calico_ipam_result.nodes.{node}.tunnels.ipip")
    return address


def prepare(
    node: str,
    ipam,
    options: Options = Options(),
    runner: iproute.Runner = iproute.subprocess_runner,
    sys_module: str = "/sys/module",
) -> Plan:
    """Validate, read and plan (changes nothing); raises TunnelError on bad input or no ipip driver.

    ``ipam``: the IPAM result (``{"nodes": ..., "pools": ...}``) or its model (:func:`load`).
    """
    desired = desired_tunnels(node, ipam)
    state = read_state(runner, sys_module)
    the_plan = plan(desired, state, options.underlay_interface, options.underlay_mtu, options.vni, options.port)
    if the_plan.load_ipip:
        ok, detail = ipip_probe(runner, options.modprobe_dir)
        if not ok:
            raise TunnelError(ipip_missing_message(detail))
    return the_plan


def converge(
    node: str,
    ipam,
    options: Optional[Options] = None,
    *,
    check_mode: bool = False,
    runner: iproute.Runner = iproute.subprocess_runner,
    sys_module: str = "/sys/module",
    **settings,
) -> Plan:
    """:func:`prepare`, then :func:`apply` unless check mode; ``settings`` are fields of :class:`Options`."""
    options = Options(**settings) if options is None else dataclasses.replace(options, **settings)
    the_plan = prepare(node, ipam, options, runner, sys_module)
    if not check_mode and the_plan.changed:
        apply(runner, the_plan, options.modprobe_dir)
    return the_plan
