# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The day-2 tests' fabric: nodes in network namespaces running the whole stack (IPAM, workloads,
real BIRD), tests.support.day2_fabric under the prefix ``l3tday2-``."""

from __future__ import annotations

import pytest

from tests.support import day2_fabric

PREFIX = "l3tday2-"


@pytest.fixture(scope="module")
def stack_factory(request):
    return day2_fabric.stack_factory(request, PREFIX)


@pytest.fixture(scope="session")
def day2():
    return day2_fabric.helpers()
