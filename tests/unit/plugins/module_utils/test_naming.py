import hashlib

import pytest

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


@pytest.mark.parametrize("good", ["web", "web-1", "a", "0", "a" * 63])
def test_a_label_is_a_whole_dns_label(good):
    assert naming.is_label(good)


@pytest.mark.parametrize("bad", ["web\n", "blue\n", "\nweb", "Web", "web_1", "-web", "web-", "a" * 64, "", None, 5])
def test_a_label_with_a_trailing_newline_or_anything_else_is_refused(bad):
    """``re.match("...$")`` accepts ``"web\n"`` ('$' matches before a final newline): full matches only."""
    assert not naming.is_label(bad)


@pytest.mark.parametrize("bad", ["cal\n", "ca\u00b2", "toolong", "", "c-1", None])
def test_a_veth_prefix_is_one_to_four_ascii_letters_or_digits(bad):
    assert naming.is_veth_prefix("cali") and naming.is_veth_prefix("l3")
    assert not naming.is_veth_prefix(bad)
