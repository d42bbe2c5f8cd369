#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sysctls
short_description: Persist a set of sysctls in one file and apply them now
version_added: "1.0.0"
description:
  - Writes O(sysctls) to O(sysctl_file) (one C(key = value) line each, sorted, atomically, only when the content differs)
    and writes every value that differs at run time straight to C(/proc/sys).
  - One task for the whole set, instead of one task per key.
  - Keys under C(net.) are per network namespace; the file is read at boot by C(systemd-sysctl) or C(procps).
  - With O(state=absent) the file is removed when l3.calico wrote it (a file of another origin is refused); the
    values applied at run time stay as they are (their earlier values are not known, and C(net.ipv4.ip_forward)
    may serve other things on the host), they are only not set again at the next boot.
options:
  state:
    description: V(present) writes and applies O(sysctls); V(absent) removes O(sysctl_file).
    type: str
    choices: [present, absent]
    default: present
  sysctls:
    aliases: [values]
  sysctl_file:
    aliases: [path]
extends_documentation_fragment:
  - l3.calico.sysctls
  - l3.calico.attributes
author:
  - l3.calico maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Forward IPv4 now and at boot
  l3.calico.sysctls:
    sysctls:
      net.ipv4.ip_forward: 1
    sysctl_file: /etc/sysctl.d/60-l3-calico.conf

- name: Remove the file (the values applied now stay)
  l3.calico.sysctls:
    state: absent
"""

RETURN = r"""
changes:
  description: Run-time values changed (C(key old -> new)) and whether the file was rewritten.
  returned: always
  type: list
  elements: str
  sample: ["net.ipv4.ip_forward 0 -> 1", "file rewritten"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l3.calico.plugins.module_utils import sysctls
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.plan import module_result


def main() -> None:
    spec = dict(sysctls.ARGUMENT_SPEC)
    spec["sysctls"] = dict(spec["sysctls"], aliases=["values"])
    spec["sysctl_file"] = dict(spec["sysctl_file"], aliases=["path"])
    module = AnsibleModule(
        argument_spec=dict(state=dict(type="str", choices=["present", "absent"], default="present"), **spec),
        required_if=[("state", "present", ("sysctls",))],
        supports_check_mode=True,
    )
    options = sysctls.Options.from_params(module.params)
    try:
        if module.params["state"] == "absent":
            the_plan = sysctls.plan_removal(options.path)
        else:
            the_plan = sysctls.plan(options.values, options.path)
        if not module.check_mode and the_plan.changed:
            sysctls.apply(the_plan, options.path)
    except (L3CalicoError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**module_result(the_plan, module._diff))


if __name__ == "__main__":
    main()
