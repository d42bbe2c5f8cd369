# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""A state read back from the file or etcd is checked as strictly as the inventory (ipam_store.check_state).

Valid JSON that is semantically broken used to be planned on and written: an ordinal listed twice gave
two workloads one address, a second spelling of a block gave two nodes the same addresses, a negative
ordinal handed out an address of another node's block, and malformed values surfaced as Python's own
words ('str' object has no attribute 'get'). Each is now refused naming the block, field and value,
with nothing written; and a plan whose audit finds a problem it introduced is never written.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.l3.calico.plugins.module_utils import ipam_model as m
from ansible_collections.l3.calico.plugins.module_utils import ipam_planner, ipam_store
from ansible_collections.l3.calico.plugins.module_utils import ipam_run as ipam_module
from ansible_collections.l3.calico.plugins.module_utils.ipam_etcd import state_from_kvs
from ansible_collections.l3.calico.plugins.module_utils.ipam_inventory import validate
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import IpamError, StateError
from ansible_collections.l3.calico.plugins.module_utils.ipam_report import audit
from ansible_collections.l3.calico.plugins.module_utils.ipam_run import run

BASE = {
    "pools": [{"name": "p1", "cidr": "10.10.0.0/24", "block_size": 26}],
    "config": {},
    "reservations": [],
    "nodes": [
        {"name": "n1", "ip": "192.168.1.1/24", "workloads": [{"name": "w1"}, {"name": "w2"}]},
        {"name": "n2", "ip": "192.168.1.2/24", "workloads": [{"name": "w3"}]},
    ],
    "node": None,
    "lock_timeout": 5.0,
}
# Python's own words: none may reach the user
PYTHONISMS = re.compile(
    r"object has no attribute|not subscriptable|invalid literal|unhashable|Traceback|"
    r"(Key|Type|Attribute|Value|Index|Recursion)Error|object is not|argument must be"
)


@pytest.fixture
def recorded(tmp_path):
    params = copy.deepcopy(BASE)
    params["state_file"] = str(tmp_path / "ipam.json")
    run(params, check_mode=False)
    with open(params["state_file"]) as handle:
        return params, json.load(handle)


def block_of(doc, node):
    return next(b for b in doc["blocks"] if b["affinity"] == f"host:{node}")


def dup_free(doc):
    block_of(doc, "n1")["unallocated"].insert(0, block_of(doc, "n1")["unallocated"][0])


def free_and_allocated(doc):
    block_of(doc, "n1")["unallocated"].insert(0, 0)  # ordinal 0 is w1's


def second_spelling(doc):
    other = copy.deepcopy(block_of(doc, "n1"))
    other["cidr"] = other["cidr"].replace("/26", "/026")
    other["affinity"] = "host:n2"
    doc["blocks"].append(other)


def negative(doc):
    block_of(doc, "n1")["unallocated"].insert(0, -1)


def set_block(field, value):
    def mutate(doc):
        block_of(doc, "n1")[field] = value

    return mutate


def set_attr(value):
    def mutate(doc):
        block_of(doc, "n1")["attributes"][0] = value

    return mutate


