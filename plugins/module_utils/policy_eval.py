# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Calico's verdict for one flow, and what decided it (Felix's semantics, one tier, namespace profile allow).

A flow goes out of its source through the source's EGRESS policy, then into its destination through the
destination's INGRESS policy; both must allow it. For one direction of one workload:

- the policies selecting the workload for that direction, in order (``PolicySet.policies``), and in each
  its rules in order: the first ``Allow`` or ``Deny`` rule that matches decides; ``Log`` logs and goes on;
  ``Pass`` ends the policy tier - the namespace profile then decides, and it allows;
- selected by at least one policy and matched by no rule: denied (the end of the tier drops);
- selected by none: allowed (the profile's default, as Calico's namespace profiles allow).

An address that is not a workload's has no policy of its own (it is outside the cluster, or a host): only
the workload side decides. The host reaches its own local workloads whatever their policy (Felix), and a
workload talking to itself never leaves its namespace. Replies of allowed connections pass (conntrack):
a verdict is about the first packet. A rule matches when every field it has matches (docs/policy.md).

Dual stack: a :class:`Flow` has an IP version (``family``): a workload end is its address of that family,
an address end is of that family, a rule takes part only if it applies to the family
(:meth:`Rule.applies_to`) and matches with its nets of that family; the host reaching its local workloads
is the node's IPv6 address for IPv6. :func:`reachability` and :func:`flips` answer per family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from ansible_collections.l3.calico.plugins.module_utils import naming
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import V4, V6, int_to_ip, int_to_ip6, ip6_to_int, ip_to_int, prefix_mask
from ansible_collections.l3.calico.plugins.module_utils.policy_model import (
    EGRESS,
    ICMP,
    ICMP_PROTOCOLS,
    ICMPV6,
    INGRESS,
    PORT_PROTOCOLS,
    PROTOCOL_NAMES,
    PROTOCOLS,
    Entity,
    PolicySet,
    Rule,
    Workload,
)

# The source port a flow has when none is given: the first of Linux's ephemeral range (32768-60999).
EPHEMERAL_PORT = 32768

# What decided a direction (Decision.reason)
RULE = "rule"
PASS = "pass -> profile"
NO_POLICY = "no policy selects it: profile allow"
END_OF_TIER = "end of tier: default deny"
NOT_A_WORKLOAD = "not a workload: no policy of its own"
HOST_TO_LOCAL = "the host reaches its local workloads"
SAME_WORKLOAD = "the workload itself: never leaves its namespace"

Endpoint = Union[Workload, int]  # a workload, or an address (integer, of the flow's family) that is no workload's
ECHO_REQUEST = {ICMP: 8, ICMPV6: 128}  # a ping, per family's ICMP
FAMILY_ICMP = {4: ICMP, 6: ICMPV6}


class FlowError(L3CalicoError, ValueError):
    """A flow that cannot be evaluated (an unknown workload, a bad address, port or protocol)."""


@dataclass(frozen=True)
class Flow:
    src: Endpoint
    dst: Endpoint
    protocol: int
    port: Optional[int] = None  # destination port (TCP, UDP, SCTP)
    src_port: int = EPHEMERAL_PORT
    icmp_type: Optional[int] = None
    icmp_code: Optional[int] = None
    family: int = 4  # IP version: which address of a workload, and the width of an address endpoint

    def describe(self) -> str:
        proto = PROTOCOL_NAMES.get(self.protocol, str(self.protocol))
        what = f"{proto} port {self.port}" if self.port is not None else proto
        if self.icmp_type is not None:
            what += f" type {self.icmp_type}" + (f" code {self.icmp_code}" if self.icmp_code is not None else "")
        if self.family == 6:
            what += " (IPv6)"
        return f"{endpoint_text(self.src, self.family)} -> {endpoint_text(self.dst, self.family)} {what}"


