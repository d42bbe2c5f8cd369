# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""pool_migration: the rounds of playbooks/pool-migrate.yml and the lines it prints, from the IPAM's
evacuation report - on hand-made reports, then through the module's run() on a state file."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.l3.calico.plugins.module_utils import pool_migration as pm
from ansible_collections.l3.calico.plugins.module_utils.ipam_run import run

POOLS = {
    "old": {"cidr": "10.1.0.0/24", "block_size": 26, "ipip_mode": "Always", "vxlan_mode": "Never", "disabled": True},
    "new": {"cidr": "10.2.0.0/24", "block_size": 28, "ipip_mode": "Never", "vxlan_mode": "Always", "disabled": False},
}


def move(owner, old, new=None, block=None):
    return {"owner": owner, "from": old, "to": new, "block": block}


def evacuation(removed=True, **nodes):
    return {"pool": "old", "cidr": "10.1.0.0/24", "nodes": nodes, "remaining": 0 if removed else 3, "blocks_left": 0 if removed else 2, "removed": removed}


# n1: a workload moves and its tunnel address goes without replacement (IPIP -> VXLAN); n2: only its
# tunnel address goes (nothing moves into the new pool: no round of its own); n3: a workload moves.
EVACUATION = evacuation(
    n1={"moved": [move("default.a1", "10.1.0.1", "10.2.0.1", "10.2.0.0/28"), move("ipip-tunnel-addr-n1", "10.1.0.0")], "released_blocks": ["10.1.0.0/26"]},
    n2={"moved": [move("ipip-tunnel-addr-n2", "10.1.0.64")], "released_blocks": ["10.1.0.64/26"]},
    n3={"moved": [move("default.c1", "10.1.0.129", "10.2.0.17", "10.2.0.16/28")], "released_blocks": []},
)


def names(rounds):
    return [r["name"] for r in rounds]


def test_every_host_with_an_address_moving_into_the_new_pool_has_a_round_then_finish():
    rounds = pm.rounds(EVACUATION, changed=True)
    every = ["n1", "n2", "n3"]
    assert rounds == [
        {"name": "prepare", "nodes": [], "workloads": every},
        {"name": "n1", "nodes": ["n1"], "workloads": ["n1"]},
        {"name": "n3", "nodes": ["n3"], "workloads": ["n3"]},
        {"name": "finish", "nodes": every, "workloads": every},
    ]


def test_hosts_run_in_name_order_whatever_the_order_given():
    ev = evacuation(
        b={"moved": [move("x", "10.1.0.1", "10.2.0.1")], "released_blocks": []}, a={"moved": [move("y", "10.1.0.2", "10.2.0.2")], "released_blocks": []}
    )
    assert names(pm.rounds(ev, True, run_nodes=["b", "a"])) == ["prepare", "a", "b", "finish"]


def test_a_later_host_defers_the_finish():
    assert names(pm.rounds(EVACUATION, True, run_nodes=["n1"])) == ["prepare", "n1"]
    assert names(pm.rounds(EVACUATION, True, run_nodes=["n3"])) == ["prepare", "n3"]
    # n2 has nothing moving into the new pool: leaving it out defers nothing
    assert names(pm.rounds(EVACUATION, True, run_nodes=["n1", "n3"])) == ["prepare", "n1", "n3", "finish"]
    assert names(pm.rounds(EVACUATION, True, run_nodes=[])) == ["prepare"]


def test_nothing_left_to_change_is_prepare_only():
    done = evacuation(n1={"moved": [], "released_blocks": []}, n2={"moved": [], "released_blocks": []})
    assert pm.rounds(done, changed=False) == [{"name": "prepare", "nodes": [], "workloads": ["n1", "n2"]}]
    # the old pool still in the state (nothing moves, but the plan changes it): finish removes it
    assert names(pm.rounds(done, changed=True)) == ["prepare", "finish"]


def test_plan_lines():
    assert pm.plan_lines(EVACUATION, POOLS) == [
        "pool migration out of old (10.1.0.0/24) into new, host by host: n1, n2, n3",
        "new pool new: 10.2.0.0/24, /28 blocks, ipip Never, vxlan Always",
        "n1: 2 address(es) move, 1 block(s) released",
        "  default.a1 10.1.0.1 -> 10.2.0.1 (block 10.2.0.0/28)",
        "  ipip-tunnel-addr-n1 10.1.0.0 -> (released in the last round: no longer needed)",
        "  block 10.1.0.0/26 released",
        "n2: 1 address(es) move, 1 block(s) released",
        "  ipip-tunnel-addr-n2 10.1.0.64 -> (released in the last round: no longer needed)",
        "  block 10.1.0.64/26 released",
        "n3: 1 address(es) move, 0 block(s) released",
        "  default.c1 10.1.0.129 -> 10.2.0.17 (block 10.2.0.16/28)",
        "then pool old holds nothing and leaves the IPAM state: drop it from calico_pools",
    ]


