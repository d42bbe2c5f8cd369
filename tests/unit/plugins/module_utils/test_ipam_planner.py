"""Calico's allocation semantics, one behaviour per test."""

import random

import pytest

from ansible_collections.l3.calico.plugins.module_utils.ipam_model import ValidationError, fnv32
from ansible_collections.l3.calico.plugins.module_utils.ipam_planner import Planner
from ansible_collections.l3.calico.tests.unit.plugins.module_utils.ipam_helpers import Ipam, addresses

IPIP = {"name": "p1", "cidr": "10.10.0.0/16", "block_size": 26, "ipip_mode": "Always"}


def node_block(result, node, index=0):
    return result["nodes"][node]["blocks"][index]["cidr"]


def test_fresh_block_hands_out_ordinals_in_order_tunnel_first():
    ipam = Ipam(pools=[IPIP])
    res = ipam.plan({"n1": ["w3", "w1", "w2"]})
    block = node_block(res, "n1")
    base = block.split("/")[0].rsplit(".", 1)
    n1 = res["nodes"]["n1"]
    assert n1["tunnels"] == {"ipip": block.split("/")[0], "vxlan": None, "vxlan_v6": None}
    # sorted by id, whatever the inventory order: w1 .1, w2 .2, w3 .3
    got = {w["name"]: w["ip"] for w in n1["workloads"]}
    assert got == {f"w{i}": f"{base[0]}.{int(base[1]) + i}" for i in (1, 2, 3)}
    assert all(w["block"] == block and not w["borrowed"] for w in n1["workloads"])
    assert res["problems"] == []
    assert res["changed"] is True


def test_state_objects_have_calico_shapes():
    ipam = Ipam(pools=[IPIP])
    res = ipam.plan({"n1": ["w1"]})
    block = ipam.state.blocks[node_block(res, "n1")]
    doc = block.to_json()
    assert doc["affinity"] == "host:n1"
    assert doc["allocations"][:3] == [0, 1, None] and len(doc["allocations"]) == 64
    assert doc["unallocated"] == list(range(2, 64))
    assert doc["attributes"] == [
        {"handle_id": "ipip-tunnel-addr-n1", "secondary": {"node": "n1", "type": "ipipTunnelAddress"}},
        {"handle_id": "l3-workload.default.w1", "secondary": {"node": "n1", "namespace": "default", "workload": "w1"}},
    ]
    assert doc["deleted"] is False and isinstance(doc["sequenceNumber"], int)
    assert ipam.state.handles["l3-workload.default.w1"].to_json() == {"block": {block.cidr: 1}, "deleted": False}
    assert ipam.state.affinities[("n1", block.cidr)].to_json() == {"state": "confirmed", "deleted": False}
    assert ipam.state.config.to_json() == {"strict_affinity": False, "auto_allocate_blocks": True, "maxBlocksPerHost": 0}


def test_block_search_starts_at_the_fnv_seed_and_wraps_around():
    pool = {"name": "p1", "cidr": "10.10.0.0/28", "block_size": 30}  # 4 blocks
    start = random.Random(fnv32("n1")).randrange(4)
    ipam = Ipam(pools=[pool], config={"max_blocks_per_host": 4})
    res = ipam.plan({"n1": [f"w{i}" for i in range(16)]})
    claimed = [b["cidr"] for b in res["nodes"]["n1"]["blocks"]]
    expected = [f"10.10.0.{4 * ((start + k) % 4)}/30" for k in range(4)]
    assert claimed == expected


def test_released_address_goes_to_the_fifo_tail():
    ipam = Ipam()
    res = ipam.plan({"n1": ["a", "b", "c"]})
    old = addresses(res)
    res = ipam.plan({"n1": ["a", "c"]})
    assert addresses(res) == {"default.a": old["default.a"], "default.c": old["default.c"]}
    block = ipam.state.blocks[node_block(res, "n1")]
    released = int(old["default.b"].rsplit(".", 1)[1]) - block.base % 256
    assert block.unallocated[-1] == released and block.unallocated[0] == 3
    res = ipam.plan({"n1": ["a", "c", "d"]})
    assert addresses(res)["default.d"] != old["default.b"]  # reuse is delayed: .3 comes first


