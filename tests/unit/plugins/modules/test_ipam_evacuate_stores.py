"""A whole pool migration through the module's run(), on both datastores (Store.transact): the state
file and a real etcd. Each step moves one node; check mode writes nothing; the emptied old pool leaves
the datastore (its etcd key deleted) and is not recorded again."""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.l3.calico.plugins.module_utils import etcd_kv as kv
from ansible_collections.l3.calico.plugins.module_utils.ipam_etcd import EtcdSettings
from ansible_collections.l3.calico.plugins.module_utils.ipam_run import run

OLD = {"name": "old", "cidr": "10.1.0.0/24", "block_size": 26, "vxlan_mode": "Always"}
NEW = {"name": "new", "cidr": "10.2.0.0/24", "block_size": 28, "vxlan_mode": "Always"}
NODES = [
    {"name": "n1", "ip": "192.168.1.1/24", "workloads": [{"name": "a1"}, {"name": "a2"}]},
    {"name": "n2", "ip": "192.168.1.2/24", "workloads": [{"name": "b1"}]},
]


def params_for(datastore, where):
    base = {
        "pools": [OLD],
        "config": {},
        "reservations": [],
        "nodes": copy.deepcopy(NODES),
        "node": None,
        "remove_nodes": [],
        "audit": False,
        "lock_timeout": 5.0,
        "datastore": datastore,
        "state_file": None,
        "etcd_endpoints": [],
        "etcd_prefix": "",
        "etcd_timeout": 5.0,
        "etcd_retries": 5,
    }
    if datastore == "file":
        base["state_file"] = str(where / "calico_ipam.json")
    else:
        base["etcd_endpoints"] = [where]
    return base


def snapshot(datastore, where):
    if datastore == "file":
        return (where / "calico_ipam.json").read_bytes()
    return {k: v for k, (v, _rev) in kv.EtcdKV(EtcdSettings(endpoints=[where])).read_prefix("/").kvs.items()}


def addresses(result):
    return {w["id"]: w["ip"] for n in result["nodes"].values() for w in n["workloads"]}


def migrate(datastore, where):
    params = params_for(datastore, where)
    first, _diff = run(params, check_mode=False)
    params["pools"] = [dict(OLD, disabled=True), NEW]
    step = dict(params, evacuate={"pool": "old", "nodes": []})
    run(step, check_mode=False)
    before = snapshot(datastore, where)
    planned, diff = run(dict(params, evacuate={"pool": "old", "nodes": ["n1", "n2"]}), check_mode=True)
    assert snapshot(datastore, where) == before  # check mode: nothing written
    assert planned["evacuation"]["removed"] and "~ pool old removed" in diff
    n1, _diff = run(dict(params, evacuate={"pool": "old", "nodes": ["n1"]}), check_mode=False)
    assert {w: ip[:5] for w, ip in addresses(n1).items()} == {"default.a1": "10.2.", "default.a2": "10.2.", "default.b1": "10.1."}
    assert n1["nodes"]["n2"]["tunnels"] == first["nodes"]["n2"]["tunnels"]
    n2, _diff = run(dict(params, evacuate={"pool": "old", "nodes": ["n2"]}), check_mode=False)
    assert n2["evacuation"]["removed"] and n2["problems"] == []
    assert addresses(n2) == addresses(planned)
    done = snapshot(datastore, where)
    again, diff = run(dict(params, evacuate={"pool": "old", "nodes": ["n1", "n2"]}), check_mode=False)
    assert not again["changed"] and diff == "" and snapshot(datastore, where) == done
    return done


def test_file_store(tmp_path):
    done = json.loads(migrate("file", tmp_path))
    assert list(done["pools"]) == ["new"]
    assert all(b["cidr"].startswith("10.2.") for b in done["blocks"])


@pytest.mark.etcd
def test_etcd_store(etcd):
    done = migrate("etcd", etcd)
    assert kv.pool_key("new") in done and kv.pool_key("old") not in done
    assert not [k for k in done if "10.1.0." in k]  # no block, affinity or handle of the old pool left
