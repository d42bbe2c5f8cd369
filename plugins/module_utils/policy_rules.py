# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Network policy on one host: a HostProgram (docs/policy.md, ``policy_compile.host_programs``) turned
into kernel rules, nftables or iptables-legacy + ipset, planned and applied in one transaction.

Felix's shape: conntrack first (established/related accepted, invalid dropped); per workload one
chain for traffic from its ``cali…`` interface (its egress policies, to anywhere: another workload,
another host, this host) and one for traffic to it (its ingress policies); one chain per policy and
direction; selectors already resolved into address sets (nft named sets / ipsets), so a workload
joining a selector changes one set element, not the rules.

Verdicts, as Felix does with its mark bits: ``allow`` sets :data:`MARK_ALLOW` and returns, ``pass``
sets :data:`MARK_PASS` and returns (one tier, the namespace profile allows), ``deny`` drops, ``log``
logs and continues. The workload chain calls its policy chains in order and returns as soon as one
set a mark; after the last one it drops (end-of-tier deny) -- only when the endpoint has at least
one chain for that direction. Nothing accepts early: a packet allowed by its source's egress
policies still goes through its destination's ingress chain (workload to workload on one host),
and the base chain's policy (accept) applies at the end. Traffic from the host to its own
workloads (output hook) is not filtered.

Objects of the project's own only: nftables table ``ip l3calico_policy``, or iptables-legacy chains
``L3CP-*`` in table filter (one jump each from FORWARD and INPUT) and ipsets ``l3cp-*``.

Dual stack (a program with ``sets6``): a second table ``ip6 l3calico_policy`` beside the ``ip`` one, as
Felix keeps an ``ip`` and an ``ip6`` table (felix/nftables ``NewTable``: one per IP version), written in
the same ``nft -f`` transaction: each family's view of the program (:meth:`Program.family`: its set
members, the rules whose ``ip_version`` is its own or absent), ``ip6 saddr``/``icmpv6`` matches, and in
the input hook ICMPv6 neighbour discovery and MLD (types 130-133, 135, 136) accepted before the workload
chains, as Felix's workload-to-host chain does for IPv6. The ``ip`` table of a dual-stack program is
exactly the one of the same program without its IPv6 parts, so an IPv4-only host's table, record and
generation fast path are what they always were. IPv6 sets are keyed ``ip6:<name>`` among the sets
(:func:`all_sets`; the record, the changes). On iptables-legacy the IPv6 view goes into
ip6tables-legacy (the same chains, ``icmp6`` matches, neighbour discovery and MLD returned before the
workload chains in ``L3CP-INPUT``) with ipsets ``l3cp-6…`` of family inet6, in the same run; a host
without ip6tables-legacy refuses a dual-stack program before any change (:data:`IPTABLES_NO_IPV6`).
The backend is the firewall's (``firewall.detect_backend``): nftables when the kernel has the
``ip`` family, else iptables-legacy. The iptables-legacy backend needs ``ipset`` (the User-mode
Linux lab kernel has ``ip_set``, ``ip_set_hash_net`` and ``xt_set``).

Plan: the current state is read (``nft -j list table``; ``iptables-legacy-save -t filter`` and
``ipset save``) and compared with the program: nothing differs -> nothing is written at all; only
set members differ (and the rules are those recorded at the last apply) -> one ``add element`` /
``delete element`` transaction (``ipset restore``); else the whole table is replaced in one
transaction. The state file keeps the digest of the rules applied and the listing read back
afterwards, so rules changed behind the module's back are rewritten.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import os
import re
import shutil
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from ansible_collections.l3.calico.plugins.module_utils import firewall, iproute
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.fileutil import atomic_write, read_record

TABLE = "l3calico_policy"  # one table per family: ip (always) and ip6 (dual stack), as Felix's ip/ip6 "calico" tables
IP6_KEY = "ip6:"  # an IPv6 set among all sets (all_sets)
# ICMPv6 a workload may send its host before any policy (Felix's workload-to-host chain, IPv6): multicast
# listener query/report/done, router solicitation, neighbour solicitation and advertisement.
NDP_TYPES = (130, 131, 132, 133, 135, 136)
ICMPV6 = 58
DEFAULT_STATE_FILE = "/run/l3-calico/policy.json"
MARK_ALLOW = 0x10000  # Felix's accept mark bit
MARK_PASS = 0x20000  # Felix's pass mark bit
MARK_MASK = MARK_ALLOW | MARK_PASS
IPT_PREFIX = "L3CP-"  # every iptables-legacy chain of this part
IPSET_PREFIX = "l3cp-"  # every ipset of this part
IPSET6_PREFIX = "l3cp-6"  # its IPv6 ones (family inet6): program set names start with a letter, never "6"
IPT_JUMPS = (("FORWARD", "L3CP-FORWARD"), ("INPUT", "L3CP-INPUT"))
PORT_PROTOCOLS = (6, 17, 132)
ICMP = 1
ACTIONS = ("allow", "deny", "log", "pass")
NETLINK_NETFILTER, NFNL_SUBSYS_NFTABLES, NFT_MSG_NEWGEN, NFT_MSG_GETGEN, SO_NETNS_COOKIE = 12, 10, 15, 16, 71
MULTIPORT_MAX = 15  # iptables multiport: at most 15 ports, a range counts as two
NFT_COMMENT = 120  # nft keeps at most 128 bytes of a comment (iptables' comment match: 255)

SET_NAME = re.compile(r"[a-z][a-z0-9_]{0,30}")
CHAIN_NAME = re.compile(r"[a-z][a-z0-9_]{0,27}")
IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
TEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/\[\] -]{0,199}")  # policy names, refs, workloads: no quotes

# The options of this part (module l3.calico.policy; documented by doc fragment l3.calico.policy).
ARGUMENT_SPEC: dict[str, dict[str, Any]] = dict(
    firewall_backend=dict(type="str", choices=list(firewall.BACKENDS), default="auto"),
    policy_state_file=dict(type="path", default=DEFAULT_STATE_FILE),
)


class PolicyRulesError(L3CalicoError, ValueError):
    """A malformed program or no usable backend (raised before any change)."""


IPTABLES_NO_IPV6 = (
    "policy program: dual stack (sets6: workloads with IPv6 addresses) on iptables-legacy needs "
    "ip6tables-legacy-restore (Debian package iptables), not found: install it, or use firewall_backend nftables"
)


@dataclass(frozen=True)
class Options:
    backend: str = "auto"
    state_file: str = DEFAULT_STATE_FILE

    @classmethod
    def from_params(cls, params: Mapping) -> Options:
        return cls(backend=params["firewall_backend"], state_file=params["policy_state_file"])


# ----------------------------------------------------------------------------------------------
# The program, checked strictly
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entity:
    nets: tuple[str, ...] = ()
    not_nets: tuple[str, ...] = ()
    set: Optional[str] = None
    not_set: Optional[str] = None
    ports: tuple[tuple[int, int], ...] = ()
    not_ports: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Rule:
    action: str
    ref: str
    protocol: Optional[int] = None
    not_protocol: Optional[int] = None
    icmp: Optional[tuple[int, Optional[int]]] = None
    not_icmp: Optional[tuple[int, Optional[int]]] = None
    source: Entity = Entity()
    destination: Entity = Entity()
    ip_version: Optional[int] = None  # 4 or 6: that family only; None: both


@dataclass(frozen=True)
class Chain:
    name: str
    policy: str
    direction: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Endpoint:
    interface: str
    workload: str
    address: Optional[str]  # None: an IPv6-only endpoint (dual stack)
    ingress: tuple[str, ...]
    egress: tuple[str, ...]
    address6: Optional[str] = None


