# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""No play builds its host pattern from a variable: a name is data, never a pattern.

``hosts: "calico_nodes:!{{ calico_remove_node }}"`` lets a name choose hosts (``~regex``, ``&``,
``,``-lists); plays target a group and let a condition pick the hosts instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PLAYBOOKS = sorted(p for p in (ROOT / "playbooks").glob("*.yml"))


@pytest.mark.parametrize("path", PLAYBOOKS, ids=[p.name for p in PLAYBOOKS])
def test_every_play_targets_a_literal_group(path):
    plays = [p for p in yaml.safe_load(path.read_text()) if "hosts" in p]
    assert plays, path
    for play in plays:
        hosts = play["hosts"]
        assert isinstance(hosts, str) and "{{" not in hosts and "{%" not in hosts, (path.name, play["name"], hosts)


def test_node_remove_picks_the_leaving_node_by_a_condition():
    plays = yaml.safe_load((ROOT / "playbooks" / "node-remove.yml").read_text())
    assert [p["hosts"] for p in plays] == ["calico_nodes"] * 3
    leaving, staying = plays[1]["tasks"][0], plays[2]["tasks"][0]
    assert leaving["ansible.builtin.meta"] == staying["ansible.builtin.meta"] == "end_host"
    assert leaving["when"] == "inventory_hostname != calico_remove_node"
    assert staying["when"] == "inventory_hostname == calico_remove_node"
