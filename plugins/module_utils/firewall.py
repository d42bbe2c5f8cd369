# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The node's own firewall rules: natOutgoing and workload anti-spoofing, nftables or iptables-legacy.

- natOutgoing (Felix's ``cali-nat-outgoing``): masquerade traffic whose source is in a pool with
  ``nat_outgoing`` and whose destination is outside ALL pools. Nothing else is NATed.
- Anti-spoofing (Calico's reverse-path check): a packet arriving from a workload veth whose source
  is not that workload's address is dropped, so a workload cannot impersonate another.
- Host protection: TCP to the host's own BGP port (179, BIRD) from a workload veth is dropped, so a
  workload cannot open a BGP session with the host or probe it (``host_tcp_ports``; empty allows it).
- Node protection (the forward path): TCP to the same ports of ANY node's address (``node_addresses``:
  the IPAM result's node and tunnel addresses, ``IpamResult.node_addresses``) from a workload veth is dropped before routing
  (prerouting), and workload traffic to a node address is never masqueraded. Otherwise a workload's
  BGP session towards another node, masqueraded to its host's address by natOutgoing, replaces the
  host's own session there and injects the workload's routes.

- IPv6 (while IPv6 is in use: an IPv6 pool is configured or a workload has an IPv6 address): the same
  parts for IPv6, in a table of its own, ``ip6 l3calico`` (nftables), or the same chains in ip6tables-legacy.
  natOutgoing of IPv6 pools (``pools_ipv6`` with ``nat_outgoing``): source in an IPv6 nat pool, destination
  outside all IPv6 pools and not a node's IPv6 address: masquerade (the nat chain exists only while such a
  pool does). Anti-spoofing: from a workload veth only the workload's own IPv6 address, a link-local source
  (``fe80::/10``: neighbour discovery, router solicitation) and the unspecified address ``::`` (duplicate
  address detection) pass; every other IPv6 source is dropped - a workload without IPv6 sends only those.
  This is what Felix's IPv6 check passes: Felix drops workload packets failing a strict reverse-path check
  (``-m rpfilter --invert --validmark`` in raw ``cali-PREROUTING``, IPv6 only; rules/static.go), and the
  kernel's rpfilter match passes ``::`` (not routable) and link-local sources (the veth's own fe80::/64 route).
  Host and node protection (TCP to ``host_tcp_ports``) for the nodes' IPv6 addresses too.
  With iptables-legacy and no ip6tables-legacy-restore, IPv6 in use is refused before any change.

Everything lives in objects of the project's own: nftables tables ``ip l3calico`` and ``ip6 l3calico``
(replaced atomically in one transaction), or iptables-legacy (and ip6tables-legacy) chains
``L3CALICO-ANTISPOOF`` (mangle), ``L3CALICO-NAT-OUTGOING`` (nat) and ``L3CALICO-HOST-PROTECT`` (filter)
with one jump each from the built-in chains (one ``*-restore --noflush`` per family). Nothing else is
read-modified.

Backend ``auto`` picks nftables when the kernel has the ``ip`` family (probed by adding and
deleting an empty table in one transaction, which leaves nothing behind), else iptables-legacy —
as Calico's ``FELIX_IPTABLESBACKEND=auto`` does. The User-mode Linux lab kernel has no nftables
``ip`` family, so it gets iptables-legacy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from ansible_collections.l3.calico.plugins.module_utils import iproute, naming
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.fileutil import atomic_write, read_record

TABLE = "l3calico"
ANTISPOOF_CHAIN = "L3CALICO-ANTISPOOF"
NAT_CHAIN = "L3CALICO-NAT-OUTGOING"
ANTISPOOF_TABLE = "mangle"
HOST_CHAIN = "L3CALICO-HOST-PROTECT"
DEFAULT_HOST_TCP_PORTS = (179,)  # BIRD's BGP port: the one place it is written
BACKENDS = ("auto", "nftables", "iptables")
DEFAULT_STATE_FILE = "/run/l3-calico/firewall.json"

# The options of this part, as modules l3.calico.firewall and l3.calico.node take them
# (documented once, by doc fragment l3.calico.firewall).
ARGUMENT_SPEC: dict[str, dict[str, Any]] = dict(
    firewall_backend=dict(type="str", choices=list(BACKENDS), default="auto"),
    veth_prefix=dict(type="str", default=naming.VETH_PREFIX),
    firewall_state_file=dict(type="path", default=DEFAULT_STATE_FILE),
    host_tcp_ports=dict(type="list", elements="int", default=list(DEFAULT_HOST_TCP_PORTS)),
)


class FirewallError(L3CalicoError, ValueError):
    """Bad input or no usable backend (raised before any change)."""


