# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The day-2 fabric (tests/integration/day2/conftest.py: nodes in network namespaces running the whole
stack, real BIRD, the real IPAM state file), loaded again under the prefix ``l3tmig-`` so these tests
never share a namespace, a process or a file with the day-2 ones running at the same time."""

from __future__ import annotations

import importlib.util
from pathlib import Path

PREFIX = "l3tmig-"
DAY2 = Path(__file__).resolve().parents[1] / "day2" / "conftest.py"

_spec = importlib.util.spec_from_file_location("l3tmig_day2_fabric", DAY2)
_day2 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_day2)
_day2.PREFIX = PREFIX  # Stack.netns_prefix() and the work directory read the module global
_day2.BGP.PREFIX = PREFIX  # Fabric.ns() too

ROOT = _day2.ROOT
stack_factory = _day2.stack_factory
day2 = _day2.day2