@dataclass(frozen=True)
class Decision:
    """One direction's verdict: allowed or not, and what decided it."""

    direction: str
    allowed: bool
    reason: str
    policy: Optional[str] = None  # "<namespace>/<name>" or "global/<name>"
    rule: Optional[int] = None  # index in that policy's rules of this direction
    logged: tuple = ()  # the Log rules the flow went through
    endpoint: Optional[str] = None  # the workload whose policy this is

    def text(self) -> str:
        verdict = "allow" if self.allowed else "deny"
        where = f"{self.direction} of {self.endpoint}" if self.endpoint else self.direction
        if self.reason in (RULE, PASS):
            return f"{where}: {verdict} by {self.policy} {self.direction}[{self.rule}]" + (" (pass -> profile)" if self.reason == PASS else "")
        return f"{where}: {verdict} ({self.reason})"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    egress: Decision
    ingress: Decision
    flow: Optional[Flow] = field(default=None, compare=False)

    @property
    def decided_by(self) -> Decision:
        """The decision that denied the flow (egress first); when allowed, the one a rule made (ingress
        first), else the ingress one."""
        if not self.egress.allowed:
            return self.egress
        if self.ingress.allowed and self.ingress.reason not in (RULE, PASS) and self.egress.reason in (RULE, PASS):
            return self.egress
        return self.ingress

    def text(self) -> str:
        return f"{'ALLOW' if self.allowed else 'DENY'}: {self.egress.text()}; {self.ingress.text()}"

    def as_dict(self) -> dict:
        def one(d: Decision) -> dict:
            return {
                "direction": d.direction,
                "allowed": d.allowed,
                "reason": d.reason,
                "policy": d.policy,
                "rule": d.rule,
                "logged": list(d.logged),
                "endpoint": d.endpoint,
                "text": d.text(),
            }

        return {"allowed": self.allowed, "egress": one(self.egress), "ingress": one(self.ingress), "text": self.text()}


def endpoint_text(endpoint: Endpoint, family: int = 4) -> str:
    if isinstance(endpoint, Workload):
        return endpoint.id
    return int_to_ip6(endpoint) if family == 6 else int_to_ip(endpoint)


def _parse_end(value) -> tuple:
    """``(workload id or address integer, its family or None)`` of user input."""
    if isinstance(value, str) and ":" in value:
        try:
            return ip6_to_int(value), 6
        except ValueError:
            raise FlowError(f"{value!r}: neither a workload (<namespace>.<name>) nor an IPv4 or IPv6 address") from None
    if isinstance(value, str) and not (value.count(".") == 1 and all(naming.is_label(p) for p in value.split("."))):
        try:
            return ip_to_int(value), 4
        except ValueError:
            raise FlowError(f"{value!r}: neither a workload (<namespace>.<name>) nor an IPv4 or IPv6 address") from None
    if not isinstance(value, str):
        raise FlowError(f"{value!r}: neither a workload (<namespace>.<name>) nor an IPv4 or IPv6 address")
    return value, None


def endpoint(policy_set: PolicySet, value, by_address: Optional[dict] = None, family: int = 4) -> Endpoint:
    """A workload (``<namespace>.<name>``, a :class:`Workload`) or an address of the family ``family``;
    an address that is a workload's is that workload (policy is enforced by address)."""
    if isinstance(value, Workload):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        address = value
    elif isinstance(value, str) and value in policy_set.workloads:
        return policy_set.workloads[value]
    else:
        address, given = _parse_end(value)
        if given is None:
            raise FlowError(f"{value!r}: no such workload (<namespace>.<name>) in the inventory")
        if given != family:
            raise FlowError(f"{value!r}: an IPv{given} address in an IPv{family} flow")
    if by_address is None:
        by_address = policy_set.by_address(family)
    return by_address.get(address, address)


