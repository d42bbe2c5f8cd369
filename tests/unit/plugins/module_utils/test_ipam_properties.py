"""Property tests of the planner (hypothesis): whatever the inventory, the state stays Calico-consistent."""

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ansible_collections.l3.calico.plugins.module_utils.ipam_model import ValidationError
from ansible_collections.l3.calico.tests.unit.plugins.module_utils.ipam_helpers import Ipam, addresses

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

inventories = st.dictionaries(
    keys=st.sampled_from([f"n{i}" for i in range(6)]),
    values=st.lists(st.integers(0, 30), max_size=14, unique=True),
    max_size=6,
).map(lambda d: {node: [f"{node}-w{i}" for i in ws] for node, ws in d.items()})

configs = st.fixed_dictionaries(
    {
        "block_size": st.integers(27, 30),
        "max_blocks_per_host": st.integers(0, 3),
        "reservations": st.lists(st.integers(0, 255), max_size=6),
        "ipip": st.booleans(),
    }
)


def make(cfg, strict=False):
    pool = {"name": "p1", "cidr": "10.9.0.0/24", "block_size": cfg["block_size"], "ipip_mode": "Always" if cfg["ipip"] else "Never"}
    reservations = [f"10.9.0.{r}" for r in cfg["reservations"]]
    return Ipam(pools=[pool], reservations=reservations, config={"max_blocks_per_host": cfg["max_blocks_per_host"], "strict_affinity": strict})


def plan_or_skip(ipam, spec):
    try:
        return ipam.plan(spec)
    except ValidationError as exc:
        assume("exhausted" not in str(exc) and "no address left" not in str(exc))
        raise


def check_invariants(ipam, result, cfg):
    state = ipam.state
    size = 1 << (32 - cfg["block_size"])
    seen = set()
    reserved = {0x0A090000 + r for r in cfg["reservations"]}
    for block in state.blocks.values():
        # blocks aligned to block_size and inside the pool
        assert block.prefix == cfg["block_size"] and block.base % size == 0
        assert 0x0A090000 <= block.base < 0x0A090100
        for ordinal, index in enumerate(block.allocations):
            if index is None:
                continue
            address = block.base + ordinal
            assert address not in seen, "an address handed out twice"
            assert address not in reserved, "a reserved address handed out"
            seen.add(address)
    # every workload address inside its pool and its block
    for node in result["nodes"].values():
        for wl in node["workloads"]:
            assert wl["ip"] is not None and wl["block"] in state.blocks
            base = state.blocks[wl["block"]].base
            last = int(wl["ip"].rsplit(".", 1)[1])
            assert base % 256 <= last < base % 256 + size
    # affinities consistent both ways; handles match the blocks (the audit checks all of it)
    assert result["problems"] == []
    for (node, cidr), aff in state.affinities.items():
        assert state.blocks[cidr].affinity == f"host:{node}" and aff.state == "confirmed"


@SETTINGS
@given(spec=inventories, cfg=configs)
def test_plan_from_empty_keeps_the_invariants(spec, cfg):
    ipam = make(cfg)
    result = plan_or_skip(ipam, spec)
    check_invariants(ipam, result, cfg)
    # borrowing only when no unclaimed block remained (or the node was at its block limit)
    nblocks = 1 << (cfg["block_size"] - 24)
    limit = cfg["max_blocks_per_host"] or 20
    size = 1 << (32 - cfg["block_size"])
    reserved = {0x0A090000 + r for r in cfg["reservations"]}
    fully_reserved = sum(1 for b in range(nblocks) if all(0x0A090000 + b * size + o in reserved for o in range(size)))
    for node in result["nodes"].values():
        if node["borrowed"]:
            assert len(node["blocks"]) >= limit or len(ipam.state.blocks) + fully_reserved == nblocks


@SETTINGS
@given(first=inventories, second=inventories, cfg=configs)
def test_release_then_replan_is_consistent(first, second, cfg):
    ipam = make(cfg)
    before = addresses(plan_or_skip(ipam, first))
    result = plan_or_skip(ipam, second)
    check_invariants(ipam, result, cfg)
    after = addresses(result)
    # a workload still there keeps its address (unless it moved to another node)
    moved = {w for n, ws in first.items() for w in ws if w not in second.get(n, [])}
    for wid, ip in after.items():
        if wid in before and wid.split(".", 1)[1] not in moved:
            assert before[wid] == ip
    # removed workloads and nodes hold nothing any more
    live = {f"l3-workload.default.{w}" for ws in second.values() for w in ws}
    assert {h for h in ipam.state.handles if h.startswith("l3-workload.")} == live
    assert {n for n, _cidr in ipam.state.affinities} <= set(second)
    # and planning the same inventory again changes nothing
    again = ipam.plan(second)
    assert again["changed"] is False and addresses(again) == after


@SETTINGS
@given(spec=inventories, cfg=configs)
def test_strict_affinity_never_borrows(spec, cfg):
    ipam = make(cfg, strict=True)
    try:
        result = ipam.plan(spec)
    except ValidationError as exc:
        assert "strict_affinity" in str(exc) and exc.host in spec
        return
    check_invariants(ipam, result, cfg)
    assert all(not n["borrowed"] for n in result["nodes"].values())


# Workloads with cluster-wide names spread over nodes: between two inventories some move node,
# some change namespace, some appear or go.
placements = st.dictionaries(
    keys=st.integers(0, 40),
    values=st.tuples(st.sampled_from([f"n{i}" for i in range(5)]), st.sampled_from(["default", "blue"])),
    max_size=30,
)


def spec_of(placement):
    spec = {f"n{i}": [] for i in range(5)}
    for w, (node, ns) in sorted(placement.items()):
        spec[node].append({"name": f"w{w}", "namespace": ns})
    return spec


@SETTINGS
@given(first=placements, second=placements, cfg=configs)
def test_moves_between_nodes_and_namespaces_stay_consistent(first, second, cfg):
    ipam = make(cfg)
    ipam.pools = ipam.pools + [{"name": "blue", "cidr": "10.9.1.0/24", "block_size": cfg["block_size"], "namespaces": ["blue"]}]
    before = addresses(plan_or_skip(ipam, spec_of(first)))
    result = plan_or_skip(ipam, spec_of(second))
    assert result["problems"] == []
    after = addresses(result)
    for w, place in second.items():
        wid = f"{place[1]}.w{w}"
        assert after[wid] is not None
        if first.get(w) == place:
            assert after[wid] == before[wid]  # unmoved: same address
        assert after[wid].startswith("10.9.1." if place[1] == "blue" else "10.9.0.")
    assert len(set(after.values())) == len(after)
    wanted = {f"l3-workload.{ns}.w{w}" for w, (_node, ns) in second.items()}
    assert {h for h in ipam.state.handles if h.startswith("l3-workload.")} == wanted
