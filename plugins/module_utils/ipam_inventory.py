# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Validate the inventory interface of the IPAM and turn it into the planner's input (:class:`Desired`).

Every error is a :class:`ValidationError` naming the host (``calico_nodes`` for the group-wide
variables ``calico_pools``, ``calico_ipam_config``, ``calico_reservations``), the field (with its
index) and the value, and is raised before anything is written.
"""

from __future__ import annotations

import bisect
import dataclasses

from ansible_collections.l3.calico.plugins.module_utils import calico_selector, naming
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import (
    FAMILY,
    V4,
    V6,
    IpamConfig,
    ValidationError,
    address_text,
    encapsulation_modes,
    format_cidr,
    ip6_to_int,
    ip_to_int,
    no_gc,
    parse_cidr,
    parse_cidr6,
    prefix_mask,
    tunnel_kinds,
)

GROUP = "calico_nodes"
LINK_LOCAL = parse_cidr("169.254.0.0/16")
LINK_LOCAL_V6 = parse_cidr6("fe80::/10")
# Per family (Calico's IPPool, api/pkg/apis/projectcalico/v3/ippool.go and the v3.3+ IPPool reference):
# the default block size (26 / 122), the range allowed (20..32 / 116..128), the link-local range no
# pool may overlap (169.254.0.0/16 / fe80::/10).
DEFAULT_BLOCK_SIZE = {V4: 26, V6: 122}
BLOCK_SIZES = {V4: (20, 32), V6: (116, 128)}
LINK_LOCALS = {V4: (LINK_LOCAL, "169.254.0.0/16"), V6: (LINK_LOCAL_V6, "fe80::/10")}
POOL_KEYS = {
    "name",
    "cidr",
    "block_size",
    "ipip_mode",
    "vxlan_mode",
    "nat_outgoing",
    "disabled",
    "disable_bgp_export",
    "node_selector",
    "namespaces",
}
# ``ipv6``/``ipv6_pool`` are the IPv6 twins of ``ip``/``pool``; ``assign_ipv4``/``assign_ipv6`` are Calico's
# CNI IPAM flags of the same names (cni-plugin configuration.md), per workload.
# ``labels``: for policy (policy_model), the IPAM ignores them.
WORKLOAD_KEYS = {"name", "namespace", "ip", "pool", "labels", "ipv6", "ipv6_pool", "assign_ipv4", "assign_ipv6"}
NODE_KEYS = {"name", "ip", "ipv6", "labels", "workloads"}
CONFIG_KEYS = {"strict_affinity", "auto_allocate_blocks", "max_blocks_per_host"}


@dataclasses.dataclass(eq=False)
class Pool:
    name: str
    cidr: str
    base: int
    prefix: int
    block_size: int
    ipip_mode: str = "Never"
    vxlan_mode: str = "Never"
    nat_outgoing: bool = False
    disabled: bool = False
    disable_bgp_export: bool = False
    node_selector: str = "all()"
    namespaces: tuple = ()
    index: int = 0
    selects: object = None  # compiled selector: labels -> bool
    bits: int = V4  # the family: 32 (IPv4) or 128 (IPv6)

    @property
    def version(self) -> int:
        """4 or 6."""
        return 4 if self.bits == V4 else 6

    @property
    def nblocks(self) -> int:
        return 1 << (self.block_size - self.prefix)

    @property
    def capacity(self) -> int:
        return 1 << (self.bits - self.prefix)

    def contains(self, address: int, bits: int = V4) -> bool:
        """Whether ``address`` (of the family ``bits``) lies in this pool."""
        return bits == self.bits and (address & prefix_mask(self.prefix, bits)) == self.base

    def block_base(self, index: int) -> int:
        return self.base + (index << (self.bits - self.block_size))

    def block_index(self, address: int) -> int:
        return (address - self.base) >> (self.bits - self.block_size)

    def holds(self, block) -> bool:
        """Whether ``block`` is one of this pool's blocks: of its family and block size, inside its cidr."""
        return block.prefix == self.block_size and block.bits == self.bits and (block.base & prefix_mask(self.prefix, self.bits)) == self.base

    @property
    def tunnel_kinds(self) -> tuple:
        """The encapsulations whose tunnel address a node this pool selects needs (``ipam_model.tunnel_kinds``)."""
        return tunnel_kinds(self.ipip_mode, self.vxlan_mode, self.bits)

    def spec(self) -> dict:
        """The pool as a Calico v3 IPPool spec (what the state records, to refuse immutable changes)."""
        return {
            "cidr": self.cidr,
            "blockSize": self.block_size,
            "ipipMode": self.ipip_mode,
            "vxlanMode": self.vxlan_mode,
            "natOutgoing": self.nat_outgoing,
            "disabled": self.disabled,
            "disableBGPExport": self.disable_bgp_export,
            "nodeSelector": self.node_selector,
            "namespaces": list(self.namespaces),
        }


