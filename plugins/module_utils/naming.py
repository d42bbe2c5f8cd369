# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Names shared by the IPAM, the data plane, the BGP role and the filter plugins.

Every name that two pieces must agree on is computed here, once.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import shlex

VETH_PREFIX = "cali"
NETNS_PREFIX = "calico-"
VXLAN_DEVICE = "vxlan.calico"
VXLAN_V6_DEVICE = "vxlan-v6.calico"  # Felix's device for IPv6 pools' VXLAN (felix/dataplane/linux)
IPIP_DEVICE = "tunl0"
HOST_VETH_MAC = "ee:ee:ee:ee:ee:ee"
GATEWAY = "169.254.1.1"


def eui64_link_local(mac: str) -> str:
    """The IPv6 link-local address the kernel gives an interface with MAC ``mac`` (modified EUI-64,
    RFC 4291 appendix A: flip the universal/local bit, insert ff:fe in the middle)."""
    octets = [int(part, 16) for part in mac.split(":")]
    octets[0] ^= 0x02
    eui = octets[:3] + [0xFF, 0xFE] + octets[3:]
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + bytes(eui)))  # RFC 5952 spelling, as the kernel prints it


# A workload's IPv6 default route goes via the host veth's link-local address (Calico's CNI plugin,
# cni-plugin/pkg/dataplane/linux/dataplane_linux.go, DoNetworking: "the host veth device will already
# have an IPv6 link local address that can be used as a next hop"); with the MAC ee:ee:ee:ee:ee:ee
# every host veth has the same one, fe80::ecee:eeff:feee:eeee.
GATEWAY6 = eui64_link_local(HOST_VETH_MAC)

# A workload name and a namespace are DNS labels (as Kubernetes names are), so the
# id "<namespace>.<name>" is unambiguous and the same string Calico hashes.
# Every pattern here is used with fullmatch (never match(...$): '$' also accepts a trailing newline).
LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# The prefix of the host-side veth names: ASCII letters and digits, at most 4 (prefix + 11 = IFNAMSIZ - 1).
VETH_PREFIX_RE = re.compile(r"[A-Za-z0-9]{1,4}")


# An IPAM handle id (``l3-workload.<ns>.<name>``, ``ipip-tunnel-addr-<node>``, Calico's
# ``k8s-pod-network.<container id>``): it is an etcd key's last part, so no '/'.
SAFE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def is_label(value) -> bool:
    """A DNS-1123 label (a workload name, a namespace, a pool name): the whole string, no trailing newline."""
    return isinstance(value, str) and LABEL_RE.fullmatch(value) is not None


# A node name is a Calico Node name: a DNS-1123 subdomain (labels joined by '.', at most 253 characters).
# It reaches bird.conf, etcd keys, handle ids and printed commands, so nothing else may pass.
SUBDOMAIN_MAX = 253
NODE_NAME_REASON = (
    "a node name must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', "
    f"labels of at most 63 starting and ending with a letter or digit, at most {SUBDOMAIN_MAX} in all"
)


def is_node_name(value) -> bool:
    """A Calico Node name: a DNS-1123 subdomain (``node-a``, ``n1.rack1.example``), the whole string."""
    return isinstance(value, str) and 0 < len(value) <= SUBDOMAIN_MAX and all(LABEL_RE.fullmatch(label) for label in value.split("."))


# A label of a workload or a namespace, as Kubernetes and Calico define it (Calico's validator calls
# k8s.io/apimachinery's IsQualifiedName for the key and IsValidLabelValue for the value): the key an
# optional DNS-1123 subdomain prefix and '/', then a name of at most 63 (letters, digits, '-', '_', '.',
# starting and ending with a letter or digit); the value empty or such a name.
LABEL_NAME_RE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)")
LABEL_VALUE_RE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
# Labels Calico sets itself (the workload's namespace, a namespace's name): never given in the inventory.
IMPLICIT_LABELS = ("projectcalico.org/namespace", "projectcalico.org/name")


def label_problem(key, value):
    """Why ``key: value`` is not a label Calico accepts (None: it is one); both checked as whole strings."""
    if not isinstance(key, str):
        return "a label name must be a string"
    prefix, slash, name = key.rpartition("/")
    if not LABEL_NAME_RE.fullmatch(name) or (slash and not (len(prefix) <= SUBDOMAIN_MAX and is_node_name(prefix))):
        return (
            "not a label name: an optional DNS-1123 subdomain prefix and '/', then at most 63 letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit"
        )
    if key in IMPLICIT_LABELS:
        return f"{key} is set by Calico itself"
    if not isinstance(value, str):
        return "a label value must be a string (quote it in YAML)"
    if not LABEL_VALUE_RE.fullmatch(value):
        return "not a label value: empty, or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
    return None


