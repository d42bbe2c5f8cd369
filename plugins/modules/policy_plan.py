#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Module l3.calico.policy_plan: documentation of the action plugin of the same name (which does the work,
on the controller) and its argument spec."""

from __future__ import annotations

DOCUMENTATION = r"""
module: policy_plan
short_description: Compile Calico network policy into one program per host, on the controller, once
version_added: 1.0.0
description:
  - Reads Calico's policy model - O(policies) (C(calico_policies), NetworkPolicy with a C(namespace),
    GlobalNetworkPolicy without), O(namespaces) (C(calico_namespaces)) and each workload's C(labels) in
    C(calico_workloads) of the hosts of O(group) - checks it once, and compiles it for every host of
    O(ipam_result) into the program the host's policy module applies (docs/policy.md, HostProgram) - address
    sets, a chain per policy and direction, and the host's endpoints (veth, address, chains in policy order).
  - Calico's semantics - policies in order (lower C(order) first, then by name; no order = last),
    rules in order, the first Allow or Deny decides, Pass ends the tier (the namespace profile allows), a
    workload selected by a policy for a direction and matched by no rule is denied, a workload no policy
    selects is allowed.
  - Every selector is evaluated once over the fleet (over its classes of workloads with equal labels) and
    becomes an address set named by a hash of what it selects by, so a new workload matching a selector
    changes a set's elements, never a chain.
  - Bad input (an unknown action or protocol, ports without TCP, UDP or SCTP, a port range upside down, a bad
    selector, icmp without protocol ICMP, two policies of one name in one namespace, an unknown key, a bad
    label) fails the task with one message naming the policy, the rule, the field and the value.
  - With O(explain), returns instead Calico's verdict for one flow and the policy and rule that decide it, for
    both directions (C(playbooks/policy-explain.yml)).
  - With O(previous) (or a record in O(previous_file)), also returns the flows whose verdict the change from it to
    O(policies) flips.
  - An action plugin, run once (C(run_once)) - nothing is sent to any host; the module itself only documents it.
