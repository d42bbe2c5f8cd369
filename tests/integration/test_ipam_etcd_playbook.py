# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""playbooks/ipam.yml with calico_ipam_datastore=etcd: once on the controller, and on every host at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.l3.calico.plugins.module_utils import etcd_kv as kv
from ansible_collections.l3.calico.plugins.module_utils.ipam_etcd import EtcdSettings, EtcdStore
from tests.support.ipam_worker import audit

pytestmark = pytest.mark.etcd
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOSTS, WORKLOADS = 6, 25


def _inventory(tmp_path, endpoints, prefix, **extra) -> str:
    hosts = {
        f"l3tetcd-h{i}": {
            "calico_node_ip": f"192.168.50.{10 + i}/24",
            "calico_workloads": [{"name": f"h{i}-w{j}"} for j in range(WORKLOADS)] + [{"name": f"db-{i}", "namespace": "blue"}],
        }
        for i in range(HOSTS)
    }
    group_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "calico_pools": [
            {"name": "main", "cidr": "10.45.0.0/22", "block_size": 26, "ipip_mode": "CrossSubnet"},
            {"name": "blue", "cidr": "10.46.0.0/24", "block_size": 28, "vxlan_mode": "Always", "namespaces": ["blue"]},
        ],
        "calico_ipam_datastore": "etcd",
        "calico_ipam_etcd_endpoints": endpoints,
        "calico_ipam_etcd_prefix": prefix,
        "calico_ipam_state_file": str(tmp_path / "unused.json"),
        **extra,
    }
    inv = tmp_path / "hosts.yml"
    inv.write_text(json.dumps({"calico_nodes": {"hosts": hosts, "vars": group_vars}}))
    return str(inv)


def _play(inventory, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    return subprocess.run(
        ["ansible-playbook", "-i", inventory, os.path.join(ROOT, "playbooks/ipam.yml"), *extra],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
        check=False,
    )


def _check(etcd, prefix):
    state = EtcdStore(EtcdSettings(endpoints=[etcd], prefix=prefix)).load()
    assert audit(state) == []
    addresses = [b.address(o) for b in state.blocks.values() for o, a in enumerate(b.allocations) if a is not None]
    # per host: WORKLOADS + 1 blue workload + an IPIP tunnel address + a VXLAN tunnel address
    assert len(addresses) == HOSTS * (WORKLOADS + 3) == len(set(addresses))
    nodes = {aff[0] for aff in state.affinities}
    assert nodes == {f"l3tetcd-h{i}" for i in range(HOSTS)}
    assert {"main", "blue"} <= set(state.pools)
    return state


@pytest.mark.parametrize("per_host", [False, True], ids=["controller", "per-host"])
def test_ipam_playbook_on_etcd(etcd, tmp_path, per_host):
    prefix = "/per-host" if per_host else "/controller"
    inventory = _inventory(tmp_path, [etcd], prefix, calico_ipam_per_host=per_host)
    first = _play(inventory, "--forks", str(HOSTS))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "problems: none" in first.stdout
    state = _check(etcd, prefix)
    if per_host:  # every host ran its own allocation
        assert first.stdout.count("changed: [l3tetcd-h") == HOSTS
    again = _play(inventory, "--forks", str(HOSTS))
    assert again.returncode == 0 and "changed=0" in again.stdout and "changed=1" not in again.stdout
    assert EtcdStore(EtcdSettings(endpoints=[etcd], prefix=prefix)).load().to_document() == state.to_document()
    assert not os.path.exists(tmp_path / "unused.json")


def test_check_mode_and_unreachable_etcd_write_nothing(etcd, tmp_path):
    inventory = _inventory(tmp_path, [etcd], "/check")
    proc = _play(inventory, "--check")
    assert proc.returncode == 0, proc.stdout
    assert kv.EtcdKV(EtcdSettings(endpoints=[etcd])).read_prefix("/").kvs == {}
    dead = _inventory(tmp_path, ["http://127.0.0.1:9"], "/check")
    proc = _play(dead)
    assert proc.returncode != 0
    assert "etcd unreachable: http://127.0.0.1:9" in proc.stdout
    assert kv.EtcdKV(EtcdSettings(endpoints=[etcd])).read_prefix("/").kvs == {}


def test_per_host_needs_etcd(tmp_path):
    inventory = _inventory(tmp_path, [], "", calico_ipam_datastore="file", calico_ipam_per_host=True)
    proc = _play(inventory)
    assert proc.returncode != 0
    assert "per-host allocation needs the etcd datastore" in proc.stdout
