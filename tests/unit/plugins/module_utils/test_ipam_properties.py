"""Property tests of the planner (hypothesis): whatever the inventory, the state stays Calico-consistent.

Each property holds per family: an IPv4 pool alone (``4``), an IPv6 pool alone (``6``), and both
(``dual``: every workload gets one address of each family, each from its own family's pool).
"""

import ipaddress

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ansible_collections.l3.calico.plugins.module_utils.ipam_model import ValidationError
from ansible_collections.l3.calico.tests.unit.plugins.module_utils.ipam_helpers import Ipam, make_nodes

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODES = [4, 6, "dual"]


class Family:
    """One family's pool, its result keys and its address maths (a /24 or a /120: 256 addresses)."""

    def __init__(self, bits, cidr, blue, suffix):
        self.bits, self.cidr, self.blue = bits, cidr, blue
        self.network = ipaddress.ip_network(cidr)
        self.base = int(self.network.network_address)
        self.suffix = suffix  # "" or "_ipv6": the result's keys
        self.ip_key = "ip" if bits == 32 else "ipv6"

    def block_size(self, cfg):
        return cfg["block_size"] + self.bits - 32  # 27..30 (IPv4) or 123..126 (IPv6)

    def address(self, offset):
        return str(ipaddress.ip_address(self.base + offset))

    def pool(self, cfg, name="p1"):
        pool = {"name": name if self.bits == 32 else name + "v6", "cidr": self.cidr, "block_size": self.block_size(cfg)}
        if cfg["ipip"]:
            # an IPv6 pool has no IPIP (IPv4-only): its tunnels are VXLAN ones (vxlan-v6.calico)
            pool["ipip_mode" if self.bits == 32 else "vxlan_mode"] = "Always"
        return pool

    def blocks(self, result, node):
        return result["nodes"][node]["blocks" + self.suffix]

    def borrowed(self, node_result):
        return node_result["borrowed" + self.suffix]


V4 = Family(32, "10.9.0.0/24", "10.9.1.0/24", "")
V6 = Family(128, "fd00:9::/120", "fd00:9::100/120", "_ipv6")


def families(mode):
    return {4: [V4], 6: [V6], "dual": [V4, V6]}[mode]


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


def make(cfg, strict=False, mode=4):
    fams = families(mode)
    reservations = [fam.address(r) for fam in fams for r in cfg["reservations"]]
    ipam = Ipam(
        pools=[fam.pool(cfg) for fam in fams],
        reservations=reservations,
        config={"max_blocks_per_host": cfg["max_blocks_per_host"], "strict_affinity": strict},
    )
    ipam.node_ipv6 = mode != 4  # nodes get calico_node_ipv6 (their IPv6 VXLAN tunnel address needs it)
    return ipam


def plan(ipam, spec):
    """Plan ``spec`` with nodes carrying calico_node_ipv6 when the IPAM is dual stack or IPv6."""
    nodes = make_nodes(spec)
    if getattr(ipam, "node_ipv6", False):
        for i, node in enumerate(nodes):
            node["ipv6"] = f"fd00:100::{i + 1:x}/64"
    return ipam.plan(spec, nodes=nodes)


def plan_or_skip(ipam, spec):
    try:
        return plan(ipam, spec)
    except ValidationError as exc:
        assume("exhausted" not in str(exc) and "no address left" not in str(exc))
        raise


def family_addresses(result, fam):
    """{workload id: address of the family} over every node."""
    return {w["id"]: w[fam.ip_key] for n in result["nodes"].values() for w in n["workloads"]}


