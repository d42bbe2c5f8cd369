# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Filter l3.calico.pool_blocks: the block CIDRs of a Calico IP pool."""

from __future__ import annotations

DOCUMENTATION = r"""
name: pool_blocks
author: l3.calico maintainers (!UNKNOWN)
version_added: "1.0.0"
short_description: The blocks of an IP pool
description:
  - Lists the block CIDRs of an IPv4 or IPv6 pool for a block size, in address order, as Calico cuts the pool
    (a C(/16) pool with C(/26) blocks has 1024 blocks; an IPv6 C(/48) with C(/122) blocks has 2^74 - use O(limit)).
options:
  _input:
    description: The pool CIDR, without host bits (for example V(172.17.0.0/16) or V(fd00:17::/48)).
    type: str
    required: true
  block_size:
    description:
      - The prefix length of a block, 20 to 32 for IPv4, 116 to 128 for IPv6, at least the pool's prefix length.
      - Default Calico's, 26 for IPv4 and 122 for IPv6.
    type: int
  limit:
    description: Return at most this many blocks (V(0) means all of them, refused past 2^24 blocks).
    type: int
    default: 0
"""

EXAMPLES = r"""
- name: The first four /26 blocks of the default pool
  ansible.builtin.debug:
    msg: "{{ '172.17.0.0/16' | l3.calico.pool_blocks(26, 4) }}"
  # => ['172.17.0.0/26', '172.17.0.64/26', '172.17.0.128/26', '172.17.0.192/26']

- name: The first two /122 blocks of an IPv6 pool
  ansible.builtin.debug:
    msg: "{{ 'fd00:17::/48' | l3.calico.pool_blocks(limit=2) }}"
  # => ['fd00:17::/122', 'fd00:17::40/122']
"""

RETURN = r"""
_value:
  description: The block CIDRs, in address order.
  type: list
  elements: str
"""

import importlib.util

from ansible.errors import AnsibleFilterError

from ansible_collections.l3.calico.plugins.plugin_utils.filter_args import missing, validate

MAX_BLOCKS_LOG2 = 24  # without a limit, at most 2^24 blocks (a /8 of /32s); an IPv6 pool has far more

# The code behind the filter is imported when it is called: to find any filter of this collection, Ansible
# imports every filter file of it, in every worker (a host's task) whose templates name one.
HAS_NETADDR = importlib.util.find_spec("netaddr") is not None


def pool_blocks(*args, **kwargs) -> list:
    import netaddr

    from ansible_collections.l3.calico.plugins.module_utils.ipam_inventory import BLOCK_SIZES, DEFAULT_BLOCK_SIZE

    params = validate(DOCUMENTATION, "pool_blocks", args, kwargs)
    cidr, block_size, limit = params["_input"], params["block_size"], params["limit"]
    try:
        pool = netaddr.IPNetwork(cidr)
    except (netaddr.AddrFormatError, ValueError, TypeError) as exc:
        raise AnsibleFilterError(f"pool_blocks: {cidr!r} is not a network: {exc}") from None
    if pool.ip != pool.network:
        raise AnsibleFilterError(f"pool_blocks: {cidr!r} must be a network without host bits (did you mean {pool.cidr}?)")
    width = 32 if pool.version == 4 else 128  # Calico's block sizes per family (ipam_inventory)
    (low, high), block_size = BLOCK_SIZES[width], DEFAULT_BLOCK_SIZE[width] if block_size is None else block_size
    if not low <= block_size <= high or block_size < pool.prefixlen:
        raise AnsibleFilterError(f"pool_blocks: block_size {block_size} must be {low}..{high} (IPv{pool.version}) and at least /{pool.prefixlen}")
    if not limit and block_size - pool.prefixlen > MAX_BLOCKS_LOG2:
        raise AnsibleFilterError(f"pool_blocks: {cidr!r} has 2^{block_size - pool.prefixlen} blocks of /{block_size}: give a limit")
    out = []
    for block in pool.subnet(block_size):
        out.append(str(block))
        if limit and len(out) >= limit:
            break
    return out


class FilterModule:
    def filters(self):
        return {"pool_blocks": pool_blocks if HAS_NETADDR else missing("pool_blocks")}