def test_plan_lines_of_a_partial_run_and_a_pool_that_stays():
    pools = dict(POOLS, other={"cidr": "10.3.0.0/24", "block_size": 26, "ipip_mode": "CrossSubnet", "vxlan_mode": "Never", "disabled": False})
    ev = dict(EVACUATION, removed=False, remaining=3, blocks_left=2)
    lines = pm.plan_lines(ev, pools, run_nodes=["n3", "n1"])
    assert lines[:4] == [
        "pool migration out of old (10.1.0.0/24) into new, other, host by host: n1, n2, n3",
        "this run moves only n1, n3 (calico_migrate_hosts); a later run the others",
        "new pool new: 10.2.0.0/24, /28 blocks, ipip Never, vxlan Always",
        "new pool other: 10.3.0.0/24, /26 blocks, ipip CrossSubnet, vxlan Never",
    ]
    assert lines[-1] == "pool old would still hold 3 address(es) in 2 block(s)"


def test_summary_lines():
    assert pm.summary_lines(EVACUATION) == [
        "n1: default.a1 10.1.0.1 -> 10.2.0.1",
        "n1: ipip-tunnel-addr-n1 10.1.0.0 -> (released)",
        "n1: block 10.1.0.0/26 released",
        "n2: ipip-tunnel-addr-n2 10.1.0.64 -> (released)",
        "n2: block 10.1.0.64/26 released",
        "n3: default.c1 10.1.0.129 -> 10.2.0.17",
        "pool old: 0 address(es) left, removed from the IPAM state",
    ]
    assert pm.summary_lines(evacuation(removed=False)) == ["pool old: 3 address(es) left"]


def test_report_keeps_the_evacuation_and_adds_rounds_plan_and_summary():
    before = copy.deepcopy(EVACUATION)
    out = pm.report(EVACUATION, POOLS, True, ("n1",))
    assert EVACUATION == before
    assert {k: out[k] for k in before} == before
    assert names(out["rounds"]) == ["prepare", "n1"]
    assert out["plan"] == pm.plan_lines(EVACUATION, POOLS, ["n1"])
    assert out["summary"] == pm.summary_lines(EVACUATION)


# Through the module's run() (the action plugin's too), on a state file.
OLD = {"name": "old", "cidr": "10.1.0.0/24", "block_size": 26, "vxlan_mode": "Always"}
NEW = {"name": "new", "cidr": "10.2.0.0/24", "block_size": 28, "vxlan_mode": "Always"}
NODES = [
    {"name": "n1", "ip": "192.168.1.1/24", "workloads": [{"name": "a1"}, {"name": "a2"}]},
    {"name": "n2", "ip": "192.168.1.2/24", "workloads": [{"name": "b1"}]},
    {"name": "n3", "ip": "192.168.1.3/24", "workloads": []},
]


@pytest.fixture
def params(tmp_path):
    base = {
        "pools": [OLD],
        "config": {},
        "reservations": [],
        "nodes": copy.deepcopy(NODES),
        "node": None,
        "remove_nodes": [],
        "audit": False,
        "lock_timeout": 5.0,
        "datastore": "file",
        "state_file": str(tmp_path / "calico_ipam.json"),
    }
    run(base, check_mode=False)
    return dict(base, pools=[dict(OLD, disabled=True), NEW])


def plan(params, run_nodes=None):
    evacuate = {"pool": "old", "nodes": ["n1", "n2", "n3"], "run_nodes": run_nodes}
    return run(dict(params, evacuate=evacuate), check_mode=True)[0]


def step(params, nodes):
    return run(dict(params, evacuate={"pool": "old", "nodes": nodes}), check_mode=False)[0]


def test_a_whole_migration_round_by_round(params):
    """(Bad run_nodes: the evacuate-run-node* cases of tests/unit/plugins/modules/test_ipam_bad_input.py.)"""
    planned = plan(params)["evacuation"]
    # n3 has no workload: only its VTEP moves into the new pool, which is a move of its own
    assert names(planned["rounds"]) == ["prepare", "n1", "n2", "n3", "finish"]
    assert planned["plan"][0] == "pool migration out of old (10.1.0.0/24) into new, host by host: n1, n2, n3"
    assert "then pool old holds nothing and leaves the IPAM state: drop it from calico_pools" == planned["plan"][-1]
    only_n1 = plan(params, ["n1"])["evacuation"]
    assert names(only_n1["rounds"]) == ["prepare", "n1"]
    assert only_n1["plan"][1] == "this run moves only n1 (calico_migrate_hosts); a later run the others"
    for round_ in only_n1["rounds"]:
        done = step(params, round_["nodes"])["evacuation"]
    assert done["summary"][-1].startswith("pool old: ") and not done["removed"]
    assert [line for line in done["summary"] if line.startswith("n1: default.a1 10.1.0.")]
    # the next run continues with the others, then finishes; a run after that has nothing to do
    rest = plan(params)["evacuation"]
    assert names(rest["rounds"]) == ["prepare", "n2", "n3", "finish"]
    for round_ in rest["rounds"]:
        done = step(params, round_["nodes"])["evacuation"]
    assert done["removed"] and done["summary"][-1] == "pool old: 0 address(es) left, removed from the IPAM state"
    assert names(plan(params)["evacuation"]["rounds"]) == ["prepare"]


