# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Calico's per-workload data plane on one host: read, plan, apply.

For every workload: a network namespace; a veth pair whose host side ``cali…`` has MAC
ee:ee:ee:ee:ee:ee, is up and has no address, and whose other side is ``eth0`` in the namespace;
inside, ``lo`` up, ``eth0`` with ``IP/32``, ``169.254.1.1 dev eth0 scope link`` and
``default via 169.254.1.1 dev eth0`` and ``net.ipv4.ip_forward=0`` (the workload is no router,
unless allowed); on the host ``IP dev cali… scope link`` and the per-veth sysctls Calico sets
(proxy_arp, proxy_delay, forwarding, route_localnet, rp_filter, and IPv6 accept_ra=0 so a workload's
router advertisements cannot give the host a route).

IPv6 (a workload with ``ipv6``, on a node that has IPv6), as Calico's CNI plugin does it
(cni-plugin/pkg/dataplane/linux/dataplane_linux.go, ``DoNetworking``, ``configureSysctls``,
``configureContainerSysctls``, ``disableDAD``, ``SetupRoutes``): ``eth0`` with ``IP/128`` and
``default via fe80::ecee:eeff:feee:eeee dev eth0`` - the host veth's link-local address, the
modified EUI-64 of its MAC ee:ee:ee:ee:ee:ee (:data:`naming.GATEWAY6`), which the host veth
carries (the kernel makes it; added explicitly so a host whose ``addr_gen_mode`` is not EUI-64
still has it) and so answers neighbour solicitations for; on the host ``IP/128 dev cali…``
(``scope link`` asked for, as Calico; the kernel keeps IPv6 routes universe-scoped) and the host
veth's ``disable_ipv6=0``, ``proxy_ndp=1``, ``forwarding=1``, ``accept_dad=0``; inside
``disable_ipv6=0`` (all, default, lo), ``eth0`` ``accept_dad=0`` and ``conf.all.forwarding=0``
(unless allowed). Duplicate address detection is off on both ends of the pair before the links
come up, so the addresses are usable at once (Calico: "DAD delays use of the IP for up to a
second and we don't need it because it's a point-to-point link"). The host's side of IPv6 is
applied after its sysctls (``disable_ipv6`` may be 1 by default), in-process over rtnetlink.

Three phases, so check mode is exact and the cost follows what changes:

1. ``read_state``: one ``ip -json -batch`` for the host (addresses/links, routes, namespaces);
   inside each existing workload namespace an in-process rtnetlink dump (module ``rtnl``: the
   same answers ``ip -json`` prints, without a process per namespace); sysctls from /proc/sys.
2. ``plan``: pure function of (desired, state) -> lines for ONE host ``ip -batch``, the changes
   of each namespace that needs work, the sysctl writes, and a per-workload account
   (create/update/remove).
3. ``apply``: run them: the host batch (namespaces, veth pairs with the peer moved in, host
   routes), the sysctls, then each namespace's changes as ONE in-process rtnetlink batch
   (``rtnl.apply``: setns, socket, one send, the acknowledgements) — iproute2 cannot switch
   namespace inside a batch, and addresses and routes set before the veth peer moves would be
   flushed by the move, so without this every namespace would cost an ``ip`` process.

Ownership: every host veth the module creates carries the interface alias ``l3.calico:workload:<netns>``
and every namespace it creates is recorded in a state file under /run; anything else (foreign
namespaces, interfaces, routes) is never touched, and a name clash with a foreign object is an
error before anything changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import ipaddress
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

from ansible_collections.l3.calico.plugins.module_utils import iproute, naming, rtnl
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.fileutil import atomic_write

MARKER_PREFIX = "l3.calico:workload:"
DEFAULT_STATE_FILE = "/run/l3-calico/workloads.json"
DEFAULT_MTU = 1500
DEFAULT_RP_FILTER = 1
PROC_SYS = "/proc/sys"
IFNAMSIZ = 15
# Names end up in `ip -batch` lines and file names: no spaces, quotes or slashes.
SAFE_NAME_RE = re.compile(r"[A-Za-z0-9_.-]*")
APPLY_WORKERS = 4  # `ip -batch` fallback only: namespace processes run this many at a time
# Creating a namespace is kernel work that runs in parallel on several CPUs (creating links does
# not: the RTNL lock serialises it), so a host batch with many `netns add` lines creates the
# namespaces first, split over this many `ip -batch` processes (at most one per CPU); fewer
# than NETNS_SPLIT_MIN namespaces are not worth the extra processes.
NETNS_WORKERS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
NETNS_SPLIT_MIN = 32
VETH_QUEUES = "numtxqueues 1 numrxqueues 1"


class WorkloadError(L3CalicoError, ValueError):
    """Bad input or a clash with objects the module does not own (raised before any change)."""


class ApplyError(L3CalicoError, OSError):
    """The kernel refused changes inside workload namespaces; names workload, namespace, change, errno."""


@dataclass(frozen=True)
class Workload:
    wid: str
    ip: Optional[str]  # None: no IPv4 address (an IPv6-only workload)
    netns: str
    veth: str
    mtu: int
    ip_forward: bool = False  # net.ipv4.ip_forward inside (Calico: allow_ip_forwarding, default off)
    ipv6: Optional[str] = None  # its IPv6 address (None: none)

    def describe(self) -> str:
        six = f" ipv6={self.ipv6}" if self.ipv6 else ""
        return f"{self.wid}: ip={self.ip}{six} mtu={self.mtu} netns={self.netns} veth={self.veth}"


def veth_sysctls(veth: str, rp_filter: int, ipv6: bool = True, has_ipv4: bool = True, has_ipv6: bool = False) -> dict[str, str]:
    """The per-interface sysctls Calico (CNI plugin and Felix) sets on a workload's host veth.

    ``ipv6``: the kernel has IPv6 (else there is no accept_ra to set); ``has_ipv4`` / ``has_ipv6``:
    the workload has an address of that family (Calico's ``configureSysctls``: the IPv4 keys only
    with an IPv4 address; with an IPv6 one ``disable_ipv6=0``, ``proxy_ndp=1``, ``forwarding=1``, and
    ``accept_dad=0`` from ``disableDAD``).
    """
    wanted = {}
    if has_ipv4:
        wanted = {
            f"net/ipv4/conf/{veth}/proxy_arp": "1",
            f"net/ipv4/neigh/{veth}/proxy_delay": "0",
            f"net/ipv4/conf/{veth}/forwarding": "1",
            f"net/ipv4/conf/{veth}/route_localnet": "1",
            f"net/ipv4/conf/{veth}/rp_filter": str(rp_filter),
        }
    if ipv6:
        wanted[f"net/ipv6/conf/{veth}/accept_ra"] = "0"
        if has_ipv6:
            wanted[f"net/ipv6/conf/{veth}/disable_ipv6"] = "0"
            wanted[f"net/ipv6/conf/{veth}/accept_dad"] = "0"
            wanted[f"net/ipv6/conf/{veth}/proxy_ndp"] = "1"
            wanted[f"net/ipv6/conf/{veth}/forwarding"] = "1"
    return wanted


def _veth_sysctls_of(w: Workload, rp_filter: int, ipv6: bool) -> dict[str, str]:
    return veth_sysctls(w.veth, rp_filter, ipv6, w.ip is not None, w.ipv6 is not None)


# Inside the workload: a new namespace copies the host's IPv4 settings (net.core.
# devconf_inherit_init_net=0), so on a node with ip_forward=1 every workload would be a router;
# Calico's CNI plugin sets it to 0 unless allow_ip_forwarding.
IP_FORWARD = "net/ipv4/ip_forward"
# With an IPv6 address (configureContainerSysctls, DoNetworking, disableDAD): IPv6 on, no DAD on
# eth0 (written before eth0 comes up), IPv6 forwarding as IPv4's.
IP6_FORWARD = "net/ipv6/conf/all/forwarding"
INSIDE_IPV6 = {
    "net/ipv6/conf/all/disable_ipv6": "0",
    "net/ipv6/conf/default/disable_ipv6": "0",
    "net/ipv6/conf/lo/disable_ipv6": "0",
    "net/ipv6/conf/eth0/accept_dad": "0",
}


def inside_sysctls(w: Workload) -> dict[str, str]:
    """The sysctls of a workload's own namespace."""
    forward = "1" if w.ip_forward else "0"
    wanted = {IP_FORWARD: forward} if w.ip is not None else {}
    if w.ipv6 is not None:
        wanted.update(INSIDE_IPV6)
        wanted[IP6_FORWARD] = forward
    return wanted


def has_ipv6(proc_sys: str = PROC_SYS) -> bool:
    return os.path.isdir(os.path.join(proc_sys, "net/ipv6/conf"))


# ----------------------------------------------------------------------------------------------
# Desired state
# ----------------------------------------------------------------------------------------------


def build_desired(
    workloads: Sequence[Mapping],
    mtu: int = DEFAULT_MTU,
    netns_prefix: str = naming.NETNS_PREFIX,
    veth_prefix: str = naming.VETH_PREFIX,
    where: str = "workloads",
    allow_ip_forwarding: bool = False,
    ipv6: bool = True,
) -> dict[str, Workload]:
    """Validate the desired workloads; return them keyed by host veth name.

    Each item has ``ip`` (IPv4) and/or ``ipv6`` (null: none, as the IPAM result writes them) and
    either ``id`` or ``name`` (+ ``namespace``, default ``default``); the IPAM result's workload
    entries can be passed unchanged. ``ipv6`` false (a node without an IPv6 address): the items'
    ``ipv6`` are left out - the node gets nothing IPv6.
    """
    if not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 65535:
        raise WorkloadError(f"{where}: mtu must be an integer between 68 and 65535, got {mtu!r}")
    if not naming.is_veth_prefix(veth_prefix) or len(veth_prefix) + 11 > IFNAMSIZ:
        raise WorkloadError(f"{where}: veth_prefix {veth_prefix!r} must be 1-4 letters/digits")
    if not SAFE_NAME_RE.fullmatch(netns_prefix) or netns_prefix.startswith("."):
        raise WorkloadError(f"{where}: netns_prefix {netns_prefix!r} may hold only letters, digits, '.', '_', '-'")
    result: dict[str, Workload] = {}
    by_id: dict[str, int] = {}
    by_ip: dict[str, str] = {}
    for index, item in enumerate(workloads):
        here = f"{where}[{index}]"
        if not isinstance(item, Mapping):
            raise WorkloadError(f"{here}: expected a mapping, got {item!r}")
        wid = _workload_id(item, here)
        ip6 = _workload_ipv6(item.get("ipv6"), here, wid) if ipv6 else None
        ip = _workload_ip(item.get("ip"), here, wid, ip6 is not None)
        if wid in by_id:
            raise WorkloadError(f"{here}: workload {wid!r} is listed twice (also {where}[{by_id[wid]}])")
        for key, value in (("ip", ip), ("ipv6", ip6)):
            if value is not None and value in by_ip:
                raise WorkloadError(f"{here}: {key} {value} of workload {wid!r} is already used by workload {by_ip[value]!r}")
        veth = naming.veth_name(wid, veth_prefix)
        if veth in result:
            raise WorkloadError(f"{here}: veth name {veth} of {wid!r} collides with {result[veth].wid!r}")
        netns = naming.netns_name(wid, netns_prefix)
        if len(netns) > 255:
            raise WorkloadError(f"{here}: namespace name for {wid!r} is longer than 255 characters")
        by_id[wid] = index
        by_ip.update((value, wid) for value in (ip, ip6) if value is not None)
        result[veth] = Workload(wid=wid, ip=ip, netns=netns, veth=veth, mtu=mtu, ip_forward=allow_ip_forwarding, ipv6=ip6)
    return result


def _workload_id(item: Mapping, here: str) -> str:
    name = item.get("name")
    namespace = item.get("namespace") or "default"
    wid = item.get("id")
    if name is not None:
        for field_name, value in (("name", name), ("namespace", namespace)):
            if not naming.is_label(value):
                raise WorkloadError(f"{here}: {field_name} {value!r} is not a DNS label (a-z, 0-9, '-')")
        derived = naming.workload_id(namespace, name)
        if wid is not None and wid != derived:
            raise WorkloadError(f"{here}: id {wid!r} does not match namespace/name ({derived!r})")
        return derived
    if not isinstance(wid, str) or not wid or not SAFE_NAME_RE.fullmatch(wid):
        raise WorkloadError(f"{here}: needs 'name' (and 'namespace') or an 'id' of letters, digits, '.', '_', '-', got {wid!r}")
    return wid


def _workload_ip(value, here: str, wid: str, has_ipv6: bool = False) -> Optional[str]:
    if value is None:
        if has_ipv6:
            return None  # an IPv6-only workload (the IPAM's assign_ipv4: false)
        raise WorkloadError(f"{here}: workload {wid!r} has no ip (none allocated for it in the IPAM result?)")
    try:
        iface = ipaddress.ip_interface(str(value))
    except ValueError:
        raise WorkloadError(f"{here}: ip {value!r} of workload {wid!r} is not an IPv4 address") from None
    if iface.version != 4:
        raise WorkloadError(f"{here}: ip {value!r} of workload {wid!r} is not IPv4 (its IPv6 address goes in 'ipv6')")
    if "/" in str(value) and iface.network.prefixlen != 32:
        raise WorkloadError(f"{here}: ip {value!r} of workload {wid!r} must be a single address (/32)")
    return str(iface.ip)


def _workload_ipv6(value, here: str, wid: str) -> Optional[str]:
    """A workload's IPv6 address (``ipv6``; /128 implied), in RFC 5952 spelling (as the kernel prints it)."""
    if value is None:
        return None
    try:
        iface = ipaddress.ip_interface(value) if isinstance(value, str) else None
    except ValueError:
        iface = None
    if iface is None or iface.version != 6:
        raise WorkloadError(f"{here}: ipv6 {value!r} of workload {wid!r} is not an IPv6 address")
    if "/" in value and iface.network.prefixlen != 128:
        raise WorkloadError(f"{here}: ipv6 {value!r} of workload {wid!r} must be a single address (/128)")
    address = iface.ip
    if address.is_link_local or address.is_multicast or address.is_loopback or address.is_unspecified:
        raise WorkloadError(f"{here}: ipv6 {value!r} of workload {wid!r} is not a unicast address a workload can have (link-local, multicast, loopback or ::)")
    return str(address)


# ----------------------------------------------------------------------------------------------
# Current state
# ----------------------------------------------------------------------------------------------


@dataclass
class State:
    links: dict[str, dict]  # host interfaces by name (``ip -json addr show``: link + addr_info)
    routes: list[dict]  # host main table
    netns: dict[str, Optional[int]]  # namespace name -> nsid as seen from the host (None: unset)
    inside: dict[str, Optional[dict]] = field(default_factory=dict)  # netns -> {links, routes, sysctls}
    sysctls: dict[str, Optional[str]] = field(default_factory=dict)  # relative path -> value
    recorded: list[str] = field(default_factory=list)  # namespaces the state file says we made
    ipv6: bool = True  # the kernel has IPv6 (host veths get accept_ra=0)
    routes6: list[dict] = field(default_factory=list)  # host main table, IPv6 unicast

    @functools.cached_property
    def routes6_by_dev(self) -> dict[str, list[dict]]:
        """The host's IPv6 routes per device but the kernel's fe80::/64 ones (every veth has one): looked
        up once per workload, never a scan of all routes per workload."""
        out: dict[str, list[dict]] = {}
        for route in self.routes6:
            if not str(route.get("dst", "")).startswith("fe80:"):
                out.setdefault(route.get("dev"), []).append(route)
        return out


# The host's IPv6 routes in the same `ip -json -batch`: iproute2 takes the family from the prefix
# (`-6` cannot start a batch line, and `table main` alone means IPv4); entries of other tables
# carry a "table" key and are dropped.
ROUTES6_COMMAND = "route show table all root ::/0 type unicast"


def _main_table(routes: list[dict]) -> list[dict]:
    return [r for r in routes if r.get("table", "main") == "main"]


def read_state(
    runner: iproute.Runner,
    desired: Mapping[str, Workload],
    state_file: str = DEFAULT_STATE_FILE,
    proc_sys: str = PROC_SYS,
    rp_filter: int = DEFAULT_RP_FILTER,
    inside: str = "netlink",
) -> State:
    kernel_ipv6 = has_ipv6(proc_sys)
    commands = ["addr show", "route show table main"] + ([ROUTES6_COMMAND] if kernel_ipv6 else []) + ["netns list"]
    answers = iproute.ip_json_batch(runner, commands, details=True)
    links, routes, netns = answers[0], answers[1], answers[-1]
    state = State(
        links={link["ifname"]: link for link in links},
        routes=routes,
        netns={entry["name"]: entry.get("id") for entry in netns},
        recorded=read_recorded(state_file),
        ipv6=kernel_ipv6,
        routes6=_main_table(answers[2]) if kernel_ipv6 else [],
    )
    v6_veths = state.routes6_by_dev
    # Look inside the namespaces of desired workloads whose host side already exists and is ours:
    # that is where drift can hide. In-process rtnetlink dumps (no process per namespace), or
    # one `ip -n NS -json -batch` each when asked to (or when rtnetlink is unusable).
    to_read = sorted((w.netns, w, veth in v6_veths) for veth, w in desired.items() if w.netns in state.netns and _owned_alias(state.links.get(veth)) == w.netns)

    def read_with_ip(ns: str, six: bool):
        commands = ["addr show", "route show table main"] + ([ROUTES6_COMMAND] if six else [])
        try:
            answers = iproute.ip_json_batch(runner, commands, netns=ns)
        except iproute.CommandError:
            return None  # vanished or unreadable: treated as broken, rebuilt
        ns_routes = answers[1] + (_main_table(answers[2]) if six else [])
        return {"links": {link["ifname"]: link for link in answers[0]}, "routes": ns_routes}

    for ns, w, had_ipv6 in to_read:
        # IPv6 is read only where the workload has an IPv6 address or its veth still routes one
        # (to take it away): the IPv4-only namespaces cost what they always cost.
        six = state.ipv6 and (w.ipv6 is not None or had_ipv6)
        if inside == "netlink":
            try:
                ns_links, ns_routes = rtnl.read_netns(ns, ipv6=six)
            except OSError:
                state.inside[ns] = read_with_ip(ns, six)
            else:
                state.inside[ns] = {"links": ns_links, "routes": ns_routes}
        else:
            state.inside[ns] = read_with_ip(ns, six)
        if state.inside[ns] is not None:
            state.inside[ns]["ipv6"] = six
            state.inside[ns]["sysctls"] = _read_inside_sysctls(runner, ns, proc_sys, inside, list(inside_sysctls(w)))
    state.sysctls = _read_sysctls(proc_sys, [path for veth, w in desired.items() if veth in state.links for path in _veth_sysctls_of(w, rp_filter, state.ipv6)])
    return state


def _read_inside_sysctls(runner: iproute.Runner, ns: str, proc_sys: str, inside: str, paths: Sequence[str] = (IP_FORWARD,)) -> dict[str, Optional[str]]:
    """The namespace's own sysctls (None: unreadable): read by this thread from inside the
    namespace, or with ``ip netns exec NS sysctl -n`` (``inside="ip"``, or entering failed)."""
    if not paths:
        return {}
    if inside == "netlink":
        try:
            with rtnl.entered(ns):
                return {path: _read_sysctl(proc_sys, path) for path in paths}
        except OSError:
            pass
    result = runner([iproute.IP, "netns", "exec", ns, "sysctl", "-n"] + [_dotted(path) for path in paths], None)
    values = result.stdout.split() if result.rc == 0 else []
    return {path: values[i] if len(values) == len(paths) else None for i, path in enumerate(paths)}


def netns_sysctl(ns: str, path: str, proc_sys: str = PROC_SYS) -> Optional[str]:
    """A sysctl of namespace ``ns``, read by this thread from inside it (None: absent); OSError
    when the namespace cannot be entered."""
    with rtnl.entered(ns):
        return _read_sysctl(proc_sys, path)


def _dotted(path: str) -> str:
    return path.replace("/", ".")


def _read_sysctl(proc_sys: str, path: str, dir_fd: Optional[int] = None) -> Optional[str]:
    """One value (None: absent or unreadable); ``path`` relative to ``dir_fd`` when given."""
    # os.open/os.read: half the cost of a Python file object.
    try:
        fd = os.open(path if dir_fd is not None else os.path.join(proc_sys, path), os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        return os.read(fd, 256).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    finally:
        os.close(fd)


def _by_directory(paths: Iterable[str]) -> dict[str, list[str]]:
    # Files of one directory are opened relative to it: walking /proc/sys/net/ipv4/conf/<veth>/
    # once instead of once per file makes 1500 reads or writes for 250 veths 2-3x cheaper.
    by_dir: dict[str, list[str]] = {}
    for path in sorted(paths):
        directory, _sep, name = path.rpartition("/")
        by_dir.setdefault(directory, []).append(name)
    return by_dir


def _open_dir(proc_sys: str, directory: str) -> int:
    return os.open(os.path.join(proc_sys, directory), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _read_sysctls(proc_sys: str, paths: Sequence[str]) -> dict[str, Optional[str]]:
    """Many values (None: absent or unreadable)."""
    values: dict[str, Optional[str]] = {}
    for directory, names in _by_directory(paths).items():
        try:
            dir_fd = _open_dir(proc_sys, directory)
        except OSError:
            values.update((f"{directory}/{name}", None) for name in names)
            continue
        try:
            values.update((f"{directory}/{name}", _read_sysctl(proc_sys, name, dir_fd)) for name in names)
        finally:
            os.close(dir_fd)
    return values


def read_recorded(state_file: str) -> list[str]:
    try:
        with open(state_file, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise WorkloadError(f"state file {state_file} is unreadable: {exc}") from None
    names = data.get("netns", []) if isinstance(data, dict) else []
    return sorted(n for n in names if isinstance(n, str))


def write_recorded(state_file: str, names) -> None:
    atomic_write(state_file, json.dumps({"netns": sorted(set(names))}, indent=1) + "\n", make_parents=True)


def _owned_alias(link: Optional[dict]) -> Optional[str]:
    """The namespace named in a veth's ``l3.calico:workload:`` alias, or None if not ours."""
    if not link or (link.get("linkinfo") or {}).get("info_kind") != "veth":
        return None
    alias = link.get("ifalias") or ""
    return alias[len(MARKER_PREFIX) :] if alias.startswith(MARKER_PREFIX) else None


# ----------------------------------------------------------------------------------------------
# Plan
# ----------------------------------------------------------------------------------------------


@dataclass
class Plan:
    create: list[str] = field(default_factory=list)  # workload ids
    update: dict[str, list[str]] = field(default_factory=dict)  # workload id -> what differs
    remove: list[str] = field(default_factory=list)  # workload ids (or namespace names)
    host_lines: list[str] = field(default_factory=list)
    ns_ops: dict[str, list[rtnl.Change]] = field(default_factory=dict)  # netns -> changes inside
    ns_sysctls: dict[str, dict[str, str]] = field(default_factory=dict)  # netns -> its own sysctls to write
    sysctls: dict[str, str] = field(default_factory=dict)  # host (veth) sysctls to write
    host_ops6: list[rtnl.Change] = field(default_factory=list)  # the host's IPv6 side, after the sysctls
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    recorded_during: list[str] = field(default_factory=list)  # state file while applying
    recorded_after: list[str] = field(default_factory=list)  # state file once applied
    workloads: list[Workload] = field(default_factory=list)  # desired, sorted by id

    @property
    def changed(self) -> bool:
        return bool(self.create or self.update or self.remove)

    @property
    def ns_lines(self) -> dict[str, list[str]]:
        """Each namespace's changes as ``ip -batch`` lines (what the rtnetlink batch does)."""
        return {ns: [str(op) for op in ops] for ns, ops in self.ns_ops.items()}


def plan(
    desired: Mapping[str, Workload],
    state: State,
    rp_filter: int = DEFAULT_RP_FILTER,
    netns_prefix: str = naming.NETNS_PREFIX,
) -> Plan:
    """Compute everything to do; raises WorkloadError on a clash with foreign objects."""
    result = Plan()
    owned_veths = {name: ns for name, link in state.links.items() if (ns := _owned_alias(link)) is not None}
    owned_netns = {ns for ns in state.recorded if ns in state.netns} | {ns for ns in owned_veths.values() if ns in state.netns}
    desired_netns = {w.netns for w in desired.values()}

    # Refuse to adopt what is not ours.
    for veth, w in sorted(desired.items()):
        if w.ipv6 is not None and not state.ipv6:
            raise WorkloadError(
                f"workload {w.wid!r}: ipv6 {w.ipv6}: this host's kernel has no IPv6 (no /proc/sys/net/ipv6); "
                "boot it with IPv6, or leave the node's IPv6 out (ipv6: false)"
            )
        if veth in state.links and veth not in owned_veths:
            raise WorkloadError(
                f"interface {veth} (workload {w.wid!r}) exists but was not created by l3.calico (no '{MARKER_PREFIX}' alias); refusing to touch it"
            )
        if w.netns in state.netns and w.netns not in owned_netns:
            raise WorkloadError(f"network namespace {w.netns} (workload {w.wid!r}) exists but was not created by l3.calico; refusing to touch it")

    route_del: list[str] = []
    link_del: list[str] = []
    netns_del: list[str] = []
    netns_add: list[str] = []
    host_set: list[str] = []
    route_set: list[str] = []

    # Workloads no longer wanted: their veth (routes go with it), then their namespace.
    for veth, ns in sorted(owned_veths.items()):
        if veth not in desired:
            link_del.append(f"link del dev {veth}")
            result.before.append(_describe_current(veth, ns, state, netns_prefix))
            result.remove.append(_wid_of(ns, netns_prefix))
    for ns in sorted(owned_netns - desired_netns):
        netns_del.append(f"netns del {ns}")
        if ns not in owned_veths.values():
            result.remove.append(_wid_of(ns, netns_prefix))

    for veth, w in sorted(desired.items(), key=lambda item: item[1].wid):
        result.after.append(w.describe())
        link = state.links.get(veth)
        if link is not None:
            result.before.append(_describe_current(veth, owned_veths[veth], state, netns_prefix))
        reasons, recreate = _host_differences(w, link, state)
        inside_ops: list[rtnl.Change] = []
        inside_writes: dict[str, str] = {}
        if not recreate:
            inside_reasons, inside_ops, inside_writes, recreate = _inside_differences(w, link, state)
            reasons += inside_reasons
        if link is None or recreate:
            if link is not None:
                link_del.append(f"link del dev {veth}")
            if w.netns in state.netns:
                netns_del.append(f"netns del {w.netns}")
            netns_add.append(f"netns add {w.netns}")
            host_set += _create_host_lines(w)
            if w.ip is not None:
                route_set.append(f"route replace {w.ip}/32 dev {veth} scope link")
            if w.ipv6 is not None:
                result.host_ops6 += [_gateway6_address(veth), _host_route6(w)]
            result.ns_ops[w.netns] = _create_inside_ops(w)
            result.ns_sysctls[w.netns] = inside_sysctls(w)
            result.sysctls.update(_veth_sysctls_of(w, rp_filter, state.ipv6))
            if link is None:
                result.create.append(w.wid)
            else:
                result.update[w.wid] = reasons + ["recreated"]
            continue
        # In place: host link attributes, host routes, namespace contents, sysctls.
        if any(r.startswith("host veth") for r in reasons):
            host_set.append(f"link set dev {veth} address {naming.HOST_VETH_MAC} mtu {w.mtu} up")
        for addr in _inet_addrs(link):
            host_set.append(f"addr del {addr} dev {veth}")
        wanted_route = False
        for route in state.routes:
            if route.get("dev") != veth:
                continue
            if _is_host_route(route, w):
                wanted_route = True
            else:
                route_del.append(f"route del {_route_key(route)} dev {veth}")
                reasons.append(f"stray host route {_route_key(route)} dev {veth}")
        if not wanted_route and w.ip is not None:
            route_set.append(f"route replace {w.ip}/32 dev {veth} scope link")
            reasons.append(f"host route {w.ip} dev {veth} scope link missing")
        reasons += _host_differences6(w, link, state, route_del, result.host_ops6)
        if inside_ops:
            result.ns_ops[w.netns] = inside_ops
        if inside_writes:
            result.ns_sysctls[w.netns] = inside_writes
        for path, value in _veth_sysctls_of(w, rp_filter, state.ipv6).items():
            current = state.sysctls.get(path)
            if current != value:
                result.sysctls[path] = value
                reasons.append(f"sysctl {path.replace('/', '.')} {current} -> {value}")
        if reasons:
            result.update[w.wid] = reasons

    result.workloads = sorted(desired.values(), key=lambda w: w.wid)
    result.host_lines = route_del + link_del + netns_del + netns_add + host_set + route_set
    result.recorded_after = sorted(desired_netns)
    result.recorded_during = sorted(desired_netns | owned_netns)
    return result


def _host_differences(w: Workload, link: Optional[dict], state: State):
    """Differences of the host side; ``recreate`` when the pair must be rebuilt."""
    if link is None:
        return [], True
    reasons = []
    if _owned_alias(link) != w.netns:
        return [f"host veth belongs to namespace {_owned_alias(link)}"], True
    if w.netns not in state.netns or state.netns[w.netns] is None:
        return [f"namespace {w.netns} missing"], True
    if link.get("link_netnsid") != state.netns[w.netns]:
        return [f"peer of {w.veth} is not in namespace {w.netns}"], True
    if link.get("address") != naming.HOST_VETH_MAC:
        reasons.append(f"host veth mac {link.get('address')} -> {naming.HOST_VETH_MAC}")
    if link.get("mtu") != w.mtu:
        reasons.append(f"host veth mtu {link.get('mtu')} -> {w.mtu}")
    if "UP" not in link.get("flags", []):
        reasons.append("host veth down -> up")
    for addr in _inet_addrs(link):
        reasons.append(f"address {addr} on host veth removed")
    return reasons, False


def _host_differences6(w: Workload, link: dict, state: State, route_del: list[str], ops6: list[rtnl.Change]) -> list[str]:
    """The host's IPv6 side of a workload kept in place: the gateway link-local address on the veth,
    ``IP/128 dev cali…`` (stray IPv6 routes on the veth go, e.g. the workload lost its address)."""
    reasons = []
    veth = w.veth
    if w.ipv6 is not None and not any(a.get("family") == "inet6" and a.get("local") == naming.GATEWAY6 for a in link.get("addr_info", [])):
        reasons.append(f"host veth address {naming.GATEWAY6}/64 added")
        ops6.append(_gateway6_address(veth))
    wanted = False
    for route in state.routes6_by_dev.get(veth, ()):
        dst = str(route.get("dst", ""))
        if w.ipv6 is not None and _same_address(dst, w.ipv6):
            wanted = True
        else:
            route_del.append(f"route del {dst} dev {veth}")
            reasons.append(f"stray host route {dst} dev {veth}")
    if w.ipv6 is not None and not wanted:
        ops6.append(_host_route6(w))
        reasons.append(f"host route {w.ipv6} dev {veth} missing")
    return reasons


def _same_address(dst: str, address: str) -> bool:
    text = dst[:-4] if dst.endswith("/128") else dst
    try:
        return ipaddress.ip_address(text) == ipaddress.ip_address(address)
    except ValueError:
        return False


def _gateway6_address(veth: str) -> rtnl.AddrAdd:
    # `replace`: the kernel makes the same address itself (EUI-64) as soon as the veth has IPv6 and a
    # carrier - e.g. when a workload gains an IPv6 address and the sysctls just turned IPv6 on.
    return rtnl.AddrAdd(naming.GATEWAY6, 64, veth, replace=True)


def _host_route6(w: Workload) -> rtnl.RouteReplace:
    return rtnl.RouteReplace(w.ipv6, w.veth, scope_link=True)


def _inside_differences(w: Workload, link: dict, state: State):
    inside = state.inside.get(w.netns)
    if inside is None:
        return [f"namespace {w.netns} unreadable"], [], {}, True
    eth0 = inside["links"].get("eth0")
    if eth0 is None or eth0.get("ifindex") != link.get("link_index"):
        return ["eth0 is not the peer of the host veth"], [], {}, True
    reasons: list[str] = []
    ops: list[rtnl.Change] = []
    writes: dict[str, str] = {}
    for path, value in inside_sysctls(w).items():
        current = inside.get("sysctls", {}).get(path)
        if current != value:
            writes[path] = value
            reasons.append(f"sysctl {_dotted(path)} {current} -> {value} inside")
    lo = inside["links"].get("lo")
    if lo is None or "UP" not in lo.get("flags", []):
        reasons.append("lo down -> up")
        ops.append(rtnl.LinkSet("lo"))
    if eth0.get("mtu") != w.mtu or "UP" not in eth0.get("flags", []):
        reasons.append(f"eth0 mtu {eth0.get('mtu')} -> {w.mtu}" if eth0.get("mtu") != w.mtu else "eth0 down -> up")
        ops.append(rtnl.LinkSet("eth0", w.mtu))
    # The wanted address goes on before strays come off: when a device loses its last IPv4
    # address the kernel flushes every route through it (the gateway and default routes here).
    addrs = _inet_addrs(eth0)
    if w.ip is not None and f"{w.ip}/32" not in addrs:
        reasons.append(f"eth0 address {w.ip}/32 added")
        ops.append(rtnl.AddrAdd(w.ip, 32, "eth0"))
    for addr in addrs:
        if addr != f"{w.ip}/32":
            reasons.append(f"eth0 address {addr} removed")
            local, prefixlen = addr.split("/")
            ops.append(rtnl.AddrDel(local, int(prefixlen), "eth0"))
    routes = inside["routes"]
    if w.ip is not None:
        if not any(r.get("dst") == naming.GATEWAY and r.get("dev") == "eth0" and r.get("scope") == "link" and not r.get("gateway") for r in routes):
            reasons.append(f"route {naming.GATEWAY} dev eth0 scope link added")
            ops.append(_gateway_route())
        if not any(r.get("dst") == "default" and r.get("gateway") == naming.GATEWAY and r.get("dev") == "eth0" for r in routes):
            reasons.append(f"route default via {naming.GATEWAY} dev eth0 added")
            ops.append(_default_route())
    if inside.get("ipv6"):
        _inside_differences6(w, eth0, routes, reasons, ops)
    return reasons, ops, writes, False


def _inside_differences6(w: Workload, eth0: dict, routes: list[dict], reasons: list[str], ops: list[rtnl.Change]) -> None:
    """``eth0``'s IPv6 address and default route (the namespace was read for IPv6); without an IPv6
    address for the workload, what is left of one goes."""
    addrs = [a["local"] for a in eth0.get("addr_info", []) if a.get("family") == "inet6" and a.get("scope") != "link"]
    if w.ipv6 is not None and not any(_same_address(a, w.ipv6) for a in addrs):
        reasons.append(f"eth0 address {w.ipv6}/128 added")
        ops.append(rtnl.AddrAdd(w.ipv6, 128, "eth0"))
    for addr in eth0.get("addr_info", []):
        if addr.get("family") == "inet6" and addr.get("scope") != "link" and (w.ipv6 is None or not _same_address(addr["local"], w.ipv6)):
            reasons.append(f"eth0 address {addr['local']}/{addr['prefixlen']} removed")
            ops.append(rtnl.AddrDel(addr["local"], addr["prefixlen"], "eth0"))
    has_default = any(r.get("dst") == "default" and r.get("gateway") == naming.GATEWAY6 and r.get("dev") == "eth0" for r in routes)
    if w.ipv6 is not None and not has_default:
        reasons.append(f"route default via {naming.GATEWAY6} dev eth0 added")
        ops.append(_default_route6())
    elif w.ipv6 is None and has_default:
        reasons.append(f"route default via {naming.GATEWAY6} dev eth0 removed")
        ops.append(rtnl.RouteDel("default", "eth0", gateway=naming.GATEWAY6))


def _create_host_lines(w: Workload) -> list[str]:
    # One transmit and one receive queue on each end, as Calico's CNI plugin creates them
    # (num_queues, default 1); the kernel's default is one per possible CPU, each with its sysfs
    # objects — a fifth of the pair's creation cost on a 2-CPU host.
    return [
        f"link add {w.veth} {VETH_QUEUES} mtu {w.mtu} address {naming.HOST_VETH_MAC} type veth peer name eth0 {VETH_QUEUES} mtu {w.mtu} netns {w.netns}",
        f"link set dev {w.veth} alias {MARKER_PREFIX}{w.netns} up",
    ]


def _create_inside_ops(w: Workload) -> list[rtnl.Change]:
    # eth0 got its MTU when the pair was created (host batch); addresses and routes can only be
    # set once it is in the namespace (moving a link flushes its IPv4 addresses and routes).
    ops: list[rtnl.Change] = [rtnl.LinkSet("lo"), rtnl.LinkSet("eth0")]
    if w.ip is not None:
        ops += [rtnl.AddrAdd(w.ip, 32, "eth0"), _gateway_route(), _default_route()]
    if w.ipv6 is not None:
        # /128 and the default route via the host veth's link-local address (Calico's DoNetworking);
        # eth0's DAD is already off (its sysctls are written before these changes).
        ops += [rtnl.AddrAdd(w.ipv6, 128, "eth0"), _default_route6()]
    return ops


def _gateway_route() -> rtnl.RouteReplace:
    return rtnl.RouteReplace(naming.GATEWAY, "eth0", scope_link=True)


def _default_route() -> rtnl.RouteReplace:
    return rtnl.RouteReplace("default", "eth0", gateway=naming.GATEWAY)


def _default_route6() -> rtnl.RouteReplace:
    return rtnl.RouteReplace("default", "eth0", gateway=naming.GATEWAY6)


def _inet_addrs(link: Optional[dict]) -> list[str]:
    if not link:
        return []
    return [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a.get("family") == "inet"]


def _is_host_route(route: dict, w: Workload) -> bool:
    return (
        w.ip is not None
        and route.get("dst") in (w.ip, f"{w.ip}/32")
        and route.get("scope") == "link"
        and not route.get("gateway")
        and route.get("type", "unicast") == "unicast"
    )


def _route_key(route: dict) -> str:
    dst = route.get("dst", "default")
    parts = [dst if dst == "default" or "/" in dst else f"{dst}/32"]
    if route.get("metric") is not None:
        parts.append(f"metric {route['metric']}")
    return " ".join(parts)


def _wid_of(netns: str, netns_prefix: str) -> str:
    return netns[len(netns_prefix) :] if netns.startswith(netns_prefix) else netns


def _describe_current(veth: str, netns: str, state: State, netns_prefix: str) -> str:
    link = state.links.get(veth, {})
    ips = sorted(str(r["dst"]).partition("/")[0] for r in state.routes if r.get("dev") == veth and r.get("scope") == "link")
    ip = ",".join(ips) or "none"
    ips6 = sorted(str(r["dst"]).partition("/")[0] for r in state.routes6_by_dev.get(veth, ()))
    six = f" ipv6={','.join(ips6)}" if ips6 else ""
    return f"{_wid_of(netns, netns_prefix)}: ip={ip}{six} mtu={link.get('mtu')} netns={netns} veth={veth}"


# ----------------------------------------------------------------------------------------------
# Apply
# ----------------------------------------------------------------------------------------------


def apply(
    runner: iproute.Runner,
    the_plan: Plan,
    state_file: str = DEFAULT_STATE_FILE,
    proc_sys: str = PROC_SYS,
    recorded: Sequence[str] = (),
    workers: int = APPLY_WORKERS,
    inside: str = "netlink",
) -> None:
    """Run the plan: record namespaces, host batch, sysctls, namespace changes, record again.

    ``inside``: how the namespaces' changes are applied — ``netlink``: one in-process rtnetlink
    batch per namespace, one after the other (a few syscalls each; `ip -n NS -batch` for a
    namespace whose socket cannot be opened, as the reads do); ``ip``: one ``ip -batch`` process
    per namespace, ``workers`` at a time.
    """
    if sorted(recorded) != the_plan.recorded_during:
        write_recorded(state_file, the_plan.recorded_during)
    run_host_batches(runner, host_batches(the_plan.host_lines))
    _write_sysctls(proc_sys, the_plan.sysctls)
    _apply_host6(runner, the_plan)
    items = [(ns, the_plan.ns_ops.get(ns, []), the_plan.ns_sysctls.get(ns, {})) for ns in sorted(set(the_plan.ns_ops) | set(the_plan.ns_sysctls))]
    if inside == "netlink":
        _apply_netlink(runner, the_plan, items, proc_sys)
    else:
        _apply_ip(runner, items, workers)
    if the_plan.recorded_after != the_plan.recorded_during:
        write_recorded(state_file, the_plan.recorded_after)


def host_batches(lines: Sequence[str], workers: int = NETNS_WORKERS) -> list[list[list[str]]]:
    """The host batch as stages, run one after the other; the batches of a stage run in parallel.

    One stage of one batch, unless there are at least NETNS_SPLIT_MIN ``netns add`` lines
    (contiguous, as ``plan`` orders them): then what comes before them (removals), the namespaces
    dealt round-robin over ``workers`` batches, and the rest (links, addresses, routes).
    """
    adds = [index for index, line in enumerate(lines) if line.startswith("netns add ")]
    if workers < 2 or len(adds) < NETNS_SPLIT_MIN:
        return [[list(lines)]] if lines else []
    first, last = adds[0], adds[-1] + 1
    if last - first != len(adds):
        raise ValueError("host batch: the 'netns add' lines must be contiguous")
    creating = list(lines[first:last])
    stages = [[list(lines[:first])], [creating[k::workers] for k in range(workers)], [list(lines[last:])]]
    return [[b for b in stage if b] for stage in stages if any(stage)]


def run_host_batches(runner: iproute.Runner, stages: Sequence[Sequence[Sequence[str]]]) -> None:
    """Run ``host_batches`` stages; a failing batch stops the stages after its own (its siblings finish)."""
    for stage in stages:
        if len(stage) == 1:
            iproute.batch(runner, stage[0])
            continue
        with ThreadPoolExecutor(max_workers=len(stage)) as pool:
            futures = [pool.submit(iproute.batch, runner, lines) for lines in stage]
        for future in futures:
            future.result()  # the first failure, once every sibling has finished


def _write_sysctls(proc_sys: str, sysctls: Mapping[str, str]) -> None:
    # os.open/os.write: a fifth of the cost of a Python file object; one directory walk per veth.
    for directory, names in _by_directory(sysctls).items():
        dir_fd = _open_dir(proc_sys, directory)
        try:
            for name in names:
                fd = os.open(name, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC, dir_fd=dir_fd)
                try:
                    os.write(fd, sysctls[f"{directory}/{name}"].encode("ascii"))
                finally:
                    os.close(fd)
        finally:
            os.close(dir_fd)


def _apply_netlink(runner: iproute.Runner, the_plan: Plan, items, proc_sys: str) -> None:
    """Every namespace's changes (even after a refusal elsewhere), then one error naming all refusals.

    Per namespace this thread enters it once: writes its sysctls, opens an rtnetlink socket
    there, returns, and sends the changes as one batch. Where a namespace cannot be entered or
    rtnetlink is unusable, the same through ``ip netns exec NS sysctl`` / ``ip -n NS -batch``.
    """
    wid_of = {w.netns: w.wid for w in the_plan.workloads}
    refused: list[str] = []
    for ns, ops, writes in items:
        where = f"workload {wid_of.get(ns, ns)} (namespace {ns})"
        sock, written = None, False
        try:
            with rtnl.entered(ns):
                written = True
                try:
                    _write_sysctls(proc_sys, writes)
                except OSError as exc:
                    refused.append(f"{where}: sysctl: {exc}")
                if ops:
                    sock = rtnl.open_socket()
        except OSError:
            pass  # cannot enter it, or no rtnetlink socket there: the ip fallbacks below
        if not written:
            refused += _write_sysctls_with_ip(runner, ns, writes, where)
        if sock is None:
            if ops:
                try:
                    iproute.batch(runner, [str(op) for op in ops], netns=ns)
                except iproute.CommandError as exc:
                    refused.append(f"{where}: {exc}")
            continue
        try:
            rtnl.apply(sock, ops)
        except rtnl.NetlinkError as exc:
            refused += [f"{where}: {rtnl.describe_failure(*f)}" for f in exc.failures]
        except OSError as exc:
            refused.append(f"{where}: rtnetlink: {exc}")
        finally:
            sock.close()
    _raise_refused(refused)


def _apply_host6(runner: iproute.Runner, the_plan: Plan) -> None:
    """The host's IPv6 side (gateway link-local addresses, ``IP/128`` routes) as ONE in-process
    rtnetlink batch in this namespace, after the veths' sysctls turned IPv6 on (and DAD off) on them;
    ``ip -batch`` where no rtnetlink socket can be opened. A refusal names the workload."""
    ops = the_plan.host_ops6
    if not ops:
        return
    try:
        sock = rtnl.open_socket()
    except OSError:
        iproute.batch(runner, [str(op) for op in ops])
        return
    wid_of = {w.veth: w.wid for w in the_plan.workloads}
    try:
        rtnl.apply(sock, ops)
    except rtnl.NetlinkError as exc:
        _raise_refused(
            [
                f"workload {wid_of.get(change.dev, change.dev)} (host veth {change.dev}): {rtnl.describe_failure(change, err, message)}"
                for change, err, message in exc.failures
            ],
            "on the host",
        )
    finally:
        sock.close()


def _write_sysctls_with_ip(runner: iproute.Runner, ns: str, writes: Mapping[str, str], where: str) -> list[str]:
    if not writes:
        return []
    argv = [iproute.IP, "netns", "exec", ns, "sysctl", "-qw"] + [f"{_dotted(k)}={v}" for k, v in sorted(writes.items())]
    result = runner(argv, None)
    return [] if result.rc == 0 else [f"{where}: sysctl: {result.stderr.strip() or f'exit {result.rc}'}"]


def _raise_refused(refused: Sequence[str], where: str = "inside workload namespaces") -> None:
    if refused:
        shown = list(refused[:10]) + ([f"... and {len(refused) - 10} more"] if len(refused) > 10 else [])
        raise ApplyError(
            f"the kernel refused {len(refused)} change(s) {where} (the other changes were applied; a next run repairs what is missing): " + "; ".join(shown)
        )


def _apply_ip(runner: iproute.Runner, items, workers: int) -> None:
    refused: list[str] = []

    def one(item) -> None:
        ns, ops, writes = item
        refused.extend(_write_sysctls_with_ip(runner, ns, writes, f"namespace {ns}"))
        lines = [str(op) for op in ops]
        with contextlib.ExitStack() as stack:
            where = ns  # `ip -n NS -batch` ...
            if runner is iproute.subprocess_runner:
                try:  # ... or, cheaper, this thread enters the namespace and `ip` starts there
                    stack.enter_context(rtnl.entered(ns))
                    where = None
                except OSError:
                    pass
            iproute.batch(runner, lines, netns=where)

    if workers > 1 and len(items) > 1:
        with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
            list(pool.map(one, items))
    else:
        for item in items:
            one(item)
    _raise_refused(refused)


def converge(
    workloads: Sequence[Mapping],
    mtu: int = DEFAULT_MTU,
    netns_prefix: str = naming.NETNS_PREFIX,
    veth_prefix: str = naming.VETH_PREFIX,
    rp_filter: int = DEFAULT_RP_FILTER,
    state_file: str = DEFAULT_STATE_FILE,
    check_mode: bool = False,
    runner: iproute.Runner = iproute.subprocess_runner,
    proc_sys: str = PROC_SYS,
    workers: int = APPLY_WORKERS,
    inside: str = "netlink",
    allow_ip_forwarding: bool = False,
    ipv6: bool = True,
) -> Plan:
    """Validate, read, plan and (unless ``check_mode``) apply. Returns the plan.

    ``inside``: how workload namespaces are read and written, ``netlink`` (in-process
    rtnetlink; ``ip`` for a namespace where that is unusable) or ``ip`` (a process each).
    ``ipv6``: plumb the workloads' IPv6 addresses (false: a node without IPv6, they are left out).
    """
    if rp_filter not in (0, 1, 2):
        raise WorkloadError(f"rp_filter must be 0, 1 or 2, got {rp_filter!r}")
    desired = build_desired(workloads, mtu, netns_prefix, veth_prefix, allow_ip_forwarding=allow_ip_forwarding, ipv6=ipv6)
    # One run at a time per state file, so read, plan and apply see one world (check mode writes
    # nothing, not even the lock file).
    with contextlib.nullcontext() if check_mode else _locked(state_file):
        state = read_state(runner, desired, state_file, proc_sys, rp_filter, inside)
        the_plan = plan(desired, state, rp_filter, netns_prefix)
        if not check_mode:
            if the_plan.changed or the_plan.recorded_after != state.recorded:
                apply(runner, the_plan, state_file, proc_sys, state.recorded, workers, inside)
    return the_plan


@contextlib.contextmanager
def _locked(state_file: str):
    directory = os.path.dirname(state_file) or "."
    os.makedirs(directory, exist_ok=True)
    with open(state_file + ".lock", "a", encoding="utf-8") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