def flow_family(src, dst, protocol=None, family=None) -> int:
    """The IP version of a flow given by the user: ``family`` if given, else that of an address among
    ``src``/``dst``, else 6 for ICMPv6, else 4. Two ends of different families are refused."""
    found = {f for f in (_parse_end(src)[1] if isinstance(src, str) else None, _parse_end(dst)[1] if isinstance(dst, str) else None) if f}
    if family is not None:
        if family not in (4, 6) or isinstance(family, bool):
            raise FlowError(f"family={family!r}: 4 or 6")
        found.add(family)
    if len(found) > 1:
        raise FlowError(f"{src!r} -> {dst!r}: the ends (and family) are of different IP versions")
    if found:
        return found.pop()
    return 6 if protocol in ("ICMPv6", ICMPV6, str(ICMPV6)) else 4


def make_flow(policy_set: PolicySet, src, dst, protocol="TCP", port=None, src_port=None, icmp_type=None, icmp_code=None, family=None) -> Flow:
    """A :class:`Flow` from user input (names or numbers), checked; its family from ``family``, the
    addresses given or the protocol (:func:`flow_family`)."""
    if isinstance(protocol, str) and protocol.isdigit():
        protocol = int(protocol)
    number = PROTOCOLS.get(protocol) if isinstance(protocol, str) else protocol
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 255:
        raise FlowError(f"protocol={protocol!r}: one of {', '.join(PROTOCOLS)} or a number 1-255")
    family = flow_family(src, dst, number, family)
    values = {"port": port, "src_port": src_port, "icmp_type": icmp_type, "icmp_code": icmp_code}
    for key, value in values.items():
        if isinstance(value, str) and value.isdigit():
            values[key] = int(value)
        elif value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise FlowError(f"{key}={value!r}: a number")
    if number in PORT_PROTOCOLS:
        if values["port"] is None or not 0 <= values["port"] <= 65535:
            raise FlowError(f"port={port!r}: a {PROTOCOL_NAMES[number]} flow needs a destination port 0-65535")
    elif values["port"] is not None:
        raise FlowError(f"port={port!r}: only TCP, UDP and SCTP flows have ports")
    if number not in ICMP_PROTOCOLS and (values["icmp_type"] is not None or values["icmp_code"] is not None):
        raise FlowError("icmp_type / icmp_code: only for ICMP and ICMPv6 flows")
    if number in ICMP_PROTOCOLS and values["icmp_type"] is None:
        values["icmp_type"] = ECHO_REQUEST[number]  # echo request, a ping
    by_address = policy_set.by_address(family)
    ends = [endpoint(policy_set, end, by_address, family) for end in (src, dst)]
    for end in ends:
        if isinstance(end, Workload) and end.address_of(family) is None:
            raise FlowError(f"{end.id}: has no IPv{family} address")
    return Flow(
        *ends,
        number,
        values["port"],
        values["src_port"] if values["src_port"] is not None else EPHEMERAL_PORT,
        values["icmp_type"],
        values["icmp_code"],
        family,
    )


# --------------------------------------------------------------------------- matching


def _address(peer: Endpoint, family: int = 4) -> Optional[int]:
    return peer.address_of(family) if isinstance(peer, Workload) else peer


def _in_nets(address: Optional[int], nets, bits: int = V4) -> bool:
    return address is not None and any(address & prefix_mask(prefix, bits) == base for base, prefix in nets)


def _in_ports(port: Optional[int], ports) -> bool:
    return port is not None and any(lo <= port <= hi for lo, hi in ports)