@dataclasses.dataclass(eq=False, slots=True)
class Workload:
    name: str
    namespace: str
    id: str
    handle: str
    ip: int | None
    pool: str | None
    index: int  # position in the host's calico_workloads, for error messages
    # The family of this address: a workload with both families is two entries of ``Node.workloads``,
    # one per family, each with its own handle (``naming.handle_id`` / ``naming.handle_id_v6``).
    bits: int = V4

    @property
    def field(self) -> str:
        return f"calico_workloads[{self.index}]"

    @property
    def ip_key(self) -> str:
        """The inventory key of the address this entry requests: ``ip`` or ``ipv6``."""
        return "ip" if self.bits == V4 else "ipv6"

    @property
    def pool_key(self) -> str:
        """The inventory key of the pool this entry is pinned to: ``pool`` or ``ipv6_pool``."""
        return "pool" if self.bits == V4 else "ipv6_pool"


@dataclasses.dataclass(eq=False)
class Node:
    name: str
    ip: str
    network: str
    labels: dict
    workloads: list  # one entry per workload and family (see Workload.bits), IPv4 entries first
    # Handle ids of the workloads that request no address, grouped by (namespace, pool, bits): the
    # planner checks a whole group against the node's blocks with set operations.
    groups: dict = dataclasses.field(default_factory=dict)
    ipv6: str | None = None  # calico_node_ipv6's address (None: the node has no IPv6 address)
    network6: str | None = None  # its subnet


@dataclasses.dataclass(eq=False, frozen=True)
class Evacuation:
    """A pool migration step: ``nodes`` leave the disabled pool ``pool`` (addresses re-assigned).

    ``run_nodes`` (when planning the whole migration): the nodes this run of pool-migrate.yml moves, in
    the order given (None: every node of ``nodes``); ``batch``: how many of them move per round. Both
    shape only the rounds and the plan's lines (module_utils/pool_migration).
    """

    pool: Pool
    nodes: frozenset
    run_nodes: tuple | None = None
    batch: int = 1


@dataclasses.dataclass(eq=False)
class Desired:
    pools: list
    nodes: dict  # name -> Node, sorted by name
    config: IpamConfig
    reservations: list  # sorted, merged [(first, last)] integer ranges (IPv4)
    only_node: str | None = None
    listed_namespaces: frozenset = frozenset()  # (namespace, bits) some pool of that family lists (listed_namespaces())
    evacuate: Evacuation | None = None  # a pool migration step (see validate_evacuate)
    reservations6: list = dataclasses.field(default_factory=list)  # the same for IPv6

    @property
    def pools_by_name(self) -> dict:
        return {p.name: p for p in self.pools}

    def pool_of_blocks(self, blocks: dict) -> dict:
        """Block cidr -> the pool that holds the block (the first by :meth:`Pool.holds`), or None."""
        pools = self.pools
        return {cidr: next((p for p in pools if p.holds(block)), None) for cidr, block in blocks.items()}

    def reserved(self, address: int, bits: int = V4) -> bool:
        ranges = self.reservations if bits == V4 else self.reservations6
        i = bisect.bisect_right(ranges, (address, 1 << bits)) - 1
        return i >= 0 and ranges[i][0] <= address <= ranges[i][1]

    def reserved_in(self, first: int, last: int, bits: int = V4) -> list:
        """Reserved ranges (of the family ``bits``) clipped to [first, last]."""
        ranges = self.reservations if bits == V4 else self.reservations6
        out = []
        i = max(bisect.bisect_right(ranges, (first, 1 << bits)) - 1, 0)
        for lo, hi in ranges[i:]:
            if lo > last:
                break
            if hi >= first:
                out.append((max(lo, first), min(hi, last)))
        return out


def _fail(host, field, value, reason):
    raise ValidationError(host, field, value, reason)


def _bool(host, field, value, default):
    if value is None:
        return default
    if not isinstance(value, bool):
        _fail(host, field, value, "must be true or false")
    return value


def _label(host, field, value, what):
    if not naming.is_label(value):
        _fail(host, field, value, f"{what} must be a DNS label (lower-case letters, digits and '-', at most 63)")
    return value


