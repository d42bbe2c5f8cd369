# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Filter l3.calico.veth_name: the host-side veth of a workload, as Calico names it."""

from __future__ import annotations

DOCUMENTATION = r"""
name: veth_name
author: l3.calico maintainers (!UNKNOWN)
version_added: "1.0.0"
short_description: The host-side veth name of a workload
description:
  - C(cali) followed by the first 11 hex digits of the SHA-1 of the workload id C(<namespace>.<name>),
    15 characters (the kernel's limit), as Calico names a pod's host veth.
  - The input is a workload name (with O(namespace)), a workload id C(<namespace>.<name>) (with
    O(namespace) unset and a dot in the input), or a workload mapping (an entry of C(calico_workloads)
    or of C(calico_ipam_result.nodes[*].workloads)).
options:
  _input:
    description: A workload name, a workload id, or a workload mapping with C(name) and C(namespace) or C(id).
    type: raw
    required: true
  namespace:
    description: The workload's namespace when the input is a bare name.
    type: str
  prefix:
    description: The interface prefix (Felix's C(InterfacePrefix)).
    type: str
    default: cali
"""

EXAMPLES = r"""
- name: The veth of web-1 in namespace default
  ansible.builtin.debug:
    msg: "{{ 'web-1' | l3.calico.veth_name('default') }}"

- name: The veths of a node's workloads from the IPAM result
  ansible.builtin.debug:
    msg: "{{ calico_ipam_result['nodes'][inventory_hostname]['workloads'] | map('l3.calico.veth_name') }}"
"""

RETURN = r"""
_value:
  description: The interface name, for example V(cali0a1b2c3d4e5).
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.l3.calico.plugins.module_utils import naming
from ansible_collections.l3.calico.plugins.plugin_utils.filter_args import validate


def veth_name(*args, **kwargs) -> str:
    params = validate(DOCUMENTATION, "veth_name", args, kwargs)
    value, namespace, prefix = params["_input"], params["namespace"], params["prefix"]
    if isinstance(value, dict):
        if value.get("id"):
            wid = value["id"]
        elif value.get("name"):
            wid = naming.workload_id(value.get("namespace") or "default", value["name"])
        else:
            raise AnsibleFilterError(f"veth_name: the workload {value!r} has neither id nor name")
    elif isinstance(value, str) and value:
        if namespace is not None:
            wid = naming.workload_id(namespace, value)
        elif "." in value:
            wid = value
        else:
            wid = naming.workload_id("default", value)
    else:
        raise AnsibleFilterError(f"veth_name: {value!r} is not a workload name, id or mapping")
    return naming.veth_name(wid, prefix)


class FilterModule:
    def filters(self):
        return {"veth_name": veth_name}