def test_stable_whatever_the_order_and_adding_moves_nothing():
    ipam = Ipam()
    first = addresses(ipam.plan({"n1": ["a", "b"], "n2": ["c"]}))
    again = ipam.plan({"n2": ["c"], "n1": ["b", "a"]})
    assert addresses(again) == first and again["changed"] is False
    more = addresses(ipam.plan({"n1": ["z", "b", "a"], "n2": ["c", "y"]}))
    assert {k: more[k] for k in first} == first


def test_same_inventory_in_another_order_gives_the_same_plan():
    spec = {f"n{i}": [f"w{i}-{j}" for j in range(5)] for i in range(6)}
    a = addresses(Ipam().plan(spec))
    shuffled = dict(reversed(list(spec.items())))
    b = addresses(Ipam().plan({k: list(reversed(v)) for k, v in shuffled.items()}))
    assert a == b


def test_reserved_addresses_are_skipped_and_stay_unallocated():
    ipam = Ipam(reservations=["10.10.0.0/30", "10.10.0.5"], pools=[{"name": "p1", "cidr": "10.10.0.0/26", "block_size": 26}])
    res = ipam.plan({"n1": ["a", "b", "c"]})
    assert sorted(addresses(res).values()) == ["10.10.0.4", "10.10.0.6", "10.10.0.7"]
    block = ipam.state.blocks["10.10.0.0/26"]
    assert block.unallocated[:5] == [0, 1, 2, 3, 5]


def test_fully_reserved_block_is_never_claimed():
    pool = {"name": "p1", "cidr": "10.10.0.0/24", "block_size": 26}
    ipam = Ipam(pools=[pool], reservations=["10.10.0.0/25"])
    res = ipam.plan({f"n{i}": [f"w{i}"] for i in range(4)})
    assert all(b["cidr"] in ("10.10.0.128/26", "10.10.0.192/26") for n in res["nodes"].values() for b in n["blocks"])
    borrowed = [w for n in res["nodes"].values() for w in n["workloads"] if w["borrowed"]]
    assert len(borrowed) == 2  # two nodes claimed the two usable blocks, the others borrow


def test_borrow_only_when_no_unclaimed_block_remains():
    pool = {"name": "p1", "cidr": "10.10.0.0/29", "block_size": 30}  # 2 blocks of 4
    ipam = Ipam(pools=[pool])
    res = ipam.plan({"n1": ["a"], "n2": ["b"], "n3": ["c"]})
    n3 = res["nodes"]["n3"]
    assert n3["blocks"] == [] and n3["workloads"][0]["borrowed"] is True
    assert n3["borrowed"] == [n3["workloads"][0]["ip"]]
    assert res["problems"] == []


def test_strict_affinity_exhaustion_names_node_pool_and_need():
    pool = {"name": "p1", "cidr": "10.10.0.0/29", "block_size": 30}
    ipam = Ipam(pools=[pool], config={"strict_affinity": True})
    with pytest.raises(ValidationError) as err:
        ipam.plan({"n1": ["a"], "n2": ["b"], "n3": ["c", "d"]})
    msg = str(err.value)
    assert "n3" in msg and "p1" in msg and "strict_affinity" in msg and "2 more address" in msg


def test_max_blocks_per_host_caps_claims_then_borrows():
    pool = {"name": "p1", "cidr": "10.10.0.0/24", "block_size": 30}
    ipam = Ipam(pools=[pool], config={"max_blocks_per_host": 2, "strict_affinity": False})
    res = ipam.plan({"n0": ["x"], "n1": [f"w{i}" for i in range(10)]})
    n1 = res["nodes"]["n1"]
    assert len(n1["blocks"]) == 2
    assert sum(w["borrowed"] for w in n1["workloads"]) == 2


def test_max_blocks_zero_means_twenty():
    pool = {"name": "p1", "cidr": "10.10.0.0/20", "block_size": 30}
    res = Ipam(pools=[pool]).plan({"n0": ["x"], "n1": [f"w{i:02d}" for i in range(81)]})
    assert len(res["nodes"]["n1"]["blocks"]) == 20  # 80 addresses
    assert sum(w["borrowed"] for w in res["nodes"]["n1"]["workloads"]) == 1  # from n0's block


