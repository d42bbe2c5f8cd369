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
  - The CIDR of the IPAM block holding an IPv4 address, for a block size (the address with its last
    32 - O(block_size) bits cleared). A prefix length on the input is ignored.
options:
  _input:
    description: An IPv4 address, optionally with a prefix length (V(172.17.72.5) or V(172.17.72.5/32)).
    type: str
    required: true
  block_size:
    description: The prefix length of a block, 20 to 32.
    type: int
    default: 26
"""

EXAMPLES = r"""
- name: The block of a workload address
  ansible.builtin.debug:
    msg: "{{ '172.17.72.5' | l3.calico.address_block }}"
  # => '172.17.72.0/26'
"""

RETURN = r"""
_value:
  description: The block CIDR.
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.l3.calico.plugins.plugin_utils.filter_args import missing, validate

try:
    import netaddr
except ImportError:
    HAS_NETADDR = False
else:
    HAS_NETADDR = True


def address_block(*args, **kwargs) -> str:
    params = validate(DOCUMENTATION, "address_block", args, kwargs)
    address, block_size = params["_input"], params["block_size"]
    if not 20 <= block_size <= 32:
        raise AnsibleFilterError(f"address_block: block_size {block_size} must be 20..32")
    try:
        ip = netaddr.IPNetwork(address).ip
    except (netaddr.AddrFormatError, ValueError, TypeError) as exc:
        raise AnsibleFilterError(f"address_block: {address!r} is not an address: {exc}") from None
    if ip.version != 4:
        raise AnsibleFilterError(f"address_block: {address!r} is not an IPv4 address")
    return str(netaddr.IPNetwork(f"{ip}/{block_size}").cidr)


class FilterModule:
    def filters(self):
        return {"address_block": address_block if HAS_NETADDR else missing("address_block")}
