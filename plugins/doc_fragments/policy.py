# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Options of the network-policy part (module policy; spec policy_rules.ARGUMENT_SPEC)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  firewall_backend:
    description:
      - Backend; V(auto) picks nftables when the kernel has its C(ip) family, else iptables-legacy with ipset
        (the same probe as M(l3.calico.firewall)).
    type: str
    choices: [auto, nftables, iptables]
    default: auto
  policy_state_file:
    description:
      - Where the digest of the rules applied and the listing read back afterwards are kept (under C(/run)),
        so a change made behind the module's back is rewritten.
    type: path
    default: /run/l3-calico/policy.json
"""