def test_removed_node_releases_addresses_affinities_and_empty_blocks():
    pool = {"name": "p1", "cidr": "10.10.0.0/29", "block_size": 30}
    ipam = Ipam(pools=[pool])
    res = ipam.plan({"n1": ["a"], "n2": ["b"], "n3": ["c"]})
    n1_block = node_block(res, "n1")
    res = ipam.plan({"n2": ["b"], "n3": ["c"]})
    assert all(node != "n1" for node, _cidr in ipam.state.affinities)
    # n1's block still holds n3's borrowed address? then it is kept without affinity, else deleted
    block = ipam.state.blocks.get(n1_block)
    if block is not None:
        assert block.affinity is None and not block.is_empty()
    assert res["problems"] == []
    res = ipam.plan({"n2": ["b"]})
    assert set(ipam.state.handles) == {"l3-workload.default.b"}
    assert list(ipam.state.affinities) == [("n2", node_block(res, "n2"))]
    assert list(ipam.state.blocks) == [node_block(res, "n2")]


def test_requested_address_is_honoured_and_claims_its_block():
    ipam = Ipam()
    res = ipam.plan({"n1": [{"name": "a", "ip": "10.10.200.7"}, "b"]})
    got = addresses(res)
    assert got["default.a"] == "10.10.200.7"
    assert node_block(res, "n1") == "10.10.200.0/26"
    assert got["default.b"] == "10.10.200.0"  # the requested ordinal is taken, the FIFO goes on from 0


def test_requested_address_taken_is_refused():
    ipam = Ipam()
    res = ipam.plan({"n1": ["a"]})
    taken = addresses(res)["default.a"]
    with pytest.raises(ValidationError) as err:
        ipam.plan({"n1": ["a"], "n2": [{"name": "b", "ip": taken}]})
    assert "n2" in str(err.value) and taken in str(err.value) and "default.a" in str(err.value)


def test_moving_a_workload_to_a_requested_address_releases_the_old_one():
    ipam = Ipam()
    res = ipam.plan({"n1": ["a"]})
    old = addresses(res)["default.a"]
    res = ipam.plan({"n1": [{"name": "a", "ip": "10.10.99.9"}]})
    assert addresses(res)["default.a"] == "10.10.99.9"
    assert any(line.startswith(f"- {old} ") for line in res["report"].diff_lines())


def test_namespaces_rule():
    pools = [
        {"name": "general", "cidr": "10.1.0.0/16"},
        {"name": "blue", "cidr": "10.2.0.0/16", "namespaces": ["blue"]},
    ]
    res = Ipam(pools=pools).plan({"n1": ["a", {"name": "b", "namespace": "blue"}, {"name": "c", "namespace": "red"}]})
    pool_of = {w["id"]: w["pool"] for w in res["nodes"]["n1"]["workloads"]}
    assert pool_of == {"default.a": "general", "blue.b": "blue", "red.c": "general"}


def test_node_selector_and_disabled_pools():
    pools = [
        {"name": "off", "cidr": "10.1.0.0/16", "disabled": True},
        {"name": "r2", "cidr": "10.2.0.0/16", "node_selector": "rack == 'r2'"},
        {"name": "any", "cidr": "10.3.0.0/16"},
    ]
    res = Ipam(pools=pools).plan({"n1": ["a"], "n2": ["b"]}, labels={"n2": {"rack": "r2"}})
    pool_of = {w["id"]: w["pool"] for n in res["nodes"].values() for w in n["workloads"]}
    assert pool_of == {"default.a": "any", "default.b": "r2"}


def test_pool_change_moves_workloads_when_pool_removed():
    pools = [{"name": "old", "cidr": "10.1.0.0/16"}]
    ipam = Ipam(pools=pools)
    ipam.plan({"n1": ["a"]})
    ipam.pools = [{"name": "new", "cidr": "10.2.0.0/16"}]
    res = ipam.plan({"n1": ["a"]})
    assert addresses(res)["default.a"].startswith("10.2.")
    assert all(c.startswith("10.2.") for c in ipam.state.blocks)
    assert list(ipam.state.pools) == ["new"] and res["problems"] == []