def entity_matches(policy_set: PolicySet, entity: Entity, peer: Endpoint, port: Optional[int], family: int = 4) -> bool:
    """Whether a packet's source (or destination) ``peer`` with ``port`` matches ``entity``, in a flow of
    the IP version ``family`` (the nets of that family; a rule's nets of the other one are never
    reached: :meth:`Rule.applies_to`)."""
    address = _address(peer, family)
    nets, not_nets = entity.nets_of(family)
    bits = V6 if family == 6 else V4
    if nets and not _in_nets(address, nets, bits):
        return False
    if not_nets and _in_nets(address, not_nets, bits):
        return False
    workload = peer if isinstance(peer, Workload) else None
    if entity.selection is not None and (workload is None or not policy_set.selects(entity.selection, workload)):
        return False
    if entity.not_selection is not None and workload is not None and policy_set.selects(entity.not_selection, workload):
        return False
    if entity.ports and not _in_ports(port, entity.ports):
        return False
    return not (entity.not_ports and _in_ports(port, entity.not_ports))


def rule_matches(policy_set: PolicySet, rule: Rule, flow: Flow) -> bool:
    """Whether ``rule`` matches ``flow``: it applies to the flow's IP version and every field it has matches."""
    if not rule.applies_to(flow.family):
        return False
    if rule.protocol is not None and flow.protocol != rule.protocol:
        return False
    if rule.not_protocol is not None and flow.protocol == rule.not_protocol:
        return False
    if rule.icmp is not None and not (flow.protocol in ICMP_PROTOCOLS and rule.icmp.matches(flow.icmp_type, flow.icmp_code)):
        return False
    if rule.not_icmp is not None and flow.protocol in ICMP_PROTOCOLS and rule.not_icmp.matches(flow.icmp_type, flow.icmp_code):
        return False
    ports = flow.protocol in PORT_PROTOCOLS
    return entity_matches(policy_set, rule.source, flow.src, flow.src_port if ports else None, flow.family) and entity_matches(
        policy_set, rule.destination, flow.dst, flow.port if ports else None, flow.family
    )


def decide(policy_set: PolicySet, workload: Workload, direction: str, flow: Flow, policies: Optional[tuple] = None) -> Decision:
    """One direction of one workload: the first Allow/Deny rule of the policies selecting it, in order."""
    if policies is None:
        policies = policy_set.policies_for(workload, direction)
    if not policies:
        return Decision(direction, True, NO_POLICY, endpoint=workload.id)
    logged = []
    for policy in policies:
        for rule in policy.rules(direction):
            if not rule_matches(policy_set, rule, flow):
                continue
            if rule.action == "Log":
                logged.append(rule.ref)
                continue
            reason = PASS if rule.action == "Pass" else RULE
            return Decision(direction, rule.action != "Deny", reason, policy.display, rule.index, tuple(logged), workload.id)
    return Decision(direction, False, END_OF_TIER, logged=tuple(logged), endpoint=workload.id)


def verdict(policy_set: PolicySet, flow: Flow) -> Verdict:
    """Calico's verdict for ``flow``: the source's egress, then the destination's ingress."""
    src, dst = flow.src, flow.dst
    if isinstance(src, Workload) and isinstance(dst, Workload) and src.id == dst.id:
        same = Decision(EGRESS, True, SAME_WORKLOAD, endpoint=src.id)
        return Verdict(True, same, Decision(INGRESS, True, SAME_WORKLOAD, endpoint=dst.id), flow)
    egress = decide(policy_set, src, EGRESS, flow) if isinstance(src, Workload) else Decision(EGRESS, True, NOT_A_WORKLOAD)
    if not isinstance(dst, Workload):
        ingress = Decision(INGRESS, True, NOT_A_WORKLOAD)
    elif not isinstance(src, Workload) and dst.host is not None and (policy_set.nodes6 if flow.family == 6 else policy_set.nodes).get(dst.host) == src:
        ingress = Decision(INGRESS, True, HOST_TO_LOCAL, endpoint=dst.id)
    else:
        ingress = decide(policy_set, dst, INGRESS, flow)
    return Verdict(egress.allowed and ingress.allowed, egress, ingress, flow)


# --------------------------------------------------------------------------- what a change flips


