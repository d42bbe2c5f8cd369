#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Ansible module l3.calico.probe_listener: a TCP listener in every local workload, for verify's TCP matrix."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: probe_listener
short_description: Start or stop a TCP listener in every local workload, for the TCP reachability matrix
version_added: "1.0.0"
description:
  - With O(state=started), one detached process listens on TCP O(port) inside the network namespace of
    every workload given (a socket stays in the namespace it was created in; the kernel completes a
    listening socket's handshakes without an accept). M(l3.calico.probe) with O(l3.calico.probe#module:tcp_port)
    then connects from every workload to every other one - start the listener on every node before any node probes.
  - The process is recorded (PID and start time) in O(record_file); O(state=stopped) stops that very
    process and no other, and removes the record. It also ends by itself after O(lifetime) seconds,
    should the stop never come (an interrupted play).
  - Idempotent - a listener this module started that still runs with the same port and namespaces is kept.
options:
  state:
    description: Whether the listener runs.
    type: str
    choices: [started, stopped]
    default: started
  workloads:
    description: This node's workloads (C(id) is read), as in C(calico_ipam_result.nodes[node].workloads).
    type: list
    elements: dict
    default: []
  port:
    description: The TCP port to listen on in every workload.
    type: int
    default: 7946
  ipv6:
    description:
      - Also listen over IPv6 (a socket of its own, C(IPV6_V6ONLY)) in every workload that has an IPv6
        address (C(ipv6) not null), for the IPv6 TCP matrix of a dual-stack node.
    type: bool
    default: false
  lifetime:
    description: Seconds after which the listener ends by itself.
    type: int
    default: 600
  netns_prefix:
    description: Prefix of the workloads' network namespace names (as the workloads role's).
    type: str
    default: calico-
  record_file:
    description: Where the listener's PID and start time are recorded.
    type: path
    default: /run/l3-calico/probe-listener.json
attributes:
  check_mode:
    support: full
    description: Reports whether it would start or stop the listener, starts and stops nothing.
  diff_mode:
    support: none
    description: A process, not a file or a setting; C(changed) says whether one was started or stopped.
  platform:
    support: full
    platforms: linux
    description: Linux hosts (network namespaces).
seealso:
  - module: l3.calico.probe
author:
  - l3.calico maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Listen on TCP 7946 in every local workload
  l3.calico.probe_listener:
    workloads: "{{ calico_ipam_result.nodes[inventory_hostname].workloads }}"
    port: 7946

- name: Stop the listener
  l3.calico.probe_listener:
    state: stopped
"""

RETURN = r"""
pid:
  description: The listener's process id (null in check mode when none runs yet, or when none was stopped).
  returned: always
  type: int
errors:
  description: Per workload namespace where no socket could listen, why (empty when every workload listens).
  returned: when O(state=started)
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l3.calico.plugins.module_utils import naming, probe
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["started", "stopped"], "default": "started"},
            "workloads": {"type": "list", "elements": "dict", "default": []},
            "port": {"type": "int", "default": 7946},
            "ipv6": {"type": "bool", "default": False},
            "lifetime": {"type": "int", "default": 600},
            "netns_prefix": {"type": "str", "default": naming.NETNS_PREFIX},
            "record_file": {"type": "path", "default": probe.LISTENER_RECORD},
        },
        supports_check_mode=True,
    )
    p = module.params
    if not 1 <= p["port"] <= 65535:
        module.fail_json(msg=f"port={p['port']!r}: must be a TCP port (1-65535)")
    if p["lifetime"] < 1:
        module.fail_json(msg=f"lifetime={p['lifetime']!r}: must be at least one second")
    names, names6 = [], []
    for i, wl in enumerate(p["workloads"]):
        wid = wl.get("id") if isinstance(wl, dict) else None
        if not isinstance(wid, str) or not naming.is_workload_id(wid):
            module.fail_json(msg=f"workloads[{i}].id={wid!r}: not a workload id (<namespace>.<name>)")
        names.append(naming.netns_name(wid, p["netns_prefix"]))
        if p["ipv6"] and wl.get("ipv6") is not None:
            names6.append(names[-1])
    try:
        if p["state"] == "stopped":
            result = probe.stop_listener(p["record_file"], check_mode=module.check_mode)
        else:
            result = probe.start_listener(names, p["port"], p["lifetime"], p["record_file"], check_mode=module.check_mode, netns6=names6)
    except (L3CalicoError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