@pytest.mark.parametrize("field, new", [("cidr", "10.10.0.0/17"), ("block_size", 27)])
def test_immutable_cidr_and_block_size_while_allocated(field, new):
    ipam = Ipam()
    ipam.plan({"n1": ["a"]})
    ipam.pools = [dict(ipam.pools[0], **{field: new})]
    with pytest.raises(ValidationError) as err:
        ipam.plan({"n1": ["a"]})
    assert err.value.field.endswith(f".{field}") and err.value.value == new
    assert "immutable" in str(err.value)


def test_block_size_change_allowed_once_empty():
    ipam = Ipam()
    ipam.plan({"n1": ["a"]})
    ipam.plan({"n1": []})
    ipam.pools = [dict(ipam.pools[0], block_size=28)]
    res = ipam.plan({"n1": ["a"]})
    assert res["nodes"]["n1"]["blocks"][0]["cidr"].endswith("/28")


def test_tunnels_follow_encapsulation():
    pools = [
        {"name": "p1", "cidr": "10.1.0.0/16", "ipip_mode": "CrossSubnet"},
        {"name": "v", "cidr": "10.2.0.0/16", "vxlan_mode": "Always", "namespaces": ["blue"]},
    ]
    ipam = Ipam(pools=pools)
    res = ipam.plan({"n1": ["a"]})
    t = res["nodes"]["n1"]["tunnels"]
    assert t["ipip"].startswith("10.1.") and t["vxlan"].startswith("10.2.")
    assert ipam.state.handles["vxlan-tunnel-addr-n1"].block
    ipam.pools = [dict(pools[0], ipip_mode="Never"), pools[1]]
    res = ipam.plan({"n1": ["a"]})
    assert res["nodes"]["n1"]["tunnels"]["ipip"] is None
    assert "ipip-tunnel-addr-n1" not in ipam.state.handles


def test_node_mode_touches_only_that_node():
    ipam = Ipam()
    first = addresses(ipam.plan({"n1": ["a"], "n2": ["b"]}))
    res = ipam.plan({"n1": ["a", "c"], "n2": []}, only="n1")
    after = addresses(res)
    assert after["default.a"] == first["default.a"] and after["default.c"]
    assert "l3-workload.default.b" in ipam.state.handles  # n2 untouched though absent
    res = ipam.plan({"n1": ["c"], "n2": ["b"]}, only="n1")
    assert "l3-workload.default.a" not in ipam.state.handles


def test_no_op_replan_touches_nothing():
    ipam = Ipam(pools=[IPIP])
    ipam.plan({"n1": ["a", "b"], "n2": ["c"]})
    planner_state = ipam.state
    res = ipam.plan({"n1": ["a", "b"], "n2": ["c"]})
    assert res["changed"] is False and not planner_state.changes()
    assert res["report"].diff_lines() == []


def test_plan_is_rerunnable_on_a_fresh_state():
    """A store may re-run the planner after a conflict: same input, same state -> same result."""
    import copy

    ipam = Ipam()
    ipam.plan({"n1": ["a"], "n2": ["b"]})
    from ansible_collections.l3.calico.plugins.module_utils.ipam_inventory import validate
    from ansible_collections.l3.calico.tests.unit.plugins.module_utils.ipam_helpers import make_nodes

    desired = validate(ipam.pools, {}, [], make_nodes({"n1": ["a", "c"], "n3": ["d"]}))
    s1, s2 = copy.deepcopy(ipam.state), copy.deepcopy(ipam.state)
    Planner(desired, s1).run()
    Planner(desired, s2).run()
    d1, d2 = s1.to_document(), s2.to_document()
    for doc in (d1, d2):  # a new block's sequence number is its creation time (ns), as in Calico
        for block in doc["blocks"]:
            block.pop("sequenceNumber")
    assert d1 == d2
    assert s1.changes() == s2.changes()


def test_pending_affinity_is_confirmed_or_dropped():
    ipam = Ipam()
    res = ipam.plan({"n1": ["a"]})
    cidr = node_block(res, "n1")
    ipam.state.affinities[("n1", cidr)].state = "pending"
    ipam.state.affinities[("n1", "10.10.255.0/26")] = type(ipam.state.affinities[("n1", cidr)])("pending")
    res = ipam.plan({"n1": ["a", "b"]})
    assert res["problems"] == []
    assert ipam.state.affinities[("n1", cidr)].state == "confirmed"
    assert ("n1", "10.10.255.0/26") not in ipam.state.affinities  # no such block: a claim that never happened
    assert node_block(res, "n1") == cidr and len(ipam.state.blocks) == 1