STATES = [
    # (id, mutate, strings the message names)
    ("ordinal-twice-in-unallocated", dup_free, ["block 10.10.0.", "unallocated[1]", "listed twice"]),
    ("allocated-ordinal-also-free", free_and_allocated, ["block 10.10.0.", "unallocated[0]=0", "also allocated"]),
    ("second-spelling-of-a-block", second_spelling, ["/026", "cidr", "canonical"]),
    ("negative-ordinal", negative, ["unallocated[0]=-1", "from 0 to 63"]),
    ("ordinal-out-of-range", lambda d: block_of(d, "n1")["unallocated"].append(64), ["=64", "from 0 to 63"]),
    ("ordinal-as-string", lambda d: block_of(d, "n1")["unallocated"].insert(0, "5"), ["unallocated[0]='5'"]),
    ("affinity-not-a-string", set_block("affinity", 5), ["affinity=5", "host:<node name>"]),
    ("affinity-bad-node-name", set_block("affinity", "host:rack1/n1"), ["affinity='host:rack1/n1'"]),
    ("attribute-not-an-object", set_attr("w1"), ["attributes[0]='w1'"]),
    ("attribute-bad-node", set_attr({"handle_id": "l3-workload.default.w1", "secondary": {"node": "n1;reboot"}}), ["attributes[0].secondary.node='n1;reboot'"]),
    ("allocation-not-an-index", lambda d: block_of(d, "n1")["allocations"].__setitem__(0, "0"), ["allocations[0]='0'"]),
    ("sequence-number-not-an-int", set_block("sequenceNumber", "x"), ["sequenceNumber='x'"]),
    ("deleted-not-a-bool", set_block("deleted", "no"), ["deleted='no'"]),
    ("handle-id-with-slash", lambda d: d["handles"].update({"a/b": {"block": {"10.10.0.0/26": 1}, "deleted": False}}), ["handle 'a/b'", "id='a/b'"]),
    ("handle-count-not-an-int", lambda d: next(iter(d["handles"].values()))["block"].update({"10.10.0.0/26": "1"}), ["block[10.10.0.0/26]='1'"]),
    ("handle-not-an-object", lambda d: d["handles"].update({"x": "y"}), ["handle x", "'y'"]),
    ("affinity-state", lambda d: d["affinities"][0].update(state="claimed"), ["state='claimed'"]),
    ("affinity-entry-not-an-object", lambda d: d["affinities"].append("n1"), ["affinities[", "'n1'"]),
    ("config-not-a-bool", lambda d: d["config"].update(strict_affinity="yes"), ["strict_affinity='yes'"]),
    ("config-negative-limit", lambda d: d["config"].update(maxBlocksPerHost=-1), ["maxBlocksPerHost=-1"]),
    ("pool-block-size", lambda d: d["pools"]["p1"].update(blockSize="26"), ["pool 'p1'", "blockSize='26'"]),
    (
        "blocks-overlap",
        lambda d: d["blocks"].append(
            {**copy.deepcopy(block_of(d, "n1")), "cidr": "10.10.0.0/27", "allocations": [None] * 32, "unallocated": list(range(32)), "attributes": []}
        ),
        ["overlaps"],
    ),
]


@pytest.mark.parametrize("mutate, expect", [c[1:] for c in STATES], ids=[c[0] for c in STATES])
def test_a_broken_state_file_is_refused_naming_block_field_and_value(recorded, mutate, expect):
    params, doc = recorded
    mutate(doc)
    with open(params["state_file"], "w") as handle:
        json.dump(doc, handle)
    before = open(params["state_file"], "rb").read()
    with pytest.raises(IpamError) as err:
        run(params, check_mode=False)
    message = str(err.value)
    assert params["state_file"] in message and "refusing" in message, message
    for text in expect:
        assert text in message, message
    assert not PYTHONISMS.search(message), message
    assert open(params["state_file"], "rb").read() == before


BLOCK_FAULTS = (
    "ordinal-twice-in-unallocated",
    "allocated-ordinal-also-free",
    "negative-ordinal",
    "ordinal-out-of-range",
    "ordinal-as-string",
    "blocks-overlap",
)


@pytest.mark.parametrize("mutate", [c[1] for c in STATES if c[0] in BLOCK_FAULTS], ids=BLOCK_FAULTS)
def test_the_audit_names_a_broken_block_in_the_words_of_the_load_check(recorded, mutate, monkeypatch):
    """One block check (ipam_store.free_list_fault, overlap_faults): what the load refuses, the audit finds
    in a state that got there another way (a planner bug, see the next test), in the same words."""
    params, doc = recorded
    mutate(doc)
    with monkeypatch.context() as patch:
        patch.setattr(ipam_store, "check_state", lambda state: None)
        state = ipam_store.IpamState.from_document(doc)
    with pytest.raises(StateError) as err:
        ipam_store.check_state(state)
    problems = audit(validate(params["pools"], {}, [], params["nodes"]), state)
    assert str(err.value) in problems, (str(err.value), problems)


@pytest.mark.parametrize(
    "mutate, expect",
    [c[1:] for c in STATES if c[0] not in ("affinity-entry-not-an-object", "handle-not-an-object")],
    ids=[c[0] for c in STATES if c[0] not in ("affinity-entry-not-an-object", "handle-not-an-object")],
)
def test_the_same_state_in_etcd_is_refused_by_the_same_check(recorded, mutate, expect):
    _params, doc = recorded
    mutate(doc)
    # the objects under Calico's etcd keys, as they are (nothing checked on the way in)
    kvs = {m.block_key(str(v["cidr"])): v for v in doc["blocks"]}
    kvs.update({m.affinity_key(a["node"], a["cidr"]): {"state": a["state"], "deleted": a["deleted"]} for a in doc["affinities"]})
    kvs.update({m.handle_key(hid): value for hid, value in doc["handles"].items()})
    kvs.update({m.pool_key(name): {"spec": spec} for name, spec in doc["pools"].items()})
    kvs[m.CONFIG_KEY] = doc["config"]
    kvs = {key: json.dumps(value).encode() for key, value in kvs.items()}
    with pytest.raises(StateError) as err:
        state_from_kvs(kvs, origin="etcd test")
    message = str(err.value)
    assert message.startswith("etcd test: ") and "refusing to plan on it" in message, message
    assert not PYTHONISMS.search(message), message


