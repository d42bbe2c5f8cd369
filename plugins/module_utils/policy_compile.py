# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Compile a :class:`~policy_model.PolicySet` into one HostProgram per host (the contract of
docs/policy.md, "HostProgram"), on the controller, once for the fleet.

- Every distinct selection (a selector as Calico scopes it, :class:`~policy_model.Selection`) is
  evaluated ONCE over the fleet, and over its label classes rather than its workloads: workloads with
  the same namespace and labels are selected together, so a fleet of 50,000 workloads in a few hundred
  classes costs a few hundred predicate calls per selection.
- A selection becomes an address set named by a stable hash of what it selects by (``s_`` + 10 hex
  digits of SHA-1 of its key): a new workload that matches changes the set's elements, never a chain.
- A chain per (policy, direction), named by a hash of the policy's Felix key (``p_<10 hex>_i`` / ``_e``), its
  rules in order; a host gets only the chains of the policies that select one of its workloads for that
  direction, and only the sets those chains use.
- Endpoints: each workload of the host with an address, its veth from :func:`naming.veth_name` and the
  chains that apply to it per direction, in policy order (``[]``: no policy selects it - allowed).
- Dual stack (some workload of the fleet has an IPv6 address, :attr:`PolicySet.dual_stack`): every
  program gets ``sets6`` (each set's IPv6 members, under the same names), endpoints their ``address6``
  (an IPv6-only workload - ``assign_ipv4: false`` - is an endpoint with ``address`` null),
  and a rule that applies to one family only (its ``ipVersion``, or the family of its nets) its
  ``ip_version``. A fleet without IPv6 gets exactly the IPv4 program it always got: no new key, and
  the rules that apply to IPv6 only left out (no workload has an IPv6 address to enforce them on).
  A rule that applies to no family (protocol ICMP with IPv6 nets) is left out everywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Optional

from ansible_collections.l3.calico.plugins.module_utils import naming
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import V6, format_cidr, int_to_ip, int_to_ip6
from ansible_collections.l3.calico.plugins.module_utils.ipam_result import IpamResult
from ansible_collections.l3.calico.plugins.module_utils.policy_model import EGRESS, INGRESS, Entity, PolicySet, Rule, Selection

VERSION = 1
_SUFFIX = {INGRESS: "_i", EGRESS: "_e"}


def set_name(selection: Selection) -> str:
    return "s_" + hashlib.sha1(selection.key.encode("utf-8")).hexdigest()[:10]


def chain_name(policy_key: str, direction: str) -> str:
    """A policy's chain for ``direction``, named by a hash of its Felix key (``<namespace>/<name>``, or
    ``<name>`` for a global policy: unambiguous, where the display ``global/<name>`` is not for a namespace
    called "global")."""
    return "p_" + hashlib.sha1(policy_key.encode("utf-8")).hexdigest()[:10] + _SUFFIX[direction]


class Compiler:
    """One compilation of a policy set: the selections resolved once, the chains rendered once."""

    def __init__(self, policy_set: PolicySet):
        self.ps = policy_set
        self.dual = policy_set.dual_stack
        self.sets6: dict = {}  # set name -> sorted IPv6 CIDR texts (dual stack)
        # label class -> the workloads of that class (with an address)
        self.classes: dict = {}
        for w in policy_set.workloads.values():
            if w.address is not None or w.address6 is not None:
                self.classes.setdefault(w.label_class, []).append(w)
        self.selections: dict = {}  # key -> Selection
        self.matched: dict = {}  # key -> frozenset of label classes
        self.sets: dict = {}  # set name -> sorted CIDR texts
        self._names: dict = {}  # set name -> key (a collision is refused)
        self.chains: dict = {}  # chain name -> chain dict
        self.policy_chains: list = []  # (policy, direction, chain name, classes selected)
        for policy in policy_set.policies:
            selected = self.resolve(policy.selection)
            for direction in (INGRESS, EGRESS):
                if policy.applies(direction):
                    name = chain_name(policy.felix_key, direction)
                    if name in self.chains:
                        raise ValueError(f"chain name {name} of {policy.display} collides with another policy's")
                    self.chains[name] = {
                        "policy": policy.display,
                        "direction": direction,
                        "rules": [self.rule(r) for r in policy.rules(direction) if r.applies_to(4) or (self.dual and r.applies_to(6))],
                    }
                    self.policy_chains.append((direction, name, selected))
        # label class -> {direction: [chain names in policy order]}
        self.class_chains: dict = {}
        for cls in self.classes:
            chains = {INGRESS: [], EGRESS: []}
            for direction, name, selected in self.policy_chains:
                if cls in selected:
                    chains[direction].append(name)
            self.class_chains[cls] = chains

    def resolve(self, selection: Selection) -> frozenset:
        """The label classes ``selection`` selects (evaluated once per distinct selection)."""
        key = selection.key
        found = self.matched.get(key)
        if found is None:
            namespaces = self.ps.namespaces
            found = frozenset(cls for cls, members in self.classes.items() if selection.selects(members[0], namespaces))
            self.matched[key] = found
            self.selections[key] = selection
        return found

    def set_for(self, selection: Optional[Selection]) -> Optional[str]:
        if selection is None:
            return None
        classes = self.resolve(selection)
        name = set_name(selection)
        other = self._names.setdefault(name, selection.key)
        if other != selection.key:
            raise ValueError(f"address set name {name} collides for two selectors ({selection.describe()})")
        if name not in self.sets:
            addresses = sorted(w.address for cls in classes for w in self.classes[cls] if w.address is not None)
            self.sets[name] = [int_to_ip(a) + "/32" for a in addresses]
            if self.dual:
                addresses6 = sorted(w.address6 for cls in classes for w in self.classes[cls] if w.address6 is not None)
                self.sets6[name] = [int_to_ip6(a) + "/128" for a in addresses6]
        return name

    def entity(self, entity: Entity, family: Optional[int] = None) -> dict:
        """A source or destination; its nets those of the rule's ``family`` (a rule's nets are of one)."""
        if family == 6:
            nets = [format_cidr(*n, V6) for n in entity.nets6]
            not_nets = [format_cidr(*n, V6) for n in entity.not_nets6]
        else:
            nets = [format_cidr(*n) for n in entity.nets]
            not_nets = [format_cidr(*n) for n in entity.not_nets]
        return {
            "nets": nets,
            "not_nets": not_nets,
            "set": self.set_for(entity.selection),
            "not_set": self.set_for(entity.not_selection),
            "ports": [[lo, hi] for lo, hi in entity.ports],
            "not_ports": [[lo, hi] for lo, hi in entity.not_ports],
        }

    def rule(self, rule: Rule) -> dict:
        family = rule.family
        out = {
            "action": rule.action.lower(),
            "protocol": rule.protocol,
            "not_protocol": rule.not_protocol,
            "icmp": {"type": rule.icmp.type, "code": rule.icmp.code} if rule.icmp else None,
            "not_icmp": {"type": rule.not_icmp.type, "code": rule.not_icmp.code} if rule.not_icmp else None,
            "source": self.entity(rule.source, family),
            "destination": self.entity(rule.destination, family),
            "ref": rule.ref,
        }
        if self.dual and family is not None:
            out["ip_version"] = family
        return out

    def program(self, workloads: list, veth_prefix: str) -> dict:
        """The HostProgram of a host holding ``workloads``."""
        endpoints, chains, sets = [], {}, {}
        for w in workloads:
            if w.address is None and w.address6 is None:
                continue
            use = self.class_chains[w.label_class]
            endpoint = {
                "interface": naming.veth_name(w.id, veth_prefix),
                "workload": w.id,
                "address": w.ip or int_to_ip(w.address) if w.address is not None else None,  # None: IPv6 only (dual stack)
                "ingress": list(use[INGRESS]),
                "egress": list(use[EGRESS]),
            }
            if self.dual and w.address6 is not None:
                endpoint["address6"] = int_to_ip6(w.address6)
            endpoints.append(endpoint)
            for name in use[INGRESS] + use[EGRESS]:
                if name not in chains:
                    chains[name] = self.chains[name]
                    for rule in chains[name]["rules"]:
                        for side in ("source", "destination"):
                            for key in ("set", "not_set"):
                                ref = rule[side][key]
                                if ref is not None:
                                    sets[ref] = self.sets[ref]
        endpoints.sort(key=lambda e: e["interface"])
        program = {"version": VERSION, "sets": dict(sorted(sets.items())), "chains": dict(sorted(chains.items())), "endpoints": endpoints}
        if self.dual:
            program["sets6"] = {name: self.sets6[name] for name in program["sets"]}
        return program


def host_programs(policy_set: PolicySet, ipam_result=None, veth_prefix: str = naming.VETH_PREFIX) -> dict:
    """``{host: HostProgram}`` for every host of ``ipam_result`` (or, without it, every host that holds a
    workload of ``policy_set``). The policy set must carry the workloads' hosts and addresses
    (``PolicySet.from_inventory(..., ipam_result=...)``)."""
    if not naming.is_veth_prefix(veth_prefix):
        raise ValueError(f"veth_prefix={veth_prefix!r}: 1-4 ASCII letters or digits")
    compiler = Compiler(policy_set)
    by_host: dict = {}
    if ipam_result is not None:
        by_host = {name: [] for name in IpamResult.of(ipam_result).nodes}
    for w in policy_set.workloads.values():
        if w.host is not None:
            by_host.setdefault(w.host, []).append(w)
    return {host: compiler.program(workloads, veth_prefix) for host, workloads in sorted(by_host.items())}


def summary(programs: Mapping) -> dict:
    """Counts over the programs: hosts, endpoints, distinct chains and sets, endpoints selected per direction."""
    chains, sets = set(), set()
    endpoints = ingress = egress = 0
    for program in programs.values():
        chains.update(program["chains"])
        sets.update(program["sets"])
        endpoints += len(program["endpoints"])
        ingress += sum(1 for e in program["endpoints"] if e["ingress"])
        egress += sum(1 for e in program["endpoints"] if e["egress"])
    return {
        "hosts": len(programs),
        "endpoints": endpoints,
        "chains": len(chains),
        "sets": len(sets),
        "endpoints_with_ingress_policy": ingress,
        "endpoints_with_egress_policy": egress,
    }
