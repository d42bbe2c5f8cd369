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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from ansible_collections.l3.calico.plugins.module_utils import naming
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import int_to_ip, ip_to_int, prefix_mask
from ansible_collections.l3.calico.plugins.module_utils.policy_model import (
    EGRESS,
    ICMP,
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

Endpoint = Union[Workload, int]  # a workload, or an IPv4 address (integer) that is no workload's


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

    def describe(self) -> str:
        proto = PROTOCOL_NAMES.get(self.protocol, str(self.protocol))
        what = f"{proto} port {self.port}" if self.port is not None else proto
        if self.icmp_type is not None:
            what += f" type {self.icmp_type}" + (f" code {self.icmp_code}" if self.icmp_code is not None else "")
        return f"{endpoint_text(self.src)} -> {endpoint_text(self.dst)} {what}"


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
        """The decision that denied the flow (egress first), or the ingress one when allowed."""
        if not self.egress.allowed:
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


def endpoint_text(endpoint: Endpoint) -> str:
    return endpoint.id if isinstance(endpoint, Workload) else int_to_ip(endpoint)


def endpoint(policy_set: PolicySet, value, by_address: Optional[dict] = None) -> Endpoint:
    """A workload (``<namespace>.<name>``, a :class:`Workload`) or an address; an address that is a
    workload's is that workload (policy is enforced by address)."""
    if isinstance(value, Workload):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        address = value
    elif isinstance(value, str) and value in policy_set.workloads:
        return policy_set.workloads[value]
    elif isinstance(value, str) and value.count(".") == 1 and all(naming.is_label(p) for p in value.split(".")):
        raise FlowError(f"{value!r}: no such workload (<namespace>.<name>) in the inventory")
    else:
        try:
            address = ip_to_int(value)
        except ValueError:
            raise FlowError(f"{value!r}: neither a workload (<namespace>.<name>) nor an IPv4 address") from None
    if by_address is None:
        by_address = policy_set.by_address()
    return by_address.get(address, address)


def make_flow(policy_set: PolicySet, src, dst, protocol="TCP", port=None, src_port=None, icmp_type=None, icmp_code=None) -> Flow:
    """A :class:`Flow` from user input (names or numbers), checked."""
    if isinstance(protocol, str) and protocol.isdigit():
        protocol = int(protocol)
    number = PROTOCOLS.get(protocol) if isinstance(protocol, str) else protocol
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 255:
        raise FlowError(f"protocol={protocol!r}: one of {', '.join(PROTOCOLS)} or a number 1-255")
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
    if number != ICMP and (values["icmp_type"] is not None or values["icmp_code"] is not None):
        raise FlowError("icmp_type / icmp_code: only for ICMP flows")
    if number == ICMP and values["icmp_type"] is None:
        values["icmp_type"] = 8  # echo request, a ping
    by_address = policy_set.by_address()
    return Flow(
        endpoint(policy_set, src, by_address),
        endpoint(policy_set, dst, by_address),
        number,
        values["port"],
        values["src_port"] if values["src_port"] is not None else EPHEMERAL_PORT,
        values["icmp_type"],
        values["icmp_code"],
    )


# --------------------------------------------------------------------------- matching


def _address(peer: Endpoint) -> Optional[int]:
    return peer.address if isinstance(peer, Workload) else peer


def _in_nets(address: Optional[int], nets) -> bool:
    return address is not None and any(address & prefix_mask(prefix) == base for base, prefix in nets)


def _in_ports(port: Optional[int], ports) -> bool:
    return port is not None and any(lo <= port <= hi for lo, hi in ports)


def entity_matches(policy_set: PolicySet, entity: Entity, peer: Endpoint, port: Optional[int]) -> bool:
    """Whether a packet's source (or destination) ``peer`` with ``port`` matches ``entity``."""
    address = _address(peer)
    if entity.nets and not _in_nets(address, entity.nets):
        return False
    if entity.not_nets and _in_nets(address, entity.not_nets):
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
    """Whether ``rule`` matches ``flow``: every field it has matches."""
    if rule.protocol is not None and flow.protocol != rule.protocol:
        return False
    if rule.not_protocol is not None and flow.protocol == rule.not_protocol:
        return False
    if rule.icmp is not None and not (flow.protocol == ICMP and rule.icmp.matches(flow.icmp_type, flow.icmp_code)):
        return False
    if rule.not_icmp is not None and flow.protocol == ICMP and rule.not_icmp.matches(flow.icmp_type, flow.icmp_code):
        return False
    ports = flow.protocol in PORT_PROTOCOLS
    return entity_matches(policy_set, rule.source, flow.src, flow.src_port if ports else None) and entity_matches(
        policy_set, rule.destination, flow.dst, flow.port if ports else None
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
    elif not isinstance(src, Workload) and dst.host is not None and policy_set.nodes.get(dst.host) == src:
        ingress = Decision(INGRESS, True, HOST_TO_LOCAL, endpoint=dst.id)
    else:
        ingress = decide(policy_set, dst, INGRESS, flow)
    return Verdict(egress.allowed and ingress.allowed, egress, ingress, flow)
