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
