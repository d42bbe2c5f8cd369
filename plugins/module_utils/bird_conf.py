# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""bird.conf and its passwords file, printed from one node's BGP data (:func:`bgp.node_config`).

Plain Python, run by the module ``l3.calico.bird`` on the host itself: in a full mesh bird.conf holds
a session per other node, so printing it on the controller cost every host O(fleet) of the
controller's time (issue 15). Nothing is decided here - every decision is ``bgp.node_config``'s -
only printed, in the layout BIRD 2 reads (``bird -p`` checks it before it replaces the old file).

Dual stack: one BIRD 2 daemon does what Calico's two (bird for IPv4, bird6 for IPv6) do. The IPv4
part is printed first, the same bytes as on an IPv4-only node; a node with IPv6 BGP (``c['ipv6']``)
gets the IPv6 part after it (:func:`render_ipv6`): its own direct, static and kernel protocols on
the IPv6 table, its own filters, and a ``protocol bgp`` with an ``ipv6`` channel per IPv6 peer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from ansible_collections.l3.calico.plugins.module_utils.bgp import PASSWORD_SETTINGS, PEER_KEYS, node_config
from ansible_collections.l3.calico.plugins.module_utils.naming import VXLAN_V6_DEVICE

HEADER = "Ansible managed"


@dataclass(frozen=True)
class Layout:
    """What bird.conf holds beside the node's BGP data: the role's timers, paths and kernel settings
    (``calico_bgp_*``; defaults: roles/calico_bgp/defaults/main.yml)."""

    header: str = HEADER
    secrets_file: str = "/etc/bird/bird-secrets.conf"
    log_file: str = ""
    device_scan_time: int = 10
    direct_exclude: tuple = ("cali*", "kube-ipvs*", "tunl0", "vxlan.calico")
    kernel_persist: bool = True
    kernel_scan_time: int = 2
    kernel_metric: int = 0
    connect_delay_time: int = 2
    connect_retry_time: int = 5
    error_wait_time: tuple = (5, 30)
    hold_time: int = 240


def prefix_set(cidrs: Iterable[str], more_specific: bool) -> str:
    """A BIRD prefix set: ``[ 10.0.0.0/8+, ... ]`` (``+``: the prefix and every more specific one)."""
    suffix = "+" if more_specific else ""
    return "[ " + ", ".join(f"{cidr}{suffix}" for cidr in cidrs) + " ]"


@dataclass(frozen=True)
class _Family:
    """How bird.conf names and words one address family: the IPv4 part's names have no suffix, the IPv6
    part's a ``6`` (Calico's bird6 files); everything else of the two parts is printed by the same code."""

    suffix: str  # in protocol and filter names
    words: str  # before "peers", "pools", "blocks" in the comments
    channel: str
    host_len: int
    default_route: str


_IPV4 = _Family("", "", "ipv4", 32, "0.0.0.0/0")
_IPV6 = _Family("6", "IPv6 ", "ipv6", 128, "::/0")


def _kernel_export_head(fam: _Family, vxlan_pools: list, vxlan_words: str) -> list:
    """The start of the filter of the routes to the kernel: own blackholes, then BGP routes only, none of a VXLAN pool."""
    out = [
        f"# To the kernel: own {fam.words}blackholes and the routes learned by BGP inside the {fam.words}pools.",
        f"filter calico_kernel{fam.suffix}_export {{",
        f'  if proto = "calico_blocks{fam.suffix}" then accept;',
        "  if source != RTS_BGP then reject;",
    ]
    if vxlan_pools:
        out += [f"  # VXLAN pools: the data plane programs their routes{vxlan_words}.", f"  if net ~ {prefix_set(vxlan_pools, True)} then reject;"]
    return out


def _kernel_export_tail(fam: _Family, pools: str) -> list:
    return [f"  if net ~ {pools} then accept;", f"  if net = {fam.default_route} then accept;", "  reject;", "}", ""]


def _kernel_protocol(fam: _Family, layout: Layout, head: list) -> list:
    return [
        *head,
        "  learn;",
        *(["  persist;"] if layout.kernel_persist else []),
        f"  scan time {layout.kernel_scan_time};",
        "  graceful restart;",
        "  merge paths on;",
        f"  metric {layout.kernel_metric};",
        f"  {fam.channel} {{",
        f"    import filter calico_kernel{fam.suffix}_import;",
        f"    export filter calico_kernel{fam.suffix}_export;",
        "  };",
        "}",
        "",
    ]


