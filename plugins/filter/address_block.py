# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Filter l3.calico.address_block: the block CIDR an address belongs to."""

from __future__ import annotations

DOCUMENTATION = r"""
name: address_block
author: l3.calico maintainers (!UNKNOWN)
version_added: "1.0.0"
short_description: The block of an address
description:
  - The CIDR of the IPAM block holding an IPv4 or IPv6 address, for a block size (the address with its last
    32 - O(block_size) bits cleared, 128 - O(block_size) for IPv6). A prefix length on the input is ignored.
options:
  _input:
    description:
      - An IPv4 or IPv6 address, optionally with a prefix length (V(172.17.72.5), V(172.17.72.5/32),
        V(fd00:17::5) or V(fd00:17::5/128)).
    type: str
    required: true
  block_size:
    description:
      - The prefix length of a block, 20 to 32 for IPv4, 116 to 128 for IPv6.
      - Default Calico's, 26 for IPv4 and 122 for IPv6.
    type: int
"""

EXAMPLES = r"""
- name: The block of a workload address
  ansible.builtin.debug:
    msg: "{{ '172.17.72.5' | l3.calico.address_block }}"
  # => '172.17.72.0/26'

- name: The block of a workload's IPv6 address
  ansible.builtin.debug:
    msg: "{{ 'fd00:17::4c' | l3.calico.address_block }}"
  # => 'fd00:17::40/122'
"""

RETURN = r"""
_value:
  description: The block CIDR.
  type: str
"""

import importlib.util

from ansible.errors import AnsibleFilterError

from ansible_collections.l3.calico.plugins.plugin_utils.filter_args import missing, validate

# The code behind the filter is imported when it is called: to find any filter of this collection, Ansible
# imports every filter file of it, in every worker (a host's task) whose templates name one.
HAS_NETADDR = importlib.util.find_spec("netaddr") is not None


def address_block(*args, **kwargs) -> str:
    import netaddr

    from ansible_collections.l3.calico.plugins.module_utils.ipam_inventory import BLOCK_SIZES, DEFAULT_BLOCK_SIZE

    params = validate(DOCUMENTATION, "address_block", args, kwargs)
    address, block_size = params["_input"], params["block_size"]
    try:
        ip = netaddr.IPNetwork(address).ip
    except (netaddr.AddrFormatError, ValueError, TypeError) as exc:
        raise AnsibleFilterError(f"address_block: {address!r} is not an address: {exc}") from None
    width = 32 if ip.version == 4 else 128  # Calico's block sizes per family (ipam_inventory)
    (low, high), block_size = BLOCK_SIZES[width], DEFAULT_BLOCK_SIZE[width] if block_size is None else block_size
    if not low <= block_size <= high:
        raise AnsibleFilterError(f"address_block: block_size {block_size} must be {low}..{high} for the IPv{ip.version} address {address!r}")
    return str(netaddr.IPNetwork(f"{ip}/{block_size}").cidr)


class FilterModule:
    def filters(self):
        return {"address_block": address_block if HAS_NETADDR else missing("address_block")}
