# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Attributes of the modules that run on a Linux host: those that converge it, and those that only read it."""

from __future__ import annotations


class ModuleDocFragment:
    # The modules that converge a host: exact check mode, diff of what they change.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    description: Reads and plans as usual, changes nothing and reports what it would change.
  diff_mode:
    support: full
    description: Shows what it changes (or would change in check mode).
  platform:
    support: full
    platforms: linux
    description: Linux hosts (network namespaces, netlink, iproute2).
"""

    # The modules that only read a host.
    READ_ONLY = r"""
attributes:
  check_mode:
    support: full
    description: Reads only, so it runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to show.
  platform:
    support: full
    platforms: linux
    description: Linux hosts (network namespaces, netlink, iproute2).
"""
