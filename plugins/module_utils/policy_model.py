# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Calico's policy model read from the inventory into frozen dataclasses, validated once.

The inventory interface (docs/policy.md): ``calico_policies`` (Calico's NetworkPolicy when it has a
``namespace``, GlobalNetworkPolicy when not), ``calico_namespaces: {name: {labels: {...}}}`` and each
workload's ``labels`` in ``calico_workloads``. Field names are snake_case; Calico's own spelling is
accepted too (``namespaceSelector``, ``notProtocol``, ``notICMP``, ``notNets``, ``notSelector``,
``notPorts``), so a Calico policy's spec can be pasted.

:meth:`PolicySet.from_inventory` checks everything and raises ONE :class:`PolicyError` naming the
policy, the rule, the field and the value. What it follows of Calico (projectcalico/calico):

- ``types`` absent or empty: ``[Ingress]`` when there are no egress rules (also with no rules at all),
  ``[Egress]`` with egress rules only, ``[Ingress, Egress]`` with both (libcalico-go/lib/clientv3
  ``defaultPolicyTypesField``). A type twice is refused (validator ``validateNetworkPolicySpec``).
- Order: by ``order`` (absent = after every ordered policy), then by Felix's policy key name -
  ``<namespace>/<name>`` for a namespaced policy, ``<name>`` for a global one (felix/calc/policy_sorter.go
  ``PolKVLess``; the keys from libcalico-go's networkpolicyprocessor / globalnetworkpolicyprocessor).
- Which endpoints a selector means (libcalico-go updateprocessors, :class:`Selection`): a namespaced
  policy's ``selector`` is ANDed with ``projectcalico.org/namespace == '<its namespace>'``; a global
  policy's ``namespace_selector`` is ANDed with its ``selector`` and matched against the namespace's
  labels (Calico's ``pcns.`` profile labels), ``all()`` meaning every namespace. In an entity rule
  (rules.go ``getEndpointSelector``): a ``namespace_selector`` scopes the rule's selector to the
  namespaces it selects (``global()`` alone: no workload, only non-namespaced endpoints - there are none
  here), else a namespaced policy scopes it to its own namespace; scoped as soon as ``selector``,
  ``not_selector`` or ``namespace_selector`` is given (a ``not_selector`` alone becomes "in the scope and
  not that"); ``not_selector`` itself is never scoped. ``namespace_selector`` at the top of a namespaced
  policy is refused: Calico's NetworkPolicy has no such field.
- Labels every workload carries besides its own: ``projectcalico.org/namespace: <namespace>`` and its
  namespace's labels prefixed ``pcns.`` with ``pcns.projectcalico.org/name: <namespace>`` (inherited from
  the namespace's profile: a label of the workload's own of the same name wins); a namespace carries
  ``projectcalico.org/name: <name>`` (libcalico-go k8s conversion ``NamespaceToProfile``).
- The validator (libcalico-go/lib/validator/v3): action ``Allow``, ``Deny``, ``Log`` or ``Pass``; protocol
  ``TCP``, ``UDP``, ``ICMP``, ``ICMPv6``, ``SCTP``, ``UDPLite`` or 1-255; ports only with protocol TCP, UDP
  or SCTP; ``icmp`` only with protocol ICMP or ICMPv6, its ``code`` only with a ``type`` (type 0-254, code
  0-255); ``global()`` only as a whole entity-rule namespace selector; policy names a DNS label, or two
  joined by one dot. Beyond it: ``not_icmp`` also needs protocol ICMP or ICMPv6 (Felix renders it as an
  ICMP match), a port range must not be upside down (Calico's ``PortFromRange`` refuses that too),
  named ports are refused (workloads declare no ports here), unknown keys are refused.
- Dual stack (``validateRule``): ``ip_version`` (``ipVersion``) 4 or 6; protocol or notProtocol ICMP only
  with ipVersion 4 (or none), ICMPv6 only with 6; every net of a rule of its ipVersion ("rule IP version
  doesn't match CIDR version") and all nets of a rule of one family ("rule contains both IPv4 and IPv6
  CIDRs"). Which family a rule then applies to: :attr:`Rule.families` (Felix's ``FilterRuleToIPVersion``).
  A workload's IPv6 address comes from the IPAM result (its ``ipv6``); the nodes' too (``nodes6``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Optional

from ansible_collections.l3.calico.plugins.module_utils import calico_selector, naming
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import V4, V6, format_cidr, parse_cidr, parse_cidr6
from ansible_collections.l3.calico.plugins.module_utils.ipam_result import IpamResult

ACTIONS = ("Allow", "Deny", "Log", "Pass")
PROTOCOLS = {"TCP": 6, "UDP": 17, "ICMP": 1, "ICMPv6": 58, "SCTP": 132, "UDPLite": 136}
PROTOCOL_NAMES = {number: name for name, number in PROTOCOLS.items()}
PORT_PROTOCOLS = (6, 17, 132)
ICMP = 1
ICMPV6 = 58
ICMP_PROTOCOLS = (ICMP, ICMPV6)
IP_VERSIONS = (4, 6)
TYPES = ("Ingress", "Egress")
INGRESS, EGRESS = "ingress", "egress"
NAMESPACE_LABEL = "projectcalico.org/namespace"  # on every workload: its namespace
NAME_LABEL = "projectcalico.org/name"  # on every namespace: its name
NAMESPACE_PREFIX = "pcns."  # a namespace's labels as its workloads inherit them

# A policy's name: a DNS label, or two joined by one dot (Calico's networkPolicyNameRegex without the
# prefixes it keeps for converted Kubernetes policies).
POLICY_NAME_RE = re.compile(rf"{naming.LABEL_RE.pattern}(?:\.{naming.LABEL_RE.pattern})?")

POLICY_KEYS = {"name": "name", "namespace": "namespace", "order": "order", "selector": "selector", "types": "types", "ingress": "ingress", "egress": "egress"}
POLICY_KEYS.update({"namespace_selector": "namespace_selector", "namespaceSelector": "namespace_selector"})
RULE_KEYS = {"action": "action", "protocol": "protocol", "icmp": "icmp", "source": "source", "destination": "destination"}
RULE_KEYS.update({"not_protocol": "not_protocol", "notProtocol": "not_protocol", "not_icmp": "not_icmp", "notICMP": "not_icmp"})
RULE_KEYS.update({"ip_version": "ip_version", "ipVersion": "ip_version"})
ENTITY_KEYS = {"nets": "nets", "selector": "selector", "ports": "ports"}
ENTITY_KEYS.update(
    {
        "not_nets": "not_nets",
        "notNets": "not_nets",
        "not_selector": "not_selector",
        "notSelector": "not_selector",
        "namespace_selector": "namespace_selector",
        "namespaceSelector": "namespace_selector",
        "not_ports": "not_ports",
        "notPorts": "not_ports",
    }
)
ICMP_KEYS = {"type": "type", "code": "code"}
NAMESPACE_KEYS = {"labels": "labels"}
_PORT_RE = re.compile(r"([0-9]{1,5})(?::([0-9]{1,5}))?")


class PolicyError(L3CalicoError, ValueError):
    """Bad policy input: names where (the policy, a namespace or a workload), the field, the value."""

    def __init__(self, where: str, field_name: str, value, reason: str):
        self.where, self.field, self.value, self.reason = where, field_name, value, reason
        super().__init__(f"{where}: {field_name}={_short(value)!r}: {reason}")


def _short(value):
    text = repr(value)
    return value if len(text) <= 300 else text[:300] + "..."


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def selector_labels(self) -> dict:
        """What a namespace selector is matched against: its labels and ``projectcalico.org/name``."""
        return {**self.labels, NAME_LABEL: self.name}


@dataclass(frozen=True)
class Workload:
    """A workload as policy sees it: id ``<namespace>.<name>``, host, labels, address (None: none known)."""

    id: str
    name: str
    namespace: str
    host: Optional[str] = None
    labels: Mapping[str, str] = field(default_factory=dict)
    address: Optional[int] = None
    ip: Optional[str] = None
    # The labels a selector sees: its own, projectcalico.org/namespace and the namespace's pcns.* labels.
    selector_labels: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    address6: Optional[int] = None  # its IPv6 address (dual stack), None: none
    ip6: Optional[str] = None

    def address_of(self, family: int) -> Optional[int]:
        """Its address of the family ``family`` (4 or 6), None when it has none."""
        return self.address6 if family == 6 else self.address

    @property
    def label_class(self) -> tuple:
        """What selection depends on (workloads of one class are selected together)."""
        return (self.namespace, tuple(sorted(self.labels.items())))


@dataclass(frozen=True)
class Selection:
    """The workloads a selector picks once Calico has scoped it (see the module docstring).

    ``selector`` over the workload's labels (None: any), ``namespace`` a fixed namespace (a namespaced
    policy's own), ``namespace_selector`` over the namespace's labels (``global()``: none). ``key`` is the
    canonical text of what it selects by - equal keys select the same workloads, so they share an address set.
    """

    selector: Optional[str] = None
    namespace: Optional[str] = None
    namespace_selector: Optional[str] = None
    _selects: Any = field(default=None, compare=False, repr=False)
    _ns_selects: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def make(cls, selector=None, namespace=None, namespace_selector=None) -> Selection:
        sel = calico_selector.parse(selector) if selector is not None else None
        if namespace_selector is not None and namespace_selector.strip() == "global()":
            ns_sel = _nothing
        elif namespace_selector is not None:
            ns_sel = calico_selector.parse(namespace_selector)  # all() selects every namespace
        else:
            ns_sel = None
        return cls(selector, namespace, namespace_selector, sel, ns_sel)

    @property
    def key(self) -> str:
        return f"selector={self.selector or ''}\0namespace={self.namespace or ''}\0namespace_selector={self.namespace_selector or ''}"

    def selects(self, workload: Workload, namespaces: Mapping[str, Namespace]) -> bool:
        if self.namespace is not None and workload.namespace != self.namespace:
            return False
        if self._ns_selects is not None:
            ns = namespaces.get(workload.namespace) or Namespace(workload.namespace)
            if not self._ns_selects(ns.selector_labels):
                return False
        return self._selects is None or self._selects(workload.selector_labels)

    def describe(self) -> str:
        parts = []
        if self.namespace is not None:
            parts.append(f"namespace {self.namespace}")
        if self.namespace_selector is not None:
            parts.append(f"namespaces {self.namespace_selector!r}")
        parts.append(f"selector {self.selector!r}" if self.selector is not None else "every workload")
        return ", ".join(parts)


def _nothing(labels) -> bool:
    return False


@dataclass(frozen=True)
class Icmp:
    type: int
    code: Optional[int] = None

    def matches(self, icmp_type, icmp_code) -> bool:
        return icmp_type == self.type and (self.code is None or icmp_code == self.code)


@dataclass(frozen=True)
class Entity:
    """A rule's source or destination. Nets are ``(base, prefix)`` integers, IPv4 ones in ``nets`` /
    ``not_nets``, IPv6 ones in ``nets6`` / ``not_nets6`` (a rule's nets are of one family: validated);
    ports inclusive ``(lo, hi)``."""

    nets: tuple = ()
    not_nets: tuple = ()
    selection: Optional[Selection] = None
    not_selection: Optional[Selection] = None
    ports: tuple = ()
    not_ports: tuple = ()
    nets6: tuple = ()
    not_nets6: tuple = ()

    @property
    def empty(self) -> bool:
        return not (self.nets or self.not_nets or self.selection or self.not_selection or self.ports or self.not_ports or self.nets6 or self.not_nets6)

    def nets_of(self, family: int) -> tuple:
        """``(nets, not_nets)`` of the family ``family``."""
        return (self.nets6, self.not_nets6) if family == 6 else (self.nets, self.not_nets)

    @property
    def families(self) -> frozenset:
        """The families of the nets it names (empty: none named)."""
        return frozenset(f for f, nets in ((4, self.nets + self.not_nets), (6, self.nets6 + self.not_nets6)) if nets)


@dataclass(frozen=True)
class Rule:
    policy: str  # the policy's display name, "<namespace>/<name>" or "global/<name>"
    direction: str  # INGRESS or EGRESS
    index: int
    action: str  # Allow, Deny, Log or Pass
    protocol: Optional[int] = None
    not_protocol: Optional[int] = None
    icmp: Optional[Icmp] = None
    not_icmp: Optional[Icmp] = None
    source: Entity = Entity()
    destination: Entity = Entity()
    ip_version: Optional[int] = None  # Calico's ipVersion: 4, 6 or None (both)

    @property
    def ref(self) -> str:
        return f"{self.policy} {self.direction}[{self.index}]"

    @property
    def families(self) -> frozenset:
        """The IP versions the rule applies to (Felix renders a rule per IP version).

        felix/rules ``FilterRuleToIPVersion``: a rule is skipped for the other version when its ``ipVersion``
        says so, or when one of its net lists is non-empty and holds no net of that version (a rule's nets
        are of one family: validated, as libcalico-go's ``validateRule``). And protocol ``ICMP`` is IPv4's,
        ``ICMPv6`` IPv6's (the validator ties them to ``ipVersion`` 4 and 6; an ICMP header exists only in
        its own family, and Felix renders ``icmp`` fields as the rendered version's ICMP match): such a rule
        applies to that family only. Contradicting conditions (ICMP with IPv6 nets): no family."""
        out = {4, 6}
        if self.ip_version is not None:
            out &= {self.ip_version}
        nets = self.source.families | self.destination.families
        if nets:
            out &= nets
        if self.protocol in (ICMP, ICMPV6):
            out &= {4 if self.protocol == ICMP else 6}
        return frozenset(out)

    @property
    def family(self) -> Optional[int]:
        """The one family the rule applies to, None when both (a rule that applies to none: :attr:`families`)."""
        families = self.families
        return next(iter(families)) if len(families) == 1 else None

    def applies_to(self, family: int) -> bool:
        return family in self.families


@dataclass(frozen=True)
class Policy:
    name: str
    namespace: Optional[str]  # None: a global policy
    order: Optional[float]
    selection: Selection
    types: tuple  # of INGRESS / EGRESS
    ingress: tuple = ()
    egress: tuple = ()
    index: int = 0  # position in calico_policies

    @property
    def display(self) -> str:
        return f"{self.namespace or 'global'}/{self.name}"

    @property
    def felix_key(self) -> str:
        """Felix's policy key name, its tie-break between equal orders."""
        return f"{self.namespace}/{self.name}" if self.namespace is not None else self.name

    @property
    def sort_key(self) -> tuple:
        return (self.order is None, self.order if self.order is not None else 0.0, self.felix_key)

    def applies(self, direction: str) -> bool:
        return direction in self.types

    def rules(self, direction: str) -> tuple:
        return self.ingress if direction == INGRESS else self.egress


@dataclass(frozen=True)
class PolicySet:
    policies: tuple  # sorted as Felix applies them
    namespaces: Mapping[str, Namespace] = field(default_factory=dict)
    workloads: Mapping[str, Workload] = field(default_factory=dict)  # by id
    nodes: Mapping[str, int] = field(default_factory=dict)  # node name -> underlay address (host -> local workload)
    nodes6: Mapping[str, int] = field(default_factory=dict)  # node name -> its IPv6 address (nodes that have one)

    @classmethod
    def from_inventory(cls, policies=None, namespaces=None, workloads=None, ipam_result=None) -> PolicySet:
        """Check and read ``calico_policies``, ``calico_namespaces`` and the workloads.

        ``workloads``: ``{host: [calico_workloads entry, ...]}`` (name, namespace, labels; other keys are
        the IPAM's) or a list of ``{id | name + namespace, labels, host}``. ``ipam_result``
        (``calico_ipam_result`` or an :class:`IpamResult`): the workloads' addresses and hosts, and the
        nodes' addresses; a workload the IPAM result lists and the inventory does not has no labels.
        """
        ns_map = read_namespaces(namespaces)
        wl_map = read_workloads(workloads, ns_map)
        nodes: dict = {}
        nodes6: dict = {}
        if ipam_result is not None:
            wl_map, nodes, nodes6 = _with_addresses(wl_map, IpamResult.of(ipam_result), ns_map)
        pols = read_policies(policies)
        return cls(
            tuple(sorted(pols, key=lambda p: p.sort_key)), MappingProxyType(ns_map), MappingProxyType(wl_map), MappingProxyType(nodes), MappingProxyType(nodes6)
        )

    def namespace(self, name: str) -> Namespace:
        return self.namespaces.get(name) or Namespace(name)

    def selects(self, selection: Selection, workload: Workload) -> bool:
        return selection.selects(workload, self.namespaces)

    def policies_for(self, workload: Workload, direction: str) -> tuple:
        """The policies (in order) that select ``workload`` and apply to ``direction``."""
        return tuple(p for p in self.policies if p.applies(direction) and p.selection.selects(workload, self.namespaces))

    def by_address(self, family: int = 4) -> dict:
        """Address (integer) of the family ``family`` -> workload, for the workloads that have one."""
        if family == 6:
            return {w.address6: w for w in self.workloads.values() if w.address6 is not None}
        return {w.address: w for w in self.workloads.values() if w.address is not None}

    @property
    def dual_stack(self) -> bool:
        """Whether any workload has an IPv6 address (then policy is enforced for both families)."""
        return any(w.address6 is not None for w in self.workloads.values())


# --------------------------------------------------------------------------- reading


def _fail(where, field_name, value, reason):
    raise PolicyError(where, field_name, value, reason)


def _keys(where, field_name, raw, allowed: dict, what: str) -> dict:
    """``raw`` as a mapping with canonical keys; unknown keys and a field given in both spellings refused."""
    if not isinstance(raw, dict):
        _fail(where, field_name or what, raw, f"{what} must be a mapping")
    out = {}
    for key, value in raw.items():
        canonical = allowed.get(key)
        if canonical is None:
            names = sorted({k for k in allowed if "_" in k or k == allowed[k]})
            _fail(where, _join(field_name, str(key)), value, f"unknown key {key!r} in {what} (allowed: {', '.join(names)})")
        if canonical in out:
            _fail(where, _join(field_name, str(key)), value, f"{canonical} given twice (snake_case and Calico's spelling)")
        out[canonical] = value
    return out


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def read_namespaces(namespaces) -> dict:
    """``calico_namespaces``: ``{name: {labels: {...}}}`` (a value may be null)."""
    where = "calico_namespaces"
    if namespaces is None:
        return {}
    if not isinstance(namespaces, dict):
        _fail(where, "calico_namespaces", namespaces, "must be a mapping of namespace name to {labels: {...}}")
    out = {}
    for name, raw in namespaces.items():
        if not naming.is_label(name):
            _fail(where, f"calico_namespaces.{name}", name, "a namespace name must be a DNS label (lower-case letters, digits and '-', at most 63)")
        spec = _keys(where, f"calico_namespaces.{name}", raw if raw is not None else {}, NAMESPACE_KEYS, "a namespace")
        labels = _labels(where, f"calico_namespaces.{name}.labels", spec.get("labels"))
        out[name] = Namespace(name, MappingProxyType(labels))
    return out


# Labels checked in this process (a fleet repeats the same few labels tens of thousands of times).
_CHECKED_LABELS: set = set()


def _labels(where, field_name, labels) -> dict:
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        _fail(where, field_name, labels, "must be a mapping of label names to strings")
    checked = _CHECKED_LABELS
    for item in labels.items():
        if item.__class__ is tuple and item[1].__class__ is str and item in checked:
            continue
        key, value = item
        problem = naming.label_problem(key, value)
        if problem:
            _fail(where, f"{field_name}.{key}", value, problem)
        checked.add(item)
    return dict(labels)


def _namespace_labels(namespace: str, ns_map: Mapping, cache: dict) -> dict:
    """The labels every workload of ``namespace`` inherits from it (its profile's): ``pcns.<key>``."""
    found = cache.get(namespace)
    if found is None:
        ns = ns_map.get(namespace) or Namespace(namespace)
        found = cache[namespace] = {NAMESPACE_PREFIX + key: value for key, value in ns.selector_labels.items()}
    return found


def _workload(wid, name, namespace, host, labels, ns_map, address=None, ip=None, cache=None) -> Workload:
    # Inherited labels first, the workload's own override them (felix/labelindex/label_inheritance_index.go:
    # "endpoints have their own labels; these take priority over any inherited labels"), then the namespace
    # label Calico sets on the endpoint itself.
    inherited = _namespace_labels(namespace, ns_map, {} if cache is None else cache)
    selector_labels = {**inherited, **labels, NAMESPACE_LABEL: namespace}
    return Workload(wid, name, namespace, host, MappingProxyType(labels), address, ip, MappingProxyType(selector_labels))


def read_workloads(workloads, ns_map: Mapping) -> dict:
    """The workloads with their labels: ``{host: [entry, ...]}`` or ``[{id|name, namespace, labels, host}]``."""
    if workloads is None:
        return {}
    items: list = []
    if isinstance(workloads, dict):
        for host, entries in workloads.items():
            if entries is None:
                continue
            if not isinstance(entries, list):
                _fail(str(host), "calico_workloads", entries, "must be a list of workloads")
            items += [(host, f"calico_workloads[{i}]", entry) for i, entry in enumerate(entries)]
    elif isinstance(workloads, list):
        items = [(None, f"workloads[{i}]", entry) for i, entry in enumerate(workloads)]
    else:
        _fail("workloads", "workloads", workloads, "must be a mapping of host to its calico_workloads, or a list")
    out: dict = {}
    cache: dict = {}  # namespace -> its implicit labels
    names_ok: set = set()  # names and namespaces checked (DNS labels)
    for host, field_name, entry in items:
        where = str(host if host is not None else (entry.get("host") if isinstance(entry, dict) else None) or "workloads")
        if not isinstance(entry, dict):
            _fail(where, field_name, entry, "a workload is a mapping with at least a name")
        wid = entry.get("id")
        if wid is not None and entry.get("name") is None:
            if not isinstance(wid, str) or wid.count(".") != 1:
                _fail(where, f"{field_name}.id", wid, "a workload id is <namespace>.<name>")
            namespace, name = wid.split(".")
        else:
            name, namespace = entry.get("name"), entry.get("namespace") or "default"
        if name.__class__ is not str or name not in names_ok:
            if not naming.is_label(name):
                _fail(where, f"{field_name}.name", name, "a workload name must be a DNS label (lower-case letters, digits and '-', at most 63)")
            names_ok.add(name)
        if namespace.__class__ is not str or namespace not in names_ok:
            if not naming.is_label(namespace):
                _fail(where, f"{field_name}.namespace", namespace, "a namespace must be a DNS label (lower-case letters, digits and '-', at most 63)")
            names_ok.add(namespace)
        wid = naming.workload_id(namespace, name)
        if wid in out:
            _fail(where, f"{field_name}.name", name, f"workload {wid} is listed twice (on {out[wid].host or 'an earlier entry'})")
        labels = _labels(where, f"{field_name}.labels", entry.get("labels"))
        out[wid] = _workload(wid, name, namespace, host if host is not None else entry.get("host"), labels, ns_map, cache=cache)
    return out


def _with_addresses(wl_map: dict, result: IpamResult, ns_map: Mapping) -> tuple:
    """The workloads with the addresses (IPv4 and IPv6) and hosts of the IPAM result; the nodes'
    IPv4 addresses and IPv6 addresses."""
    out = {}
    for host, node in result.nodes.items():
        six = {w.id: w for w in node.workloads6}
        ids4 = {w.id for w in node.workloads} if six else ()
        for w in node.workloads + tuple(w6 for wid, w6 in six.items() if wid not in ids4):  # an IPv6-only workload last
            known = wl_map.get(w.id)
            if known is not None and known.host is not None and known.host != host:
                _fail(host, "calico_ipam_result", w.id, f"the inventory lists workload {w.id} on {known.host}, the IPAM result on {host}")
            if known is None:
                namespace, _dot, name = w.id.partition(".")
                known = _workload(w.id, name, namespace, host, {}, ns_map)
            w6 = six.get(w.id)
            address, ip = (None, None) if w is w6 else (w.address, w.ip)
            out[w.id] = Workload(
                known.id,
                known.name,
                known.namespace,
                host,
                known.labels,
                address,
                ip,
                known.selector_labels,
                w6.address if w6 is not None else None,
                w6.ip if w6 is not None else None,
            )
    for wid, known in wl_map.items():
        if wid not in out:
            _fail(known.host or "calico_ipam_result", "calico_workloads", wid, "not in the IPAM result (run the IPAM for this inventory first)")
    nodes = result.nodes.items()
    return out, {name: node.address for name, node in nodes}, {name: node.address6 for name, node in nodes if node.address6 is not None}


def read_policies(policies) -> list:
    if policies is None:
        return []
    if not isinstance(policies, list):
        _fail("calico_policies", "calico_policies", policies, "must be a list of policies")
    out, seen = [], {}
    for index, raw in enumerate(policies):
        policy = read_policy(index, raw)
        key = (policy.namespace, policy.name)
        if key in seen:
            _fail(
                f"policy {policy.display} (calico_policies[{index}])",
                "name",
                policy.name,
                f"calico_policies[{seen[key]}] has the same name in {'namespace ' + policy.namespace if policy.namespace else 'the global policies'}",
            )
        seen[key] = index
        out.append(policy)
    return out


def read_policy(index: int, raw) -> Policy:
    where = f"calico_policies[{index}]"
    if isinstance(raw, dict) and isinstance(raw.get("name"), str) and isinstance(raw.get("namespace"), (str, type(None))):
        where = f"policy {raw.get('namespace') or 'global'}/{raw['name']} ({where})"  # named in errors as soon as it has a name
    spec = _keys(where, "", raw, POLICY_KEYS, "a policy")
    name, namespace = spec.get("name"), spec.get("namespace")
    if not isinstance(name, str) or len(name) > naming.SUBDOMAIN_MAX or not POLICY_NAME_RE.fullmatch(name):
        _fail(where, "name", name, "a policy needs a name: a DNS label (lower-case letters, digits, '-'), or two joined by one '.'")
    if namespace is not None and not naming.is_label(namespace):
        _fail(where, "namespace", namespace, "a namespace must be a DNS label (lower-case letters, digits and '-', at most 63)")
    display = f"{namespace or 'global'}/{name}"
    where = f"policy {display} (calico_policies[{index}])"
    order = spec.get("order")
    if order is not None and (isinstance(order, bool) or not isinstance(order, (int, float)) or not math.isfinite(order)):
        _fail(where, "order", order, "must be a number (lower first; absent = after every ordered policy)")
    selector = _selector(where, "selector", spec.get("selector"))
    ns_selector = spec.get("namespace_selector")
    if ns_selector is not None:
        if namespace is not None:
            _fail(
                where,
                "namespace_selector",
                ns_selector,
                "only a global policy (no namespace) selects namespaces; a namespaced policy applies to its own namespace "
                "(Calico's NetworkPolicy has no namespaceSelector) - use namespace_selector in its rules' source/destination",
            )
        ns_selector = _selector(where, "namespace_selector", ns_selector)
    ingress = _rules(where, display, INGRESS, spec.get("ingress"), namespace)
    egress = _rules(where, display, EGRESS, spec.get("egress"), namespace)
    types = _types(where, spec.get("types"), ingress, egress)
    if namespace is not None:
        selection = Selection.make(selector or "all()", namespace=namespace)
    else:
        selection = Selection.make(selector or "all()", namespace_selector=ns_selector)
    return Policy(name, namespace, float(order) if order is not None else None, selection, types, ingress, egress, index)


def _types(where, types, ingress, egress) -> tuple:
    if types is None or types == []:
        # libcalico-go clientv3 defaultPolicyTypesField
        if not egress:
            return (INGRESS,)
        if not ingress:
            return (EGRESS,)
        return (INGRESS, EGRESS)
    if not isinstance(types, list):
        _fail(where, "types", types, "must be a list of Ingress and/or Egress")
    out = []
    for i, value in enumerate(types):
        if value not in TYPES:
            _fail(where, f"types[{i}]", value, "unknown policy type (Ingress or Egress)")
        if value.lower() in out:
            _fail(where, f"types[{i}]", value, f"{value!r} type specified more than once")
        out.append(value.lower())
    return tuple(d for d in (INGRESS, EGRESS) if d in out)


def _selector(where, field_name, value, allow_global=False) -> Optional[str]:
    if value is None:
        return None
    try:
        globals_ = calico_selector.uses_global(value)
    except calico_selector.SelectorError as exc:
        _fail(where, field_name, value, f"selector syntax error: {exc}")
    if globals_ and not (allow_global and value.strip() == "global()"):
        _fail(
            where,
            field_name,
            value,
            "global() can only be used as a whole entity-rule namespace_selector (Calico: it cannot be combined with other selectors)",
        )
    return value


def _rules(where, display, direction, rules, namespace) -> tuple:
    if rules is None:
        return ()
    if not isinstance(rules, list):
        _fail(where, direction, rules, "must be a list of rules")
    return tuple(_rule(where, display, direction, i, raw, namespace) for i, raw in enumerate(rules))


def _protocol(where, field_name, value) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, str) and value in PROTOCOLS:
        return PROTOCOLS[value]
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 255:
        return value
    _fail(where, field_name, value, f"unknown protocol (one of {', '.join(PROTOCOLS)} or a number 1-255)")


def _icmp(where, field_name, value) -> Optional[Icmp]:
    if value is None:
        return None
    spec = _keys(where, field_name, value, ICMP_KEYS, "icmp")
    icmp_type, code = spec.get("type"), spec.get("code")
    if code is not None and icmp_type is None:
        _fail(where, f"{field_name}.code", code, "ICMP code specified without an ICMP type")
    if icmp_type is None:
        _fail(where, field_name, value, "needs a type (0-254) and optionally a code (0-255)")
    if isinstance(icmp_type, bool) or not isinstance(icmp_type, int) or not 0 <= icmp_type <= 254:
        _fail(where, f"{field_name}.type", icmp_type, "an ICMP type is a number 0-254")
    if code is not None and (isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255):
        _fail(where, f"{field_name}.code", code, "an ICMP code is a number 0-255")
    return Icmp(icmp_type, code)


def _rule(where, display, direction, index, raw, namespace) -> Rule:
    field_name = f"{direction}[{index}]"
    spec = _keys(where, field_name, raw, RULE_KEYS, "a rule")
    action = spec.get("action")
    if action not in ACTIONS:
        _fail(where, f"{field_name}.action", action, f"unknown action (one of {', '.join(ACTIONS)})")
    ip_version = spec.get("ip_version")
    if ip_version is not None and (isinstance(ip_version, bool) or ip_version not in IP_VERSIONS):
        _fail(where, f"{field_name}.ip_version", ip_version, "ipVersion must be 4 or 6")
    protocol = _protocol(where, f"{field_name}.protocol", spec.get("protocol"))
    not_protocol = _protocol(where, f"{field_name}.not_protocol", spec.get("not_protocol"))
    icmp = _icmp(where, f"{field_name}.icmp", spec.get("icmp"))
    not_icmp = _icmp(where, f"{field_name}.not_icmp", spec.get("not_icmp"))
    for key, value in (("icmp", icmp), ("not_icmp", not_icmp)):
        if value is not None and protocol not in ICMP_PROTOCOLS:
            _fail(
                where,
                f"{field_name}.{key}",
                spec.get(key),
                f"rules that specify ICMP fields must set protocol to ICMP or ICMPv6 (protocol is {_protocol_text(spec.get('protocol'))})",
            )
    # libcalico-go validateRule: ICMP goes with ipVersion 4, ICMPv6 with 6 (protocol or notProtocol)
    for number, version, name in ((ICMP, 4, "icmp"), (ICMPV6, 6, "icmpv6")):
        if ip_version is not None and ip_version != version and number in (protocol, not_protocol):
            key = "protocol" if protocol == number else "not_protocol"
            _fail(where, f"{field_name}.ip_version", ip_version, f"must set ipversion to '{version}' with {key} {name}")
    source = _entity(where, f"{field_name}.source", spec.get("source"), namespace, protocol, spec.get("protocol"))
    destination = _entity(where, f"{field_name}.destination", spec.get("destination"), namespace, protocol, spec.get("protocol"))
    _net_families(where, field_name, ip_version, source, destination, spec)
    return Rule(display, direction, index, action, protocol, not_protocol, icmp, not_icmp, source, destination, ip_version)


def _net_families(where, field_name, ip_version, source: Entity, destination: Entity, spec: dict) -> None:
    """libcalico-go validateRule's ``scanNets``: every net of a rule of the family its ``ipVersion`` says
    ("rule IP version doesn't match CIDR version"), and all of one family ("rule contains both IPv4 and
    IPv6 CIDRs"), looked at in Calico's order (source nets, source notNets, destination nets, notNets)."""
    seen: set = set()
    for side, entity in (("source", source), ("destination", destination)):
        for key, v4, v6 in (("nets", entity.nets, entity.nets6), ("not_nets", entity.not_nets, entity.not_nets6)):
            families = {f for f, nets in ((4, v4), (6, v6)) if nets}
            if not families:
                continue
            value = (spec.get(side) or {}).get(key, (spec.get(side) or {}).get("notNets" if key == "not_nets" else key))
            if ip_version is not None and families - {ip_version}:
                _fail(where, f"{field_name}.{side}.{key}", value, f"rule IP version doesn't match CIDR version (ipVersion is {ip_version})")
            if len(families | seen) > 1:
                _fail(where, f"{field_name}.{side}.{key}", value, "rule contains both IPv4 and IPv6 CIDRs (write one rule per family)")
            seen |= families


def _protocol_text(value) -> str:
    return "not set" if value is None else repr(value)


def _entity(where, field_name, raw, namespace, protocol, protocol_given) -> Entity:
    if raw is None:
        return Entity()
    spec = _keys(where, field_name, raw, ENTITY_KEYS, "a source or destination")
    nets, nets6 = _nets(where, f"{field_name}.nets", spec.get("nets"))
    not_nets, not_nets6 = _nets(where, f"{field_name}.not_nets", spec.get("not_nets"))
    ports = _ports(where, f"{field_name}.ports", spec.get("ports"))
    not_ports = _ports(where, f"{field_name}.not_ports", spec.get("not_ports"))
    for key, value in (("ports", ports), ("not_ports", not_ports)):
        if value and protocol not in PORT_PROTOCOLS:
            _fail(
                where,
                f"{field_name}.{key}",
                spec.get(key),
                f"rules that specify ports must set protocol to TCP, UDP or SCTP (protocol is {_protocol_text(protocol_given)})",
            )
    selector = _selector(where, f"{field_name}.selector", spec.get("selector"))
    not_selector = _selector(where, f"{field_name}.not_selector", spec.get("not_selector"))
    ns_selector = _selector(where, f"{field_name}.namespace_selector", spec.get("namespace_selector"), allow_global=True)
    # libcalico-go rules.go getEndpointSelector: scoped as soon as any selector field is given.
    selection = None
    if ns_selector is not None or (namespace is not None and (selector is not None or not_selector is not None)):
        if ns_selector is not None:
            selection = Selection.make(selector or "all()", namespace_selector=ns_selector)
        else:
            selection = Selection.make(selector or "all()", namespace=namespace)
    elif selector is not None:
        selection = Selection.make(selector)
    not_selection = Selection.make(not_selector) if not_selector is not None else None
    return Entity(nets, not_nets, selection, not_selection, ports, not_ports, nets6, not_nets6)


def _nets(where, field_name, value) -> tuple:
    """``(IPv4 nets, IPv6 nets)`` of a list of networks or addresses (a bare address is a /32 or /128)."""
    if value is None:
        return (), ()
    if not isinstance(value, list):
        _fail(where, field_name, value, "must be a list of IPv4 or IPv6 networks (CIDRs) or addresses")
    out, out6 = [], []
    for i, item in enumerate(value):
        six = isinstance(item, str) and ":" in item
        try:
            if not isinstance(item, str):
                raise ValueError("not a string")
            text = item if "/" in item else f"{item}/{128 if six else 32}"
            # Calico masks a CIDR with host bits (ParseCIDROrIP)
            (out6 if six else out).append(parse_cidr6(text, strict=False) if six else parse_cidr(text, strict=False))
        except ValueError as exc:
            _fail(where, f"{field_name}[{i}]", item, f"not an {'IPv6' if six else 'IPv4'} network or address: {exc}")
    return tuple(out), tuple(out6)


def _ports(where, field_name, value) -> tuple:
    if value is None:
        return ()
    if not isinstance(value, list):
        _fail(where, field_name, value, "must be a list of ports: numbers and 'a:b' ranges")
    out = []
    for i, item in enumerate(value):
        where_i = f"{field_name}[{i}]"
        if isinstance(item, int) and not isinstance(item, bool):
            lo = hi = item
        elif isinstance(item, str) and _PORT_RE.fullmatch(item):
            match = _PORT_RE.fullmatch(item)
            lo = int(match.group(1))
            hi = int(match.group(2)) if match.group(2) is not None else lo
        elif isinstance(item, str) and naming.is_label(item):
            _fail(where, where_i, item, "named ports are not supported (workloads declare no ports here): use a number or a range 'a:b'")
        else:
            _fail(where, where_i, item, "a port is a number 0-65535 or a range 'a:b'")
        if not (0 <= lo <= 65535 and 0 <= hi <= 65535):
            _fail(where, where_i, item, "a port is a number 0-65535")
        if lo > hi:
            _fail(where, where_i, item, f"the range is upside down: minimum port {lo} is greater than maximum port {hi}")
        out.append((lo, hi))
    return tuple(out)


def net_text(net: tuple, family: int = 4) -> str:
    return format_cidr(*net, V6 if family == 6 else V4)


__all__ = ["PolicyError", "PolicySet", "Policy", "Rule", "Entity", "Selection", "Workload", "Namespace", "Icmp", "INGRESS", "EGRESS"]