def test_disabled_pool_keeps_its_addresses_but_hands_out_no_new_one():
    pools = [{"name": "old", "cidr": "10.1.0.0/16"}, {"name": "new", "cidr": "10.2.0.0/16"}]
    ipam = Ipam(pools=pools)
    before = addresses(ipam.plan({"n1": ["a"]}))
    assert before["default.a"].startswith("10.1.")
    ipam.pools = [dict(pools[0], disabled=True), pools[1]]
    res = ipam.plan({"n1": ["a", "b"]})
    after = addresses(res)
    assert after["default.a"] == before["default.a"]  # kept, as in Calico
    assert after["default.b"].startswith("10.2.")
    with pytest.raises(ValidationError, match="no enabled pool"):
        ipam.plan({"n1": ["a", "b", {"name": "c", "pool": "old"}]})
    res = ipam.plan({"n1": [{"name": "a", "pool": "new"}, "b"]})  # the migration: pin it to the new pool
    assert addresses(res)["default.a"].startswith("10.2.")


def test_lost_affinity_is_restored_or_the_block_released():
    ipam = Ipam()
    res = ipam.plan({"n1": ["a"], "n2": ["b"]})
    a_block, b_block = node_block(res, "n1"), node_block(res, "n2")
    del ipam.state.affinities[("n1", a_block)]
    del ipam.state.affinities[("n2", b_block)]
    res = ipam.plan({"n1": ["a"]})  # n2 removed, and its affinity was lost too
    assert res["problems"] == []
    assert ("n1", a_block) in ipam.state.affinities and node_block(res, "n1") == a_block
    assert b_block not in ipam.state.blocks


def test_larger_old_block_overlapping_a_new_pool_is_refused_while_in_use():
    ipam = Ipam(pools=[{"name": "p1", "cidr": "10.10.0.0/16", "block_size": 20}])
    ipam.plan({"n1": [{"name": "a", "ip": "10.10.0.5"}]})
    ipam.pools = [{"name": "p2", "cidr": "10.10.8.0/24", "block_size": 26}]  # another pool, inside the old block
    with pytest.raises(ValidationError, match="block_size is immutable"):
        ipam.plan({"n1": ["a"]})


def test_the_block_limit_is_named_not_the_pool():
    """Two /32 blocks per host in a /24 of /32 blocks: n1 is stopped by max_blocks_per_host, the pool has room."""
    ipam = Ipam(pools=[{"name": "p1", "cidr": "10.9.0.0/24", "block_size": 32}], config={"max_blocks_per_host": 2})
    with pytest.raises(ValidationError) as err:
        ipam.plan({"n1": ["a", "b", "c"]})
    message = str(err.value)
    assert "max_blocks_per_host 2" in message and "254 unclaimed block(s)" in message, message
    assert "exhausted" not in message, message
    with pytest.raises(ValidationError, match=r"pool\(s\) p1 exhausted: no free address left and no unclaimed block"):
        Ipam(pools=[{"name": "p1", "cidr": "10.9.0.0/31", "block_size": 32}]).plan({"n1": ["a", "b", "c"]})


class Counting(Planner):
    """Counts how often the planner looks at a block (by cidr, or whether its index is claimed) and at the
    reservations of a block."""

    def __init__(self, *args):
        super().__init__(*args)
        self.looks = 0
        self.reservation_lookups = 0
        ctx = self.context
        reserved_in = ctx.desired.reserved_in

        def counted(first, last, bits=32):
            self.reservation_lookups += 1
            return reserved_in(first, last, bits)

        ctx.desired.reserved_in = counted
        planner = self

        class Blocks(dict):
            def __getitem__(self, key):
                planner.looks += 1
                return dict.__getitem__(self, key)

        class Claimed(set):
            def __contains__(self, key):
                planner.looks += 1
                return set.__contains__(self, key)

        ctx.state.blocks = Blocks(ctx.state.blocks)
        ctx.claimed = {name: Claimed(indexes) for name, indexes in ctx.claimed.items()}