@dataclass(frozen=True)
class Program:
    sets: Mapping[str, tuple[str, ...]]  # name -> members (canonical CIDRs, none inside another)
    chains: Mapping[str, Chain]
    endpoints: tuple[Endpoint, ...]
    sets6: Optional[Mapping[str, tuple[str, ...]]] = None  # dual stack: the sets' IPv6 members; None: IPv4 only

    @property
    def dual(self) -> bool:
        return self.sets6 is not None

    def family(self, version: int) -> Program:
        """The program as one family sees it: that family's set members and the rules that apply to it
        (an IPv4-only program is its own IPv4 view)."""
        sets = self.sets6 if version == 6 else self.sets
        chains = {
            name: dataclasses.replace(chain, rules=tuple(r for r in chain.rules if r.ip_version in (None, version))) for name, chain in self.chains.items()
        }
        if self.dual:  # only the sets this family's rules use: the ip side of a dual-stack program is the IPv4 program's
            used = {n for c in chains.values() for r in c.rules for e in (r.source, r.destination) for n in (e.set, e.not_set) if n}
            sets = {name: members for name, members in (sets or {}).items() if name in used}
        return Program(sets or {}, chains, self.endpoints)


def all_sets(program: Program) -> dict[str, tuple[str, ...]]:
    """Every set of both tables by key: an IPv4 set by its name, an IPv6 one as ``ip6:<name>`` (``:`` is in
    no nft set name, so the keys never collide)."""
    if not program.dual:
        return dict(program.sets)
    out = dict(program.family(4).sets)
    out.update({IP6_KEY + name: members for name, members in program.family(6).sets.items()})
    return out


def _set_family(key: str) -> tuple[str, str]:
    """``(nft family, set name)`` of a key of :func:`all_sets`."""
    return ("ip6", key[len(IP6_KEY) :]) if key.startswith(IP6_KEY) else ("ip", key)


def _fail(where: str, message: str, value: Any) -> PolicyRulesError:
    return PolicyRulesError(f"policy program: {where}: {message} (got {value!r})")


def _keys(where: str, value: Any, required: Sequence[str], optional: Sequence[str] = ()) -> Mapping:
    if not isinstance(value, Mapping):
        raise _fail(where, "must be a mapping", value)
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(map(str, unknown))}; allowed: {', '.join([*required, *optional])}", value)
    missing = [k for k in required if k not in value]
    if missing:
        raise _fail(where, f"missing key(s) {', '.join(missing)}", value)
    return value