def _dict(host, field, value, allowed):
    if not isinstance(value, dict):
        _fail(host, field, value, "must be a mapping")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        _fail(host, field, value, f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")
    return value


def validate_pools(pools) -> list:
    if pools is None:
        pools = []
    if not isinstance(pools, list):
        _fail(GROUP, "calico_pools", pools, "must be a list of pools")
    out, names = [], set()
    for i, raw in enumerate(pools):
        where = f"calico_pools[{i}]"
        _dict(GROUP, where, raw, POOL_KEYS)
        name = raw.get("name")
        if not naming.is_label(name):
            _fail(GROUP, f"{where}.name", name, "a pool needs a name that is a DNS label")
        if name in names:
            _fail(GROUP, f"{where}.name", name, "two pools have this name")
        names.add(name)
        where = f"calico_pools[{i}] ({name})"
        cidr = raw.get("cidr")
        bits = V6 if isinstance(cidr, str) and ":" in cidr else V4
        family = FAMILY[bits]
        try:
            base, prefix = parse_cidr6(cidr) if bits == V6 else parse_cidr(cidr)
        except ValueError as exc:
            _fail(GROUP, f"{where}.cidr", cidr, f"not an IPv4 or IPv6 network: {exc}")
        low, high = BLOCK_SIZES[bits]
        block_size = raw.get("block_size")
        if block_size is None:
            block_size = DEFAULT_BLOCK_SIZE[bits]
        if isinstance(block_size, bool) or not isinstance(block_size, int):
            _fail(GROUP, f"{where}.block_size", block_size, f"must be an integer from {low} to {high}")
        other = V4 if bits == V6 else V6
        if not low <= block_size <= high and BLOCK_SIZES[other][0] <= block_size <= BLOCK_SIZES[other][1]:
            _fail(
                GROUP,
                f"{where}.block_size",
                block_size,
                f"an {FAMILY[other]} block size in an {family} pool ({cidr}): a pool's fields are of one family; an {family} pool's blocks are /{low}../{high}",
            )
        if not low <= block_size <= high:
            _fail(GROUP, f"{where}.block_size", block_size, f"must be an integer from {low} to {high}" + (" (an IPv6 pool)" if bits == V6 else ""))
        if block_size < prefix:
            _fail(GROUP, f"{where}.block_size", block_size, f"a /{block_size} block is larger than the pool {cidr}")
        (ll_base, ll_prefix), ll_text = LINK_LOCALS[bits]
        if _overlap(base, prefix, ll_base, ll_prefix, bits):
            _fail(GROUP, f"{where}.cidr", cidr, f"overlaps the link-local range {ll_text}")
        (ipip_mode, vxlan_mode), fault = encapsulation_modes(raw, bits)
        if fault:
            key, value, reason = fault
            _fail(GROUP, f"{where}.{key}", value, reason)
        selector = raw.get("node_selector") or "all()"
        try:
            selects = calico_selector.parse(selector)
        except calico_selector.SelectorError as exc:
            _fail(GROUP, f"{where}.node_selector", selector, f"selector syntax error: {exc}")
        namespaces = raw.get("namespaces") or []
        if not isinstance(namespaces, list):
            _fail(GROUP, f"{where}.namespaces", namespaces, "must be a list of namespace names")
        for j, ns in enumerate(namespaces):
            _label(GROUP, f"{where}.namespaces[{j}]", ns, "a namespace")
        out.append(
            Pool(
                name=name,
                cidr=cidr,
                base=base,
                prefix=prefix,
                block_size=block_size,
                ipip_mode=ipip_mode,
                vxlan_mode=vxlan_mode,
                nat_outgoing=_bool(GROUP, f"{where}.nat_outgoing", raw.get("nat_outgoing"), False),
                disabled=_bool(GROUP, f"{where}.disabled", raw.get("disabled"), False),
                disable_bgp_export=_bool(GROUP, f"{where}.disable_bgp_export", raw.get("disable_bgp_export"), False),
                node_selector=selector,
                namespaces=tuple(namespaces),
                index=i,
                selects=selects,
                bits=bits,
            )
        )
    for i, a in enumerate(out):
        for b in out[i + 1 :]:
            if a.bits == b.bits and _overlap(a.base, a.prefix, b.base, b.prefix, a.bits):
                _fail(GROUP, f"calico_pools[{b.index}] ({b.name}).cidr", b.cidr, f"overlaps pool {a.name} ({a.cidr})")
    return out


def _overlap(base_a, prefix_a, base_b, prefix_b, bits=V4) -> bool:
    prefix = min(prefix_a, prefix_b)
    mask = prefix_mask(prefix, bits)
    return (base_a & mask) == (base_b & mask)


def validate_config(config) -> IpamConfig:
    if config is None:
        config = {}
    _dict(GROUP, "calico_ipam_config", config, CONFIG_KEYS)
    strict = _bool(GROUP, "calico_ipam_config.strict_affinity", config.get("strict_affinity"), False)
    auto = _bool(GROUP, "calico_ipam_config.auto_allocate_blocks", config.get("auto_allocate_blocks"), True)
    limit = config.get("max_blocks_per_host", 0)
    if limit is None:
        limit = 0
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        _fail(GROUP, "calico_ipam_config.max_blocks_per_host", limit, "must be an integer >= 0 (0 means 20)")
    if not strict and not auto:
        _fail(GROUP, "calico_ipam_config.auto_allocate_blocks", auto, "cannot be false while strict_affinity is false (Calico refuses this combination)")
    return IpamConfig(strict, auto, limit)


def validate_reservations(reservations) -> tuple:
    """The reserved ranges, ``(IPv4 ranges, IPv6 ranges)``, each sorted and merged (Calico's
    IPReservation ``reservedCIDRs`` hold either family)."""
    if reservations is None:
        reservations = []
    if not isinstance(reservations, list):
        _fail(GROUP, "calico_reservations", reservations, "must be a list of addresses or CIDRs")
    ranges: dict = {V4: [], V6: []}
    for i, item in enumerate(reservations):
        field = f"calico_reservations[{i}]"
        bits = V6 if isinstance(item, str) and ":" in item else V4
        try:
            text = item if isinstance(item, str) and "/" in item else f"{item}/{bits}"
            base, prefix = parse_cidr6(text) if bits == V6 else parse_cidr(text)
        except ValueError as exc:
            _fail(GROUP, field, item, f"not an IPv4 or IPv6 address or network: {exc}")
        ranges[bits].append((base, base + (1 << (bits - prefix)) - 1))
    return _merged(ranges[V4]), _merged(ranges[V6])


def _merged(ranges: list) -> list:
    ranges.sort()
    merged: list = []
    for lo, hi in ranges:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def validate_nodes(nodes, pools: list, reservations: list, reservations6: list | None = None) -> dict:
    if not isinstance(nodes, list):
        _fail(GROUP, "nodes", nodes, "must be a list of nodes")
    by_pool = {p.name: p for p in pools}
    listed = listed_namespaces(pools)
    desired = Desired(pools, {}, IpamConfig(), reservations, None, listed, reservations6=reservations6 or [])
    # Which families a workload asks for when it does not say (assign_ipv4 / assign_ipv6): Calico's CNI
    # plugin assigns IPv4 unless told otherwise and IPv6 only when told (cni-plugin configuration.md:
    # assign_ipv4 default true, assign_ipv6 default false); a dual-stack Calico sets both true in the
    # CNI config (docs "Configure dual stack or IPv6 only"). calico_pools is this project's cluster
    # config, so its families decide: IPv6 when it holds an IPv6 pool, IPv4 unless it holds only IPv6 pools.
    has6 = any(p.bits == V6 for p in pools)
    default4, default6 = (any(p.bits == V4 for p in pools) or not has6), has6
    out: dict = {}
    node_ips: dict = {}
    owners: dict = {}  # workload id -> node
    requested: dict = {V4: {}, V6: {}}  # per family: address -> (node, field)
    ns_ok: set = set()
    label_ok = naming.LABEL_RE.fullmatch  # hot loop: the compiled pattern itself
    handle_id = naming.handle_id
    for raw in nodes:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw.get("name"):
            _fail(GROUP, "nodes[]", raw, "a node needs a name")
        host = raw["name"]
        if not naming.is_node_name(host):
            _fail(GROUP, "inventory_hostname", host, naming.NODE_NAME_REASON)
        _dict(host, "node", raw, NODE_KEYS)
        if host in out:
            _fail(host, "inventory_hostname", host, "the node appears twice")
        ip_text = raw.get("ip")
        if not isinstance(ip_text, str) or "/" not in ip_text:
            _fail(host, "calico_node_ip", ip_text, "needs the prefix length (e.g. 192.168.100.100/24): CrossSubnet decides by the node's subnet")
        if ":" in ip_text:
            _fail(host, "calico_node_ip", ip_text, "an IPv6 address: calico_node_ip is the node's IPv4 address, its IPv6 one goes in calico_node_ipv6")
        try:
            ip_int, prefix = parse_cidr(ip_text, strict=False)
        except ValueError as exc:
            _fail(host, "calico_node_ip", ip_text, f"not an IPv4 address with prefix length: {exc}")
        address = ip_text.split("/")[0]
        if address in node_ips:
            _fail(host, "calico_node_ip", ip_text, f"node {node_ips[address]} has the same address")
        node_ips[address] = host
        ipv6, network6 = _node_ipv6(host, raw.get("ipv6"), node_ips)
        labels = raw.get("labels")
        if labels is None:
            labels = {}
        if not isinstance(labels, dict):
            _fail(host, "calico_node_labels", labels, "must be a mapping of label names to strings")
        clean = {}
        for key, value in labels.items():
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                _fail(host, f"calico_node_labels.{key}", value, "a label value must be a string")
            clean[str(key)] = str(value)
        workloads = raw.get("workloads")
        if workloads is None:
            workloads = []
        if not isinstance(workloads, list):
            _fail(host, "calico_workloads", workloads, "must be a list of workloads")
        wls = []
        wls6 = []
        for i, wl in enumerate(workloads):
            plain = isinstance(wl, dict) and wl.keys() <= PLAIN_WORKLOAD_KEYS  # the IPv4 keys only: the fast path
            if not plain:
                if not isinstance(wl, dict):
                    _fail(host, f"calico_workloads[{i}]", wl, "a workload is a mapping with at least a name")
                _dict(host, f"calico_workloads[{i}]", wl, WORKLOAD_KEYS)
            name = wl.get("name")
            if not isinstance(name, str) or not label_ok(name):
                _label(host, f"calico_workloads[{i}].name", name, "a workload name")
            namespace = wl.get("namespace") or "default"
            if namespace not in ns_ok:
                _label(host, f"calico_workloads[{i}].namespace", namespace, "a namespace")
                ns_ok.add(namespace)
            wid = namespace + "." + name
            other = owners.get(wid)
            if other is not None:
                if other == host:
                    _fail(host, f"calico_workloads[{i}].name", name, f"two workloads named {name!r} in namespace {namespace!r} on this host")
                _fail(host, f"calico_workloads[{i}].name", name, f"workload {wid} is also on node {other} (workload ids are cluster-wide)")
            owners[wid] = host
            if "labels" in wl:
                _workload_labels(host, i, wl["labels"])
            pool = wl.get("pool")
            ip = wl.get("ip")
            if plain:
                want4 = default4 or pool is not None or ip is not None
                want6 = default6
            else:
                want4, want6 = _families(host, i, wl, default4, default6)
            if want4:
                if pool is not None:
                    _pool_of_family(host, f"calico_workloads[{i}].pool", pool, by_pool, V4)
                ip_int_wl = None
                if ip is not None:
                    field = f"calico_workloads[{i}]"
                    try:
                        ip_int_wl = ip_to_int(ip.split("/32")[0] if isinstance(ip, str) else ip)
                    except (ValueError, TypeError, AttributeError):
                        _fail(host, f"{field}.ip", ip, "not an IPv4 address" + (" (an IPv6 address goes in ipv6)" if isinstance(ip, str) and ":" in ip else ""))
                    ip_int_wl = _check_request(desired, host, field, ip, ip_int_wl, namespace, pool, by_pool, requested[V4])
                wls.append(Workload(name, namespace, wid, handle_id(namespace, name), ip_int_wl, pool, i))
            if want6:
                wls6.append(_workload6(desired, host, i, wl, name, namespace, wid, by_pool, requested[V6]))
        if wls6:
            wls += wls6
        groups: dict = {}
        for wl in wls:
            if wl.ip is None:
                key = (wl.namespace, wl.pool, wl.bits)
                group = groups.get(key)
                if group is None:
                    groups[key] = [wl.handle]
                else:
                    group.append(wl.handle)
        out[host] = Node(host, address, format_cidr(ip_int & prefix_mask(prefix), prefix), clean, wls, groups, ipv6, network6)
    # A pool a workload names, or the pool of the address it requests, must be allowed to serve it.
    for host, node in out.items():
        for wl in node.workloads:
            if wl.pool is not None:
                # A disabled pool still keeps the addresses it has (the planner checks that): naming it
                # is fine, only a new address from it is refused.
                reason = refusal(by_pool[wl.pool], node, wl.namespace, listed, allow_disabled=True)
                if reason:
                    _fail(host, f"{wl.field}.{wl.pool_key}", wl.pool, reason)
            if wl.ip is not None:
                pool = next(p for p in pools if p.contains(wl.ip, wl.bits))
                reason = refusal(pool, node, wl.namespace, listed)
                if reason:
                    _fail(host, f"{wl.field}.{wl.ip_key}", address_text(wl.ip, wl.bits), f"inside pool {pool.name}, which may not serve it: {reason}")
    return dict(sorted(out.items()))


def _workload_labels(host, index, labels) -> None:
    """A workload's ``labels`` (for policy; the IPAM ignores them): a mapping of Calico labels, or null."""
    if labels is None:
        return
    if not isinstance(labels, dict):
        _fail(host, f"calico_workloads[{index}].labels", labels, "must be a mapping of label names to strings")
    for key, value in labels.items():
        problem = naming.label_problem(key, value)
        if problem:
            _fail(host, f"calico_workloads[{index}].labels.{key}", value, problem)


PLAIN_WORKLOAD_KEYS = frozenset(("name", "namespace", "ip", "pool", "labels"))


def _node_ipv6(host: str, text, node_ips: dict) -> tuple:
    """``calico_node_ipv6`` (optional): the node's IPv6 address WITH its prefix length, as ``calico_node_ip``
    (Calico's Node ``spec.bgp.ipv6Address``, e.g. ``fd00:100::10/64``): (address, subnet) or (None, None)."""
    if text is None:
        return None, None
    if not isinstance(text, str) or "/" not in text:
        _fail(host, "calico_node_ipv6", text, "needs the prefix length (e.g. fd00:100::10/64): CrossSubnet decides by the node's subnet")
    if ":" not in text:
        _fail(host, "calico_node_ipv6", text, "an IPv4 address: calico_node_ipv6 is the node's IPv6 address (the IPv4 one is calico_node_ip)")
    try:
        base, prefix = parse_cidr6(text, strict=False)
        address = address_text(ip6_to_int(text.rpartition("/")[0]), V6)  # RFC 5952 spelling
    except ValueError as exc:
        _fail(host, "calico_node_ipv6", text, f"not an IPv6 address with prefix length: {exc}")
    if address in node_ips:
        _fail(host, "calico_node_ipv6", text, f"node {node_ips[address]} has the same address")
    node_ips[address] = host
    return address, format_cidr(base & prefix_mask(prefix, V6), prefix, V6)


def _families(host: str, i: int, wl: dict, default4: bool, default6: bool) -> tuple:
    """Which families workload ``wl`` asks for: its ``assign_ipv4``/``assign_ipv6`` (Calico's CNI flags), else
    the inventory's default; an address or pool of a family asks for that family."""
    field = f"calico_workloads[{i}]"
    asks = {}
    for flag, bits, keys, default in (("assign_ipv4", V4, ("ip", "pool"), default4), ("assign_ipv6", V6, ("ipv6", "ipv6_pool"), default6)):
        named = [key for key in keys if wl.get(key) is not None]
        value = _bool(host, f"{field}.{flag}", wl.get(flag), default or bool(named))
        if not value and named:
            _fail(host, f"{field}.{named[0]}", wl[named[0]], f"{flag} is false: no {FAMILY[bits]} address is assigned to this workload")
        asks[bits] = value
    if not asks[V4] and not asks[V6]:
        _fail(host, f"{field}.assign_ipv4", wl.get("assign_ipv4"), "assign_ipv4 and assign_ipv6 are both false: the workload would get no address")
    return asks[V4], asks[V6]


def _pool_of_family(host: str, field: str, name, by_pool: dict, bits: int) -> None:
    """A pool a workload is pinned to must exist and be of the family of the key naming it."""
    pool = by_pool.get(name)
    if pool is None:
        _fail(host, field, name, f"unknown pool (pools: {', '.join(by_pool) or 'none'})")
    if pool.bits != bits:
        key = "ipv6_pool" if pool.bits == V6 else "pool"
        _fail(host, field, name, f"pool {name} ({pool.cidr}) is an {FAMILY[pool.bits]} pool: name it in {key}")


def _workload6(desired, host, i, wl, name, namespace, wid, by_pool, requested) -> Workload:
    """The IPv6 entry of workload ``wl``: its ``ipv6`` request and ``ipv6_pool`` pin checked as ``ip``/``pool``."""
    field = f"calico_workloads[{i}]"
    pool = wl.get("ipv6_pool")
    if pool is not None:
        _pool_of_family(host, f"{field}.ipv6_pool", pool, by_pool, V6)
    ip = wl.get("ipv6")
    address = None
    if ip is not None:
        try:
            address = ip6_to_int(ip.split("/128")[0] if isinstance(ip, str) else ip)
        except (ValueError, TypeError, AttributeError):
            _fail(host, f"{field}.ipv6", ip, "not an IPv6 address" + (" (an IPv4 address goes in ip)" if isinstance(ip, str) and "." in ip else ""))
        address = _check_request(desired, host, field, ip, address, namespace, pool, by_pool, requested, V6)
    return Workload(name, namespace, wid, naming.handle_id_v6(namespace, name), address, pool, i, V6)


def listed_namespaces(pools: list) -> frozenset:
    """``(namespace, bits)`` for every namespace a pool of the family ``bits`` lists. Per family: a namespace an
    IPv4 pool lists takes its IPv4 address only from such pools, and its IPv6 one from the IPv6 pools without
    ``namespaces`` unless an IPv6 pool lists it too (each family's pool is chosen on its own)."""
    return frozenset((ns, p.bits) for p in pools for ns in p.namespaces)


def refusal(pool: Pool, node: Node, namespace: str, listed: frozenset, allow_disabled: bool = False) -> str | None:
    """Why ``pool`` may not serve a workload of ``namespace`` on ``node`` (None: it may).

    ``listed`` holds the namespaces some pool lists, with the pool's family (:func:`listed_namespaces`):
    such a namespace takes only from those pools - in that family.
    """
    if pool.disabled and not allow_disabled:
        return f"pool {pool.name} is disabled"
    if not pool.selects(node.labels):
        return f"pool {pool.name}'s node_selector {pool.node_selector!r} does not select this node"
    if pool.namespaces and namespace not in pool.namespaces:
        return f"pool {pool.name} serves only namespaces {', '.join(pool.namespaces)}"
    if not pool.namespaces and (namespace, pool.bits) in listed:
        return f"namespace {namespace} takes addresses only from the pools that list it"
    return None


def _check_request(desired, host, field, ip, address, namespace, pool_name, by_pool, requested, bits=V4):
    key = "ip" if bits == V4 else "ipv6"
    pools = [by_pool[pool_name]] if pool_name else list(by_pool.values())
    inside = [p for p in pools if p.contains(address, bits)]
    if not inside:
        where = f"pool {pool_name}" if pool_name else ("every pool" if bits == V4 else "every IPv6 pool")
        _fail(host, f"{field}.{key}", ip, f"outside {where}")
    if desired.reserved(address, bits):
        _fail(host, f"{field}.{key}", ip, "reserved by calico_reservations")
    if address in requested:
        other_host, other_field = requested[address]
        _fail(host, f"{field}.{key}", ip, f"also requested by {other_host} {other_field}")
    requested[address] = (host, field)
    return address


def validate(pools=None, config=None, reservations=None, nodes=None, only_node=None, remove_nodes=None, evacuate=None) -> Desired:
    """Check the whole inventory; return the planner's input or raise :class:`ValidationError`.

    ``remove_nodes`` names nodes of ``nodes`` that are leaving: they are dropped before anything is
    checked, so the plan releases their addresses, affinities and emptied blocks exactly as for a node
    deleted from the inventory (and a leaving node's own inventory errors do not block its removal).
    """
    with no_gc():
        desired = _validate(pools, config, reservations, nodes, only_node, remove_nodes)
    if evacuate:
        desired.evacuate = validate_evacuate(evacuate, desired, only_node, remove_nodes)
    return desired


def validate_evacuate(evacuate, desired: Desired, only_node=None, remove_nodes=None) -> Evacuation:
    """Check a pool migration step ``{pool: OLD, nodes: [HOST, ...], run_nodes: [HOST, ...], batch: B}``
    against the validated inventory.

    The pool must be one of ``calico_pools`` and already ``disabled`` (Calico's way: the new pool is
    added, the old one disabled, then the workloads move); every node must be a node of the inventory;
    an evacuated node's workloads must have an enabled pool to move to, and none may be pinned to the
    old pool (``pool:`` or ``ip:`` inside it). Not combined with ``node`` or ``remove_nodes``. An empty
    ``nodes`` moves nothing: the run only records the pools (the old one not again once it is removed).
    ``run_nodes`` (optional, null = all of ``nodes``) must be nodes of ``nodes``; ``batch`` (optional,
    null = 1) an integer >= 1 (not a boolean): the hosts moved per round of the plan.
    """
    if not isinstance(evacuate, dict):
        _fail(GROUP, "evacuate", evacuate, "must be a mapping {pool: OLD, nodes: [HOST, ...]}")
    unknown = sorted(str(k) for k in evacuate if k not in ("pool", "nodes", "run_nodes", "batch"))
    if unknown:
        _fail(GROUP, "evacuate", evacuate, f"unknown key(s) {', '.join(unknown)} (allowed: batch, nodes, pool, run_nodes)")
    if only_node is not None:
        _fail(only_node, "evacuate", evacuate, "cannot be combined with node (a per-host run)")
    if remove_nodes:
        _fail(GROUP, "evacuate", evacuate, "cannot be combined with remove_nodes (remove the node first)")
    name = evacuate.get("pool")
    pools = desired.pools_by_name
    if not isinstance(name, str) or name not in pools:
        _fail(
            GROUP,
            "evacuate.pool",
            name,
            f"not a pool of calico_pools (pools: {', '.join(pools) or 'none'}); the old pool stays listed, with disabled: true, until the migration is done",
        )
    pool = pools[name]
    if not pool.disabled:
        _fail(
            GROUP,
            f"calico_pools[{pool.index}] ({name}).disabled",
            pool.disabled,
            "the pool to migrate away from must be marked disabled: true first (a pool in use hands out new addresses otherwise)",
        )
    nodes = evacuate.get("nodes")
    if not isinstance(nodes, list):
        _fail(GROUP, "evacuate.nodes", nodes, "must be a list of node names (empty: move nothing in this run)")
    for index, node_name in enumerate(nodes):
        if not isinstance(node_name, str) or node_name not in desired.nodes:
            _fail(str(node_name), f"evacuate.nodes[{index}]", node_name, f"not a node of the inventory (nodes: {', '.join(sorted(desired.nodes)) or 'none'})")
    run_nodes = evacuate.get("run_nodes")
    if run_nodes is not None:
        if not isinstance(run_nodes, list):
            _fail(GROUP, "evacuate.run_nodes", run_nodes, "must be a list of node names (the nodes this run moves)")
        for index, node_name in enumerate(run_nodes):
            if not isinstance(node_name, str) or node_name not in nodes:
                _fail(str(node_name), f"evacuate.run_nodes[{index}]", node_name, f"not one of evacuate.nodes ({', '.join(sorted(map(str, nodes))) or 'none'})")
        run_nodes = tuple(run_nodes)
    batch = evacuate.get("batch")
    if batch is None:
        batch = 1
    elif isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        _fail(GROUP, "evacuate.batch", batch, "must be an integer >= 1 (the hosts moved per round; 1: host by host)")
    enabled = [p for p in desired.pools if not p.disabled]
    if not enabled:
        _fail(
            GROUP,
            "calico_pools",
            ", ".join(p.name for p in desired.pools),
            f"no enabled pool to move the addresses of {name} to: add the new pool to calico_pools",
        )
    for node_name in nodes:
        node = desired.nodes[node_name]
        for wl in node.workloads:
            if wl.pool == name:
                _fail(
                    node_name,
                    f"{wl.field}.{wl.pool_key}",
                    wl.pool,
                    f"workload {wl.id} is pinned to pool {name}, which it is leaving: pin it to the new pool or drop the pin",
                )
            if wl.ip is not None and pool.contains(wl.ip, wl.bits):
                _fail(
                    node_name,
                    f"{wl.field}.{wl.ip_key}",
                    address_text(wl.ip, wl.bits),
                    f"workload {wl.id} requests an address in pool {name}, which it is leaving: request one in the new pool or drop the request",
                )
            if not any(
                p
                for p in enabled
                if p.bits == wl.bits and refusal(p, node, wl.namespace, listed=desired.listed_namespaces) is None and (wl.pool is None or p.name == wl.pool)
            ):
                _fail(
                    node_name,
                    f"{wl.field}",
                    wl.id,
                    f"no enabled pool may serve workload {wl.id} on this node once it leaves pool {name} (check the new pool's node_selector and namespaces)",
                )
    return Evacuation(pool, frozenset(nodes), run_nodes, batch)


def leaving(nodes, remove_nodes, only_node=None) -> list:
    """``nodes`` without the nodes of ``remove_nodes``, each of which must be one of them."""
    if not remove_nodes:
        return nodes
    if not isinstance(remove_nodes, list):
        _fail(GROUP, "remove_nodes", remove_nodes, "must be a list of node names")
    if only_node is not None:
        _fail(only_node, "remove_nodes", remove_nodes, "cannot be combined with node (a per-host run)")
    names = {n.get("name") for n in nodes if isinstance(n, dict)} if isinstance(nodes, list) else set()
    for index, name in enumerate(remove_nodes):
        if not isinstance(name, str) or name not in names:
            _fail(str(name), f"remove_nodes[{index}]", name, f"not a node of the inventory (nodes: {', '.join(sorted(str(n) for n in names)) or 'none'})")
    gone = set(remove_nodes)
    if gone == names:
        _fail(GROUP, "remove_nodes", remove_nodes, "would remove every node; at least one must stay")
    return [n for n in nodes if n.get("name") not in gone]


def _validate(pools, config, reservations, nodes, only_node, remove_nodes=None) -> Desired:
    pool_list = validate_pools(pools)
    cfg = validate_config(config)
    ranges, ranges6 = validate_reservations(reservations)
    nodes = leaving(nodes if nodes is not None else [], remove_nodes, only_node)
    node_map = validate_nodes(nodes, pool_list, ranges, ranges6)
    if only_node is not None and only_node not in node_map:
        _fail(only_node, "node", only_node, "not one of the nodes given")
    listed = listed_namespaces(pool_list)
    return Desired(pool_list, node_map, cfg, ranges, only_node, listed, reservations6=ranges6)


__all__ = ["Desired", "Node", "Pool", "Workload", "validate", "refusal", "GROUP"]