@dataclass(frozen=True)
class Options:
    """The part's options (:data:`ARGUMENT_SPEC`)."""

    backend: str = "auto"
    veth_prefix: str = naming.VETH_PREFIX
    state_file: str = DEFAULT_STATE_FILE
    host_tcp_ports: Sequence[int] = DEFAULT_HOST_TCP_PORTS

    @classmethod
    def from_params(cls, params: Mapping) -> Options:
        return cls(
            backend=params["firewall_backend"],
            veth_prefix=params["veth_prefix"],
            state_file=params["firewall_state_file"],
            host_tcp_ports=tuple(params["host_tcp_ports"]),
        )


@dataclass
class Rules:
    nat_pools: list[str]
    all_pools: list[str]
    sources: list[tuple[str, str]]  # (host veth, workload address)
    veth_prefix: str
    host_tcp_ports: list[int] = field(default_factory=list)  # host ports workloads may not reach
    node_addresses: list[str] = field(default_factory=list)  # every node's addresses (forward path, no NAT)
    nat_pools6: list[str] = field(default_factory=list)  # IPv6 pools with nat_outgoing (enabled)
    all_pools6: list[str] = field(default_factory=list)
    node_addresses6: list[str] = field(default_factory=list)
    sources6: list[tuple[str, str]] = field(default_factory=list)  # (host veth, workload IPv6 address)
    ipv6: bool = False  # IPv6 in use (an IPv6 pool or a workload's IPv6 address): the IPv6 objects exist


def desired_rules(
    pools: Mapping,
    workloads: Sequence[Mapping],
    veth_prefix: str = naming.VETH_PREFIX,
    host_tcp_ports: Sequence[int] = DEFAULT_HOST_TCP_PORTS,
    node_addresses: Sequence[str] = (),
    pools6: Optional[Mapping] = None,
    node_addresses6: Sequence[str] = (),
) -> Rules:
    if not naming.is_veth_prefix(veth_prefix):
        raise FirewallError(f"veth_prefix {veth_prefix!r} must be 1-4 letters/digits")
    ports = []
    for index, port in enumerate(host_tcp_ports or ()):
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise FirewallError(f"host_tcp_ports[{index}]: {port!r} is not a TCP port (1..65535)")
        ports.append(port)
    all_pools, nat_pools = [], []
    for name, pool in sorted(pools.items()):
        try:
            cidr = str(ipaddress.IPv4Network(str(pool.get("cidr"))))
        except ValueError:
            raise FirewallError(f"pool {name}: cidr {pool.get('cidr')!r} is not an IPv4 network") from None
        all_pools.append(cidr)
        if pool.get("nat_outgoing") and not pool.get("disabled"):
            nat_pools.append(cidr)
    sources, sources6 = [], []
    for index, w in enumerate(workloads):
        wid = w.get("id") or (naming.workload_id(w.get("namespace") or "default", w["name"]) if w.get("name") else None)
        if not wid:
            raise FirewallError(f"workloads[{index}]: needs 'id' or 'name'")
        if w.get("ipv6") is not None:
            try:
                ip6 = ipaddress.IPv6Interface(str(w.get("ipv6"))).ip
            except ValueError:
                raise FirewallError(f"workloads[{index}] ({wid}): ipv6 {w.get('ipv6')!r} is not an IPv6 address") from None
            sources6.append((naming.veth_name(wid, veth_prefix), ip6))
        if w.get("ip") is None and w.get("ipv6") is not None:
            continue  # an IPv6-only workload (dual stack): no IPv4 source is its own, every one is dropped
        try:
            ip = str(ipaddress.IPv4Interface(str(w.get("ip"))).ip)
        except ValueError:
            raise FirewallError(f"workloads[{index}] ({wid}): ip {w.get('ip')!r} is not an IPv4 address") from None
        sources.append((naming.veth_name(wid, veth_prefix), ip))
    nodes, nodes6 = set(), set()
    for index, address in enumerate(node_addresses or ()):
        try:
            parsed = ipaddress.ip_address(str(address).partition("/")[0] if isinstance(address, str) else address)
        except ValueError:
            raise FirewallError(f"node_addresses[{index}]: {address!r} is not an IPv4 or IPv6 address") from None
        if parsed.version == 4:
            nodes.add(str(parsed))
        else:
            nodes6.add(parsed)  # the module's node_addresses may hold both families
    all6, nat6 = [], []
    for name, pool in sorted((pools6 or {}).items()):
        try:
            net = ipaddress.IPv6Network(str(pool.get("cidr")))
        except ValueError:
            raise FirewallError(f"pools_ipv6 {name}: cidr {pool.get('cidr')!r} is not an IPv6 network") from None
        all6.append(net)
        if pool.get("nat_outgoing") and not pool.get("disabled"):
            nat6.append(net)
    for index, address in enumerate(node_addresses6 or ()):
        try:
            nodes6.add(ipaddress.IPv6Address(str(address).partition("/")[0]))
        except ValueError:
            raise FirewallError(f"node_addresses6[{index}]: {address!r} is not an IPv6 address") from None
    return Rules(
        sorted(nat_pools, key=_key),
        sorted(all_pools, key=_key),
        sorted(sources),
        veth_prefix,
        sorted(set(ports)),
        sorted(nodes, key=ipaddress.IPv4Address),
        [str(n) for n in sorted(nat6)],
        [str(n) for n in sorted(all6)],
        [str(a) for a in sorted(nodes6)],
        [(veth, str(ip6)) for veth, ip6 in sorted(sources6)],
        bool(all6 or sources6),
    )