def counting_plan(pools, nodes, config=None, reservations=None, refused=False):
    from ansible_collections.l3.calico.plugins.module_utils.ipam_inventory import validate
    from ansible_collections.l3.calico.plugins.module_utils.ipam_store import IpamState
    from ansible_collections.l3.calico.tests.unit.plugins.module_utils.ipam_helpers import make_nodes

    planner = Counting(validate(pools, config or {}, reservations or [], make_nodes(nodes)), IpamState())
    if refused:
        with pytest.raises(ValidationError, match="exhausted"):
            planner.run()
    else:
        planner.run()
    return planner


@pytest.mark.parametrize("nodes, limit", [(1, 3000), (40, 100)], ids=["one-node", "forty-nodes"])
def test_claiming_looks_at_each_block_a_bounded_number_of_times(nodes, limit):
    """2,000 workloads in /32 blocks (one block each): scanning the node's own blocks and the claimed indexes
    from the seed for every claim (the old way) looks ~10^6 times; the cursor and the free-block index a few
    times per block."""
    spec = {f"n{i:02d}": [f"w{i:02d}-{j:04d}" for j in range(2000 // nodes)] for i in range(nodes)}
    planner = counting_plan([{"name": "p1", "cidr": "10.9.0.0/20", "block_size": 32}], spec, config={"max_blocks_per_host": limit})
    assert len(planner.context.state.blocks) == 2000
    assert planner.looks <= 5 * 2000, planner.looks


def test_a_fully_reserved_pool_is_not_searched_block_by_block():
    """Every /32 of a /16 reserved: one look at the reservations per pool, not one per block (65,536)."""
    planner = counting_plan([{"name": "p1", "cidr": "10.9.0.0/16", "block_size": 32}], {"n1": ["a"]}, reservations=["10.9.0.0/16"], refused=True)
    assert planner.reservation_lookups <= 2, planner.reservation_lookups


def test_borrowing_looks_at_each_full_block_once():
    """One /29 block per host: 400 hosts use 7 of theirs, then 100 hosts need 12 and borrow 4 each, one
    address per block. Walking every claimed block from the seed per borrow (the old way) is quadratic; a
    full block is passed once."""
    spec = {f"a{i:03d}": [f"a{i:03d}-{j}" for j in range(7)] for i in range(400)}
    spec.update({f"b{i:03d}": [f"b{i:03d}-{j:02d}" for j in range(12)] for i in range(100)})
    planner = counting_plan([{"name": "p1", "cidr": "10.9.0.0/20", "block_size": 29}], spec, config={"max_blocks_per_host": 1})
    assert sum(b.in_use() for b in planner.context.state.blocks.values()) == 400 * 7 + 100 * 12
    assert planner.looks <= 4 * len(planner.context.state.blocks), planner.looks  # measured: 999 (the old walk: 19,411)


def test_dual_stack_each_family_from_its_own_pools_namespaces_per_family():
    """A namespace an IPv4 pool lists takes its IPv4 address only from that pool, and its IPv6 address from
    the IPv6 pool without namespaces (no IPv6 pool lists it): each family's pool chosen on its own."""
    pools = [
        {"name": "p4", "cidr": "10.10.0.0/16"},
        {"name": "blue4", "cidr": "10.20.0.0/16", "namespaces": ["blue"]},
        {"name": "p6", "cidr": "fd00:10::/64"},
    ]
    ipam = Ipam(pools=pools)
    res = ipam.plan({"n1": ["a", {"name": "b", "namespace": "blue"}, {"name": "c", "assign_ipv6": False}]})
    assert res["problems"] == []
    by_id = {w["id"]: w for w in res["nodes"]["n1"]["workloads"]}
    assert by_id["default.a"]["pool"] == "p4" and by_id["default.a"]["pool_ipv6"] == "p6"
    assert by_id["blue.b"]["pool"] == "blue4" and by_id["blue.b"]["pool_ipv6"] == "p6"
    assert by_id["default.c"]["ipv6"] is None and by_id["default.c"]["ip"].startswith("10.10.")
    assert res["nodes"]["n1"]["blocks_ipv6"][0]["cidr"].endswith("/122")  # Calico's IPv6 default block size
    assert set(res["pools_ipv6"]) == {"p6"} and set(res["pools"]) == {"p4", "blue4"}
