# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""playbooks/ipam-migrate.yml: state file -> etcd -> state file is lossless, and idempotent."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.l3.calico.plugins.module_utils import etcd_kv as kv
from ansible_collections.l3.calico.plugins.module_utils.ipam_etcd import (
    EtcdSettings,
    EtcdStore,
    state_to_kvs,
)
from ansible_collections.l3.calico.plugins.module_utils.ipam_store import FileStore
from tests.support.ipam_worker import allocate, audit, release

pytestmark = pytest.mark.etcd
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _canonical(state) -> dict:
    doc = state.to_document()
    doc["blocks"].sort(key=lambda b: b["cidr"])
    doc["affinities"].sort(key=lambda a: (a["node"], a["cidr"]))
    return doc


def _inventory(tmp_path, endpoint, state_file) -> str:
    inv = tmp_path / "hosts.yml"
    inv.write_text(
        json.dumps(
            {
                "calico_nodes": {
                    "hosts": {"l3tetcd-n1": {}, "l3tetcd-n2": {}},
                    "vars": {
                        "ansible_connection": "local",
                        "calico_ipam_state_file": str(state_file),
                        "calico_ipam_etcd_endpoints": [endpoint],
                        "calico_ipam_etcd_prefix": "/mig",
                    },
                }
            }
        )
    )
    return str(inv)


def _play(inventory, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    proc = subprocess.run(
        ["ansible-playbook", "-i", inventory, os.path.join(ROOT, "playbooks/ipam-migrate.yml"), *extra],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    return proc


def _seed(state_file):
    """A state with everything: pools, config, several nodes' blocks, borrowing, a released FIFO."""

    def plan(state):
        state.pools["p1"] = {
            "cidr": "10.44.0.0/20",
            "blockSize": 26,
            "ipipMode": "CrossSubnet",
            "vxlanMode": "Never",
            "natOutgoing": True,
            "nodeSelector": "all()",
        }
        state.touch_pool("p1")
        state.config.strict_affinity = True
        state.touch_config()
        for i in range(3):
            allocate(state, f"n{i}", [f"l3-workload.default.n{i}-{j}" for j in range(90)])
        release(state, ["l3-workload.default.n1-3", "l3-workload.default.n2-70"])
        next(iter(state.blocks.values())).extra["sequenceNumberForAllocation"] = {"0": 7}

    FileStore(str(state_file)).transact(plan, write=True)


def test_round_trip_file_etcd_file_is_lossless(etcd, tmp_path):
    state_file = tmp_path / "calico_ipam.json"
    _seed(state_file)
    original = FileStore(str(state_file)).load()
    assert audit(original) == []
    inventory = _inventory(tmp_path, etcd, state_file)

    proc = _play(inventory, "-e", "calico_ipam_migrate_to=etcd")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "changed=1" in proc.stdout
    etcd_store = EtcdStore(EtcdSettings(endpoints=[etcd], prefix="/mig"))
    assert _canonical(etcd_store.load()) == _canonical(original)
    # every object under its Calico key, holding the same JSON as the file
    raw = {k: v for k, (v, _r) in kv.EtcdKV(EtcdSettings(endpoints=[etcd])).read_prefix("/mig/").kvs.items()}
    assert {k: json.loads(v) for k, v in raw.items()} == {k: json.loads(v) for k, v in state_to_kvs(original, "/mig").items()}

    again = _play(inventory, "-e", "calico_ipam_migrate_to=etcd")
    assert again.returncode == 0 and "changed=0" in again.stdout

    os.rename(state_file, tmp_path / "original.json")
    back = _play(inventory, "-e", "calico_ipam_migrate_to=file")
    assert back.returncode == 0, back.stdout + back.stderr
    assert _canonical(FileStore(str(state_file)).load()) == _canonical(original)


def test_a_different_destination_is_not_replaced_without_overwrite(etcd, tmp_path):
    state_file = tmp_path / "calico_ipam.json"
    _seed(state_file)
    store = EtcdStore(EtcdSettings(endpoints=[etcd], prefix="/mig"))
    store.transact(lambda s: allocate(s, "other", ["l3-workload.default.other"]), write=True)
    before = kv.EtcdKV(EtcdSettings(endpoints=[etcd])).read_prefix("/").kvs
    inventory = _inventory(tmp_path, etcd, state_file)
    proc = _play(inventory, "-e", "calico_ipam_migrate_to=etcd")
    assert proc.returncode != 0
    assert "already holds a different IPAM state" in proc.stdout and "set overwrite" in proc.stdout
    assert kv.EtcdKV(EtcdSettings(endpoints=[etcd])).read_prefix("/").kvs == before
    proc = _play(inventory, "-e", "calico_ipam_migrate_to=etcd", "-e", "calico_ipam_migrate_overwrite=true")
    assert proc.returncode == 0, proc.stdout
    assert _canonical(store.load()) == _canonical(FileStore(str(state_file)).load())


def test_check_mode_and_a_missing_direction(etcd, tmp_path):
    state_file = tmp_path / "calico_ipam.json"
    _seed(state_file)
    inventory = _inventory(tmp_path, etcd, state_file)
    proc = _play(inventory, "-e", "calico_ipam_migrate_to=etcd", "--check")
    assert proc.returncode == 0 and "changed=1" in proc.stdout
    assert kv.EtcdKV(EtcdSettings(endpoints=[etcd])).read_prefix("/").kvs == {}
    proc = _play(inventory)
    assert proc.returncode != 0 and "calico_ipam_migrate_to=undefined" in proc.stdout