def _key(cidr: str):
    net = ipaddress.IPv4Network(cidr)
    return (int(net.network_address), net.prefixlen)


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------


def render_nft(rules: Rules) -> str:
    def elements(items):
        return f"    elements = {{ {', '.join(items)} }}\n" if items else ""

    return (
        f"table ip {TABLE} {{}}\n"
        f"delete table ip {TABLE}\n"
        f"table ip {TABLE} {{\n"
        '  comment "l3.calico: natOutgoing and workload anti-spoofing"\n'
        "  set nat-pools {\n    type ipv4_addr; flags interval;\n" + elements(rules.nat_pools) + "  }\n"
        "  set all-pools {\n    type ipv4_addr; flags interval;\n" + elements(rules.all_pools) + "  }\n"
        "  set workload-sources {\n    type ifname . ipv4_addr;\n" + elements(f'"{veth}" . {ip}' for veth, ip in rules.sources) + "  }\n"
        "  set node-addresses {\n    type ipv4_addr;\n" + elements(rules.node_addresses) + "  }\n"
        "  chain antispoof {\n"
        "    type filter hook prerouting priority raw; policy accept;\n"
        + (
            f'    iifname "{rules.veth_prefix}*" ip daddr @node-addresses tcp dport {{ {", ".join(str(p) for p in rules.host_tcp_ports)} }} counter drop\n'
            if rules.host_tcp_ports
            else ""
        )
        + f'    iifname "{rules.veth_prefix}*" iifname . ip saddr != @workload-sources counter drop\n'
        "  }\n"
        "  chain nat-outgoing {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        "    ip saddr @nat-pools ip daddr != @all-pools ip daddr != @node-addresses counter masquerade fully-random\n"
        "  }\n"
        "  chain host-protect {\n"
        "    type filter hook input priority filter; policy accept;\n"
        + (
            f'    iifname "{rules.veth_prefix}*" tcp dport {{ {", ".join(str(p) for p in rules.host_tcp_ports)} }} counter drop\n'
            if rules.host_tcp_ports
            else ""
        )
        + "  }\n"
        "}\n"
    )


# The IPv6 sources a workload veth may send from besides the workload's own address: what Felix's strict
# reverse-path check passes (the kernel's rpfilter match: "::" is not routable, so it passes, for duplicate
# address detection; a link-local source has the veth's own fe80::/64 route, for neighbour discovery).
IPV6_ALWAYS_SOURCES = ("::/128", "fe80::/10")


def render_nft6(rules: Rules) -> str:
    """The ``ip6 l3calico`` table (IPv6 anti-spoofing, host and node protection, natOutgoing of IPv6 pools),
    replaced in one transaction; "" while IPv6 is not in use (then the table is not wanted)."""
    if not rules.ipv6:
        return ""

    def elements(items):
        return f"    elements = {{ {', '.join(items)} }}\n" if items else ""

    ports = ", ".join(str(p) for p in rules.host_tcp_ports)
    always = ", ".join(IPV6_ALWAYS_SOURCES).replace("/128", "")
    return (
        f"table ip6 {TABLE} {{}}\n"
        f"delete table ip6 {TABLE}\n"
        f"table ip6 {TABLE} {{\n"
        '  comment "l3.calico: IPv6 workload anti-spoofing and natOutgoing"\n'
        "  set nat-pools {\n    type ipv6_addr; flags interval;\n" + elements(rules.nat_pools6) + "  }\n"
        "  set all-pools {\n    type ipv6_addr; flags interval;\n" + elements(rules.all_pools6) + "  }\n"
        "  set workload-sources {\n    type ifname . ipv6_addr;\n" + elements(f'"{veth}" . {ip}' for veth, ip in rules.sources6) + "  }\n"
        "  set node-addresses {\n    type ipv6_addr;\n" + elements(rules.node_addresses6) + "  }\n"
        "  chain antispoof {\n"
        "    type filter hook prerouting priority raw; policy accept;\n"
        + (f'    iifname "{rules.veth_prefix}*" ip6 daddr @node-addresses tcp dport {{ {ports} }} counter drop\n' if rules.host_tcp_ports else "")
        + f'    iifname "{rules.veth_prefix}*" ip6 saddr != {{ {always} }} iifname . ip6 saddr != @workload-sources counter drop\n'
        "  }\n"
        + (
            "  chain nat-outgoing {\n"
            "    type nat hook postrouting priority srcnat; policy accept;\n"
            "    ip6 saddr @nat-pools ip6 daddr != @all-pools ip6 daddr != @node-addresses counter masquerade fully-random\n"
            "  }\n"
            if rules.nat_pools6
            else ""
        )
        + "  chain host-protect {\n"
        "    type filter hook input priority filter; policy accept;\n"
        + (f'    iifname "{rules.veth_prefix}*" tcp dport {{ {ports} }} counter drop\n' if rules.host_tcp_ports else "")
        + "  }\n"
        "}\n"
    )


