# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Filter l3.calico.same_subnet: Calico's CrossSubnet rule (thin adapter of module_utils/ipam_result.same_subnet)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: same_subnet
author: l3.calico maintainers (!UNKNOWN)
version_added: "1.0.0"
short_description: Whether a peer's address lies in this node's subnet (the CrossSubnet decision)
description:
  - True when O(other) lies in the subnet of the input address (its own prefix length, or O(prefix) when
    given). This is Calico's CrossSubnet decision, as Felix makes it and as the tunnels, the BGP data, the host
    audit and verify make it (one function, module_utils/ipam_result.py) - a peer reached directly inside the
    node's subnet needs no encapsulation.
  - Only the input's prefix length counts; a prefix length on O(other) is ignored. So the answer is not
    symmetric when two nodes' prefix lengths differ - C('10.0.0.1/16' | l3.calico.same_subnet('10.0.1.1')) is
    true, C('10.0.1.1/24' | l3.calico.same_subnet('10.0.0.1')) false - as in Calico.
  - IPv4 and IPv6; addresses of different families are never in the same subnet.
options:
  _input:
    description: This node's address with its prefix length (V(192.168.100.100/24)), or without one when O(prefix) is given.
    type: str
    required: true
  other:
    description: The peer's address.
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
  description: Whether the peer's address lies in the input's subnet.
  type: bool
"""

import ipaddress

from ansible.errors import AnsibleFilterError

from ansible_collections.l3.calico.plugins.plugin_utils.filter_args import validate

# The code behind the filter is imported when it is called: to find any filter of this collection, Ansible
# imports every filter file of it, in every worker (a host's task) whose templates name one.


def same_subnet(*args, **kwargs) -> bool:
    from ansible_collections.l3.calico.plugins.module_utils.ipam_result import same_subnet as rule

    params = validate(DOCUMENTATION, "same_subnet", args, kwargs)
    value, other, prefix = params["_input"], params["other"], params["prefix"]
    if prefix is None and "/" not in value:
        raise AnsibleFilterError(f"same_subnet: {value!r} needs a prefix length (or give prefix=)")
    try:
        interface = ipaddress.ip_interface(value)
        peer = ipaddress.ip_interface(other).ip
    except ValueError as exc:
        raise AnsibleFilterError(f"same_subnet: not an address: {exc}") from None
    if prefix is not None:
        if not 0 <= prefix <= interface.max_prefixlen:
            raise AnsibleFilterError(f"same_subnet: prefix {prefix} out of range")
        interface = ipaddress.ip_interface((interface.ip, prefix))
    return rule(interface.network, peer)


class FilterModule:
    def filters(self):
        return {"same_subnet": same_subnet}
