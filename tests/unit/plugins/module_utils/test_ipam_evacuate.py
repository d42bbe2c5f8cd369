"""Pool migration steps: the IPAM option ``evacuate`` (planner + validation), pure, no files."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.l3.calico.plugins.module_utils.ipam_inventory import validate
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import ValidationError
from ansible_collections.l3.calico.plugins.module_utils.ipam_planner import Planner
from ansible_collections.l3.calico.plugins.module_utils.ipam_report import audit, build_result
from ansible_collections.l3.calico.plugins.module_utils.ipam_store import IpamState

from .ipam_helpers import make_nodes

OLD = {"name": "old", "cidr": "10.1.0.0/24", "block_size": 26, "vxlan_mode": "Always"}
NEW = {"name": "new", "cidr": "10.2.0.0/24", "block_size": 28, "vxlan_mode": "Always"}
SPEC = {"n1": ["a1", "a2"], "n2": ["b1", "b2"], "n3": ["c1"]}


class Ipam:
    def __init__(self, pools, config=None):
        self.pools = pools
        self.config = config or {}
        self.state = IpamState()

    def plan(self, spec=None, evacuate=None):
        desired = validate(self.pools, self.config, [], make_nodes(SPEC if spec is None else spec), None, None, evacuate)
        planner = Planner(desired, self.state)
        report = planner.run()
        result = build_result(desired, self.state, planner.block_pool)
        result["problems"] = audit(desired, self.state, planner.block_pool)
        result["report"] = report
        result["diff"] = report.diff_lines()
        result["evacuation"] = planner.evacuation()
        result["changed"] = self.state.changed
        self.state._changes = type(self.state._changes)()  # as if written and reloaded
        return result


def addresses(result):
    return {w["id"]: w["ip"] for n in result["nodes"].values() for w in n["workloads"]}


def in_pool(ip, prefix):
    return ip is not None and ip.startswith(prefix)


@pytest.fixture
def migrating():
    """Three nodes in the old pool; then the new pool added and the old one disabled (nothing moves yet)."""
    ipam = Ipam([OLD])
    ipam.before = ipam.plan()
    ipam.pools = [dict(OLD, disabled=True), NEW]
    ipam.disabled = ipam.plan()
    return ipam


def test_disabling_the_old_pool_moves_nothing(migrating):
    before, after = migrating.before, migrating.disabled
    assert addresses(after) == addresses(before)
    assert {n: v["tunnels"] for n, v in after["nodes"].items()} == {n: v["tunnels"] for n, v in before["nodes"].items()}
    assert after["problems"] == []
    assert migrating.plan()["changed"] is False


def test_evacuating_one_node_moves_its_addresses_and_tunnel_and_leaves_the_others(migrating):
    before = migrating.disabled
    res = migrating.plan(evacuate={"pool": "old", "nodes": ["n1"]})
    now = addresses(res)
    assert all(in_pool(now[w], "10.2.") for w in ("default.a1", "default.a2"))
    assert {w: now[w] for w in ("default.b1", "default.b2", "default.c1")} == {w: addresses(before)[w] for w in ("default.b1", "default.b2", "default.c1")}
    assert in_pool(res["nodes"]["n1"]["tunnels"]["vxlan"], "10.2.")
    for node in ("n2", "n3"):
        assert res["nodes"][node]["tunnels"] == before["nodes"][node]["tunnels"]
        assert res["nodes"][node]["blocks"] == before["nodes"][node]["blocks"]
    # n1's old block released, a /28 of the new pool claimed
    assert [b["cidr"] for b in res["nodes"]["n1"]["blocks"]] == [b for _node, b in res["report"].claimed]
    assert all(b["cidr"].startswith("10.2.") and b["cidr"].endswith("/28") for b in res["nodes"]["n1"]["blocks"])
    old_block = before["nodes"]["n1"]["blocks"][0]["cidr"]
    assert old_block not in migrating.state.blocks
    ev = res["evacuation"]
    assert ev["nodes"]["n1"]["released_blocks"] == [old_block]
    moved = {m["owner"]: (m["from"], m["to"]) for m in ev["nodes"]["n1"]["moved"]}
    assert moved["default.a1"] == (addresses(before)["default.a1"], now["default.a1"])
    assert moved["vxlan-tunnel-addr-n1"] == (before["nodes"]["n1"]["tunnels"]["vxlan"], res["nodes"]["n1"]["tunnels"]["vxlan"])
    assert ev["remaining"] == 5 and not ev["removed"]  # b1, b2, c1 and the VTEPs of n2 and n3
    assert res["problems"] == []
    assert "old" in migrating.state.pools


def test_evacuation_is_idempotent_and_other_runs_keep_the_moved_addresses(migrating):
    first = migrating.plan(evacuate={"pool": "old", "nodes": ["n1"]})
    again = migrating.plan(evacuate={"pool": "old", "nodes": ["n1"]})
    assert again["changed"] is False and again["diff"] == []
    assert again["evacuation"]["nodes"]["n1"] == {"moved": [], "released_blocks": []}
    plain = migrating.plan()  # a site run in between (no evacuation): nothing moves back or further
    assert plain["changed"] is False and addresses(plain) == addresses(first)


def test_host_by_host_until_the_old_pool_is_empty_and_removed(migrating):
    for node in ("n1", "n2", "n3"):
        res = migrating.plan(evacuate={"pool": "old", "nodes": [node]})
        assert res["problems"] == []
    assert all(in_pool(ip, "10.2.") for ip in addresses(res).values())
    assert all(in_pool(n["tunnels"]["vxlan"], "10.2.") for n in res["nodes"].values())
    assert res["evacuation"]["remaining"] == 0 and res["evacuation"]["removed"] is True
    assert "old" not in migrating.state.pools
    assert not [c for c in migrating.state.blocks if c.startswith("10.1.")]
    assert ("old", "removed: it holds no address any more (drop it from calico_pools)") in res["report"].pools
    # a second pass changes nothing, and the removed pool is not recorded again
    for node in ("n1", "n2", "n3"):
        again = migrating.plan(evacuate={"pool": "old", "nodes": [node]})
        assert again["changed"] is False, again["diff"]
    assert "old" not in migrating.state.pools
    # a run that moves nothing (the migration playbook's first round) does not record it again either
    assert migrating.plan(evacuate={"pool": "old", "nodes": []})["changed"] is False
    # the operator drops the old pool from the inventory: nothing to do either
    migrating.pools = [NEW]
    assert migrating.plan()["changed"] is False


def test_all_at_once_plan_equals_host_by_host_in_name_order(migrating):
    plan_state = copy.deepcopy(migrating.state)
    whole = Ipam(migrating.pools)
    whole.state = plan_state
    planned = whole.plan(evacuate={"pool": "old", "nodes": ["n1", "n2", "n3"]})
    for node in ("n1", "n2", "n3"):
        res = migrating.plan(evacuate={"pool": "old", "nodes": [node]})
    assert addresses(res) == addresses(planned)
    assert {n: v["tunnels"] for n, v in res["nodes"].items()} == {n: v["tunnels"] for n, v in planned["nodes"].items()}


def test_encapsulation_change_keeps_the_old_tunnel_while_the_old_pool_is_routed():
    """IPIP -> VXLAN: no enabled IPIP pool is left, yet the old pool's blocks are routed over tunl0 while
    any node holds an address there; every node keeps its IPIP tunnel address until the final step,
    and then they all go together (found on the lab: the last host's tunl0 went while the others'
    tunnel addresses still kept their blocks, routed through it)."""
    old = {"name": "old", "cidr": "10.1.0.0/24", "block_size": 26, "ipip_mode": "Always"}
    ipam = Ipam([old])
    ipam.plan()
    ipam.pools = [dict(old, disabled=True), NEW]
    res = ipam.plan()
    assert all(in_pool(n["tunnels"]["ipip"], "10.1.") for n in res["nodes"].values())
    assert all(in_pool(n["tunnels"]["vxlan"], "10.2.") for n in res["nodes"].values())  # new VTEPs at once
    res = ipam.plan(evacuate={"pool": "old", "nodes": ["n1"]})
    assert in_pool(res["nodes"]["n1"]["tunnels"]["ipip"], "10.1.")  # n2's and n3's blocks still go through tunl0
    assert in_pool(addresses(res)["default.a1"], "10.2.")
    ipam.plan(evacuate={"pool": "old", "nodes": ["n2"]})
    res = ipam.plan(evacuate={"pool": "old", "nodes": ["n3"]})
    # n3's step: no workload is left in the old pool, but n1's and n2's tunnel addresses are (their
    # blocks are still announced and routed over tunl0): n3 keeps its own as well
    assert in_pool(res["nodes"]["n3"]["tunnels"]["ipip"], "10.1.")
    assert in_pool(res["nodes"]["n1"]["tunnels"]["ipip"], "10.1.") and not res["evacuation"]["removed"]
    assert not [a for a in addresses(res).values() if in_pool(a, "10.1.")]
    # the final step (every node): the remaining IPIP tunnel addresses go, the pool is removed
    res = ipam.plan(evacuate={"pool": "old", "nodes": ["n1", "n2", "n3"]})
    assert all(n["tunnels"]["ipip"] is None for n in res["nodes"].values())
    assert res["evacuation"]["removed"] and res["problems"] == []
    assert not [c for c in ipam.state.blocks if c.startswith("10.1.")]


def test_borrowed_address_in_an_evacuated_nodes_block_keeps_the_block_until_it_moves():
    ipam = Ipam([dict(OLD, vxlan_mode="Never")], config={"max_blocks_per_host": 1})
    spec = {"n1": [f"a{i}" for i in range(64)], "n2": ["b1"]}
    ipam.plan({"n1": [f"a{i}" for i in range(63)]})
    ipam.plan(spec)  # a63 is borrowed (n1 may hold one block): n2's block or n1 holds... whichever
    ipam.pools = [dict(OLD, vxlan_mode="Never", disabled=True), dict(NEW, vxlan_mode="Never", cidr="10.2.0.0/16")]
    ipam.config = {"max_blocks_per_host": 20}
    ipam.plan(spec)
    res = ipam.plan(spec, evacuate={"pool": "old", "nodes": ["n2"]})
    assert res["problems"] == []
    res = ipam.plan(spec, evacuate={"pool": "old", "nodes": ["n1"]})
    assert res["problems"] == [] and res["evacuation"]["removed"]
    assert all(in_pool(ip, "10.2.") for ip in addresses(res).values())


def test_capacity_refusal_names_the_host_and_changes_nothing(migrating):
    # 4 addresses for 5 workloads and 3 VTEPs (the new pool holds nothing yet: its cidr may still change)
    migrating.pools = [dict(OLD, disabled=True), dict(NEW, cidr="10.2.0.0/30", block_size=30)]
    before = migrating.state.to_document()
    with pytest.raises(ValidationError) as err:
        Planner(
            validate(migrating.pools, {}, [], make_nodes(SPEC), None, None, {"pool": "old", "nodes": ["n1", "n2", "n3"]}), copy.deepcopy(migrating.state)
        ).run()
    assert err.value.host in SPEC and "exhausted" in str(err.value)
    assert migrating.state.to_document() == before


def test_strict_affinity_block_limit_refusal(migrating):
    migrating.pools = [dict(OLD, disabled=True), NEW]
    migrating.config = {"strict_affinity": True, "max_blocks_per_host": 1}
    spec = {"n1": [f"a{i}" for i in range(16)], "n2": ["b1", "b2"], "n3": ["c1"]}
    with pytest.raises(ValidationError) as err:
        migrating.plan(spec, evacuate={"pool": "old", "nodes": ["n1"]})
    assert err.value.host == "n1" and "max_blocks_per_host 1" in str(err.value)


@pytest.mark.parametrize(
    "evacuate, host, field, value",
    [
        ({"pool": "nope", "nodes": ["n1"]}, "calico_nodes", "evacuate.pool", "nope"),
        ({"pool": "new", "nodes": ["n1"]}, "calico_nodes", "calico_pools[1] (new).disabled", False),
        ({"pool": "old", "nodes": ["n9"]}, "n9", "evacuate.nodes[0]", "n9"),
        ({"pool": "old", "nodes": "n1"}, "calico_nodes", "evacuate.nodes", "n1"),
        ({"pool": "old", "node": ["n1"]}, "calico_nodes", "evacuate", {"pool": "old", "node": ["n1"]}),
        ("old", "calico_nodes", "evacuate", "old"),
    ],
)
def test_bad_evacuate_is_refused(migrating, evacuate, host, field, value):
    with pytest.raises(ValidationError) as err:
        migrating.plan(evacuate=evacuate)
    assert (err.value.host, err.value.field, err.value.value) == (host, field, value)


def test_pinned_to_the_old_pool_or_no_new_pool_is_refused(migrating):
    pinned = {"n1": [{"name": "a1", "pool": "old"}, "a2"], "n2": ["b1", "b2"], "n3": ["c1"]}
    with pytest.raises(ValidationError) as err:
        migrating.plan(pinned, evacuate={"pool": "old", "nodes": ["n1"]})
    assert (err.value.host, err.value.field, err.value.value) == ("n1", "calico_workloads[0].pool", "old")
    migrating.pools = [dict(OLD, disabled=True)]
    with pytest.raises(ValidationError) as err:
        migrating.plan(evacuate={"pool": "old", "nodes": ["n1"]})
    assert err.value.field == "calico_pools" and "no enabled pool" in str(err.value)
