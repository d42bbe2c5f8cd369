import hashlib

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.l3.calico.plugins.filter.address_block import address_block
from ansible_collections.l3.calico.plugins.filter.pool_blocks import pool_blocks
from ansible_collections.l3.calico.plugins.filter.same_subnet import same_subnet
from ansible_collections.l3.calico.plugins.filter.veth_name import veth_name
from ansible_collections.l3.calico.plugins.filter.workload_mtu import workload_mtu
from ansible_collections.l3.calico.plugins.module_utils import node


def test_pool_blocks():
    assert pool_blocks("172.17.0.0/24") == ["172.17.0.0/26", "172.17.0.64/26", "172.17.0.128/26", "172.17.0.192/26"]
    assert pool_blocks("172.17.0.0/16", 26, 2) == ["172.17.0.0/26", "172.17.0.64/26"]
    assert len(pool_blocks("172.17.0.0/16", block_size=26)) == 1024


@pytest.mark.parametrize(
    "args, message",
    [
        (("172.17.0.1/16",), "without host bits"),
        (("172.17.0.0/26", 24), "at least /26"),
        (("nonsense",), "not a network"),
        (("172.17.0.0/16", "x"), "block_size"),
    ],
)
def test_pool_blocks_errors(args, message):
    with pytest.raises(AnsibleFilterError, match=message):
        pool_blocks(*args)


def test_address_block():
    assert address_block("172.17.72.5") == "172.17.72.0/26"
    assert address_block("172.17.72.200/32", 24) == "172.17.72.0/24"
    with pytest.raises(AnsibleFilterError, match="not an address"):
        address_block("172.17.72")


def test_the_block_filters_take_ipv6_with_calicos_default_block_size():
    assert address_block("fd00:17::4c") == "fd00:17::40/122" == address_block("fd00:17::4c/128")
    assert address_block("fd00:17::4c", 116) == "fd00:17::/116"
    assert address_block("fd00:17::4c", block_size=128) == "fd00:17::4c/128"
    assert pool_blocks("fd00:17::/48", limit=2) == ["fd00:17::/122", "fd00:17::40/122"] == pool_blocks("fd00:17::/48", 122, 2)
    assert pool_blocks("fd00:17::/120", 122) == ["fd00:17::/122", "fd00:17::40/122", "fd00:17::80/122", "fd00:17::c0/122"]
    assert address_block(pool_blocks("fd00:17::/120", 122)[3].replace("/122", "")) == "fd00:17::c0/122"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: address_block("fd00:17::4c", 26), r"block_size 26 must be 116..128 for the IPv6 address 'fd00:17::4c'"),
        (lambda: address_block("172.17.72.5", 122), r"block_size 122 must be 20..32 for the IPv4 address"),
        (lambda: pool_blocks("fd00:17::/48", 26), r"block_size 26 must be 116..128 \(IPv6\)"),
        (lambda: pool_blocks("fd00:17::1/48", limit=1), r"without host bits \(did you mean fd00:17::/48\?\)"),
        (lambda: pool_blocks("fd00:17::/48"), r"has 2\^74 blocks of /122: give a limit"),
        (lambda: pool_blocks("fd00:17::/122", 120), r"at least /122"),
    ],
)
def test_the_block_filters_refuse_bad_ipv6_input(call, message):
    with pytest.raises(AnsibleFilterError, match=message):
        call()


def test_same_subnet():
    assert same_subnet("192.168.100.100/24", "192.168.100.101") is True
    assert same_subnet("192.168.100.100/24", "192.168.200.101/24") is False
    assert same_subnet("192.168.100.100", "192.168.101.1", prefix=16) is True
    with pytest.raises(AnsibleFilterError, match="prefix length"):
        same_subnet("192.168.100.100", "192.168.100.1")


def test_veth_name_matches_calico():
    expected = "cali" + hashlib.sha1(b"default.web-1").hexdigest()[:11]
    assert veth_name("web-1", "default") == expected
    assert veth_name("web-1") == expected
    assert veth_name("default.web-1") == expected
    assert veth_name({"name": "web-1"}) == expected
    assert veth_name({"id": "default.web-1", "name": "web-1"}) == expected
    assert veth_name("db-1", "blue") == "cali" + hashlib.sha1(b"blue.db-1").hexdigest()[:11]
    with pytest.raises(AnsibleFilterError):
        veth_name(42)


POOLS = {
    "old": {"cidr": "10.1.0.0/16", "ipip_mode": "Always", "vxlan_mode": "Never", "disabled": True},
    "new": {"cidr": "10.2.0.0/16", "ipip_mode": "CrossSubnet", "vxlan_mode": "Never", "disabled": False},
}


def test_workload_mtu_is_the_node_modules_rule():
    assert workload_mtu(POOLS) == 1480 == node.workload_mtu(None, POOLS)
    assert workload_mtu(POOLS, 9000) == workload_mtu(POOLS, underlay_mtu=9000) == 8980 == node.workload_mtu(9000, POOLS)
    assert workload_mtu({}) == 1500


def test_workload_mtu_counts_the_ipv6_pools_vxlan():
    """Calico: VXLAN over IPv6 costs 70, VXLAN 50, IPIP 20 - one MTU per veth, the smallest the enabled pools allow."""
    v6 = {"v6": {"cidr": "fd00:17::/48", "ipip_mode": "Never", "vxlan_mode": "Always", "disabled": False}}
    assert workload_mtu(POOLS, pools_ipv6=v6) == 1430 == node.workload_mtu(None, {**POOLS, **v6})
    assert workload_mtu(POOLS, 9000, v6) == 8930
    assert workload_mtu(POOLS, pools_ipv6={"v6": dict(v6["v6"], disabled=True)}) == 1480
    assert workload_mtu(POOLS, pools_ipv6={"v6": dict(v6["v6"], vxlan_mode="Never")}) == 1480
    with pytest.raises(AnsibleFilterError, match="pools_ipv6 \\['v6'\\] are not mappings"):
        workload_mtu(POOLS, pools_ipv6={"v6": "Always"})
    with pytest.raises(AnsibleFilterError, match="in both pools and pools_ipv6"):
        workload_mtu(POOLS, pools_ipv6={"new": v6["v6"]})


@pytest.mark.parametrize(
    "args, message",
    [
        (([],), "_input"),
        (({"p": "Always"},), "not mappings"),
        ((POOLS, "big"), "underlay_mtu"),
    ],
)
def test_workload_mtu_errors(args, message):
    with pytest.raises(AnsibleFilterError, match=message):
        workload_mtu(*args)
