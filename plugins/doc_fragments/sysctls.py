# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Options of the sysctls part (one file under /etc/sysctl.d, applied now): modules sysctls and node;
spec sysctls.ARGUMENT_SPEC."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  sysctls:
    description: Sysctl keys (dotted) and their values. Required with O(state=present).
    type: dict
  sysctl_file:
    description:
      - The file to own, normally under C(/etc/sysctl.d). It is entirely written by the module (one C(key = value)
        line each, sorted, atomically, only when the content differs).
    type: path
    default: /etc/sysctl.d/60-l3-calico.conf
"""
