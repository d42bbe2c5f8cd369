"""The module shell: argument spec, check mode, diff, changed, failures."""

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.l3.calico.plugins.modules import ipam


def call(capsys, **args):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            ipam.main()
    return json.loads(capsys.readouterr().out)


def args(path, workloads, **extra):
    base = {
        "state_file": str(path),
        "pools": [{"name": "p1", "cidr": "10.10.0.0/16", "ipip_mode": "Always"}],
        "nodes": [{"name": "n1", "ip": "192.168.0.1/24", "workloads": [{"name": w} for w in workloads]}],
    }
    base.update(extra)
    return base


def test_check_diff_apply_noop(tmp_path, capsys):
    path = tmp_path / "s.json"
    out = call(capsys, **args(path, ["a"]), _ansible_check_mode=True, _ansible_diff=True)
    assert out["changed"] is True and not path.exists()
    assert "+ block" in out["diff"]["prepared"] and "default.a on n1" in out["diff"]["prepared"]
    out = call(capsys, **args(path, ["a"]))
    assert out["changed"] is True and path.exists() and "diff" not in out
    assert set(out) >= {"nodes", "pools", "problems", "changed"}
    node = out["nodes"]["n1"]
    assert node["tunnels"]["ipip"] and node["workloads"][0]["ip"] and node["network"] == "192.168.0.0/24"
    out = call(capsys, **args(path, ["a"]), _ansible_diff=True)
    assert out["changed"] is False and "diff" not in out


def test_failure_names_host_field_value(tmp_path, capsys):
    out = call(capsys, **args(tmp_path / "s.json", ["Bad_Name"]))
    assert out["failed"] is True
    assert out["msg"].startswith("n1: calico_workloads[0].name='Bad_Name'")


def test_remove_nodes_releases_the_node_and_keeps_the_others(tmp_path):
    """remove_nodes drops a node still in the inventory: its addresses, affinities and blocks go."""
    from ansible_collections.l3.calico.plugins.module_utils.ipam_run import run

    params = {
        "pools": [{"name": "p1", "cidr": "10.10.0.0/16", "block_size": 26, "ipip_mode": "Always"}],
        "config": {},
        "reservations": [],
        "node": None,
        "lock_timeout": 5.0,
        "state_file": str(tmp_path / "calico_ipam.json"),
        "nodes": [{"name": n, "ip": f"192.168.1.{i}/24", "workloads": [{"name": f"w{i}"}]} for i, n in enumerate(["a", "b", "c"], 1)],
    }
    first, _diff = run(params, check_mode=False)
    c_block = first["nodes"]["c"]["blocks"][0]["cidr"]
    check, diff = run(dict(params, remove_nodes=["c"]), check_mode=True)
    assert f"- block {c_block} affinity to c (block deleted)" in diff
    assert "default.w3 on c" in diff
    assert len(json.load(open(params["state_file"]))["affinities"]) == 3  # check mode wrote nothing
    result, _diff = run(dict(params, remove_nodes=["c"]), check_mode=False)
    assert sorted(result["nodes"]) == ["a", "b"] and result["problems"] == []
    assert result["nodes"]["a"] == first["nodes"]["a"] and result["nodes"]["b"] == first["nodes"]["b"]
    state = json.load(open(params["state_file"]))
    assert sorted(a["node"] for a in state["affinities"]) == ["a", "b"]
    assert c_block not in {b["cidr"] for b in state["blocks"]}
    assert not [h for h in state["handles"] if h.endswith("-c") or h.endswith(".w3")]