def _bgp_part(fam: _Family, f: Mapping[str, Any], c: Mapping[str, Any], layout: Layout) -> list:
    """The family's filters to and from the peers, its BGP template and its ``protocol bgp`` per peer
    (``f``: the family's BGP data - ``c`` itself for IPv4, ``c['ipv6']`` for IPv6)."""
    pools = prefix_set(f["pools"], True)
    words, sfx, host = fam.words, fam.suffix, fam.host_len
    out = [
        f"# To the {words}peers: own {words}blocks as aggregates, never the /{host}s inside them that this node originates;",
        f"# other routes inside exportable {words}pools (borrowed /{host}s hosted here, reflected routes); nothing else.",
        f"filter calico_export{sfx}_to_peers {{",
    ]
    if f["no_export_pools"]:
        out.append(f"  if net ~ {prefix_set(f['no_export_pools'], True)} then reject;")
    if f["own_blocks"]:
        out += [
            f"  if net ~ {prefix_set(f['own_blocks'], False)} then accept;",
            f"  if net ~ {prefix_set(f['own_blocks'], True)} && source != RTS_BGP then reject;",
        ]
    if f["export_pools"]:
        out.append(f"  if net ~ {prefix_set(f['export_pools'], True)} then accept;")
    out += [
        "  reject;",
        "}",
        "",
        f"# From the {words}peers: routes inside the {words}pools only.",
        f"filter calico_import{sfx}_from_peers {{",
        f"  if net ~ {pools} then accept;",
        *([f"  if net = {fam.default_route} then accept;"] if c["import_default_route"] else []),
        "  reject;",
        "}",
        "",
        f"# From {words}peers allowed to send the default route.",
        f"filter calico_import{sfx}_with_default {{",
        f"  if net ~ {pools} then accept;",
        f"  if net = {fam.default_route} then accept;",
        "  reject;",
        "}",
        "",
        f"template bgp calico_peer{sfx} {{",
        f"  local {f['address']} as {c['as']};",
        *_session_lines(c, layout),
        f"  {fam.channel} {{",
        f"    import filter calico_import{sfx}_from_peers;",
        f"    export filter calico_export{sfx}_to_peers;",
        "    gateway recursive;",
        "    add paths on;",
        "  };",
        "}",
    ]
    for peer in f["peers"]:
        out += _peer(peer, c["route_reflector_cluster_id"], fam.channel)
    return out


def render(c: Mapping[str, Any], layout: Layout = Layout()) -> str:
    """bird.conf of the node whose BGP data (``node_config``) is ``c``."""
    out = [
        f"# {layout.header}",
        f"# BIRD 2 configuration of node {c['node']} ({c['address']}, subnet {c['network']}, AS {c['as']}).",
    ]
    if c["secrets"]:
        out += ["# MD5 passwords: constants defined in a file readable by root and BIRD only.", f'include "{layout.secrets_file}";']
    out.append("")
    out.append(f'log "{layout.log_file}" all;' if layout.log_file else "log syslog all;")
    pools = prefix_set(c["pools"], True)
    interfaces = "".join(f'-"{name}", ' for name in layout.direct_exclude)
    out += [
        f"router id {c['router_id']};",
        "timeformat protocol iso long;",
        "",
        "protocol device {",
        f"  scan time {layout.device_scan_time};",
        "}",
        "",
        "# Connected underlay routes: BGP next hops in the node's subnet resolve through them.",
        "protocol direct {",
        "  ipv4;",
        f'  interface {interfaces}"*";',
        "}",
        "",
        "# Own blocks: a blackhole each, so unallocated addresses are dropped here, and the aggregate to announce.",
        "protocol static calico_blocks {",
        "  ipv4;",
        *(f"  route {block} blackhole;" for block in c["blackholes"]),
        "}",
        "",
        f"# From the kernel: workload routes (<address>/32 dev {c['workload_interfaces']}) inside the pools,",
        "# which carry the borrowed /32s to the peers; other alien routes (the underlay default route)",
        "# only resolve next hops and are never exported.",
        "filter calico_kernel_import {",
        f"  if net ~ {pools} then {{",
        f'    if net.len = 32 && ifname ~ "{c["workload_interfaces"]}" then accept;',
        "    reject;",
        "  }",
        "  accept;",
        "}",
        "",
    ]
    out += _kernel_export_head(_IPV4, c["vxlan_pools"], "")
    tunnel = [f'      ifname = "{c["tunnel_device"]}";', "      onlink = true;", "      gw = bgp_next_hop;"]
    if c["ipip_always_pools"]:
        out += [
            f"  # IPIP Always: <block> via <remote node> dev {c['tunnel_device']} onlink (gw last).",
            f"  if net ~ {prefix_set(c['ipip_always_pools'], True)} then {{",
            *(line[2:] for line in tunnel),
            "    accept;",
            "  }",
        ]
    if c["ipip_cross_subnet_pools"]:
        out += [
            f"  # IPIP CrossSubnet: through the tunnel only when the next hop is outside {c['network']}.",
            f"  if net ~ {prefix_set(c['ipip_cross_subnet_pools'], True)} then {{",
            f"    if !(bgp_next_hop ~ {c['network']}) then {{",
            *tunnel,
            "    }",
            "    accept;",
            "  }",
        ]
    out += _kernel_export_tail(_IPV4, pools)
    head = ["# BIRD names it kernel1 (the BGP role's `birdc reload out kernel1` after the tunnels changed).", "protocol kernel {"]
    out += _kernel_protocol(_IPV4, layout, head)
    out += _bgp_part(_IPV4, c, c, layout)
    if c.get("ipv6"):
        out += render_ipv6(c, layout)
    return "\n".join(out) + "\n"


