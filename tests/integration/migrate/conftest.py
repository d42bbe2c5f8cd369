# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The pool migration's fabric: the day-2 fabric (tests.support.day2_fabric) under the prefix
``l3tmig-``, so these tests never share a namespace, a process or a file with the day-2 ones
running at the same time."""

from __future__ import annotations

import pytest

from tests.support import day2_fabric

PREFIX = "l3tmig-"


@pytest.fixture(scope="module")
def stack_factory(request):
    return day2_fabric.stack_factory(request, PREFIX)


@pytest.fixture(scope="session")
def day2():
    return day2_fabric.helpers()