def is_veth_prefix(value) -> bool:
    """A veth name prefix: 1-4 ASCII letters or digits (it reaches nft and iptables rules)."""
    return isinstance(value, str) and VETH_PREFIX_RE.fullmatch(value) is not None


def workload_id(namespace: str, name: str) -> str:
    """The workload id Calico hashes for the veth name: ``<namespace>.<name>``."""
    return f"{namespace}.{name}"


def is_workload_id(value) -> bool:
    """A workload id ``<namespace>.<name>``: two DNS-1123 labels (neither holds a '.'), the whole string."""
    return isinstance(value, str) and value.count(".") == 1 and all(is_label(part) for part in value.split("."))


def veth_name(wid: str, prefix: str = VETH_PREFIX) -> str:
    """Host-side veth of a workload: prefix + first 11 hex digits of SHA-1 (15 chars, IFNAMSIZ)."""
    return prefix + hashlib.sha1(wid.encode("utf-8")).hexdigest()[:11]


def netns_name(wid: str, prefix: str = NETNS_PREFIX) -> str:
    """Network namespace of a workload: a stable name derived from its id."""
    return prefix + wid


def vxlan_mac(node: str) -> str:
    """VTEP MAC of a node as Felix derives it: 0x66 then the first 5 bytes of SHA-1(node name)."""
    digest = hashlib.sha1(node.encode("utf-8")).digest()[:5]
    return ":".join(f"{b:02x}" for b in (0x66, *digest))


def vxlan_mac_v6(node: str) -> str:
    """IPv6 VTEP MAC (``vxlan-v6.calico``) as Felix derives it: :func:`vxlan_mac` of ``<node>-v6``
    (felix/calc/vxlan_resolver.go, ``vtepMACForHost``: ``nodename += "-v6"`` for IP version 6)."""
    return vxlan_mac(node + "-v6")


WORKLOAD_HANDLE_PREFIX = "l3-workload."
WORKLOAD_HANDLE_PREFIX_V6 = "l3-workload-v6."


def handle_id(namespace: str, name: str) -> str:
    """IPAM handle of a workload address (Calico's CNI uses k8s-pod-network.<container id>)."""
    return WORKLOAD_HANDLE_PREFIX + workload_id(namespace, name)


def handle_id_v6(namespace: str, name: str) -> str:
    """IPAM handle of a workload's IPv6 address: ``l3-workload-v6.<namespace>.<name>``. Calico's CNI keeps
    both addresses of a pod under its one handle; here each family has its own, so that an IPv4 state
    loads unchanged and each family's address is kept or moved on its own (docs/ipam.md)."""
    return WORKLOAD_HANDLE_PREFIX_V6 + workload_id(namespace, name)


def handle_owner(hid: str) -> str:
    """What a handle stands for in messages: the workload id of a workload's handle, else the handle itself."""
    if hid.startswith(WORKLOAD_HANDLE_PREFIX):
        return hid[len(WORKLOAD_HANDLE_PREFIX) :]
    if hid.startswith(WORKLOAD_HANDLE_PREFIX_V6):
        return hid[len(WORKLOAD_HANDLE_PREFIX_V6) :]
    return hid


TUNNEL_HANDLE_KINDS = {"ipip": "ipip", "vxlan": "vxlan", "vxlan_v6": "vxlan-v6"}


def tunnel_handle_id(kind: str, node: str) -> str:
    """IPAM handle of a node's tunnel address: ``ipip-tunnel-addr-<node>`` / ``vxlan-tunnel-addr-<node>`` /
    ``vxlan-v6-tunnel-addr-<node>`` (Calico's, design/ipam/ipam-core-library.md)."""
    if kind not in TUNNEL_HANDLE_KINDS:
        raise ValueError(f"unknown tunnel kind {kind!r}")
    return f"{TUNNEL_HANDLE_KINDS[kind]}-tunnel-addr-{node}"


def run_site(*nodes: str) -> str:
    """The command that converges ``nodes`` again (a printed fix): the limit quoted for the shell, whatever
    the names hold (they come from a state that may be damaged)."""
    return "ansible-playbook -i INVENTORY playbooks/site.yml --limit " + shlex.quote(",".join(nodes))
