# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""node: the package check that decides whether the node module converges or waits for apt."""

from __future__ import annotations

import shutil

import pytest

from ansible_collections.l3.calico.plugins.module_utils import node

PACKAGES = ["iproute2", "bird2", "kmod"]


@pytest.fixture
def dpkg(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")


def test_installed_packages_are_not_missing(dpkg):
    calls = []

    def run(argv):
        calls.append(argv)
        return 0, "iproute2 installed\nbird2 installed\nkmod installed\n", ""

    assert node.missing_packages(run, PACKAGES) == []
    assert calls == [["dpkg-query", "-W", "-f", node.DPKG_QUERY_FORMAT, *PACKAGES]]


def test_unknown_and_half_installed_packages_are_missing(dpkg):
    def run(argv):  # dpkg-query exits 1 when a package is unknown; config-files: removed, not purged
        return 1, "iproute2 installed\nbird2 config-files\n", "dpkg-query: no packages found matching kmod\n"

    assert node.missing_packages(run, PACKAGES) == ["bird2", "kmod"]


def test_without_dpkg_every_package_is_missing(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert node.missing_packages(lambda argv: pytest.fail("dpkg-query ran"), PACKAGES) == PACKAGES


def test_missing_packages_converge_nothing_but_check_ipip(dpkg, monkeypatch):
    seen = []
    monkeypatch.setattr(node.tunnels, "converge", lambda *a, **kw: seen.append(kw["check_mode"]))
    monkeypatch.setattr(node.sysctls, "plan", lambda *a, **kw: pytest.fail("sysctls planned"))
    monkeypatch.setattr(node.firewall, "converge", lambda *a, **kw: pytest.fail("firewall converged"))
    done = node.converge(lambda argv: (1, "", ""), packages=PACKAGES, node="n", nodes={}, pools={}, tunnel_args={},
                         sysctl_values={}, sysctl_file="/nonexistent", workloads=[], firewall_args={}, check_mode=False)
    assert done == {"missing_packages": PACKAGES, "tunnels": None, "sysctls": None, "firewall": None}
    assert seen == [True]  # the tunnels only planned, in check mode: a kernel without ipip fails here
