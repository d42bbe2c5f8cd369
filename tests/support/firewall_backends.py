# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The firewall backends a test runs against: both, each skipped with what is missing."""

from __future__ import annotations

import shutil

import pytest

from ansible_collections.l3.calico.plugins.module_utils import firewall


def firewall_backends() -> list:
    """``nftables`` and ``iptables`` (legacy) as parameters; one this machine lacks is skipped."""
    iptables_ok, missing = firewall.iptables_usable()
    return [
        pytest.param("nftables", marks=pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft (Debian package nftables)")),
        pytest.param("iptables", marks=pytest.mark.skipif(not iptables_ok, reason=f"needs iptables-legacy: {missing}")),
    ]
