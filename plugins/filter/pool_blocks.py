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
  - Lists the block CIDRs of an IPv4 pool for a block size, in address order, as Calico cuts the pool
    (a C(/16) pool with C(/26) blocks has 1024 blocks).
options:
  _input:
    description: The pool CIDR, without host bits (for example V(172.17.0.0/16)).
    type: str
    required: true
  block_size:
    description: The prefix length of a block, 20 to 32, at least the pool's prefix length.
    type: int
    default: 26
  limit:
    description: Return at most this many blocks (V(0) means all of them).
    type: int
    default: 0
"""

EXAMPLES = r"""
- name: The first four /26 blocks of the default pool
  ansible.builtin.debug:
    msg: "{{ '172.17.0.0/16' | l3.calico.pool_blocks(26, 4) }}"
  # => ['172.17.0.0/26', '172.17.0.64/26', '172.17.0.128/26', '172.17.0.192/26']
"""

RETURN = r"""
_value:
  description: The block CIDRs, in address order.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.l3.calico.plugins.plugin_utils.filter_args import missing, validate

try:
    import netaddr
except ImportError:
    HAS_NETADDR = False
else:
    HAS_NETADDR = True


def pool_blocks(*args, **kwargs) -> list:
    params = validate(DOCUMENTATION, "pool_blocks", args, kwargs)
    cidr, block_size, limit = params["_input"], params["block_size"], params["limit"]
    try:
        pool = netaddr.IPNetwork(cidr)
    except (netaddr.AddrFormatError, ValueError, TypeError) as exc:
        raise AnsibleFilterError(f"pool_blocks: {cidr!r} is not a network: {exc}") from None
    if pool.version != 4 or pool.ip != pool.network:
        raise AnsibleFilterError(f"pool_blocks: {cidr!r} must be an IPv4 network without host bits (did you mean {pool.cidr}?)")
    if not 20 <= block_size <= 32 or block_size < pool.prefixlen:
        raise AnsibleFilterError(f"pool_blocks: block_size {block_size} must be 20..32 and at least /{pool.prefixlen}")
    out = []
    for block in pool.subnet(block_size):
        out.append(str(block))
        if limit and len(out) >= limit:
            break
    return out


class FilterModule:
    def filters(self):
        return {"pool_blocks": pool_blocks if HAS_NETADDR else missing("pool_blocks")}
