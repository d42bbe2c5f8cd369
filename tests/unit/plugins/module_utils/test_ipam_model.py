import pytest

from ansible_collections.l3.calico.plugins.module_utils import ipam_model as m


def test_fnv32_is_go_fnv1():
    assert m.fnv32("") == 0x811C9DC5
    assert m.fnv32("a") == 0x050C5D7E  # FNV-1 (not 1a) of "a"
    assert m.fnv32("foobar") == 0x31F0B262


def test_cidr_parsing():
    assert m.parse_cidr("10.0.0.0/8") == (0x0A000000, 8)
    with pytest.raises(ValueError, match="host bits"):
        m.parse_cidr("10.0.0.1/8")
    for bad in ("10.0.0/8", "10.0.0.0/33", "10.0.0.0", "a.b.c.d/8", "10.0.0.0/-1"):
        with pytest.raises(ValueError):
            m.parse_cidr(bad)


def test_etcd_keys():
    assert m.block_key("10.233.64.0/26") == "/calico/ipam/v2/assignment/ipv4/block/10.233.64.0-26"
    assert m.affinity_key("n1", "10.233.64.0/26") == "/calico/ipam/v2/host/n1/ipv4/block/10.233.64.0-26"
    assert m.handle_key("ipip-tunnel-addr-n1") == "/calico/ipam/v2/handle/ipip-tunnel-addr-n1"
    assert m.CONFIG_KEY == "/calico/ipam/v2/config"


def test_block_roundtrip_keeps_unknown_fields_and_release_compacts():
    block = m.Block.new(0x0A000000, 30, "n1")
    for hid in ("a", "b", "c"):
        ordinal = block.unallocated.pop(0)
        block.assign(ordinal, {"handle_id": hid, "secondary": {"node": "n1"}})
    assert block.release_handle("a") == [0]
    assert block.allocations == [None, 0, 1, None] and [a["handle_id"] for a in block.attributes] == ["b", "c"]
    assert block.unallocated == [3, 0]  # released ordinal at the tail
    doc = block.to_json()
    doc["affinity_claim_time"] = "2026-01-01T00:00:00Z"
    again = m.Block.from_json(doc)
    assert again.to_json() == doc and again.by_handle == {"b": 1, "c": 2}


@pytest.mark.parametrize(
    "broken",
    [
        {"cidr": "10.0.0.0/30", "allocations": [None], "unallocated": []},
        {"cidr": "10.0.0.0/30", "allocations": [5, None, None, None], "unallocated": [1, 2, 3], "attributes": []},
        {"allocations": []},
    ],
)
def test_broken_blocks_are_refused(broken):
    with pytest.raises(m.StateError):
        m.Block.from_json(broken)


def test_config_and_handle_shapes():
    assert m.IpamConfig(True, True, 4).to_json() == {"strict_affinity": True, "auto_allocate_blocks": True, "maxBlocksPerHost": 4}
    assert m.IpamConfig().block_limit == 20
    assert m.Handle({"10.0.0.0/26": 2}).to_json() == {"block": {"10.0.0.0/26": 2}, "deleted": False}
    assert m.Affinity.from_json({"state": "pending", "deleted": False}).state == "pending"