options:
  group:
    description:
      - The inventory group whose hosts hold the workloads; each host's C(calico_workloads) (C(name),
        C(namespace), C(labels)) is read from C(hostvars) once, in Python.
    type: str
    default: calico_nodes
  ipam_result:
    description:
      - The IPAM result (C(calico_ipam_result) of role P(l3.calico.calico_ipam#role)), its C(nodes) with every
        workload - the hosts, the workloads' addresses and the nodes' addresses.
    type: dict
    required: true
  policies:
    description:
      - The policies (C(calico_policies)), each with C(name), C(namespace) (absent - a global policy),
        C(order), C(selector), C(namespace_selector) (global policies), C(types) (C(Ingress), C(Egress);
        inferred as Calico does when absent), C(ingress) and C(egress) rule lists.
      - A rule - C(action) (C(Allow), C(Deny), C(Log), C(Pass)), C(ip_version) (4 or 6 - the rule applies to that
        IP version only), C(protocol) and C(not_protocol) (C(TCP), C(UDP), C(ICMP), C(ICMPv6), C(SCTP),
        C(UDPLite) or 1-255), C(icmp) and C(not_icmp) (C(type), C(code); with protocol C(ICMP) or C(ICMPv6)),
        C(source) and C(destination) with C(nets), C(not_nets) (IPv4 or IPv6 networks - all of one family in a
        rule, which then applies to that family only), C(selector), C(not_selector), C(namespace_selector),
        C(ports) and C(not_ports) (numbers and C(a:b) ranges).
      - Calico's own spelling of the fields (C(ipVersion), C(namespaceSelector), C(notProtocol), C(notICMP),
        C(notNets), C(notSelector), C(notPorts)) is accepted too.
    type: list
    elements: dict
    default: []
  namespaces:
    description:
      - "The namespaces' labels (C(calico_namespaces)), C({name: {labels: {...}}}), for C(namespace_selector).
        A namespace not listed has no labels but C(projectcalico.org/name)."
    type: dict
    default: {}
  veth_prefix:
    description: The prefix of the host-side veth names (Felix's C(InterfacePrefix)), as role P(l3.calico.calico_workloads#role) names them.
    type: str
    default: cali
  explain:
    description:
      - Explain one flow instead of compiling - which policy and rule decide it, in both directions.
    type: dict
    suboptions:
      src:
        description: The source, a workload C(<namespace>.<name>) or an IPv4 or IPv6 address.
        type: str
        required: true
      dst:
        description: The destination, a workload C(<namespace>.<name>) or an IPv4 or IPv6 address.
        type: str
        required: true
      protocol:
        description: C(TCP), C(UDP), C(ICMP), C(ICMPv6), C(SCTP), C(UDPLite) or a protocol number.
        type: str
        default: TCP
      family:
        description:
          - The IP version of the flow (which address of a workload it uses). Default - that of an address given
            as O(explain.src) or O(explain.dst), else 6 for protocol C(ICMPv6), else 4.
        type: int
        choices: [4, 6]
      port:
        description: The destination port (TCP, UDP, SCTP).
        type: int
      src_port:
        description: The source port (default 32768, the first ephemeral port).
        type: int
      icmp_type:
        description: The ICMP or ICMPv6 type (default 8, or 128 for ICMPv6 - echo request).
        type: int
      icmp_code:
        description: The ICMP code.
        type: int
  matrix:
    description:
      - Return instead the verdicts between every pair of workloads - an ICMP echo request and a TCP connection
        to O(matrix.tcp_port) - as RV(expected), what C(playbooks/verify.yml) compares the probes' ping and TCP
        matrices with (filter P(l3.calico.verify_report#filter), its C(expected)); and the same between every
        pair of workloads that have an IPv6 address, over IPv6 (an ICMPv6 echo request), as RV(expected_ipv6).
    type: dict
    suboptions:
      tcp_port:
        description: The destination port of the TCP flows.
        type: int
        required: true
  previous_file:
    description:
      - A JSON file on the controller holding the policy model last applied (C(policies), C(namespaces)), as role
        P(l3.calico.calico_policy#role) records it; when it exists and O(previous) is not given, its content is
        O(previous). A file that is not such a record fails the task naming it.
    type: path
  previous:
    description:
      - The policy model before a change; the result then lists in RV(flips) the flows whose verdict the change
        to O(policies) and O(namespaces) flips (and, with C(--diff), holds them as its C(diff); this plugin changes
        nothing, so Ansible prints a diff only where a task that applies the change reports it).
    type: dict
    suboptions:
      policies:
        description: The policies before the change.
        type: list
        elements: dict
        default: []
      namespaces:
        description: The namespaces' labels before the change.
        type: dict
        default: {}
attributes:
  action:
    support: full
    description: Runs in-process on the controller.
  check_mode:
    support: full
    description: Plans only, in every mode; nothing is written anywhere.
  diff_mode:
    support: full
    description: With O(previous), the flows the change flips.
  platform:
    support: full
    platforms: posix
    description: The controller.
notes:
  - Dual stack - when a workload has an IPv6 address, the programs carry each set's IPv6 members (C(sets6)), the
    endpoints' C(address6) and each single-family rule's C(ip_version); an IPv4-only fleet gets exactly the IPv4
    programs. Named ports are refused - workloads declare no ports here.
  - Calico's ordering, type inference, selector scoping and validation followed, with their sources, in
    C(docs/policy.md).
seealso:
  - name: Calico network policy
    description: The policy model this follows.
    link: https://docs.tigera.io/calico/latest/reference/resources/networkpolicy
  - name: Calico global network policy
    description: Global policies and their namespace selector.
    link: https://docs.tigera.io/calico/latest/reference/resources/globalnetworkpolicy
author: l3.calico maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Compile the policies for every host (once, on the controller)
  l3.calico.policy_plan:
    group: calico_nodes
    ipam_result: "{{ calico_ipam_result }}"
    policies: "{{ calico_policies | default([]) }}"
    namespaces: "{{ calico_namespaces | default({}) }}"
  run_once: true
  register: calico_policy_plan

- name: Which policy and rule decide blue.web-1 -> blue.db-1 on TCP 5432
  l3.calico.policy_plan:
    ipam_result: "{{ calico_ipam_result }}"
    policies: "{{ calico_policies | default([]) }}"
    namespaces: "{{ calico_namespaces | default({}) }}"
    explain:
      src: blue.web-1
      dst: blue.db-1
      port: 5432
  run_once: true
  register: calico_policy_explain
"""

RETURN = r"""
hosts:
  description:
    - Each host's program (docs/policy.md, HostProgram) - C(version), C(sets) (name to sorted CIDRs), C(chains)
      (name to C(policy), C(direction), C(rules)) and C(endpoints) (C(interface), C(workload), C(address),
      C(ingress) and C(egress) chain names in policy order). Without O(explain).
    - Dual stack (a workload of the fleet has an IPv6 address) - also C(sets6) (the same names to sorted IPv6
      CIDRs), an endpoint's C(address6), a rule's C(ip_version) (4 or 6, absent - both).
  returned: success and not explain
  type: dict
summary:
  description: Counts - C(hosts), C(endpoints), C(chains), C(sets), C(policies), endpoints with ingress and with egress policy.
  returned: success and not explain
  type: dict
expected:
  description:
    - With O(matrix), per source workload id, per destination workload id, C(icmp) and C(tcp) - whether Calico's
      policy lets an echo request / a connection to O(matrix.tcp_port) through (and its replies, conntrack).
  returned: with matrix
  type: dict
  sample: {default.web-2: {blue.db-1: {icmp: false, tcp: false}}}
expected_ipv6:
  description:
    - With O(matrix), the same over IPv6, between the workloads that have an IPv6 address - per source workload id,
      per destination workload id, C(icmp) (an ICMPv6 echo request, type 128) and C(tcp) (a connection to
      O(matrix.tcp_port) between the two IPv6 addresses). Empty when no workload has an IPv6 address.
  returned: with matrix
  type: dict
  sample: {default.web-2: {blue.db-1: {icmp: true, tcp: false}}}
explain:
  description:
    - The flow's verdict - C(allowed), C(egress) and C(ingress) (each C(allowed), C(reason), C(policy), C(rule),
      C(text)), the deciding rule as written in the inventory (C(rule)), and C(lines) to print.
  returned: with explain
  type: dict
flips:
  description: The flows whose verdict the change from O(previous) (or O(previous_file)'s record) flips, one line each.
  returned: with previous, or previous_file holding a record
  type: list
  elements: str
record_current:
  description:
    - Whether O(previous) (or O(previous_file)'s record) is already the model of O(policies) and O(namespaces), as
      JSON - nothing flips, and P(l3.calico.calico_policy#role) does not write its record again.
  returned: success and neither explain nor matrix
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

# The argument spec: DOCUMENTATION's options as AnsibleModule reads them (a unit test holds the two equal,
# suboptions included: tests/unit/plugins/modules/test_policy_plan.py); the action plugin checks its
# arguments against it.
ARGUMENT_SPEC = {
    "group": {"type": "str", "default": "calico_nodes"},
    "ipam_result": {"type": "dict", "required": True},
    "policies": {"type": "list", "elements": "dict", "default": []},
    "namespaces": {"type": "dict", "default": {}},
    "veth_prefix": {"type": "str", "default": "cali"},
    "explain": {
        "type": "dict",
        "options": {
            "src": {"type": "str", "required": True},
            "dst": {"type": "str", "required": True},
            "protocol": {"type": "str", "default": "TCP"},
            "port": {"type": "int"},
            "src_port": {"type": "int"},
            "icmp_type": {"type": "int"},
            "icmp_code": {"type": "int"},
            "family": {"type": "int", "choices": [4, 6]},
        },
    },
    "matrix": {"type": "dict", "options": {"tcp_port": {"type": "int", "required": True}}},
    "previous_file": {"type": "path"},
    "previous": {
        "type": "dict",
        "options": {
            "policies": {"type": "list", "elements": "dict", "default": []},
            "namespaces": {"type": "dict", "default": {}},
        },
    },
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="l3.calico.policy_plan runs on the controller through its action plugin; this module only documents it")


if __name__ == "__main__":
    main()