def reachability(policy_set: PolicySet, tcp_port: int, family: int = 4) -> dict:
    """What verify's probes should find between every pair of workloads with an address of the IP
    version ``family``: ``{src id: {dst id: {"icmp": an echo request allowed (ICMP type 8, or ICMPv6
    type 128 for family 6), "tcp": a connection to tcp_port allowed}}}`` (replies pass: conntrack)."""
    workloads = sorted((w for w in policy_set.workloads.values() if w.address_of(family) is not None), key=lambda w: w.id)
    icmp = FAMILY_ICMP[family]
    out: dict = {}
    for src in workloads:
        row = out[src.id] = {}
        for dst in workloads:
            if dst is not src:
                row[dst.id] = {
                    "icmp": verdict(policy_set, Flow(src, dst, icmp, None, EPHEMERAL_PORT, ECHO_REQUEST[icmp], 0, family)).allowed,
                    "tcp": verdict(policy_set, Flow(src, dst, PROTOCOLS["TCP"], tcp_port, EPHEMERAL_PORT, None, None, family)).allowed,
                }
    return out


@dataclass(frozen=True)
class Probe:
    """A class of flows the rules cannot tell apart, and the sample evaluated for it.

    ``protocol`` None: every protocol but TCP, UDP, SCTP, ICMP and ``others`` (those the rules name);
    ``ports``: an inclusive destination port range (TCP, UDP, SCTP); ``icmp``: ``(type, code)`` where
    type None means every type but ``others``, code None every code but ``others``.
    """

    protocol: Optional[int]
    ports: Optional[tuple] = None
    icmp: Optional[tuple] = None
    others: tuple = ()
    sample: tuple = ()  # (protocol, port, icmp type, icmp code) evaluated

    def covers(self, protocol: int, port=None, icmp_type=None, icmp_code=None) -> bool:
        if self.protocol is None:
            return protocol not in (ICMP, *PORT_PROTOCOLS) and protocol not in self.others
        if protocol != self.protocol:
            return False
        if self.ports is not None:
            return port is not None and self.ports[0] <= port <= self.ports[1]
        if self.icmp is not None:
            want_type, want_code = self.icmp
            if want_type is None:
                return icmp_type not in self.others
            if icmp_type != want_type:
                return False
            return icmp_code == want_code if want_code is not None else icmp_code not in self.others
        return True

    def what(self) -> str:
        if self.protocol is None:
            return "other protocols" + (f" (not {', '.join(map(str, self.others))})" if self.others else "")
        proto = PROTOCOL_NAMES.get(self.protocol, f"protocol {self.protocol}")
        if self.ports is not None:
            lo, hi = self.ports
            return f"{proto} {lo}" if lo == hi else f"{proto} {lo}-{hi}"
        if self.icmp is not None:
            icmp_type, code = self.icmp
            if icmp_type is None:
                return f"{proto} types other than {', '.join(map(str, self.others))}" if self.others else f"{proto} any type"
            if code is None:
                return f"{proto} type {icmp_type}" + (f" codes other than {', '.join(map(str, self.others))}" if self.others else "")
            return f"{proto} type {icmp_type} code {code}"
        return proto


@dataclass(frozen=True)
class Flip:
    """A flow class (:class:`Probe`) between two ends whose verdict a policy change flips."""

    src: str
    dst: str
    probe: Probe
    old: Optional[Verdict] = field(default=None, compare=False)
    new: Optional[Verdict] = field(default=None, compare=False)
    family: int = 4  # the IP version of the flows

    def what(self) -> str:
        return self.probe.what() + (" (IPv6)" if self.family == 6 else "")

    def covers(self, src: str, dst: str, protocol: int, port=None, icmp_type=None, icmp_code=None) -> bool:
        return (src, dst) == (self.src, self.dst) and self.probe.covers(protocol, port, icmp_type, icmp_code)

    def text(self) -> str:
        before = "allow" if self.old.allowed else "deny"
        after = "allow" if self.new.allowed else "deny"
        return f"{self.src} -> {self.dst} {self.what()}: {before} -> {after} (now {self.new.decided_by.text()})"

    def as_dict(self) -> dict:
        return {
            "src": self.src,
            "dst": self.dst,
            "flow": self.what(),
            "old": "allow" if self.old.allowed else "deny",
            "new": "allow" if self.new.allowed else "deny",
            "text": self.text(),
        }


