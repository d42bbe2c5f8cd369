# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Security checks on real nodes: file modes, and a vaulted BGP password never in any output.

Two nodes with a TCP-MD5 mesh password from an Ansible Vault variable run the site, its check
mode with --diff, the audit and the node-removal plan, all with the default callback and -v;
the password must appear in no output, and in no file but the secrets file (0640, not readable
by others); bird.conf is 0640, the IPAM state and its lock 0600.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.bird]

ROOT = Path(__file__).resolve().parents[3]
NODES = {"s1": "192.168.100.31/24", "s2": "192.168.100.32/24"}
# BGP-routed, no encapsulation: node-remove.yml runs the node role, and this kernel has no ipip driver.
POOLS = [{"name": "default-ipv4-ippool", "cidr": "172.17.0.0/16", "block_size": 26}]
WORKLOADS = {"s1": [{"name": "web-1"}], "s2": [{"name": "web-2"}]}
SECRET = "l3tday2-mesh-9f2c7e"


@pytest.fixture(scope="module")
def stack(stack_factory, day2):
    stack = stack_factory("se", NODES, POOLS, WORKLOADS)
    vaulted = stack.fabric.vault_string("vault_calico_mesh_password", SECRET)
    stack.inventory(group_vars={"calico_bgp_mesh_password": "{{ vault_calico_mesh_password }}"}, raw_group_vars=vaulted)
    stack.outputs = []
    proc = stack.play(stack.work / "site.yml", "-v", "--diff", json_output=False)
    stack.outputs.append(proc.stdout + proc.stderr)
    day2.wait_for(lambda: all(stack.fabric.established(n) for n in NODES), 30, what="the MD5 mesh Established")
    return stack


def test_password_in_no_output(stack):
    runs = [
        (stack.work / "site.yml", "-v", "--check", "--diff"),
        (ROOT / "playbooks" / "audit.yml", "-v"),
        (ROOT / "playbooks" / "node-remove.yml", "-v", "--check", "--diff", "-e", "calico_remove_node=s2"),
    ]
    for playbook, *args in runs:
        proc = stack.play(playbook, *args, json_output=False)
        stack.outputs.append(proc.stdout + proc.stderr)
    assert len(stack.outputs) == 4
    for output in stack.outputs:
        assert "TASK [" in output  # really the playbook's output
        assert SECRET not in output


def test_password_only_in_the_secrets_file(stack):
    for node in stack.fabric.nodes.values():
        conf = Path(node["calico_bgp_config_file"]).read_text()
        secrets = Path(node["calico_bgp_secrets_file"]).read_text()
        assert SECRET not in conf and "password CALICO_PW_" in conf
        assert SECRET in secrets
    for path in stack.work.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.name not in {"bird-secrets.conf"} and ".ansible" not in path.parts:
            assert SECRET.encode() not in path.read_bytes(), path


def test_file_modes(stack):
    for node in stack.fabric.nodes.values():
        for key in ("calico_bgp_config_file", "calico_bgp_secrets_file"):
            st = os.stat(node[key])
            assert stat.S_IMODE(st.st_mode) == 0o640, (key, oct(st.st_mode))
            assert st.st_uid == 0
    assert stat.S_IMODE(os.stat(stack.state_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(str(stack.state_file) + ".lock").st_mode) == 0o600