def _int(where: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(where, f"must be an integer {low}..{high}", value)
    return value


def _name(where: str, value: Any, pattern: re.Pattern, what: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise _fail(where, f"is not {what} ({pattern.pattern})", value)
    return value


def _cidr(where: str, value: Any, version: int = 4) -> str:
    try:
        kind = ipaddress.IPv6Network if version == 6 else ipaddress.IPv4Network
        net = kind(value) if isinstance(value, str) and "/" in value else None
    except ValueError:
        net = None
    if net is None or str(net) != value:
        if version == 6:
            raise _fail(where, "is not a canonical IPv6 CIDR (RFC 5952 address/len, host bits zero)", value)
        raise _fail(where, "is not a canonical IPv4 CIDR (a.b.c.d/len, host bits zero)", value)
    return value


def _list(where: str, value: Any) -> list:
    if not isinstance(value, list):
        raise _fail(where, "must be a list", value)
    return value


def _without_covered(cidrs: Sequence[str]) -> tuple[str, ...]:
    """Sorted members, those inside another one dropped (an nft interval set refuses overlaps); one family."""
    nets = sorted({ipaddress.ip_network(c) for c in cidrs}, key=lambda n: (int(n.network_address), n.prefixlen))
    kept: list = []
    for net in nets:
        if kept and net.subnet_of(kept[-1]):
            continue
        kept.append(net)
    return tuple(str(n) for n in kept)


def _icmp(where: str, value: Any) -> Optional[tuple[int, Optional[int]]]:
    if value is None:
        return None
    _keys(where, value, ("type",), ("code",))
    code = value.get("code")
    return (_int(f"{where}.type", value["type"], 0, 255), None if code is None else _int(f"{where}.code", code, 0, 255))


def _ports(where: str, value: Any) -> tuple[tuple[int, int], ...]:
    out = []
    for index, item in enumerate(_list(where, value)):
        if not isinstance(item, list) or len(item) != 2:
            raise _fail(f"{where}[{index}]", "must be [low, high]", item)
        low, high = (_int(f"{where}[{index}]", p, 0, 65535) for p in item)
        if low > high:
            raise _fail(f"{where}[{index}]", "range is upside down", item)
        out.append((low, high))
    return tuple(out)


def _entity(where: str, value: Any, sets: Mapping, version: int = 4) -> Entity:
    keys = ("nets", "not_nets", "set", "not_set", "ports", "not_ports")
    _keys(where, value, (), keys)
    named = {}
    for key in ("set", "not_set"):
        name = value.get(key)
        if name is not None:
            _name(f"{where}.{key}", name, SET_NAME, "a set name")
            if name not in sets:
                raise _fail(f"{where}.{key}", "names no set of the program", name)
        named[key] = name
    return Entity(
        nets=tuple(_cidr(f"{where}.nets[{i}]", c, version) for i, c in enumerate(_list(f"{where}.nets", value.get("nets", [])))),
        not_nets=tuple(_cidr(f"{where}.not_nets[{i}]", c, version) for i, c in enumerate(_list(f"{where}.not_nets", value.get("not_nets", [])))),
        ports=_ports(f"{where}.ports", value.get("ports", [])),
        not_ports=_ports(f"{where}.not_ports", value.get("not_ports", [])),
        **named,
    )


def _rule(where: str, value: Any, sets: Mapping, dual: bool = False) -> Rule:
    keys = ("protocol", "not_protocol", "icmp", "not_icmp", "source", "destination", "ref", "ip_version")
    _keys(where, value, ("action",), keys)
    action = value["action"]
    if action not in ACTIONS:
        raise _fail(f"{where}.action", f"must be one of {', '.join(ACTIONS)}", action)
    ip_version = value.get("ip_version")
    if ip_version is not None and (isinstance(ip_version, bool) or ip_version not in (4, 6)):
        raise _fail(f"{where}.ip_version", "must be 4 or 6", ip_version)
    if ip_version == 6 and not dual:
        raise _fail(f"{where}.ip_version", "an IPv6 rule in a program without sets6 (IPv4 only)", ip_version)
    nets = any((value.get(side) or {}).get(key) for side in ("source", "destination") for key in ("nets", "not_nets") if isinstance(value.get(side), Mapping))
    if dual and nets and ip_version is None:
        raise _fail(where, "a rule with nets needs its ip_version in a dual-stack program (the nets' family)", value.get("ref", where))
    protocol, not_protocol = (None if value.get(k) is None else _int(f"{where}.{k}", value[k], 0, 255) for k in ("protocol", "not_protocol"))
    rule = Rule(
        action=action,
        ref=_name(f"{where}.ref", value.get("ref", where), TEXT, "a reference (letters, digits, _.:/[] -)"),
        protocol=protocol,
        not_protocol=not_protocol,
        icmp=_icmp(f"{where}.icmp", value.get("icmp")),
        not_icmp=_icmp(f"{where}.not_icmp", value.get("not_icmp")),
        source=_entity(f"{where}.source", value.get("source", {}), sets, ip_version or 4),
        destination=_entity(f"{where}.destination", value.get("destination", {}), sets, ip_version or 4),
        ip_version=ip_version,
    )
    if (rule.icmp or rule.not_icmp) and rule.protocol not in (ICMP, ICMPV6):
        raise _fail(where, "icmp/not_icmp need protocol 1 (ICMP) or 58 (ICMPv6)", rule.protocol)
    if (rule.icmp or rule.not_icmp) and rule.protocol == ICMPV6 and ip_version != 6:
        raise _fail(where, "ICMPv6 type/code need ip_version 6 (an ICMPv6 header exists in IPv6 only)", ip_version)
    if (rule.icmp or rule.not_icmp) and rule.protocol == ICMP and ip_version == 6:
        raise _fail(where, "ICMP type/code in an IPv6 rule (an ICMP header exists in IPv4 only)", ip_version)
    if any(e.ports or e.not_ports for e in (rule.source, rule.destination)) and rule.protocol not in PORT_PROTOCOLS:
        raise _fail(where, "ports need protocol 6 (TCP), 17 (UDP) or 132 (SCTP)", rule.protocol)
    return rule


def parse_program(data: Any) -> Program:
    """The program checked as strictly as the inventory; raises :class:`PolicyRulesError`."""
    _keys("program", data, ("version", "sets", "chains", "endpoints"), ("sets6",))
    if data["version"] != 1 or isinstance(data["version"], bool):
        raise _fail("program.version", "must be 1", data["version"])
    if not isinstance(data["sets"], Mapping):
        raise _fail("program.sets", "must be a mapping", data["sets"])
    sets = {}
    for name, members in sorted(data["sets"].items()):
        _name("program.sets", name, SET_NAME, "a set name")
        cidrs = [_cidr(f"program.sets.{name}[{i}]", c) for i, c in enumerate(_list(f"program.sets.{name}", members))]
        if len(set(cidrs)) != len(cidrs):
            raise _fail(f"program.sets.{name}", "lists a member twice", members)
        sets[name] = _without_covered(cidrs)
    sets6 = None
    if "sets6" in data:
        if not isinstance(data["sets6"], Mapping) or set(data["sets6"]) != set(sets):
            raise _fail("program.sets6", "must be a mapping with the names of sets (each set's IPv6 members)", data["sets6"])
        sets6 = {}
        for name, members in sorted(data["sets6"].items()):
            cidrs = [_cidr(f"program.sets6.{name}[{i}]", c, 6) for i, c in enumerate(_list(f"program.sets6.{name}", members))]
            if len(set(cidrs)) != len(cidrs):
                raise _fail(f"program.sets6.{name}", "lists a member twice", members)
            sets6[name] = _without_covered(cidrs)
    if not isinstance(data["chains"], Mapping):
        raise _fail("program.chains", "must be a mapping", data["chains"])
    chains = {}
    for name, chain in sorted(data["chains"].items()):
        where = f"program.chains.{name}"
        _name("program.chains", name, CHAIN_NAME, "a chain name")
        _keys(where, chain, ("policy", "direction", "rules"))
        if chain["direction"] not in ("ingress", "egress"):
            raise _fail(f"{where}.direction", "must be ingress or egress", chain["direction"])
        chains[name] = Chain(
            name,
            _name(f"{where}.policy", chain["policy"], TEXT, "a policy name"),
            chain["direction"],
            tuple(_rule(f"{where}.rules[{i}]", r, sets, sets6 is not None) for i, r in enumerate(_list(f"{where}.rules", chain["rules"]))),
        )
    endpoints, interfaces, addresses = [], set(), set()
    for index, item in enumerate(_list("program.endpoints", data["endpoints"])):
        where = f"program.endpoints[{index}]"
        _keys(where, item, ("interface", "workload", "address", "ingress", "egress"), ("address6",) if sets6 is not None else ())
        interface = _name(f"{where}.interface", item["interface"], IFNAME, "an interface name")
        try:
            address = str(ipaddress.IPv4Address(item["address"])) if isinstance(item["address"], str) else None
        except ValueError:
            address = None
        ipv6_only = item["address"] is None and sets6 is not None and item.get("address6") is not None
        if (address is None or address != item["address"]) and not ipv6_only:
            raise _fail(f"{where}.address", "is not a canonical IPv4 address (null only for an IPv6-only endpoint of a dual-stack program)", item["address"])
        address6 = item.get("address6")
        if address6 is not None:
            try:
                canonical6 = str(ipaddress.IPv6Address(address6)) if isinstance(address6, str) else None
            except ValueError:
                canonical6 = None
            if canonical6 != address6:
                raise _fail(f"{where}.address6", "is not a canonical IPv6 address (RFC 5952)", address6)
        if interface in interfaces or (address is not None and address in addresses) or (address6 is not None and address6 in addresses):
            raise _fail(where, "interface or address listed twice", item)
        interfaces.add(interface)
        if address is not None:
            addresses.add(address)
        if address6 is not None:
            addresses.add(address6)
        lists = {}
        for direction in ("ingress", "egress"):
            names = _list(f"{where}.{direction}", item[direction])
            for name in names:
                if name not in chains or chains[name].direction != direction:
                    raise _fail(f"{where}.{direction}", f"names no {direction} chain of the program", name)
            if len(set(names)) != len(names):
                raise _fail(f"{where}.{direction}", "lists a chain twice", names)
            lists[direction] = tuple(names)
        endpoints.append(Endpoint(interface, _name(f"{where}.workload", item["workload"], TEXT, "a workload name"), address, **lists, address6=address6))
    return Program(sets, chains, tuple(sorted(endpoints, key=lambda e: e.interface)), sets6)


# ----------------------------------------------------------------------------------------------
# nftables
# ----------------------------------------------------------------------------------------------


def _nft_list(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _nft_ports(ports: Sequence[tuple[int, int]]) -> list[str]:
    return [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ports]


def _nft_entity(entity: Entity, addr: str, port: str, ip: str = "ip") -> list[str]:
    out = []
    if entity.nets:
        out.append(f"{ip} {addr} {_nft_list(entity.nets)}")
    if entity.not_nets:
        out.append(f"{ip} {addr} != {_nft_list(entity.not_nets)}")
    if entity.set:
        out.append(f"{ip} {addr} @{entity.set}")
    if entity.not_set:
        out.append(f"{ip} {addr} != @{entity.not_set}")
    if entity.ports:
        out.append(f"th {port} {_nft_list(_nft_ports(entity.ports))}")
    if entity.not_ports:
        out.append(f"th {port} != {_nft_list(_nft_ports(entity.not_ports))}")
    return out


def _nft_icmp(icmp: tuple[int, Optional[int]], negate: bool, header: str = "icmp") -> str:
    op = "!= " if negate else ""
    kind, code = icmp
    if code is None:
        return f"{header} type {op}{kind}"
    return f"{header} type . {header} code {op}{{ {kind} . {code} }}"


def _nft_match(rule: Rule, ip: str = "ip") -> list[str]:
    out = []
    if rule.protocol is not None:
        out.append(f"meta l4proto {rule.protocol}")
    if rule.not_protocol is not None:
        out.append(f"meta l4proto != {rule.not_protocol}")
    header = "icmpv6" if rule.protocol == ICMPV6 else "icmp"
    if rule.icmp:
        out.append(_nft_icmp(rule.icmp, False, header))
    if rule.not_icmp:
        out.append(_nft_icmp(rule.not_icmp, True, header))
    return out + _nft_entity(rule.source, "saddr", "sport", ip) + _nft_entity(rule.destination, "daddr", "dport", ip)


def _nft_rule(chain: Chain, rule: Rule, ip: str = "ip") -> str:
    verdict = {
        "allow": f"meta mark set meta mark | 0x{MARK_ALLOW:08x} return",
        "pass": f"meta mark set meta mark | 0x{MARK_PASS:08x} return",
        "deny": "drop",
        "log": f'log prefix "l3calico {chain.name}: "',
    }[rule.action]
    return " ".join([*_nft_match(rule, ip), verdict, f'comment "{rule.ref[:NFT_COMMENT]}"'])


def _wl_chain(direction: str, interface: str) -> str:
    return f"wl-{'to' if direction == 'ingress' else 'from'}-{interface}"


def _endpoint_lines(chains: Sequence[str], decided, drop: str, clear: str, jump) -> list[str]:
    lines = [clear] if chains else []
    for name in chains:
        lines += [jump(name), decided]
    if chains:
        lines.append(drop)
    return lines


def nft_objects(program: Program, version: int = 4) -> dict[str, str]:
    """Every object of one family's table as nft text, keyed ``set NAME`` / ``chain NAME`` (the diff's
    unit); ``program`` is that family's view (:meth:`Program.family`)."""
    objects: dict[str, str] = {}
    ip, kind = ("ip6", "ipv6_addr") if version == 6 else ("ip", "ipv4_addr")
    for name, members in program.sets.items():
        elements = f" elements = {{ {', '.join(members)} }}" if members else ""
        objects[f"set {name}"] = f"  set {name} {{ type {kind}; flags interval;{elements} }}\n"
    for name, chain in program.chains.items():
        body = "".join(f"    {_nft_rule(chain, rule, ip)}\n" for rule in chain.rules)
        objects[f"chain {name}"] = f'  chain {name} {{ comment "{f"{chain.policy} {chain.direction}"[-NFT_COMMENT:]}"\n{body}  }}\n'
    for endpoint in program.endpoints:
        for direction in ("ingress", "egress"):
            lines = [
                "ct state established,related accept",
                "ct state invalid drop",
                *_endpoint_lines(
                    getattr(endpoint, direction),
                    f"meta mark & 0x{MARK_MASK:08x} != 0 return",
                    f'drop comment "{f"{endpoint.workload} {direction}: no policy allowed it"[-NFT_COMMENT:]}"',
                    f"meta mark set meta mark & 0x{0xFFFFFFFF ^ MARK_MASK:08x}",
                    lambda name: f"jump {name}",
                ),
            ]
            chain = _wl_chain(direction, endpoint.interface)
            objects[f"chain {chain}"] = f"  chain {chain} {{\n" + "".join(f"    {line}\n" for line in lines) + "  }\n"
    frm = ", ".join(f'"{e.interface}" : jump {_wl_chain("egress", e.interface)}' for e in program.endpoints)
    to = ", ".join(f'"{e.interface}" : jump {_wl_chain("ingress", e.interface)}' for e in program.endpoints)
    forward = [f"iifname vmap {{ {frm} }}", f"oifname vmap {{ {to} }}"] if program.endpoints else []
    ndp = [f"icmpv6 type {{ {', '.join(map(str, NDP_TYPES))} }} accept"] if version == 6 and program.endpoints else []
    for hook, lines in (("forward", forward), ("input", ndp + forward[:1])):
        objects[f"chain hook-{hook}"] = (
            f"  chain hook-{hook} {{\n    type filter hook {hook} priority filter; policy accept;\n" + "".join(f"    {line}\n" for line in lines) + "  }\n"
        )
    return objects


def all_nft_objects(program: Program) -> dict[str, str]:
    """The objects of both tables: the ``ip`` table's as :func:`nft_objects` keys them, the ``ip6`` table's
    (dual stack) with ``ip6 `` before the key."""
    objects = nft_objects(program.family(4))
    if program.dual:
        objects.update({f"ip6 {key}": text for key, text in nft_objects(program.family(6), 6).items()})
    return objects


def render_nft(program: Program, drop_ip6: bool = False) -> str:
    """The whole table - both tables, dual stack - replaced in one transaction (``nft -f``); ``drop_ip6``:
    an ``ip6`` table of an earlier dual-stack program is there, delete it in the same transaction."""
    body = "".join(nft_objects(program.family(4)).values())
    text = f'table ip {TABLE} {{}}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n  comment "l3.calico: network policy"\n{body}}}\n'
    if program.dual:
        body6 = "".join(nft_objects(program.family(6), 6).values())
        text += f'table ip6 {TABLE} {{}}\ndelete table ip6 {TABLE}\ntable ip6 {TABLE} {{\n  comment "l3.calico: network policy (IPv6)"\n{body6}}}\n'
    elif drop_ip6:
        text += f"delete table ip6 {TABLE}\n"
    return text


def _nft_element(value: Any, family: str = "ip") -> list[str]:
    network = ipaddress.IPv6Network if family == "ip6" else ipaddress.IPv4Network
    if isinstance(value, str):
        return [str(network(value))]
    if isinstance(value, Mapping):
        if "prefix" in value:
            return [str(network(f"{value['prefix']['addr']}/{value['prefix']['len']}"))]
        if "range" in value:
            low, high = (ipaddress.ip_address(a) for a in value["range"])
            return [str(n) for n in ipaddress.summarize_address_range(low, high)]
        if "elem" in value:
            return _nft_element(value["elem"].get("val"), family)
    raise PolicyRulesError(f"nftables table {family} {TABLE}: set element {value!r} not understood")


@dataclass
class NftState:
    structure: str  # canonical JSON of the table(s) without handles and set members
    members: dict[str, tuple[str, ...]]  # keyed as all_sets keys them
    ipv6: bool = False  # the ip6 table is there
    ipv4: bool = True  # the ip table is there


def _read_table(runner: iproute.Runner, family: str, members: dict) -> Optional[list]:
    result = runner(["nft", "-j", "list", "table", family, TABLE], None)
    if result.rc != 0:
        return None
    prefix = IP6_KEY if family == "ip6" else ""
    items = []
    for item in json.loads(result.stdout).get("nftables", []):
        if "metainfo" in item:
            continue
        ((kind, body),) = item.items()
        body = {k: v for k, v in body.items() if k != "handle"}
        if kind == "set":
            members[prefix + body["name"]] = tuple(sorted({c for e in body.pop("elem", []) for c in _nft_element(e, family)}, key=_net_key))
        items.append({kind: body})
    return items


def read_nft(runner: iproute.Runner) -> Optional[NftState]:
    """The tables as they are (``nft -j list table``, ip and ip6), or None when both are absent (or no nft).
    Without an ip6 table the structure is the ip table's alone (what an IPv4-only host always recorded)."""
    if shutil.which("nft") is None:
        return None
    members: dict[str, tuple[str, ...]] = {}
    items = _read_table(runner, "ip", members)
    items6 = _read_table(runner, "ip6", members)
    if items is None and items6 is None:
        return None
    if items6 is None:
        return NftState(json.dumps(items, sort_keys=True), members)
    return NftState(json.dumps({"ip": items, "ip6": items6}, sort_keys=True), members, True, items is not None)


def _net_key(cidr: str):
    net = ipaddress.ip_network(cidr)
    return (net.version, int(net.network_address), net.prefixlen)


# ----------------------------------------------------------------------------------------------
# iptables-legacy + ipset
# ----------------------------------------------------------------------------------------------


def _short(prefix: str, name: str, limit: int) -> str:
    if len(prefix) + len(name) <= limit:
        return prefix + name
    return prefix + hashlib.sha256(name.encode()).hexdigest()[: limit - len(prefix)]


def ipt_chain(name: str) -> str:
    return _short(IPT_PREFIX, name, 28)


def ipset_name(name: str, version: int = 4) -> str:
    return _short(IPSET6_PREFIX if version == 6 else IPSET_PREFIX, name, 31)


def _nets_set(nets: Sequence[str], version: int = 4) -> str:
    return (IPSET6_PREFIX if version == 6 else IPSET_PREFIX) + "n" + hashlib.sha256(",".join(nets).encode()).hexdigest()[:12]


def _multiport(ports: Sequence[tuple[int, int]]) -> list[list[str]]:
    """Port lists split into chunks ``-m multiport`` takes (at most 15 ports, a range counts two)."""
    chunks, current, used = [], [], 0
    for lo, hi in ports:
        cost = 1 if lo == hi else 2
        if used + cost > MULTIPORT_MAX:
            chunks.append(current)
            current, used = [], 0
        current.append(str(lo) if lo == hi else f"{lo}:{hi}")
        used += cost
    return chunks + [current] if current else chunks


def ipt_program(program: Program, version: int = 4) -> tuple[dict[str, list[str]], dict[str, tuple[str, ...]]]:
    """Our chains' rules (``iptables-restore`` syntax, in order) and our ipsets' members, of one family:
    ``program`` is that family's view (:meth:`Program.family`); ``version`` 6: for ``ip6tables-legacy-restore``,
    ipsets ``l3cp-6…`` (family inet6), ``icmp6`` matches, and neighbour discovery and MLD from a workload to
    the host returned before its egress chain (Felix's workload-to-host chain)."""
    sets = {ipset_name(name, version): members for name, members in program.sets.items()}
    chains: dict[str, list[str]] = {}

    def net_match(nets: Sequence[str], flag: str, direction: str, negate: bool) -> str:
        bang = "! " if negate else ""
        if len(nets) == 1:
            return f"{bang}-{flag} {nets[0]}"
        name = _nets_set(nets, version)
        sets[name] = _without_covered(nets)
        return f"-m set {bang}--match-set {name} {direction}"

    for name, chain in program.chains.items():
        out = chains.setdefault(ipt_chain(name), [])
        for rule in chain.rules:
            head = []
            if rule.protocol is not None:
                head.append(f"-p {rule.protocol}")
                if rule.not_protocol is not None and rule.not_protocol == rule.protocol:
                    continue  # matches nothing
            elif rule.not_protocol is not None:
                head.append(f"! -p {rule.not_protocol}")
            match, option = ("icmp6", "icmpv6-type") if rule.protocol == ICMPV6 else ("icmp", "icmp-type")
            for icmp, bang in ((rule.icmp, ""), (rule.not_icmp, "! ")):
                if icmp:
                    head.append(f"-m {match} {bang}--{option} {icmp[0]}" + ("" if icmp[1] is None else f"/{icmp[1]}"))
            alternatives: list[list[str]] = [[]]
            for entity, flag, direction, pflag in ((rule.source, "s", "src", "sports"), (rule.destination, "d", "dst", "dports")):
                if entity.nets:
                    head.append(net_match(entity.nets, flag, direction, False))
                if entity.not_nets:
                    head.append(net_match(entity.not_nets, flag, direction, True))
                if entity.set:
                    head.append(f"-m set --match-set {ipset_name(entity.set, version)} {direction}")
                if entity.not_set:
                    head.append(f"-m set ! --match-set {ipset_name(entity.not_set, version)} {direction}")
                for chunk in _multiport(entity.not_ports):  # none of them: every chunk negated, AND
                    head.append(f"-m multiport ! --{pflag} {','.join(chunk)}")
                if entity.ports:  # any of them: one rule per chunk
                    alternatives = [[*a, f"-m multiport --{pflag} {','.join(c)}"] for a in alternatives for c in _multiport(entity.ports)]
            comment = f'-m comment --comment "{rule.ref[:200]}"'
            target = {
                "allow": f"-j MARK --set-xmark 0x{MARK_ALLOW:x}/0x{MARK_ALLOW:x}",
                "pass": f"-j MARK --set-xmark 0x{MARK_PASS:x}/0x{MARK_PASS:x}",
                "deny": "-j DROP",
                "log": f'-j LOG --log-prefix "l3calico {name[:16]}: "',
            }[rule.action]
            for extra in alternatives:
                out.append(" ".join([f"-A {ipt_chain(name)}", *head, *extra, comment, target]))
            if rule.action in ("allow", "pass"):
                bit = MARK_ALLOW if rule.action == "allow" else MARK_PASS
                out.append(f"-A {ipt_chain(name)} -m mark --mark 0x{bit:x}/0x{bit:x} -j RETURN")
    forward, input_ = [], []
    if version == 6 and program.endpoints:
        input_ += [f"-A L3CP-INPUT -p {ICMPV6} -m icmp6 --icmpv6-type {kind} -j RETURN" for kind in NDP_TYPES]
    for endpoint in program.endpoints:
        for direction, letter in (("ingress", "TW"), ("egress", "FW")):
            chain = f"{IPT_PREFIX}{letter}-{endpoint.interface}"
            chains[chain] = [
                f"-A {chain} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                f"-A {chain} -m conntrack --ctstate INVALID -j DROP",
                *_endpoint_lines(
                    getattr(endpoint, direction),
                    f"-A {chain} -m mark ! --mark 0x0/0x{MARK_MASK:x} -j RETURN",
                    f'-A {chain} -m comment --comment "{endpoint.workload} {direction}: no policy allowed it" -j DROP',
                    f"-A {chain} -j MARK --set-xmark 0x0/0x{MARK_MASK:x}",
                    lambda name, chain=chain: f"-A {chain} -j {ipt_chain(name)}",
                ),
            ]
        forward.append(f"-A L3CP-FORWARD -i {endpoint.interface} -j {IPT_PREFIX}FW-{endpoint.interface}")
        input_.append(f"-A L3CP-INPUT -i {endpoint.interface} -j {IPT_PREFIX}FW-{endpoint.interface}")
    forward += [f"-A L3CP-FORWARD -o {e.interface} -j {IPT_PREFIX}TW-{e.interface}" for e in program.endpoints]
    chains["L3CP-FORWARD"] = forward
    chains["L3CP-INPUT"] = input_
    return chains, sets


@dataclass
class IptState:
    chains: dict[str, list[str]]  # our chains' -A lines as iptables-legacy-save prints them
    jumps: dict[str, int]  # built-in chain -> jumps to our chain found
    sets: dict[str, tuple[str, ...]]  # our ipsets' members (both families)
    set_types: dict[str, str] = field(default_factory=dict)
    chains6: dict[str, list[str]] = field(default_factory=dict)  # the same, ip6tables-legacy-save
    jumps6: dict[str, int] = field(default_factory=dict)

    @property
    def ipv6(self) -> bool:
        return bool(self.chains6) or any(self.jumps6.values())


def _read_ipt_filter(runner: iproute.Runner, command: str, tables: Sequence[str]) -> tuple[dict, dict]:
    """Our chains and the jumps to them in table filter of ``command`` (``iptables-legacy-save`` or
    ``ip6tables-legacy-save``); only when the table exists (reading it would create it)."""
    chains: dict[str, list[str]] = {}
    jumps = {builtin: 0 for builtin, _chain in IPT_JUMPS}
    if shutil.which(command) is not None and "filter" in tables:
        result = runner([command, "-t", "filter"], None)
        if result.rc == 0:
            for line in result.stdout.splitlines():
                if line.startswith(f":{IPT_PREFIX}"):
                    chains.setdefault(line[1:].split()[0], [])
                elif line.startswith(f"-A {IPT_PREFIX}"):
                    chains.setdefault(line.split()[1], []).append(line)
                for builtin, chain in IPT_JUMPS:
                    if line == f"-A {builtin} -j {chain}":
                        jumps[builtin] += 1
    return chains, jumps


def ipset_usable(runner: iproute.Runner) -> tuple[bool, str]:
    if shutil.which("ipset") is None:
        return False, "ipset is not installed (Debian package ipset)"
    result = runner(["ipset", "list", "-n"], None)
    return result.rc == 0, (result.stderr or "").strip()


def read_iptables(runner: iproute.Runner) -> Optional[IptState]:
    """Our chains (iptables and ip6tables) and ipsets (None when there are none of any)."""
    chains, jumps = _read_ipt_filter(runner, "iptables-legacy-save", firewall._legacy_tables())
    chains6, jumps6 = _read_ipt_filter(runner, "ip6tables-legacy-save", _legacy_tables6())
    sets: dict[str, tuple[str, ...]] = {}
    types: dict[str, str] = {}
    if shutil.which("ipset") is not None:
        result = runner(["ipset", "save"], None)
        if result.rc == 0:
            found: dict[str, list[str]] = {}
            for line in result.stdout.splitlines():
                words = line.split()
                if len(words) >= 3 and words[1].startswith(IPSET_PREFIX):
                    if words[0] == "create":
                        found.setdefault(words[1], [])
                        types[words[1]] = words[2]
                    elif words[0] == "add":
                        found.setdefault(words[1], []).append(str(ipaddress.ip_network(words[2])))
            sets = {name: tuple(sorted(set(m), key=_net_key)) for name, m in found.items()}
    if not chains and not sets and not any(jumps.values()) and not chains6 and not any(jumps6.values()):
        return None
    return IptState(chains, jumps, sets, types, chains6, jumps6)


def _legacy_tables6() -> list[str]:
    """ip6tables-legacy tables that exist in this namespace (reading one would create it)."""
    try:
        with open("/proc/net/ip6_tables_names", encoding="ascii") as handle:
            return handle.read().split()
    except OSError:
        return []


def _ipt_listing(state: Optional[IptState]) -> str:
    """What was read, as the record keeps it (the ip6tables side only when there is one: an IPv4-only
    host's listing is what it always was)."""
    if state is None:
        return ""
    listing = {"chains": state.chains, "jumps": state.jumps, "sets": sorted(state.sets)}
    if state.ipv6:
        listing.update(chains6=state.chains6, jumps6=state.jumps6)
    return json.dumps(listing, sort_keys=True)


# ----------------------------------------------------------------------------------------------
# Planning and applying
# ----------------------------------------------------------------------------------------------


@dataclass
class Plan:
    backend: str
    kind: str = "none"  # none | elements | replace | remove
    nft_script: str = ""
    ipset_script: str = ""  # before the iptables rules (sets they use must exist)
    iptables_script: str = ""
    ip6tables_script: str = ""  # dual stack: the IPv6 chains (ip6tables-legacy-restore)
    ipset_after: str = ""  # after the iptables rules (sets no rule uses any more)
    changes: list[str] = field(default_factory=list)
    before: dict[str, str] = field(default_factory=dict)  # changed objects, as they were
    after: dict[str, str] = field(default_factory=dict)  # changed objects, as they will be
    record: Optional[dict] = None
    recorded: dict = field(default_factory=dict)
    read_back: bool = False  # record the listing after applying (nftables)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def result(self) -> dict:
        return {"backend": self.backend, "kind": self.kind, "changes": self.changes}

    def diff(self) -> Optional[dict]:
        """The changed chains and sets, before and after (None when nothing changes)."""
        if not self.changed:
            return None
        keys = sorted(set(self.before) | set(self.after))
        return {
            "before": "".join(self.before.get(k, "") for k in keys),
            "after": "".join(self.after.get(k, "") for k in keys),
            "before_header": f"{self.backend} policy objects (before)",
            "after_header": f"{self.backend} policy objects (after)",
        }


def _set_text(name: str, members: Sequence[str]) -> str:
    return f"  set {name} {{ {', '.join(members)} }}\n"


def _element_changes(want: Mapping[str, Sequence[str]], have: Mapping[str, Sequence[str]]):
    for name, members in want.items():
        current = set(have.get(name, ()))
        add = sorted(set(members) - current, key=_net_key)
        delete = sorted(current - set(members), key=_net_key)
        if add or delete:
            yield name, add, delete


def _set_key(object_key: str) -> Optional[str]:
    """The :func:`all_sets` key of an object key of :func:`all_nft_objects` naming a set, else None."""
    if object_key.startswith("set "):
        return object_key[4:]
    if object_key.startswith("ip6 set "):
        return IP6_KEY + object_key[8:]
    return None


def plan_nft(
    program: Program,
    have: Optional[Mapping[str, Sequence[str]]],
    rules_known: bool,
    recorded: Mapping,
    digests: tuple[str, str],
    have_ipv6: Optional[bool] = None,
) -> Plan:
    """``have``: the set members in the tables (None: no table), keyed as :func:`all_sets` keys them;
    ``rules_known``: their rules are those of the last apply (nothing moved since, or the listing equals
    the one recorded); ``have_ipv6``: an ``ip6`` table is there (None: as recorded)."""
    result = Plan("nftables")
    whole, rules = digests
    wanted = all_sets(program)
    if have_ipv6 is None:
        have_ipv6 = bool(recorded.get("ipv6"))
    rules_kept = rules_known and have is not None and recorded.get("rules_sha256") == rules and set(have) == set(wanted) and have_ipv6 == program.dual
    if rules_kept:
        lines = []
        for key, add, delete in _element_changes(wanted, have):
            family, name = _set_family(key)
            if delete:
                lines.append(f"delete element {family} {TABLE} {name} {{ {', '.join(delete)} }}")
            if add:
                lines.append(f"add element {family} {TABLE} {name} {{ {', '.join(add)} }}")
            result.changes.append(f"set {key}: " + ", ".join([*(f"+{c}" for c in add), *(f"-{c}" for c in delete)]))
            result.before[f"set {key}"] = _set_text(key, have[key])
            result.after[f"set {key}"] = _set_text(key, wanted[key])
        if lines:
            result.kind = "elements"
            result.nft_script = "\n".join(lines) + "\n"
        result.record = dict(recorded, program_sha256=whole, sets={k: list(v) for k, v in wanted.items()})
        return result
    objects = all_nft_objects(program)
    result.record = {
        "backend": "nftables",
        "program_sha256": whole,
        "rules_sha256": rules,
        "sets": {k: list(v) for k, v in wanted.items()},
        "objects": {k: v for k, v in objects.items() if _set_key(k) is None},
    }
    if program.dual:
        result.record["ipv6"] = True
    old_objects = recorded.get("objects") or {}
    result.kind = "replace"
    result.nft_script = render_nft(program, drop_ip6=have_ipv6 and not program.dual)
    result.changes.append(f"nftables table ip {TABLE} " + ("created" if have is None else "replaced"))
    if program.dual:
        result.changes.append(f"nftables table ip6 {TABLE} " + ("replaced" if have_ipv6 else "created"))
    elif have_ipv6:
        result.changes.append(f"nftables table ip6 {TABLE} removed (no IPv6 in the program)")
    for key, text in objects.items():
        name = _set_key(key)
        if name is not None:
            if have is None or tuple(have.get(name, ())) != wanted[name] or name not in have:
                result.after[key] = _set_text(name, wanted[name])
                if have is not None and name in have:
                    result.before[key] = _set_text(name, have[name])
        elif old_objects.get(key) != text:
            result.after[key] = text
            if key in old_objects:
                result.before[key] = old_objects[key]
    for key, text in old_objects.items():
        if key not in objects:
            result.before[key] = text
    if have is not None and not old_objects:
        result.before["(table)"] = "(rules of an earlier apply not recorded)\n"
    return result


def _ipt_script(chains: Mapping[str, list[str]], have_chains: Mapping, have_jumps: Mapping) -> str:
    """One ``*filter`` transaction: every chain of ours declared (so emptied) with its rules, one jump each
    from FORWARD and INPUT, stale chains flushed and deleted."""
    lines = ["*filter"]
    lines += [f":{chain} - [0:0]" for chain in chains]
    for chain_lines in chains.values():
        lines += chain_lines
    for builtin, chain in IPT_JUMPS:
        have = have_jumps.get(builtin, 0)
        lines += [f"-D {builtin} -j {chain}"] * max(0, have - 1)
        if have == 0:
            lines.append(f"-I {builtin} 1 -j {chain}")
    stale = sorted(set(have_chains) - set(chains))
    lines += [f"-F {chain}" for chain in stale] + [f"-X {chain}" for chain in stale]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _ipt_removal_script(have_chains: Mapping, have_jumps: Mapping) -> str:
    """Every chain of ours and every jump to one removed, in one ``*filter`` transaction ("" when none)."""
    if not have_chains and not any(have_jumps.values()):
        return ""
    lines = ["*filter"]
    for builtin, chain in IPT_JUMPS:
        lines += [f"-D {builtin} -j {chain}"] * have_jumps.get(builtin, 0)
    lines += [f"-F {chain}" for chain in sorted(have_chains)] + [f"-X {chain}" for chain in sorted(have_chains)]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def plan_iptables(program: Program, current: Optional[IptState], recorded: Mapping, whole: str = "") -> Plan:
    """iptables-legacy + ipset; dual stack (a program with ``sets6``): the IPv6 view in ip6tables-legacy
    (the same chains) with ipsets ``l3cp-6…`` of family inet6, in the same run."""
    chains, sets = ipt_program(program.family(4))
    chains6: dict[str, list[str]] = {}
    shape: dict[str, Any] = {"chains": chains}
    if program.dual:
        chains6, sets6 = ipt_program(program.family(6), 6)
        sets = {**sets, **sets6}
        shape["chains6"] = chains6
    shape["sets"] = sorted(sets)
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()
    result = Plan("iptables")
    objects = {f"chain {k}": "".join(f"{line}\n" for line in v) for k, v in chains.items()}
    objects.update({f"ip6 chain {k}": "".join(f"{line}\n" for line in v) for k, v in chains6.items()})
    result.record = {
        "backend": "iptables",
        "program_sha256": whole,
        "rules_sha256": digest,
        "ipsets": {k: list(v) for k, v in sets.items()},
        "objects": objects,
    }
    have_sets = current.sets if current is not None else {}
    have_chains = current.chains if current is not None else {}
    have_chains6 = current.chains6 if current is not None else {}
    have_jumps6 = current.jumps6 if current is not None else {}
    rules_kept = (
        current is not None
        and recorded.get("backend") == "iptables"
        and recorded.get("rules_sha256") == digest
        and recorded.get("listing") == _ipt_listing(current)
        and all(current.jumps[b] == 1 for b, _c in IPT_JUMPS)
        and (all(have_jumps6.get(b, 0) == 1 for b, _c in IPT_JUMPS) if program.dual else not current.ipv6)
        and set(current.sets) == set(sets)
    )
    element_lines = []
    for name, add, delete in _element_changes(sets, have_sets):
        element_lines += [f"del {name} {c}" for c in delete] + [f"add {name} {c}" for c in add]
        result.changes.append(f"ipset {name}: " + ", ".join([*(f"+{c}" for c in add), *(f"-{c}" for c in delete)]))
        result.before[f"set {name}"] = _set_text(name, have_sets.get(name, ()))
        result.after[f"set {name}"] = _set_text(name, sets[name])
    if rules_kept:
        result.record["listing"] = recorded.get("listing")
        if element_lines:
            result.kind = "elements"
            result.ipset_script = "\n".join(element_lines) + "\n"
        return result
    result.kind = "replace"
    creates = [f"create {name} hash:net family {'inet6' if name.startswith(IPSET6_PREFIX) else 'inet'} -exist" for name in sets if name not in have_sets]
    result.ipset_script = "\n".join(creates + element_lines) + "\n" if creates or element_lines else ""
    result.iptables_script = _ipt_script(chains, have_chains, current.jumps if current is not None else {})
    result.changes.append("iptables-legacy chains L3CP-* " + ("created" if not have_chains else "rewritten"))
    if program.dual:
        result.ip6tables_script = _ipt_script(chains6, have_chains6, have_jumps6)
        result.changes.append("ip6tables-legacy chains L3CP-* " + ("created" if not have_chains6 else "rewritten"))
    elif current is not None and current.ipv6:
        result.ip6tables_script = _ipt_removal_script(have_chains6, have_jumps6)
        result.changes.append("ip6tables-legacy chains L3CP-* removed (no IPv6 in the program)")
    stale_sets = sorted(set(have_sets) - set(sets))
    result.ipset_after = "".join(f"destroy {name}\n" for name in stale_sets)
    result.changes += [f"ipset {name} removed" for name in stale_sets]
    old_objects = recorded.get("objects") or {}
    for key, text in result.record["objects"].items():
        if old_objects.get(key) != text:
            result.after[key] = text
            if key in old_objects:
                result.before[key] = old_objects[key]
    return result


def plan(program: Program, backend: str, nft: Optional[NftState], ipt: Optional[IptState], recorded: Mapping, digests: tuple[str, str] = ("", "")) -> Plan:
    """What to change, from what was read; the other backend's objects of this part are removed."""
    if backend == "nftables":
        known = (
            nft is not None and recorded.get("backend") == "nftables" and recorded.get("structure") is not None and recorded.get("structure") == nft.structure
        )
        result = plan_nft(program, nft.members if nft is not None else None, known, recorded, digests, nft is not None and nft.ipv6)
        if nft is not None and known and result.kind != "replace":
            result.record["structure"] = nft.structure
        elif nft is not None and result.kind == "replace":
            result.read_back = True  # the listing to compare with next time the generation moved
        if ipt is not None:
            other = plan_removal(None, ipt, False)
            result.iptables_script, result.ip6tables_script, result.ipset_after = other.iptables_script, other.ip6tables_script, other.ipset_after
            result.changes += [f"{c} (backend is nftables)" for c in other.changes]
        return result
    result = plan_iptables(program, ipt, recorded, digests[0])
    if nft is not None:
        result.nft_script = _nft_removal(nft)
        result.changes.append(f"nftables table ip {TABLE} removed (backend is iptables)")
    return result


def _nft_removal(nft: NftState) -> str:
    """Delete this part's nftables tables (those there: ip6 only with ``nft.ipv6``) in one transaction."""
    return (f"delete table ip {TABLE}\n" if nft.ipv4 else "") + (f"delete table ip6 {TABLE}\n" if nft.ipv6 else "")


def apply(runner: iproute.Runner, the_plan: Plan) -> None:
    if the_plan.backend == "iptables" and the_plan.nft_script:
        iproute.check(runner, ["nft", "-f", "-"], the_plan.nft_script)
    if the_plan.ipset_script:
        iproute.check(runner, ["ipset", "restore"], the_plan.ipset_script)
    if the_plan.iptables_script:
        iproute.check(runner, ["iptables-legacy-restore", "--noflush"], the_plan.iptables_script)
    if the_plan.ip6tables_script:
        iproute.check(runner, ["ip6tables-legacy-restore", "--noflush"], the_plan.ip6tables_script)
    if the_plan.ipset_after:
        iproute.check(runner, ["ipset", "restore"], the_plan.ipset_after)
    if the_plan.backend == "nftables" and the_plan.nft_script:
        iproute.check(runner, ["nft", "-f", "-"], the_plan.nft_script)


def detect_backend(runner: iproute.Runner, wanted: str) -> str:
    try:
        chosen = firewall.detect_backend(runner, wanted)
    except firewall.FirewallError as exc:
        raise PolicyRulesError(str(exc)) from None
    if chosen == "iptables":
        ok, why = ipset_usable(runner)
        if not ok:
            raise PolicyRulesError(f"policy on iptables-legacy needs ipset: {why}")
    return chosen


def program_digests(data: Any) -> tuple[str, str]:
    """(the whole program, the program without its set members): an identical program is a no-op,
    one whose second digest did not move differs in set members only."""
    whole = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    rules = {"chains": data["chains"], "endpoints": data["endpoints"], "sets": sorted(data["sets"]), "version": data["version"]}
    return whole, hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()


def prepare(program_data: Any, options: Options = Options(), runner: iproute.Runner = iproute.subprocess_runner) -> Plan:
    """Check the program, pick the backend, read and plan (changes nothing).

    nftables, fast path: when the generation of nftables here (:func:`nft_generation`) is the one
    recorded right after the last apply, nothing changed since -- the table is what was recorded,
    and nothing is read or run: the same program is a no-op, set members only are planned from
    the recorded ones. Otherwise the table is read (``nft -j list table``) and compared.
    """
    recorded = read_record(options.state_file)
    try:
        whole = hashlib.sha256(json.dumps(program_data, sort_keys=True).encode()).hexdigest()
    except (TypeError, ValueError):
        whole = None
    if options.backend in ("auto", "nftables") and recorded.get("backend") == "nftables" and recorded.get("generation"):
        generation = nft_generation()
        if generation is not None and generation == recorded["generation"]:
            if whole is not None and whole == recorded.get("program_sha256"):
                the_plan = Plan("nftables", record=dict(recorded), recorded=recorded)
                return the_plan
            program = parse_program(program_data)
            if not _enforces(program):
                return _plan_nothing_to_enforce(options, runner, recorded)
            have = {k: tuple(v) for k, v in (recorded.get("sets") or {}).items()}
            the_plan = plan_nft(program, have, True, recorded, program_digests(program_data))
            the_plan.recorded = recorded
            return the_plan
    if options.backend in ("auto", "iptables") and recorded.get("backend") == "iptables" and whole is not None and whole == recorded.get("program_sha256"):
        # iptables-legacy, the same program as last time: compared with what is there (two reads), not re-rendered
        ipt = read_iptables(runner)
        if (
            ipt is not None
            and _ipt_listing(ipt) == recorded.get("listing")
            and all(ipt.jumps[builtin] == 1 for builtin, _chain in IPT_JUMPS)
            and {k: list(v) for k, v in ipt.sets.items()} == recorded.get("ipsets")
        ):
            return Plan("iptables", record=dict(recorded), recorded=recorded)
    program = parse_program(program_data)
    if not _enforces(program):
        return _plan_nothing_to_enforce(options, runner, recorded)
    backend = detect_backend(runner, options.backend)
    if backend == "iptables" and program.dual and shutil.which("ip6tables-legacy-restore") is None:
        raise PolicyRulesError(IPTABLES_NO_IPV6)
    generation = nft_generation() if backend == "nftables" else None  # before reading: a later change moves it
    the_plan = plan(program, backend, read_nft(runner), read_iptables(runner), recorded, program_digests(program_data))
    if backend == "nftables" and not the_plan.changed:
        the_plan.record["generation"] = generation  # learnt: the next run takes the fast path
    the_plan.recorded = recorded
    return the_plan


def _enforces(program: Program) -> bool:
    """Whether any endpoint has a policy chain: without one there is nothing to enforce."""
    return any(e.ingress or e.egress for e in program.endpoints)


def _plan_nothing_to_enforce(options: Options, runner: iproute.Runner, recorded: Mapping) -> Plan:
    """No policy selects any workload of this host: no table, no chain, no set (those of an earlier run
    removed), no backend needed -- a host without policies is left exactly as it was."""
    the_plan = plan_removal(read_nft(runner), read_iptables(runner), os.path.exists(options.state_file))
    if not the_plan.changed:
        the_plan.kind = "none"
    the_plan.recorded = dict(recorded)
    return the_plan


def commit(runner: iproute.Runner, the_plan: Plan, state_file: str) -> None:
    """Apply a prepared plan, then record what was applied (no-op: nothing is run or written,
    but a state file that learnt the current generation or listing)."""
    if the_plan.kind in ("remove", "none") and the_plan.record is None:
        if the_plan.changed:
            commit_removal(runner, the_plan, state_file)
        return
    record = dict(the_plan.record or {})
    if the_plan.changed:
        before = nft_generation() if the_plan.backend == "nftables" else None
        apply(runner, the_plan)
        if the_plan.backend == "nftables":
            after = nft_generation()
            steps = 1 if the_plan.nft_script else 0
            # exactly our transaction in between: the table is what we wrote (else read it next time)
            record["generation"] = after if before and after and after[1:] == before[1:] and after[0] == before[0] + steps else None
            if the_plan.read_back:
                state = read_nft(runner)
                record["structure"] = state.structure if state else None
            elif the_plan.kind == "replace":
                record.pop("structure", None)
        else:
            record["listing"] = _ipt_listing(read_iptables(runner)) if the_plan.kind == "replace" or "listing" not in record else record["listing"]
    if record != the_plan.recorded:
        atomic_write(state_file, json.dumps(record, indent=1, sort_keys=True) + "\n", make_parents=True)


def nft_generation() -> Optional[list]:
    """``[generation, netns cookie, boot id]`` of nftables in this network namespace, or None.

    One netlink request (``NFT_MSG_GETGEN``), no process: the kernel moves the generation with every
    transaction that changes anything (an empty one does not), the cookie names this namespace
    for the whole boot (``SO_NETNS_COOKIE``, Linux 5.14), the boot id the boot.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            boot = handle.read().strip()
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    except OSError:
        return None
    try:
        sock.settimeout(2)
        sock.bind((0, 0))
        sock.send(struct.pack("=IHHII", 20, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, 1, 1, 0) + struct.pack("=BBH", 0, 0, 0))
        data = sock.recv(65536)
        cookie = struct.unpack("=Q", sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8))[0]
    except (OSError, struct.error):
        return None
    finally:
        sock.close()
    if len(data) < 20 or struct.unpack_from("=H", data, 4)[0] != (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN:
        return None
    length, offset = struct.unpack_from("=I", data)[0], 20
    while offset + 4 <= min(length, len(data)):
        size, kind = struct.unpack_from("=HH", data, offset)
        if kind & 0x7FFF == 1 and size >= 8:  # NFTA_GEN_ID, big endian
            return [struct.unpack_from(">I", data, offset + 4)[0], cookie, boot]
        if size < 4:
            break
        offset += (size + 3) & ~3
    return None


def converge(
    program: Any,
    options: Optional[Options] = None,
    *,
    check_mode: bool = False,
    runner: iproute.Runner = iproute.subprocess_runner,
    **settings,
) -> Plan:
    """:func:`prepare`, then :func:`commit` unless check mode; ``settings`` are fields of :class:`Options`."""
    options = Options(**settings) if options is None else dataclasses.replace(options, **settings)
    the_plan = prepare(program, options, runner)
    if not check_mode:
        commit(runner, the_plan, options.state_file)
    return the_plan


def plan_removal(nft: Optional[NftState], ipt: Optional[IptState], state_file_exists: bool) -> Plan:
    """Every object of this part, of both backends, and nothing else."""
    result = Plan("nftables" if nft is not None else "iptables" if ipt is not None else "none", kind="remove")
    if nft is not None:
        result.nft_script = _nft_removal(nft)
        result.changes.append(f"nftables table ip {TABLE} removed" + (f" (and table ip6 {TABLE})" if nft.ipv6 else ""))
        result.before["table"] = f"table ip {TABLE} ({len(nft.members)} sets)\n"
    if ipt is not None:
        lines = ["*filter"]
        for builtin, chain in IPT_JUMPS:
            lines += [f"-D {builtin} -j {chain}"] * ipt.jumps[builtin]
        lines += [f"-F {chain}" for chain in sorted(ipt.chains)] + [f"-X {chain}" for chain in sorted(ipt.chains)]
        lines.append("COMMIT")
        if ipt.chains or any(ipt.jumps.values()):
            result.iptables_script = "\n".join(lines) + "\n"
            result.changes.append(f"iptables-legacy chains removed: {len(ipt.chains)}")
            result.before.update({f"chain {k}": "".join(f"{line}\n" for line in v) for k, v in ipt.chains.items()})
        if ipt.ipv6:
            result.ip6tables_script = _ipt_removal_script(ipt.chains6, ipt.jumps6)
            result.changes.append(f"ip6tables-legacy chains removed: {len(ipt.chains6)}")
            result.before.update({f"ip6 chain {k}": "".join(f"{line}\n" for line in v) for k, v in ipt.chains6.items()})
        if ipt.sets:
            result.ipset_after = "".join(f"destroy {name}\n" for name in sorted(ipt.sets))
            result.changes.append(f"ipsets removed: {len(ipt.sets)}")
    if state_file_exists:
        result.changes.append("state file removed")
    return result


def remove(state_file: str = DEFAULT_STATE_FILE, check_mode: bool = False, runner: iproute.Runner = iproute.subprocess_runner) -> Plan:
    the_plan = plan_removal(read_nft(runner), read_iptables(runner), os.path.exists(state_file))
    if not check_mode and the_plan.changed:
        commit_removal(runner, the_plan, state_file)
    return the_plan


def commit_removal(runner: iproute.Runner, the_plan: Plan, state_file: str) -> None:
    if the_plan.nft_script:
        iproute.check(runner, ["nft", "-f", "-"], the_plan.nft_script)
    if the_plan.iptables_script:
        iproute.check(runner, ["iptables-legacy-restore", "--noflush"], the_plan.iptables_script)
    if the_plan.ip6tables_script:
        iproute.check(runner, ["ip6tables-legacy-restore", "--noflush"], the_plan.ip6tables_script)
    if the_plan.ipset_after:
        iproute.check(runner, ["ipset", "restore"], the_plan.ipset_after)
    try:
        os.unlink(state_file)
    except FileNotFoundError:
        pass
