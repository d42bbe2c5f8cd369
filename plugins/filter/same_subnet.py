# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Filter l3.calico.same_subnet: whether two addresses share a subnet (the CrossSubnet decision)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: same_subnet
author: l3.calico maintainers (!UNKNOWN)
version_added: "1.0.0"
short_description: Whether two addresses share a subnet
description:
  - True when O(other) lies in the subnet of the input address (its own prefix length, or O(prefix) when
    given). This is Calico's CrossSubnet decision, a peer reached directly inside the node's subnet needs
    no encapsulation. A prefix length on O(other) is ignored.
options:
  _input:
    description: An IPv4 address with its prefix length (V(192.168.100.100/24)), or without one when O(prefix) is given.
    type: str
    required: true
  other:
    description: The other IPv4 address.
    type: str
    required: true
  prefix:
    description: The subnet's prefix length, overriding the input's.
    type: int
"""

EXAMPLES = r"""
- name: Does node-b sit in node-a's subnet?
  ansible.builtin.debug:
    msg: "{{ '192.168.100.100/24' | l3.calico.same_subnet('192.168.100.101') }}"
  # => true
"""

RETURN = r"""
_value:
  description: Whether both addresses are in the same subnet.
  type: bool
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.l3.calico.plugins.plugin_utils.filter_args import missing, validate

try:
    import netaddr
except ImportError:
    HAS_NETADDR = False
else:
    HAS_NETADDR = True


def same_subnet(*args, **kwargs) -> bool:
    params = validate(DOCUMENTATION, "same_subnet", args, kwargs)
    value, other, prefix = params["_input"], params["other"], params["prefix"]
    if prefix is None and "/" not in value:
        raise AnsibleFilterError(f"same_subnet: {value!r} needs a prefix length (or give prefix=)")
    try:
        net = netaddr.IPNetwork(value)
        peer = netaddr.IPNetwork(other).ip
    except (netaddr.AddrFormatError, ValueError, TypeError) as exc:
        raise AnsibleFilterError(f"same_subnet: not an address: {exc}") from None
    if prefix is not None:
        if not 0 <= prefix <= (32 if net.version == 4 else 128):
            raise AnsibleFilterError(f"same_subnet: prefix {prefix} out of range")
        net = netaddr.IPNetwork(f"{net.ip}/{prefix}")
    if net.version != peer.version:
        return False
    return bool(peer in net.cidr)


class FilterModule:
    def filters(self):
        return {"same_subnet": same_subnet if HAS_NETADDR else missing("same_subnet")}