def iptables_rules(rules: Rules) -> dict[str, list[str]]:
    """Our chains' rules per table, exactly as ``iptables-save`` prints them."""
    # first: no workload reaches a node's BGP port (before the RETURN of its own address)
    antispoof = [
        f"-A {ANTISPOOF_CHAIN} -d {address}/32 -i {rules.veth_prefix}+ -p tcp -m tcp --dport {port} -j DROP"
        for address in rules.node_addresses
        for port in rules.host_tcp_ports
    ]
    antispoof += [f"-A {ANTISPOOF_CHAIN} -s {ip}/32 -i {veth} -j RETURN" for veth, ip in rules.sources]
    antispoof.append(f"-A {ANTISPOOF_CHAIN} -i {rules.veth_prefix}+ -j DROP")
    nat = [f"-A {NAT_CHAIN} -d {cidr} -j RETURN" for cidr in rules.all_pools]
    nat += [f"-A {NAT_CHAIN} -d {address}/32 -j RETURN" for address in rules.node_addresses]
    nat += [f"-A {NAT_CHAIN} -s {cidr} -j MASQUERADE --random-fully" for cidr in rules.nat_pools]
    host = [f"-A {HOST_CHAIN} -i {rules.veth_prefix}+ -p tcp -m tcp --dport {port} -j DROP" for port in rules.host_tcp_ports]
    return {ANTISPOOF_TABLE: antispoof, "nat": nat, "filter": host}


def ip6tables_rules(rules: Rules) -> dict[str, Optional[list[str]]]:
    """The ip6tables-legacy twin of :func:`iptables_rules`, exactly as ``ip6tables-save`` prints them; a
    table's None: its chain is not wanted (no IPv6 in use; nat: no IPv6 pool with natOutgoing)."""
    if not rules.ipv6:
        return {table: None for table in JUMPS}
    prefix = f"{rules.veth_prefix}+"
    antispoof = [
        f"-A {ANTISPOOF_CHAIN} -d {address}/128 -i {prefix} -p tcp -m tcp --dport {port} -j DROP"
        for address in rules.node_addresses6
        for port in rules.host_tcp_ports
    ]
    antispoof += [f"-A {ANTISPOOF_CHAIN} -s {ip}/128 -i {veth} -j RETURN" for veth, ip in rules.sources6]
    antispoof += [f"-A {ANTISPOOF_CHAIN} -s {net} -i {prefix} -j RETURN" for net in IPV6_ALWAYS_SOURCES]
    antispoof.append(f"-A {ANTISPOOF_CHAIN} -i {prefix} -j DROP")
    nat = None
    if rules.nat_pools6:
        nat = [f"-A {NAT_CHAIN} -d {cidr} -j RETURN" for cidr in rules.all_pools6]
        nat += [f"-A {NAT_CHAIN} -d {address}/128 -j RETURN" for address in rules.node_addresses6]
        nat += [f"-A {NAT_CHAIN} -s {cidr} -j MASQUERADE --random-fully" for cidr in rules.nat_pools6]
    host = [f"-A {HOST_CHAIN} -i {prefix} -p tcp -m tcp --dport {port} -j DROP" for port in rules.host_tcp_ports]
    return {ANTISPOOF_TABLE: antispoof, "nat": nat, "filter": host}


JUMPS = {
    ANTISPOOF_TABLE: ("PREROUTING", ANTISPOOF_CHAIN),
    "nat": ("POSTROUTING", NAT_CHAIN),
    "filter": ("INPUT", HOST_CHAIN),
}


def render_iptables_restore(rules: Rules, present_jumps: Mapping[str, bool]) -> str:
    return _render_restore(iptables_rules(rules), present_jumps)