def test_two_nodes_never_get_the_same_address_from_a_second_spelling(recorded):
    """The issue's reproduction: with the old code both nodes got .0-.2 of one block, on every run."""
    params, doc = recorded
    second_spelling(doc)
    with open(params["state_file"], "w") as handle:
        json.dump(doc, handle)
    with pytest.raises(StateError, match="canonical"):
        run(params, check_mode=False)


def test_a_plan_whose_audit_finds_a_problem_it_introduced_is_never_written(recorded, monkeypatch):
    params, _doc = recorded
    params["nodes"][0]["workloads"].append({"name": "w4"})
    before = open(params["state_file"], "rb").read()

    class Broken(ipam_planner.Planner):
        def run(self):
            report = super().run()
            state = self.context.state
            block = next(iter(state.blocks.values()))
            block.unallocated.append(block.unallocated[0])  # a bug: an ordinal free twice
            state.touch_block(block.cidr)
            return report

    monkeypatch.setattr(ipam_module, "Planner", Broken)
    with pytest.raises(IpamError, match=r"problem\(s\) the recorded state did not have .*listed twice.*nothing was written"):
        run(params, check_mode=False)
    assert open(params["state_file"], "rb").read() == before


# -- hypothesis: whatever is mutated, a valid plan or a named error, never Python's own words ---------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, path + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, path + (index,))


def _mutate(doc, data):
    """Replace, delete or duplicate one value somewhere in ``doc``."""
    paths = [p for p in _paths(doc) if p]
    path = data.draw(st.sampled_from(paths))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    action = data.draw(st.sampled_from(["replace", "delete", "duplicate"]))
    if action == "replace":
        parent[path[-1]] = data.draw(JSON)
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, list):
        parent.insert(path[-1], copy.deepcopy(parent[path[-1]]))
    else:
        parent[path[-1]] = [parent[path[-1]], copy.deepcopy(parent[path[-1]])]


def _valid(result) -> None:
    """A valid plan: every address once, inside its block."""
    seen = {}
    for node, entry in result["nodes"].items():
        for wl in entry["workloads"]:
            assert wl["ip"] not in seen, f"{wl['ip']} twice: {seen.get(wl['ip'])} and {node} {wl['id']}"
            seen[wl["ip"]] = (node, wl["id"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), what=st.sampled_from(["state", "inventory", "both"]))
def test_mutated_states_and_inventories_give_a_valid_plan_or_a_named_error(tmp_path_factory, data, what):
    params = copy.deepcopy(BASE)
    params["state_file"] = str(tmp_path_factory.mktemp("ipam") / "ipam.json")
    run(params, check_mode=False)
    doc = json.load(open(params["state_file"]))
    if what in ("state", "both"):
        _mutate(doc, data)
        with open(params["state_file"], "w") as handle:
            json.dump(doc, handle)
    inventory = {k: params[k] for k in ("pools", "config", "reservations", "nodes")}
    if what in ("inventory", "both"):
        _mutate(inventory, data)
        params.update(inventory)
    before = open(params["state_file"], "rb").read()
    try:
        result, _diff = run(params, check_mode=False)
    except IpamError as exc:
        message = str(exc)
        assert message and not PYTHONISMS.search(message), message
        assert open(params["state_file"], "rb").read() == before
        return
    _valid(result)


def test_lost_handle_objects_are_restored_and_the_addresses_kept(recorded):
    """Hypothesis found it: a state whose handle objects are gone (their addresses still in the blocks) gave
    a result without addresses (every workload ``ip: null``). The addresses are kept and the handles restored."""
    params, doc = recorded
    before, _diff = run(params, check_mode=False)
    doc["handles"] = {hid: value for hid, value in doc["handles"].items() if not hid.startswith("l3-workload.")}
    with open(params["state_file"], "w") as handle:
        json.dump(doc, handle)
    result, _diff = run(params, check_mode=False)
    _valid(result)
    assert result["nodes"] == before["nodes"] and result["problems"] == []
    again, _diff = run(params, check_mode=False)
    assert again["changed"] is False and again["problems"] == []