def render_ipv6(c: Mapping[str, Any], layout: Layout) -> list:
    """The IPv6 part of bird.conf (lines, a blank one first): what Calico's bird6.cfg, bird6_aggr.cfg and
    bird6_ipam.cfg hold, in the IPv4 part's words - protocols and filters named with a 6, the BGP
    template ``calico_peer6`` with an ``ipv6`` channel (no IPIP: an IPv6 pool is VXLAN, whose routes the
    data plane programs, or unencapsulated)."""
    six = c["ipv6"]
    pools = prefix_set(six["pools"], True)
    exclude = tuple(layout.direct_exclude) + tuple(name for name in (VXLAN_V6_DEVICE,) if name not in layout.direct_exclude)
    interfaces = "".join(f'-"{name}", ' for name in exclude)
    network = f", subnet {six['network']}" if six["network"] else ""
    out = [
        "",
        f"# ---------------- IPv6 ({six['address']}{network}): Calico's bird6, in the same daemon ----------------",
        "# Sessions between the nodes' IPv6 addresses, each with an ipv6 channel; the router id above serves both.",
        "",
        "# Connected IPv6 underlay routes: BGP next hops in the node's IPv6 subnet resolve through them.",
        "protocol direct direct6 {",
        "  ipv6;",
        f'  interface {interfaces}"*";',
        "}",
        "",
        "# Own IPv6 blocks: a blackhole each (not /128 blocks), and the aggregate to announce.",
        "protocol static calico_blocks6 {",
        "  ipv6;",
        *(f"  route {block} blackhole;" for block in six["blackholes"]),
        "}",
        "",
        f"# From the kernel: workload routes (<address>/128 dev {c['workload_interfaces']}) inside the IPv6 pools",
        "# (the borrowed /128s to the peers); other alien routes only resolve next hops.",
        "filter calico_kernel6_import {",
        f"  if net ~ {pools} then {{",
        f'    if net.len = 128 && ifname ~ "{c["workload_interfaces"]}" then accept;',
        "    reject;",
        "  }",
        "  accept;",
        "}",
        "",
    ]
    out += _kernel_export_head(_IPV6, six["vxlan_pools"], f" ({VXLAN_V6_DEVICE})")
    out += _kernel_export_tail(_IPV6, pools)
    out += _kernel_protocol(_IPV6, layout, ["protocol kernel kernel6 {"])
    return out + _bgp_part(_IPV6, six, c, layout)


def _session_lines(c: Mapping[str, Any], layout: Layout) -> list:
    """The timers, graceful restart and debug lines of a BGP template (either family)."""
    out = [
        f"  connect delay time {layout.connect_delay_time};",
        f"  connect retry time {layout.connect_retry_time};",
        f"  error wait time {', '.join(str(t) for t in layout.error_wait_time)};",
        f"  hold time {layout.hold_time};",
    ]
    if c["graceful_restart"]:
        out += [
            "  # A session that drops without a NOTIFICATION: the peers keep this node's routes as stale that long.",
            "  graceful restart on;",
            f"  graceful restart time {c['graceful_restart_time']};",
        ]
    else:
        out.append("  graceful restart off;")
    return out + ["  debug { states };"]


def _peer(peer: Mapping[str, Any], cluster_id: Optional[str], channel: str = "ipv4") -> list:
    """One ``protocol bgp`` of bird.conf (a blank line before it)."""
    node = f" {peer['node']}" if "node" in peer else ""
    port = f" port {peer['port']}" if peer["port"] != 179 else ""
    six = channel == "ipv6"
    out = [
        "",
        f"# {peer['kind']} {'IPv6 ' if six else ''}peer{node}, {'iBGP' if peer['ibgp'] else 'eBGP'}",
        f"protocol bgp {peer['name']} from calico_peer{'6' if six else ''} {{",
        f"  neighbor {peer['address']}{port} as {peer['as']};",
    ]
    if peer["passive"]:
        out.append("  passive on;")
    if peer["rr_client"]:
        out += ["  rr client;", f"  rr cluster id {cluster_id};"]
    if peer["ttl_security"]:
        out.append("  ttl security on;")
    if peer["multihop"]:
        out.append(f"  multihop {peer['multihop']};")
    if peer["password_symbol"]:
        out.append(f"  password {peer['password_symbol']};")
    if peer["keep_next_hop"] or peer["import_default_route"]:
        out.append(f"  {channel} {{")
        if peer["keep_next_hop"]:
            out.append("    next hop keep;")
        if peer["import_default_route"]:
            out.append(f"    import filter calico_import{'6' if six else ''}_with_default;")
        out.append("  };")
    out.append("}")
    return out


