import hashlib

from ansible_collections.l3.calico.plugins.module_utils import naming


def test_veth_name_is_calico_prefix_and_sha1():
    wid = naming.workload_id("default", "web-1")
    assert wid == "default.web-1"
    name = naming.veth_name(wid)
    assert name == "cali" + hashlib.sha1(b"default.web-1").hexdigest()[:11]
    assert len(name) == 15  # IFNAMSIZ - 1


def test_vxlan_mac_is_locally_administered_and_stable():
    mac = naming.vxlan_mac("node-a")
    assert mac.startswith("66:")
    assert mac == naming.vxlan_mac("node-a") != naming.vxlan_mac("node-b")
    assert int(mac.split(":")[0], 16) & 0x02  # locally administered bit


def test_tunnel_handles_follow_calico():
    assert naming.tunnel_handle_id("ipip", "n1") == "ipip-tunnel-addr-n1"
    assert naming.tunnel_handle_id("vxlan", "n1") == "vxlan-tunnel-addr-n1"
