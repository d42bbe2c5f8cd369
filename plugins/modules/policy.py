#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
---
module: policy
short_description: Calico network policy on one host (nftables or iptables-legacy + ipset)
version_added: "1.0.0"
description:
  - "Applies this host's policy program (the C(hosts[inventory_hostname]) of action plugin
    P(l3.calico.policy_plan#module)'s result: chains, address sets and endpoints, every selector already resolved)."
  - "Felix's shape: conntrack first (established and related accepted, invalid dropped); per workload one chain for
    traffic from its C(cali…) interface (its egress policies, to anywhere) and one for traffic to it (its ingress
    policies); one chain per policy and direction; selectors as address sets (nft named sets, ipsets)."
  - "Calico's verdicts: policies in order, rules in order; C(allow) marks and returns (a packet between two workloads
    of the host still goes through the destination's ingress chain), C(deny) drops, C(log) logs and continues,
    C(pass) ends the tier (the namespace profile allows); a workload selected by at least one policy for a direction
    and matched by no rule is dropped (end-of-tier deny), one no policy selects is allowed. Traffic from the host to
    its own workloads is not filtered."
  - "Only objects of the project's own are written: the nftables table C(ip l3calico_policy), or the iptables-legacy
    chains C(L3CP-*) of table filter (one jump each from FORWARD and INPUT) and the ipsets C(l3cp-*)."
  - "Dual stack (a program with C(sets6) - a fleet where workloads have IPv6 addresses): beside it the table
    C(ip6 l3calico_policy), the same chains for IPv6 (each set's IPv6 members, the rules whose C(ip_version) is 6 or
    absent; ICMPv6 neighbour discovery and MLD from a workload to its host accepted first, as Felix does), written
    in the same C(nft -f) transaction; an IPv4-only program removes it in that transaction. On iptables-legacy the
    same in ip6tables-legacy (chains C(L3CP-*)) with ipsets C(l3cp-6*) of family inet6."
  - "Plan: nothing differs - nothing is written at all; only set members differ - one C(add element)/C(delete element)
    transaction (C(ipset restore)); else the whole table is replaced in one transaction (C(nft -f),
    C(iptables-legacy-restore --noflush))."
  - "With O(state=absent) every object of this part is removed, of both backends, and O(policy_state_file)."
options:
  state:
    description: V(present) applies O(program); V(absent) removes the part's objects.
    type: str
    choices: [present, absent]
    default: present
  program:
    description:
      - This host's program (docs/policy.md, HostProgram), checked strictly (names full-matched, CIDRs canonical,
        ports in range, unknown keys refused) before anything changes.
      - Required with O(state=present). Left out, the action plugin reads it on the controller from
        C(calico_policy_plan.hosts[inventory_hostname]) (the registered result of P(l3.calico.policy_plan#module)), so
        the task's own arguments, which Ansible keeps for every host until the task ends, do not hold it
        (P(l3.calico.calico_policy#role) does that; a program can be a megabyte per host in a large fleet).
    type: dict
  firewall_backend:
    aliases: [backend]
  policy_state_file:
    aliases: [state_file]
extends_documentation_fragment:
  - l3.calico.policy
  - l3.calico.attributes
author:
  - l3.calico maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Apply this host's network policy (its program read from calico_policy_plan by the action plugin)
  l3.calico.policy:
    firewall_backend: nftables

- name: Remove every rule of the policy part
  l3.calico.policy:
    state: absent
"""

RETURN = r"""
backend:
  description: The backend used (with O(state=absent), the one whose objects were found, or C(none)).
  returned: always
  type: str
  sample: nftables
kind:
  description: V(none) (nothing to do), V(elements) (set members only), V(replace) (whole table) or V(remove).
  returned: always
  type: str
  sample: elements
changes:
  description: What was (or would be) changed.
  returned: always
  type: list
  elements: str
  sample: ["set s_3f2a9c1d0b: +10.64.0.9/32", "set ip6:s_3f2a9c1d0b: +fd00:64::9/128"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l3.calico.plugins.module_utils import iproute, policy_rules
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.plan import module_result


def main() -> None:
    spec = dict(policy_rules.ARGUMENT_SPEC)
    spec["firewall_backend"] = dict(spec["firewall_backend"], aliases=["backend"])
    spec["policy_state_file"] = dict(spec["policy_state_file"], aliases=["state_file"])
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            program=dict(type="dict"),
            **spec,
        ),
        required_if=[("state", "present", ("program",))],
        supports_check_mode=True,
    )
    p = module.params
    options = policy_rules.Options.from_params(p)
    runner = iproute.module_runner(module)
    try:
        if p["state"] == "absent":
            the_plan = policy_rules.remove(options.state_file, check_mode=module.check_mode, runner=runner)
        else:
            the_plan = policy_rules.converge(p["program"], options, check_mode=module.check_mode, runner=runner)
    except (L3CalicoError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**module_result(the_plan, module._diff))


if __name__ == "__main__":
    main()