def _render_restore(want: Mapping[str, Optional[list[str]]], present_jumps: Mapping[str, bool]) -> str:
    """Fill our chains (a table's None: left out here), each with its jump when missing."""
    out = []
    for table, lines in want.items():
        if lines is None:
            continue
        builtin, chain = JUMPS[table]
        out.append(f"*{table}")
        out.append(f":{chain} - [0:0]")  # declaring a chain with --noflush empties it
        out += lines
        if not present_jumps.get(table):
            out.append(f"-I {builtin} 1 -j {chain}")
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def _iptables_present(ipt: Mapping[str, Optional[list[str]]]) -> dict[str, tuple[int, bool]]:
    """Per table: how many jumps to our chain its built-in chain has, and whether the chain exists."""
    return {table: ((lines or []).count(f"-A {JUMPS[table][0]} -j {JUMPS[table][1]}"), lines is not None) for table, lines in ipt.items()}


def render_iptables_removal(present: Mapping[str, tuple[int, bool]]) -> str:
    """Remove our chains: ``present[table] = (jumps to it, chain present)``; every jump goes first
    (a chain still referenced cannot be deleted: the whole table's commit would be refused)."""
    out = []
    for table, (jumps, chain_present) in present.items():
        if not (jumps or chain_present):
            continue
        builtin, chain = JUMPS[table]
        out.append(f"*{table}")
        out += [f"-D {builtin} -j {chain}"] * int(jumps)
        if chain_present:
            out += [f"-F {chain}", f"-X {chain}"]
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


# ----------------------------------------------------------------------------------------------
# Reading, detecting, planning, applying
# ----------------------------------------------------------------------------------------------


def nft_usable(runner: iproute.Runner) -> tuple[bool, str]:
    if shutil.which("nft") is None:
        return False, "nft is not installed"
    # `nft -c`: the kernel checks the transaction, then aborts it -- nothing is committed, so the
    # probe is safe in check mode, and a kernel without the ip family still refuses it.
    result = runner(["nft", "-c", "-f", "-"], f"add table ip {TABLE}_probe\n")
    return result.rc == 0, (result.stderr or result.stdout).strip()


def iptables_usable() -> tuple[bool, str]:
    missing = [b for b in ("iptables-legacy-save", "iptables-legacy-restore") if shutil.which(b) is None]
    return (not missing), ("missing " + ", ".join(missing) if missing else "")


def ip6tables_usable() -> tuple[bool, str]:
    missing = [b for b in ("ip6tables-legacy-save", "ip6tables-legacy-restore") if shutil.which(b) is None]
    return (not missing), ("missing " + ", ".join(missing) if missing else "")


def require_ip6tables(rules: Rules, backend: str) -> None:
    """IPv6 in use with the iptables-legacy backend needs ip6tables-legacy: refused (before any change) without it."""
    if backend != "iptables" or not rules.ipv6:
        return
    ok, why = ip6tables_usable()
    if not ok:
        what = f"IPv6 pools {', '.join(rules.all_pools6)}" if rules.all_pools6 else "workloads with IPv6 addresses"
        raise FirewallError(
            f"firewall backend iptables-legacy: {what} need ip6tables-legacy (IPv6 anti-spoofing"
            + (f", natOutgoing of {', '.join(rules.nat_pools6)}" if rules.nat_pools6 else "")
            + f"), and it is not usable here: {why} (install the iptables package, or use firewall backend nftables)"
        )


def detect_backend(runner: iproute.Runner, wanted: str = "auto") -> str:
    if wanted not in BACKENDS:
        raise FirewallError(f"firewall backend {wanted!r} is not one of {', '.join(BACKENDS)}")
    if wanted in ("auto", "nftables"):
        ok, why = nft_usable(runner)
        if ok:
            return "nftables"
        if wanted == "nftables":
            raise FirewallError(f"firewall backend nftables is not usable here: {why}")
    ok, why = iptables_usable()
    if ok:
        return "iptables"
    raise FirewallError(f"no firewall backend: nftables unusable and iptables-legacy {why} (install nftables or iptables)")


def read_nft(runner: iproute.Runner, family: str = "ip") -> Optional[str]:
    """``nft -s list table`` (stateless: no counters) or None if the table (or nft) is absent;
    ``family`` ``ip6``: the IPv6 table."""
    if shutil.which("nft") is None:
        return None
    result = runner(["nft", "-s", "list", "table", family, TABLE], None)
    return result.stdout if result.rc == 0 else None


def _legacy_tables6() -> list[str]:
    """ip6tables-legacy tables that exist in this namespace."""
    return _legacy_tables("/proc/net/ip6_tables_names")


def _legacy_tables(names_file: str = "/proc/net/ip_tables_names") -> list[str]:
    """iptables-legacy tables that exist in this namespace (reading one would create it)."""
    try:
        with open(names_file, encoding="ascii") as handle:
            return handle.read().split()
    except OSError:
        return []


