# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Roles calico_node + calico_workloads through ansible-playbook inside a host namespace."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from ansible_collections.l3.calico.plugins.module_utils import naming

from .conftest import PYTHONPATH, ROOT, ping
from .test_node_netns import NODES, POOLS

pytestmark = pytest.mark.netns

PLAYBOOK = """\
- name: Node and workloads of one host
  hosts: node-a
  gather_facts: false
  roles:
    - role: l3.calico.calico_node
    - role: l3.calico.calico_workloads
"""


WORKLOADS_ONLY = """\
- name: Workloads of one host, without the node role
  hosts: node-a
  gather_facts: false
  roles:
    - role: l3.calico.calico_workloads
"""


def make_play(topo, tmp_path):
    """ansible-playbook inside host a's namespace: play(playbook text, *args) -> (changed, output)."""
    (tmp_path / "hosts.yml").write_text(
        "all:\n  hosts:\n    node-a:\n      ansible_connection: local\n      ansible_python_interpreter: " + str(ROOT / ".venv" / "bin" / "python") + "\n"
    )
    extra = {
        "calico_ipam_result": {"nodes": NODES, "pools": POOLS, "changed": False, "problems": []},
        "calico_node_install_packages": True,
        "calico_node_sysctl_file": str(tmp_path / "sysctl.d" / "60-l3-calico.conf"),
        "calico_node_firewall_state_file": str(tmp_path / "firewall.json"),
        "calico_workloads_netns_prefix": topo.netns_prefix("a"),
        "calico_workloads_state_file": str(tmp_path / "workloads.json"),
    }
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_HOME=str(tmp_path / "ansible"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
        PYTHONPATH=PYTHONPATH,
    )

    def play(playbook=PLAYBOOK, *extra_args, rc=0):
        (tmp_path / "site.yml").write_text(playbook)
        proc = subprocess.run(
            [
                "nsenter",
                f"--net=/run/netns/{topo.host('a')}",
                str(ROOT / ".venv" / "bin" / "ansible-playbook"),
                "-i",
                str(tmp_path / "hosts.yml"),
                "-e",
                f"@{tmp_path / 'extra.json'}",
                str(tmp_path / "site.yml"),
                *extra_args,
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            check=False,
            timeout=300,
        )
        assert proc.returncode == rc, proc.stdout[-3000:] + proc.stderr[-2000:]
        recap = re.search(r"node-a\s*:\s*ok=(\d+)\s+changed=(\d+)", proc.stdout)
        return int(recap.group(2)), proc.stdout

    return play


def test_roles_converge_then_noop(topo, tmp_path):
    play = make_play(topo, tmp_path)
    changed, _out = play()
    assert changed >= 2  # the node (tunnels, sysctls, firewall: one module run) and the workloads
    again, out = play()
    assert again == 0, out

    # MTU auto: a VXLAN pool is enabled, so 1500 - 50 on the veths and on vxlan.calico.
    web1 = topo.netns_prefix("a") + "default.web-1"
    assert topo.ip_json(web1, "link", "show", "eth0")[0]["mtu"] == 1450
    assert topo.ip_json(topo.host("a"), "link", "show", naming.VXLAN_DEVICE)[0]["mtu"] == 1450
    assert (tmp_path / "sysctl.d" / "60-l3-calico.conf").read_text().endswith("net.ipv4.ip_forward = 1\n")
    assert ping(topo, web1, "172.17.72.2")


def test_workload_mtu_auto_is_the_one_the_node_module_computed(topo, tmp_path):
    """A 9000-byte underlay: the node module finds it and returns 9000 - 50 (a VXLAN pool is enabled), which
    the workloads role gives the veths; without the node role in the play, the same rule on
    calico_workloads_underlay_mtu (1500 unless set)."""
    play = make_play(topo, tmp_path)
    topo.ip(topo.host("a"), "link set up0 mtu 9000")
    web1 = topo.netns_prefix("a") + "default.web-1"
    play()
    assert topo.ip_json(web1, "link", "show", "eth0")[0]["mtu"] == 8950
    assert topo.ip_json(topo.host("a"), "link", "show", naming.VXLAN_DEVICE)[0]["mtu"] == 8950
    changed, out = play(WORKLOADS_ONLY)
    assert changed == 1, out
    assert topo.ip_json(web1, "link", "show", "eth0")[0]["mtu"] == 1450
    changed, _out = play(WORKLOADS_ONLY, "-e", "calico_workloads_underlay_mtu=9000")
    assert changed == 1 and topo.ip_json(web1, "link", "show", "eth0")[0]["mtu"] == 8950


def test_missing_packages_go_to_apt_before_anything_changes(topo, tmp_path):
    """A package dpkg does not know: the node module changes nothing and reports it missing, and the
    included package step hands exactly that name to apt (which fails: no such package), so the node
    is never converged without it."""
    play = make_play(topo, tmp_path)
    _changed, out = play(PLAYBOOK, "-e", '{"calico_node_packages": ["l3t-no-such-package"]}', rc=2)
    assert "Install the missing packages" in out, out
    assert "No package matching 'l3t-no-such-package'" in out.split("Install the missing packages", 1)[1], out
    assert "Converge now that the packages are installed" not in out
    assert not (tmp_path / "sysctl.d" / "60-l3-calico.conf").exists()