def render_secrets(c: Mapping[str, Any], settings: Mapping[str, Any], config_file: str, header: str = HEADER) -> str:
    """The passwords file bird.conf includes: ``define <constant> = "<password>";`` for each constant of
    ``c['secrets']``, its password read from the BGP ``settings`` where the source names it."""
    out = [f"# {header}", f"# TCP-MD5 passwords of the BGP sessions of {c['node']}: included by {config_file}."]
    for symbol, source in c["secrets"].items():
        value = settings.get(PASSWORD_SETTINGS[source["var"]])
        password = value if source["index"] is None else value[source["index"]]["password"]
        out.append(f'define {symbol} = "{password}";')
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- the module's option ``bgp``

_RAW = {"type": "raw"}
PEER_SPEC = {key: dict(_RAW, no_log=True) if key == "password" else dict(_RAW) for key in sorted(PEER_KEYS)}
SETTINGS_SPEC = {
    **{key: dict(_RAW) for key in ("as", "default_as", "node_as", "router_id", "node_mesh", "route_reflectors")},
    **{key: dict(_RAW) for key in ("import_default_route", "graceful_restart", "graceful_restart_time")},
    "mesh_password": dict(_RAW, no_log=True),
    "peers": {"type": "list", "elements": "dict", "options": PEER_SPEC},
    "node_peers": {"type": "list", "elements": "dict", "options": PEER_SPEC},
}
LAYOUT_SPEC = {
    "header": {"type": "str", "default": HEADER},
    "log_file": {"type": "str", "default": ""},
    "device_scan_time": {"type": "int", "default": 10},
    "direct_exclude": {"type": "list", "elements": "str", "default": list(Layout.direct_exclude)},
    "kernel_persist": {"type": "bool", "default": True},
    "kernel_scan_time": {"type": "int", "default": 2},
    "kernel_metric": {"type": "int", "default": 0},
    "connect_delay_time": {"type": "int", "default": 2},
    "connect_retry_time": {"type": "int", "default": 5},
    "error_wait_time": {"type": "list", "elements": "int", "default": list(Layout.error_wait_time)},
    "hold_time": {"type": "int", "default": 240},
}
# The passwords are declared no_log, so Ansible hides them from the invocation it logs and returns.
ARGUMENT_SPEC = {
    "bgp": {
        "type": "dict",
        "options": {
            "node": {"type": "str", "required": True},
            "nodes": {"type": "dict"},  # left out of a task: the action plugin fills it (plugin_utils/fleet_action.py)
            "pools": {"type": "dict", "required": True},
            "pools_ipv6": {"type": "dict", "default": {}},
            "settings": {"type": "dict", "default": {}, "options": SETTINGS_SPEC},
            "layout": {"type": "dict", "default": {}, "options": LAYOUT_SPEC},
        },
    },
}


def _given(options: Optional[Mapping]) -> dict:
    """The options a user gave: Ansible fills every suboption it was not given with None."""
    return {key: value for key, value in (options or {}).items() if value is not None}


def from_bgp(bgp: Mapping[str, Any], config_file: str, secrets_file: str) -> tuple:
    """bird.conf and the passwords file (None: no password, the file goes) of node ``bgp['node']``:
    its BGP data computed here from the fleet's routing view (``nodes``, ``pools``) and the ``settings``
    (:func:`bgp.node_config`, which refuses bad input naming host, field and value), then printed."""
    settings = _given(bgp["settings"])
    for key in ("peers", "node_peers"):
        if key in settings:
            settings[key] = [_given(peer) for peer in settings[key]]
    c = node_config({"nodes": bgp["nodes"], "pools": bgp["pools"], "pools_ipv6": bgp.get("pools_ipv6") or {}}, bgp["node"], settings)
    layout = Layout(secrets_file=secrets_file, **{key: value for key, value in (bgp.get("layout") or {}).items() if value is not None})
    secrets = render_secrets(c, settings, config_file, layout.header) if c["secrets"] else None
    return render(c, layout), secrets