def read_iptables(runner: iproute.Runner) -> dict[str, Optional[list[str]]]:
    """Per table: the ``-A`` lines of our chain and jump (None when the chain does not exist).

    Only tables that already exist are read: ``iptables-legacy-save -t nat`` on a host that never
    used iptables-legacy would load the legacy nat table as a side effect.
    """
    if shutil.which("iptables-legacy-save") is None:
        return {table: None for table in JUMPS}
    return _read_legacy(runner, "iptables-legacy-save", _legacy_tables())


def read_ip6tables(runner: iproute.Runner) -> dict[str, Optional[list[str]]]:
    """:func:`read_iptables` for ip6tables-legacy (tables listed in /proc/net/ip6_tables_names only)."""
    if shutil.which("ip6tables-legacy-save") is None:
        return {table: None for table in JUMPS}
    return _read_legacy(runner, "ip6tables-legacy-save", _legacy_tables6())


def _read_legacy(runner: iproute.Runner, save: str, existing: Sequence[str]) -> dict[str, Optional[list[str]]]:
    current: dict[str, Optional[list[str]]] = {table: None for table in JUMPS}
    for table, (builtin, chain) in JUMPS.items():
        if table not in existing:
            continue
        result = runner([save, "-t", table], None)
        if result.rc != 0:
            current[table] = None
            continue
        lines = result.stdout.splitlines()
        if not any(line.startswith(f":{chain} ") for line in lines):
            current[table] = None
            continue
        current[table] = [line for line in lines if line.startswith(f"-A {chain} ") or line == f"-A {builtin} -j {chain}"]
    return current


@dataclass
class Plan:
    backend: str
    nft_script: str = ""
    iptables_script: str = ""
    ip6tables_script: str = ""
    changes: list[str] = field(default_factory=list)
    rendered: str = ""  # the desired ruleset (for diff and the state file)
    record: Optional[dict] = None
    recorded: dict = field(default_factory=dict)  # the state file as read when planning
    removal: bool = False  # planned by plan_removal

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def result(self) -> dict:
        """What the modules return for this part."""
        return {"backend": self.backend, "changes": self.changes}

    def diff(self) -> Optional[dict]:
        """The rules applied, or the objects removed (None when nothing changes)."""
        if not self.changed:
            return None
        if self.removal:
            return {
                "before": "".join(line + "\n" for line in self.changes),
                "after": "",
                "before_header": "firewall objects of l3.calico",
                "after_header": "(removed)",
            }
        return {"before": "", "after": self.rendered, "after_header": f"{self.backend} rules"}


def plan(
    rules: Rules,
    backend: str,
    nft_listing: Optional[str],
    ipt: Mapping[str, Optional[list[str]]],
    recorded: dict,
    nft6_listing: Optional[str] = None,
    ipt6: Optional[Mapping[str, Optional[list[str]]]] = None,
) -> Plan:
    """What to change; ``ipt6`` is :func:`read_ip6tables` (None: no ip6tables-legacy object present)."""
    nft_text = render_nft(rules)
    want_ipt = iptables_rules(rules)
    ipt6 = ipt6 if ipt6 is not None else {table: None for table in JUMPS}
    if backend == "nftables":
        result = Plan(backend, rendered=nft_text)
        digest = hashlib.sha256(nft_text.encode()).hexdigest()
        if nft_listing is None:
            result.changes.append(f"nftables table ip {TABLE} created")
            result.nft_script = nft_text
        elif recorded.get("nft_sha256") != digest or recorded.get("nft_listing") != nft_listing:
            result.changes.append(f"nftables table ip {TABLE} replaced (rules or set elements differ)")
            result.nft_script = nft_text
        present = _iptables_present(ipt)
        removal = render_iptables_removal(present)
        if removal:
            result.iptables_script = removal
            result.changes.append("iptables-legacy chains of l3.calico removed (backend is nftables)")
        removal6 = render_iptables_removal(_iptables_present(ipt6))
        if removal6:
            result.ip6tables_script = removal6
            result.changes.append("ip6tables-legacy chains of l3.calico removed (backend is nftables)")
        result.record = {"backend": backend, "nft_sha256": digest}
        _plan_nft6(rules, nft6_listing, recorded, result)
        return result
    result = Plan(backend, rendered="\n".join(line for lines in want_ipt.values() for line in lines) + "\n")
    jumps, differ = {}, False
    for table, lines in want_ipt.items():
        jumps[table], write = _compare_chain("iptables-legacy", table, lines, ipt.get(table), result)
        differ = differ or write
    if differ:
        result.iptables_script = render_iptables_restore(rules, jumps)
    if nft_listing is not None:
        result.nft_script = f"delete table ip {TABLE}\n"
        result.changes.append(f"nftables table ip {TABLE} removed (backend is iptables)")
    if nft6_listing is not None:
        result.nft_script += f"delete table ip6 {TABLE}\n"
        result.changes.append(f"nftables table ip6 {TABLE} removed (backend is iptables)")
    _plan_ip6tables(rules, ipt6, result)
    result.record = {"backend": backend}
    return result


