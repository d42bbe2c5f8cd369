# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Filter l3.calico.verify_report: judge the probes of every node against the IPAM result."""

from __future__ import annotations

DOCUMENTATION = r"""
name: verify_report
short_description: Judge every node's observations against the IPAM result
version_added: "1.0.0"
description:
  - Compares what M(l3.calico.probe) observed on every node with what C(calico_ipam_result)
    promises - BGP sessions Established, own blocks as blackholes, remote blocks via the right
    device (underlay, C(tunl0) onlink, C(vxlan.calico) onlink), each workload's C(IP/32), default
    route via 169.254.1.1 and the ee:ee:ee:ee:ee:ee neighbour, a ping between every pair of
    workloads and, given a router capture, the encapsulation of every cross-host pair.
  - The routes and encapsulations expected are the ones the tunnels module programs and the host audit
    checks (one answer, module_utils/ipam_result.py) - CrossSubnet by the remote node's address inside
    this node's subnet, nothing for a pool with C(disable_bgp_export). A bad IPAM result fails naming the
    field and the value.
  - Returns the whole report; C(findings) lists what failed, each naming the host, the check,
    what was expected and what was found.
options:
  _input:
    description: The registered result of M(l3.calico.probe) per node name.
    type: dict
    required: true
  ipam:
    description: The IPAM result (C(calico_ipam_result)), with C(nodes) and C(pools).
    type: dict
    required: true
  capture:
    description: Flows captured on the lab router (C(labctl.py capture stop)); omit elsewhere.
    type: list
    elements: dict
  peers:
    description: Per node, the peer addresses it must have an Established session with (default a full mesh).
    type: dict
  expected:
    description:
      - What the network policy lets through, per source workload id, per destination workload id -
        C(icmp) (an echo request answered) and C(tcp) (a connection to the probe's port) as booleans; a
        pair or a kind not listed is expected to pass. From M(l3.calico.policy_plan)'s O(l3.calico.policy_plan#module:matrix);
        omitted without network policy (every pair must reach).
    type: dict
  expected_ipv6:
    description:
      - The same verdicts over IPv6, for the ping and TCP matrices between the workloads' IPv6 addresses of
        dual-stack nodes (Calico filters each family by the rules of its own, e.g. C(protocol ICMP) matches
        no ICMPv6, so the IPv4 verdicts are not reused).
      - Omitted with O(expected) given - network policy without IPv6 verdicts - the IPv6 matrices are reported
        (each pair must be tried) but not judged; omitted without O(expected) too - no network policy - every
        IPv6 pair must reach.
    type: dict
  ipv6:
    description:
      - Judge the IPv6 side of dual-stack nodes (the probes were given C(node_ip6)); V(false) - the IPv4 side only
        (role P(l3.calico.calico_verify#role)'s C(calico_verify_ipv6)).
    type: bool
    default: true
author:
  - l3.calico maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Judge every node
  ansible.builtin.set_fact:
    verify_result: "{{ probes | l3.calico.verify_report(calico_ipam_result) }}"
"""

RETURN = r"""
_value:
  description: The report - C(findings), C(summary), C(nodes), C(sessions), C(routes), C(pings),
    C(workload_order) and C(capture) (null without a capture); with dual-stack nodes also C(sessions6),
    C(routes6), C(pings6), C(tcp6), C(workload_order6), C(capture6), C(ipv6_judged), C(bgp_ipv6) (the
    nodes whose BIRD carries IPv6), the summary's IPv6 counts (C(checks6), C(failed6), C(pings6), C(tcp6),
    C(sessions6_established), ...), and C(family=6) on each IPv6 finding.
  type: dict
"""

from ansible.errors import AnsibleFilterError

# The code behind the filter is imported when it is called: to find any filter of this collection, Ansible
# imports every filter file of it, in every worker (a host's task) whose templates name one.


def verify_report(probes, ipam, capture=None, peers=None, expected=None, expected_ipv6=None, ipv6=True):
    """See DOCUMENTATION."""
    from ansible_collections.l3.calico.plugins.module_utils import verify
    from ansible_collections.l3.calico.plugins.module_utils.ipam_result import IpamResultError

    if not isinstance(probes, dict):
        raise AnsibleFilterError(f"verify_report: input must be a mapping of node name to probe result, got {type(probes).__name__}")
    if not isinstance(ipam, dict) or not isinstance(ipam.get("nodes"), dict):
        raise AnsibleFilterError("verify_report: ipam must be the IPAM result, a mapping with 'nodes'")
    if capture is not None and not isinstance(capture, list):
        raise AnsibleFilterError(f"verify_report: capture must be a list of flows, got {type(capture).__name__}")
    missing = [node for node in probes if node not in ipam["nodes"]]
    if missing:
        raise AnsibleFilterError(f"verify_report: probed hosts {missing} are not nodes of the IPAM result")
    if expected is not None and not isinstance(expected, dict):
        raise AnsibleFilterError(f"verify_report: expected must be a mapping of source workload to destinations, got {type(expected).__name__}")
    if expected_ipv6 is not None and not isinstance(expected_ipv6, dict):
        raise AnsibleFilterError(f"verify_report: expected_ipv6 must be a mapping of source workload to destinations, got {type(expected_ipv6).__name__}")
    if expected_ipv6 is not None:
        expect6 = verify.expect_from(expected_ipv6)
    else:
        expect6 = None if expected is not None else verify.allow_all
    try:
        return verify.judge(ipam, probes, capture=capture, peers=peers, expect=verify.expect_from(expected or {}), expect6=expect6, ipv6=bool(ipv6))
    except (IpamResultError, ValueError) as exc:
        raise AnsibleFilterError(f"verify_report: {exc}") from None


class FilterModule:
    """l3.calico verify filters."""

    def filters(self):
        return {"verify_report": verify_report}