# Batches (evacuate.batch, calico_migrate_batch): the hosts with an address to move, B per round.
def moving(*hosts):
    return evacuation(**{h: {"moved": [move(f"default.{h}", "10.1.0.1", "10.2.0.1")], "released_blocks": []} for h in hosts})


def test_a_batch_of_several_hosts_is_one_round_named_short():
    ev = moving("n1", "n2", "n3")
    rounds = pm.rounds(ev, True, batch=2)
    assert rounds[1:3] == [
        {"name": "n1 .. n2 (2 hosts)", "nodes": ["n1", "n2"], "workloads": ["n1", "n2"]},
        {"name": "n3", "nodes": ["n3"], "workloads": ["n3"]},
    ]
    assert names(rounds) == ["prepare", "n1 .. n2 (2 hosts)", "n3", "finish"]
    # prepare and finish do not change with the batch
    assert rounds[0] == pm.rounds(ev, True)[0] and rounds[-1] == pm.rounds(ev, True)[-1]
    assert names(pm.rounds(ev, True, batch=3)) == ["prepare", "n1 .. n3 (3 hosts)", "finish"]
    assert names(pm.rounds(ev, True, batch=50)) == ["prepare", "n1 .. n3 (3 hosts)", "finish"]


def test_a_batch_skips_hosts_with_nothing_to_move_and_hosts_of_a_later_run():
    # n2 only loses its tunnel address: no round of its own, nor a place in a batch
    assert names(pm.rounds(EVACUATION, True, batch=2)) == ["prepare", "n1 .. n3 (2 hosts)", "finish"]
    ev = moving("a", "b", "c", "d", "e")
    rounds = pm.rounds(ev, True, run_nodes=["e", "b", "d"], batch=2)
    assert [r["nodes"] for r in rounds] == [[], ["b", "d"], ["e"]]  # a and c are left: no finish yet


def test_a_round_name_stays_short_at_a_thousand_hosts():
    hosts = [f"node-{i:04d}" for i in range(1000)]
    rounds = pm.rounds(moving(*hosts), True, batch=1000)
    assert names(rounds) == ["prepare", "node-0000 .. node-0999 (1000 hosts)", "finish"]
    assert len(rounds[1]["nodes"]) == 1000
    assert len(pm.rounds(moving(*hosts), True, batch=300)) == 4 + 2  # ceil(1000/300) + prepare + finish


def test_plan_lines_say_the_batch_size():
    assert pm.plan_lines(EVACUATION, POOLS, batch=5)[0] == "pool migration out of old (10.1.0.0/24) into new, up to 5 hosts per round: n1, n2, n3"
    assert pm.plan_lines(EVACUATION, POOLS, batch=1) == pm.plan_lines(EVACUATION, POOLS)
    out = pm.report(EVACUATION, POOLS, True, None, 2)
    assert out["rounds"] == pm.rounds(EVACUATION, True, None, 2) and out["plan"] == pm.plan_lines(EVACUATION, POOLS, None, 2)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.from_regex(r"[a-z][a-z0-9]{0,3}", fullmatch=True), st.booleans(), max_size=12),
    st.one_of(st.none(), st.data()),
    st.integers(min_value=1, max_value=14),
    st.booleans(),
)
def test_batches_property(moves, data, batch, changed):
    """Every host with a move (of this run) is in exactly one round, in name order, no round is bigger than
    the batch, only the last host round smaller, and a batch of one is the rounds of before (one per host)."""
    ev = evacuation(
        **{h: {"moved": [move(f"default.{h}", "10.1.0.1", "10.2.0.1" if moves_in else None)], "released_blocks": []} for h, moves_in in moves.items()}
    )
    run_nodes = None if data is None else data.draw(st.lists(st.sampled_from(sorted(moves)), unique=True) if moves else st.just([]))
    due = sorted(h for h, moves_in in moves.items() if moves_in and (run_nodes is None or h in run_nodes))
    rounds = pm.rounds(ev, changed, run_nodes, batch)
    hosts = rounds[1:-1] if rounds[-1]["name"] == "finish" else rounds[1:]
    assert rounds[0] == {"name": "prepare", "nodes": [], "workloads": sorted(moves)}
    assert [h for r in hosts for h in r["nodes"]] == due
    assert all(r["nodes"] == r["workloads"] and 1 <= len(r["nodes"]) <= batch for r in hosts)
    assert all(len(r["nodes"]) == batch for r in hosts[:-1])
    assert len(hosts) == -(-len(due) // batch)
    assert all(r["name"] == (r["nodes"][0] if len(r["nodes"]) == 1 else f"{r['nodes'][0]} .. {r['nodes'][-1]} ({len(r['nodes'])} hosts)") for r in hosts)
    one = pm.rounds(ev, changed, run_nodes)
    assert [r for r in one if r["name"] not in ("prepare", "finish")] == [{"name": h, "nodes": [h], "workloads": [h]} for h in due]
    assert [r["name"] for r in rounds if r["name"] in ("prepare", "finish")] == [r["name"] for r in one if r["name"] in ("prepare", "finish")]