def check_invariants(ipam, result, cfg, mode=4):
    state = ipam.state
    for fam in families(mode):
        block_size = fam.block_size(cfg)
        size = 1 << (fam.bits - block_size)
        seen = set()
        reserved = {fam.base + r for r in cfg["reservations"]}
        mine = [b for b in state.blocks.values() if b.bits == fam.bits]
        for block in mine:
            # blocks aligned to block_size and inside the pool
            assert block.prefix == block_size and block.base % size == 0
            assert fam.base <= block.base < fam.base + 256
            for ordinal, index in enumerate(block.allocations):
                if index is None:
                    continue
                address = block.base + ordinal
                assert address not in seen, "an address handed out twice"
                assert address not in reserved, "a reserved address handed out"
                seen.add(address)
        # every workload address inside its pool and its block (of its family)
        for node in result["nodes"].values():
            for wl in node["workloads"]:
                ip, cidr = wl[fam.ip_key], wl["block" + fam.suffix]
                assert ip is not None and cidr in state.blocks
                assert ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)
                assert state.blocks[cidr].bits == fam.bits
    if mode == 6:  # IPv6 only: no IPv4 address at all
        assert all(w["ip"] is None for n in result["nodes"].values() for w in n["workloads"])
    # affinities consistent both ways; handles match the blocks (the audit checks all of it)
    assert result["problems"] == []
    for (node, cidr), aff in state.affinities.items():
        assert state.blocks[cidr].affinity == f"host:{node}" and aff.state == "confirmed"


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(spec=inventories, cfg=configs)
def test_plan_from_empty_keeps_the_invariants(mode, spec, cfg):
    ipam = make(cfg, mode=mode)
    result = plan_or_skip(ipam, spec)
    check_invariants(ipam, result, cfg, mode)
    # borrowing only when no unclaimed block remained (or the node was at its block limit, per family)
    nblocks = 1 << (cfg["block_size"] - 24)
    limit = cfg["max_blocks_per_host"] or 20
    size = 1 << (32 - cfg["block_size"])
    for fam in families(mode):
        reserved = {fam.base + r for r in cfg["reservations"]}
        fully_reserved = sum(1 for b in range(nblocks) if all(fam.base + b * size + o in reserved for o in range(size)))
        claimed = sum(1 for b in ipam.state.blocks.values() if b.bits == fam.bits)
        for name, node in result["nodes"].items():
            if fam.borrowed(node):
                assert len(fam.blocks(result, name)) >= limit or claimed + fully_reserved == nblocks


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(first=inventories, second=inventories, cfg=configs)
def test_release_then_replan_is_consistent(mode, first, second, cfg):
    ipam = make(cfg, mode=mode)
    first_result = plan_or_skip(ipam, first)
    result = plan_or_skip(ipam, second)
    check_invariants(ipam, result, cfg, mode)
    moved = {w for n, ws in first.items() for w in ws if w not in second.get(n, [])}
    for fam in families(mode):
        before, after = family_addresses(first_result, fam), family_addresses(result, fam)
        # a workload still there keeps its address of each family (unless it moved to another node)
        for wid, ip in after.items():
            if wid in before and wid.split(".", 1)[1] not in moved:
                assert before[wid] == ip
        # removed workloads and nodes hold nothing any more
        prefix = "l3-workload." if fam.bits == 32 else "l3-workload-v6."
        live = {f"{prefix}default.{w}" for ws in second.values() for w in ws}
        assert {h for h in ipam.state.handles if h.startswith(prefix)} == live
    assert {n for n, _cidr in ipam.state.affinities} <= set(second)
    # and planning the same inventory again changes nothing (a stable re-plan)
    again = plan(ipam, second)
    assert again["changed"] is False
    for fam in families(mode):
        assert family_addresses(again, fam) == family_addresses(result, fam)


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(spec=inventories, cfg=configs, gone=st.sets(st.integers(0, 30), max_size=10))
def test_released_addresses_are_reused_last_first_in_first_out(mode, spec, cfg, gone):
    """Calico's FIFO: a released ordinal goes to the tail of its block's free list, so a new workload
    takes a never-used address before one just released (reuse delayed), in each family."""
    ipam = make(cfg, mode=mode)
    plan_or_skip(ipam, spec)
    kept = {n: [w for w in ws if int(w.rsplit("-w", 1)[1]) not in gone] for n, ws in spec.items()}
    released = {cidr: list(b.unallocated) for cidr, b in ipam.state.blocks.items()}
    plan_or_skip(ipam, kept)
    for cidr, block in ipam.state.blocks.items():
        if cidr in released:
            old = released[cidr]
            # the ordinals that were free stay at the head, in their order; the released ones follow
            assert block.unallocated[: len(old)] == old
            assert set(block.unallocated[len(old) :]).isdisjoint(old)
    # new workloads take addresses from the head of each free list (reserved ones skipped, kept in place)
    free = {cidr: list(b.unallocated) for cidr, b in ipam.state.blocks.items()}
    reserved = {fam.base + r for fam in families(mode) for r in cfg["reservations"]}
    plan_or_skip(ipam, {n: ws + [f"{n}-new{i}" for i in range(3)] for n, ws in kept.items()})
    for cidr, before in free.items():
        block = ipam.state.blocks.get(cidr)
        if block is None:
            continue
        taken = [o for o in before if o not in set(block.unallocated)]
        usable = [o for o in before if block.base + o not in reserved]
        assert taken == usable[: len(taken)], "an address taken out of FIFO order"
        assert [o for o in before if o not in taken] == block.unallocated[: len(before) - len(taken)]


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(spec=inventories, cfg=configs)
def test_strict_affinity_never_borrows(mode, spec, cfg):
    ipam = make(cfg, strict=True, mode=mode)
    try:
        result = plan(ipam, spec)
    except ValidationError as exc:
        assert "strict_affinity" in str(exc) and exc.host in spec
        return
    check_invariants(ipam, result, cfg, mode)
    assert all(not n["borrowed"] and not n["borrowed_ipv6"] for n in result["nodes"].values())


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


@pytest.mark.parametrize("mode", MODES)
@SETTINGS
@given(first=placements, second=placements, cfg=configs)
def test_moves_between_nodes_and_namespaces_stay_consistent(mode, first, second, cfg):
    ipam = make(cfg, mode=mode)
    for fam in families(mode):
        name = "blue" if fam.bits == 32 else "bluev6"
        ipam.pools = ipam.pools + [{"name": name, "cidr": fam.blue, "block_size": fam.block_size(cfg), "namespaces": ["blue"]}]
    first_result = plan_or_skip(ipam, spec_of(first))
    result = plan_or_skip(ipam, spec_of(second))
    assert result["problems"] == []
    for fam in families(mode):
        before, after = family_addresses(first_result, fam), family_addresses(result, fam)
        for w, place in second.items():
            wid = f"{place[1]}.w{w}"
            assert after[wid] is not None
            if first.get(w) == place:
                assert after[wid] == before[wid]  # unmoved: same address
            network = ipaddress.ip_network(fam.blue if place[1] == "blue" else fam.cidr)
            assert ipaddress.ip_address(after[wid]) in network
        assert len(set(after.values())) == len(after)
        prefix = "l3-workload." if fam.bits == 32 else "l3-workload-v6."
        wanted = {f"{prefix}{ns}.w{w}" for w, (_node, ns) in second.items()}
        assert {h for h in ipam.state.handles if h.startswith(prefix)} == wanted