def _compare_chain(tool: str, table: str, lines: list, current: Optional[list], result: Plan) -> tuple[bool, bool]:
    """One table's chain read back (``current``, None: absent) against the rules wanted: whether the jump to it
    is in place, and whether it must be written (created or rewritten, said in ``result.changes``)."""
    builtin, chain = JUMPS[table]
    jump_line = f"-A {builtin} -j {chain}"
    jump = current is not None and jump_line in current
    chain_lines = [line for line in (current or []) if line != jump_line]
    if current is None or chain_lines != lines or not jump:
        result.changes.append(f"{tool} {table} chain {chain} " + ("created" if current is None else "rewritten"))
        return jump, True
    return jump, False


def _plan_ip6tables(rules: Rules, ipt6: Mapping[str, Optional[list[str]]], result: Plan) -> None:
    """The ip6tables-legacy chains, as the IPv4 ones (rewritten when a rule or the jump differs), in one
    ``ip6tables-legacy-restore`` with the removal of chains no longer wanted (no IPv6 in use, no IPv6 nat pool)."""
    want = ip6tables_rules(rules)
    present = _iptables_present(ipt6)
    jumps, differ, gone = {}, False, {}
    for table, lines in want.items():
        chain = JUMPS[table][1]
        current = ipt6.get(table)
        if lines is None:
            if any(present[table]):
                gone[table] = present[table]
                why = "no IPv6 pool with natOutgoing" if rules.ipv6 else "no IPv6 in use"
                result.changes.append(f"ip6tables-legacy {table} chain {chain} removed ({why})")
            continue
        jumps[table], write = _compare_chain("ip6tables-legacy", table, lines, current, result)
        differ = differ or write
    script = _render_restore(want, jumps) if differ else ""
    result.ip6tables_script = script + render_iptables_removal(gone)
    if rules.ipv6:
        result.rendered += "\n".join(line for lines in want.values() for line in lines or ()) + "\n"


def _plan_nft6(rules: Rules, listing: Optional[str], recorded: dict, result: Plan) -> None:
    """The ``ip6 l3calico`` table: created, replaced when the rules or the kernel's listing differ from what
    was recorded, or deleted when IPv6 is no longer in use (no table, no record: IPv4-only stays as it was)."""
    text = render_nft6(rules)
    if not text:
        if listing is not None:
            result.nft_script += f"delete table ip6 {TABLE}\n"
            result.changes.append(f"nftables table ip6 {TABLE} removed (no IPv6 in use)")
        return
    digest = hashlib.sha256(text.encode()).hexdigest()
    if listing is None:
        result.changes.append(f"nftables table ip6 {TABLE} created")
        result.nft_script += text
    elif recorded.get("nft6_sha256") != digest or recorded.get("nft6_listing") != listing:
        result.changes.append(f"nftables table ip6 {TABLE} replaced (rules or set elements differ)")
        result.nft_script += text
    result.rendered += text
    result.record["nft6_sha256"] = digest


def apply(runner: iproute.Runner, the_plan: Plan, state_file: str) -> None:
    if the_plan.backend == "nftables":
        _restore(runner, the_plan)
        if the_plan.nft_script:
            iproute.check(runner, ["nft", "-f", "-"], the_plan.nft_script)
    else:
        if the_plan.nft_script:
            iproute.check(runner, ["nft", "-f", "-"], the_plan.nft_script)
        _restore(runner, the_plan)


def _restore(runner: iproute.Runner, the_plan: Plan) -> None:
    """The plan's iptables-legacy and ip6tables-legacy scripts, one ``*-restore --noflush`` each."""
    if the_plan.iptables_script:
        iproute.check(runner, ["iptables-legacy-restore", "--noflush"], the_plan.iptables_script)
    if the_plan.ip6tables_script:
        iproute.check(runner, ["ip6tables-legacy-restore", "--noflush"], the_plan.ip6tables_script)


