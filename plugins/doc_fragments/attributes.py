# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Attributes of the modules that converge a Linux host: exact check mode, diff of what they change."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    description: Reads and plans as usual, changes nothing and reports what it would change.
  diff_mode:
    support: full
    description: Shows what it changes (or would change in check mode).
  platform:
    platforms: linux
"""
