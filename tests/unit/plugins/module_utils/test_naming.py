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
    assert int(mac.partition(":")[0], 16) & 0x02  # locally administered bit


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


@pytest.mark.parametrize("good", ["n1", "node-a", "n1.rack1.example", "a" * 63 + "." + "b" * 63, ("a" * 63 + ".") * 3 + "a" * 61])
def test_a_node_name_is_a_dns_1123_subdomain(good):
    assert naming.is_node_name(good)


@pytest.mark.parametrize(
    "bad",
    [
        "n1\n protocol static evil { ipv4; route 0.0.0.0/0 blackhole; }",
        "n2;curl x|sh;#",
        "rack1/n1",
        "N1",
        "n_1",
        "n1.",
        ".n1",
        "n1..n2",
        "-n1",
        "a" * 64,
        ("a" * 63 + ".") * 3 + "a" * 62,
        "n1\n",
        "",
        None,
        7,
    ],
)
def test_anything_else_is_not_a_node_name(bad):
    assert not naming.is_node_name(bad)


def test_a_printed_fix_command_quotes_the_node_names():
    assert naming.run_site("n1", "n2") == "ansible-playbook -i INVENTORY playbooks/site.yml --limit n1,n2"
    assert naming.run_site("n2;curl x|sh;#").endswith("--limit 'n2;curl x|sh;#'")


@pytest.mark.parametrize("good", ["default.web-1", "blue.db", "a.b"])
def test_a_workload_id_is_namespace_dot_name(good):
    assert naming.is_workload_id(good)


@pytest.mark.parametrize("bad", ["web-1", "a.b.c", "default.web-1\n", "Default.web", ".web", "default.", "../x", None, 3])
def test_anything_else_is_not_a_workload_id(bad):
    assert not naming.is_workload_id(bad)


@pytest.mark.parametrize(
    "key, value",
    [
        ("app", "web"),
        ("app", ""),
        ("example.com/tier", "front-end_1.2"),
        ("A_b.c-D", "X"),
        ("k" * 63, "v" * 63),
        ("kubernetes.io/metadata.name", "blue"),
    ],
)
def test_a_calico_label_is_accepted(key, value):
    assert naming.label_problem(key, value) is None


@pytest.mark.parametrize(
    "key, value, reason",
    [
        ("app\n", "web", "not a label name"),
        ("app", "web\n", "not a label value"),
        ("-app", "web", "not a label name"),
        ("app-", "web", "not a label name"),
        ("k" * 64, "v", "not a label name"),
        ("app", "v" * 64, "not a label value"),
        ("Example.com/tier", "x", "not a label name"),  # the prefix is a lower-case DNS subdomain
        ("/tier", "x", "not a label name"),
        ("a/b/c", "x", "not a label name"),
        ("app", "a b", "not a label value"),
        ("app", 1, "must be a string"),
        ("app", True, "must be a string"),
        (7, "x", "label name must be a string"),
        ("projectcalico.org/namespace", "blue", "set by Calico itself"),
        ("projectcalico.org/name", "blue", "set by Calico itself"),
    ],
)
def test_a_bad_label_is_refused_with_a_reason(key, value, reason):
    assert reason in naming.label_problem(key, value)