def prepare(
    pools: Mapping,
    workloads: Sequence[Mapping],
    options: Options = Options(),
    node_addresses: Sequence[str] = (),
    runner: iproute.Runner = iproute.subprocess_runner,
    pools6: Optional[Mapping] = None,
    node_addresses6: Sequence[str] = (),
) -> Plan:
    """Validate input, pick the backend, read and plan (changes nothing); raises FirewallError."""
    rules = desired_rules(pools, workloads, options.veth_prefix, options.host_tcp_ports, node_addresses, pools6, node_addresses6)
    chosen = detect_backend(runner, options.backend)
    require_ip6tables(rules, chosen)
    recorded = read_record(options.state_file)
    the_plan = plan(rules, chosen, read_nft(runner), read_iptables(runner), recorded, read_nft(runner, "ip6"), read_ip6tables(runner))
    the_plan.recorded = recorded
    return the_plan


def commit(runner: iproute.Runner, the_plan: Plan, state_file: str) -> None:
    """Apply a prepared plan and record what was applied."""
    if the_plan.changed:
        apply(runner, the_plan, state_file)
    record = dict(the_plan.record or {})
    if the_plan.backend == "nftables":
        record["nft_listing"] = read_nft(runner)
        if "nft6_sha256" in record:
            record["nft6_listing"] = read_nft(runner, "ip6")
    if record != the_plan.recorded:
        atomic_write(state_file, json.dumps(record, indent=1, sort_keys=True) + "\n", make_parents=True)


def converge(
    pools: Mapping,
    workloads: Sequence[Mapping],
    options: Optional[Options] = None,
    *,
    node_addresses: Sequence[str] = (),
    check_mode: bool = False,
    runner: iproute.Runner = iproute.subprocess_runner,
    pools6: Optional[Mapping] = None,
    node_addresses6: Sequence[str] = (),
    **settings,
) -> Plan:
    """:func:`prepare`, then :func:`commit` unless check mode; ``settings`` are fields of :class:`Options`."""
    options = Options(**settings) if options is None else dataclasses.replace(options, **settings)
    the_plan = prepare(pools, workloads, options, node_addresses, runner, pools6, node_addresses6)
    if not check_mode:
        commit(runner, the_plan, options.state_file)
    return the_plan


def plan_removal(
    nft_listing: Optional[str],
    ipt: Mapping[str, Optional[list[str]]],
    state_file_exists: bool,
    nft6_listing: Optional[str] = None,
    ipt6: Optional[Mapping[str, Optional[list[str]]]] = None,
) -> Plan:
    """Remove every object of the project's, of both backends, and nothing else.

    The nftables table ``ip l3calico`` (one ``delete table``), the iptables-legacy chains
    ``L3CALICO-*`` and the one jump to each from a built-in chain (one ``iptables-legacy-restore
    --noflush``), the same of IPv6 (table ``ip6 l3calico``, ip6tables-legacy chains), and the module's
    state file. Other tables, chains and rules are not touched.
    """
    present = _iptables_present(ipt)
    present6 = _iptables_present(ipt6 if ipt6 is not None else {table: None for table in JUMPS})
    legacy = any(chain for _jumps, chain in (*present.values(), *present6.values()))
    backend = "nftables" if nft_listing is not None or nft6_listing is not None else "iptables" if legacy else "none"
    result = Plan(backend, removal=True)
    if nft_listing is not None:
        result.nft_script = f"delete table ip {TABLE}\n"
        result.changes.append(f"nftables table ip {TABLE} removed")
    if nft6_listing is not None:
        result.nft_script += f"delete table ip6 {TABLE}\n"
        result.changes.append(f"nftables table ip6 {TABLE} removed")
    result.iptables_script = render_iptables_removal(present)
    for table, (jump, chain_present) in present.items():
        builtin, chain = JUMPS[table]
        if chain_present:
            result.changes.append(f"iptables-legacy {table} chain {chain} removed" + (f" (and its jump from {builtin})" if jump else ""))
    result.ip6tables_script = render_iptables_removal(present6)
    for table, (jump, chain_present) in present6.items():
        builtin, chain = JUMPS[table]
        if chain_present:
            result.changes.append(f"ip6tables-legacy {table} chain {chain} removed" + (f" (and its jump from {builtin})" if jump else ""))
    if state_file_exists:
        result.changes.append("state file removed")
    return result


def remove(
    state_file: str = DEFAULT_STATE_FILE,
    check_mode: bool = False,
    runner: iproute.Runner = iproute.subprocess_runner,
) -> Plan:
    """Read, plan the removal, apply it unless check mode."""
    the_plan = plan_removal(read_nft(runner), read_iptables(runner), os.path.exists(state_file), read_nft(runner, "ip6"), read_ip6tables(runner))
    if not check_mode:
        commit_removal(runner, the_plan, state_file)
    return the_plan


def commit_removal(runner: iproute.Runner, the_plan: Plan, state_file: str) -> None:
    if the_plan.nft_script:
        iproute.check(runner, ["nft", "-f", "-"], the_plan.nft_script)
    _restore(runner, the_plan)
    try:
        os.unlink(state_file)
    except FileNotFoundError:
        pass
