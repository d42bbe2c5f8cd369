# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The filter l3.calico.bird_config is a thin adapter: argument checks and clear errors."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.l3.calico.plugins.filter.bird_config import FilterModule, bird_config

IPAM = {
    "nodes": {"a": {"ip": "10.0.0.1", "network": "10.0.0.0/24", "blocks": [{"cidr": "172.17.0.0/26"}]}},
    "pools": {"p": {"cidr": "172.17.0.0/16"}},
}


def test_registered():
    assert FilterModule().filters()["bird_config"] is bird_config


def test_computes():
    assert bird_config(IPAM, "a")["blackholes"] == ["172.17.0.0/26"]


def test_errors_are_filter_errors():
    with pytest.raises(AnsibleFilterError, match="host a: calico_bgp_as='x'"):
        bird_config(IPAM, "a", {"as": "x"})
    with pytest.raises(AnsibleFilterError, match="bird_config: .*_input"):
        bird_config("not a dict", "a")