def _rules(policy_set: PolicySet):
    for policy in policy_set.policies:
        yield from policy.ingress
        yield from policy.egress


def _first_not_in(values, candidates) -> int:
    return next(v for v in candidates if v not in values)


def probes(sets) -> list:
    """The flow classes (:class:`Probe`) that cover every distinction the rules of ``sets`` make:
    destination port intervals between the ranges they name (per TCP, UDP, SCTP), each ICMP type and code
    they name and the others, each other protocol they name and the others. Source ports are not split:
    flows keep the ephemeral default."""
    cuts, codes, others = {0, 65536}, {ICMP: {}}, set()
    for ps in sets:
        for rule in _rules(ps):
            for lo, hi in rule.source.ports + rule.source.not_ports + rule.destination.ports + rule.destination.not_ports:
                cuts.update((lo, hi + 1))
            if ICMPV6 in (rule.protocol, rule.not_protocol):
                codes.setdefault(ICMPV6, {})  # ICMPv6 named: its types split like ICMP's
            for icmp in (rule.icmp, rule.not_icmp):
                if icmp is not None:
                    named = codes.setdefault(rule.protocol, {}).setdefault(icmp.type, set())
                    if icmp.code is not None:
                        named.add(icmp.code)
            for number in (rule.protocol, rule.not_protocol):
                if number is not None and number not in (*ICMP_PROTOCOLS, *PORT_PROTOCOLS):
                    others.add(number)
    bounds = sorted(cuts)
    out = [Probe(proto, (lo, hi - 1), sample=(proto, lo, None, None)) for proto in PORT_PROTOCOLS for lo, hi in zip(bounds, bounds[1:], strict=False)]
    for proto in sorted(codes):
        by_type = codes[proto]
        for icmp_type in sorted(by_type):
            named = tuple(sorted(by_type[icmp_type]))
            out += [Probe(proto, icmp=(icmp_type, code), sample=(proto, None, icmp_type, code)) for code in named]
            out.append(Probe(proto, icmp=(icmp_type, None), others=named, sample=(proto, None, icmp_type, _first_not_in(named, range(256)))))
        types = tuple(sorted(by_type))
        if len(types) < 256:
            out.append(Probe(proto, icmp=(None, None), others=types, sample=(proto, None, _first_not_in(types, (ECHO_REQUEST[proto], *range(256))), 0)))
    named = tuple(sorted(others))
    out += [Probe(number, sample=(number, None, None, None)) for number in named]
    typed = tuple(p for p in codes if p != ICMP)  # ICMPv6 when named: its own probes, not an "other protocol"
    sample = _first_not_in((*named, *typed, ICMP, *PORT_PROTOCOLS), (47, *range(2, 256)))
    out.append(Probe(None, others=tuple(sorted((*named, *typed))), sample=(sample, None, None, None)))
    return out


def _changed_workloads(old: PolicySet, new: PolicySet, common) -> set:
    changed = set()
    for wid in common:
        a, b = old.workloads[wid], new.workloads[wid]
        if (
            a.labels != b.labels
            or a.address != b.address
            or a.address6 != b.address6
            or a.host != b.host
            or old.namespace(a.namespace) != new.namespace(b.namespace)
        ):
            changed.add(wid)
    return changed


