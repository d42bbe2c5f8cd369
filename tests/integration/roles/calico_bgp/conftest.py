# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Fixtures of the calico_bgp role's tests: fabrics of namespaces with real BIRD (tests.support.bgp_fabric)."""

from __future__ import annotations

import os
import shutil
import tempfile
import types
from pathlib import Path

import pytest

from tests.support.bgp_fabric import (
    Fabric,
    Watch,
    failures,
    ipam_result,
    missing,
    task_results,
    task_time,
    wait_for,
)


@pytest.fixture(scope="module")
def fabric_factory(request):
    reason = missing()
    if reason:
        pytest.skip(f"needs {reason}")
    fabrics = []
    work = Path(tempfile.mkdtemp(prefix="l3tbgp-"))
    work.chmod(0o755)  # BIRD runs as user bird and reads its config below

    def make(tag: str) -> Fabric:
        fabric = Fabric(tag, work / tag)
        fabrics.append(fabric)
        return fabric.start()

    def cleanup():
        if os.environ.get("L3TBGP_KEEP"):  # debugging: leave everything for a look, clean up by hand
            print(f"L3TBGP_KEEP: kept {work} and the namespaces")
            return
        for fabric in fabrics:
            fabric.close()
        shutil.rmtree(work, ignore_errors=True)

    request.addfinalizer(cleanup)
    return make


@pytest.fixture(scope="session")
def bgp():
    """The fabric's helpers, as the tests of this directory use them."""
    return types.SimpleNamespace(
        ipam_result=ipam_result,
        wait_for=wait_for,
        failures=failures,
        task_results=task_results,
        task_time=task_time,
        Watch=Watch,
    )