def flips(old: PolicySet, new: PolicySet) -> list:
    """The flows whose verdict changes from ``old`` to ``new`` (both with their workloads, ideally the same):
    between every two workloads both sets know, and from and to an address of each network the rules name
    and each node, for every distinction the rules make (:func:`_probes`; source ports stay the ephemeral
    default). Only flows that can change are evaluated: those leaving a workload a changed policy selects for
    egress, or reaching one it selects for ingress, or involving a workload whose labels, namespace labels or
    address changed. Adjacent port ranges with the same outcome are merged. Sorted by source, destination;
    the IPv4 flows, then (when either set is dual stack) the IPv6 ones between the workloads with an IPv6
    address in both, the IPv6 nets the rules name and the nodes' IPv6 addresses."""
    common = sorted(set(old.workloads) & set(new.workloads))
    old_policies = {(p.namespace, p.name): p for p in old.policies}
    new_policies = {(p.namespace, p.name): p for p in new.policies}
    changed_policies = [name for name in set(old_policies) | set(new_policies) if old_policies.get(name) != new_policies.get(name)]
    changed = _changed_workloads(old, new, common)
    affected = {INGRESS: set(changed), EGRESS: set(changed)}
    for name in changed_policies:
        for ps, policy in ((old, old_policies.get(name)), (new, new_policies.get(name))):
            if policy is None:
                continue
            for direction in (INGRESS, EGRESS):
                if policy.applies(direction):
                    affected[direction].update(w for w in common if policy.selection.selects(ps.workloads[w], ps.namespaces))
    if not changed_policies and not changed:
        return []
    classes = probes((old, new))
    out = []
    for family in (4, 6) if old.dual_stack or new.dual_stack else (4,):
        members = [w for w in common if old.workloads[w].address_of(family) is not None and new.workloads[w].address_of(family) is not None]
        # addresses outside the workloads: one per network the rules name, and the nodes
        known = {old.workloads[w].address_of(family) for w in common} | {new.workloads[w].address_of(family) for w in common}
        nodes = (old.nodes6, new.nodes6) if family == 6 else (old.nodes, new.nodes)
        outside = set(nodes[0].values()) | set(nodes[1].values())
        for ps in (old, new):
            for rule in _rules(ps):
                for entity in (rule.source, rule.destination):
                    nets, not_nets = entity.nets_of(family)
                    outside.update(base for base, _prefix in nets + not_nets)
        outside = sorted(a for a in outside - known if a is not None)
        ends = [*members, *outside]
        for src in ends:
            for dst in ends:
                if isinstance(src, int) and isinstance(dst, int):
                    continue
                if not (src in affected[EGRESS] or dst in affected[INGRESS] or src in changed or dst in changed):
                    continue
                out += _pair_flips(old, new, src, dst, classes, family)
    return out


def _pair_flips(old: PolicySet, new: PolicySet, src, dst, classes, family: int = 4) -> list:
    def flow(ps, sample):
        protocol, port, icmp_type, icmp_code = sample
        s = ps.workloads[src] if isinstance(src, str) else src
        d = ps.workloads[dst] if isinstance(dst, str) else dst
        return Flow(s, d, protocol, port, EPHEMERAL_PORT, icmp_type, icmp_code, family)

    names = tuple(end if isinstance(end, str) else endpoint_text(end, family) for end in (src, dst))
    out: list = []
    for probe in classes:
        before = verdict(old, flow(old, probe.sample))
        after = verdict(new, flow(new, probe.sample))
        if before.allowed == after.allowed:
            continue
        last = out[-1] if out else None
        if (
            probe.ports is not None
            and last is not None
            and last.probe.protocol == probe.protocol
            and last.probe.ports is not None
            and last.probe.ports[1] + 1 == probe.ports[0]
            and last.old.allowed == before.allowed
            and last.new.decided_by == after.decided_by
        ):
            merged = Probe(probe.protocol, (last.probe.ports[0], probe.ports[1]), sample=last.probe.sample)
            out[-1] = Flip(*names, merged, last.old, last.new, family)
            continue
        out.append(Flip(*names, probe, before, after, family))
    return out
