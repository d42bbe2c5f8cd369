"""Every bad input is refused before anything is written, naming host, field and value."""

import copy
import json

import pytest

from ansible_collections.l3.calico.plugins.module_utils.ipam_model import IpamError
from ansible_collections.l3.calico.plugins.module_utils.ipam_run import run

BASE = {
    "pools": [
        {"name": "p1", "cidr": "10.10.0.0/16", "block_size": 26, "ipip_mode": "CrossSubnet"},
        {"name": "p2", "cidr": "10.20.0.0/16", "namespaces": ["blue"]},
    ],
    "config": {"strict_affinity": False, "auto_allocate_blocks": True, "max_blocks_per_host": 0},
    "reservations": ["10.10.9.9"],
    "nodes": [
        {"name": "n1", "ip": "192.168.1.1/24", "labels": {"rack": "r1"}, "workloads": [{"name": "w1"}]},
        {"name": "n2", "ip": "192.168.1.2/24", "labels": {}, "workloads": [{"name": "w2"}, {"name": "b1", "namespace": "blue"}]},
    ],
    "node": None,
    "lock_timeout": 5.0,
}


def pool(p, **kw):
    p["pools"][0].update(kw)


def v6pool(p, **kw):
    """An IPv6 pool (the third) beside the IPv4 ones, with ``kw`` changed."""
    p["pools"].append({"name": "v6", "cidr": "fd00:1::/64", **kw})


def both_ipv6(p, address):
    p["nodes"][0]["ipv6"] = address
    p["nodes"][1]["ipv6"] = address


def wl(p, node=0, index=0, **kw):
    p["nodes"][node]["workloads"][index].update(kw)


def taken(p):
    # w2 asks for the address n1's w1 already holds (n1's first block, ordinal 1 after the tunnel)
    wl(p, 1, 0, ip=p["_w1"])


def strict(p):
    p["pools"] = [{"name": "p1", "cidr": "10.10.0.0/16", "block_size": 26}, p["pools"][1]]
    p["config"] = {"strict_affinity": True, "max_blocks_per_host": 1}
    p["nodes"][0]["workloads"] = [{"name": f"s{i:02d}"} for i in range(70)]


def migrate(p, nodes=("n1",), new=True, node=None, host=None, remove_nodes=None):
    """A pool migration step away from p1: p1 disabled, a new pool p3 (unless ``new`` is False)."""
    pool(p, disabled=True)
    p["pools"][1]["disabled"] = not new  # p2 (namespace blue) is enabled only when a new pool exists
    if new:
        p["pools"].append(new if isinstance(new, dict) else {"name": "p3", "cidr": "10.30.0.0/16", "block_size": 28})
    p["evacuate"] = {"pool": "p1", "nodes": list(nodes)}
    if host:
        p["evacuate"]["host"] = host
    if node:
        p["node"] = node
    if remove_nodes:
        p["remove_nodes"] = remove_nodes


CASES = [
    # (id, mutate, host, field, value)
    ("cidr-host-bits", lambda p: pool(p, cidr="10.10.0.1/16"), "calico_nodes", "calico_pools[0] (p1).cidr", "10.10.0.1/16"),
    ("cidr-not-a-network", lambda p: pool(p, cidr="10.10.0.0"), "calico_nodes", "calico_pools[0] (p1).cidr", "10.10.0.0"),
    ("cidr-garbage", lambda p: pool(p, cidr="ten/8"), "calico_nodes", "calico_pools[0] (p1).cidr", "ten/8"),
    ("block-size-too-small", lambda p: pool(p, block_size=19), "calico_nodes", "calico_pools[0] (p1).block_size", "19"),
    ("block-size-too-big", lambda p: pool(p, block_size=33), "calico_nodes", "calico_pools[0] (p1).block_size", "33"),
    ("block-larger-than-pool", lambda p: pool(p, cidr="10.10.0.0/27", block_size=26), "calico_nodes", "calico_pools[0] (p1).block_size", "26"),
    ("overlapping-pools", lambda p: p["pools"].append({"name": "p3", "cidr": "10.10.128.0/17"}), "calico_nodes", "calico_pools[2] (p3).cidr", "10.10.128.0/17"),
    ("link-local-pool", lambda p: pool(p, cidr="169.254.0.0/16"), "calico_nodes", "calico_pools[0] (p1).cidr", "169.254.0.0/16"),
    ("ipip-and-vxlan", lambda p: pool(p, vxlan_mode="Always"), "calico_nodes", "calico_pools[0] (p1).vxlan_mode", "Always"),
    ("unknown-mode", lambda p: pool(p, ipip_mode="Sometimes"), "calico_nodes", "calico_pools[0] (p1).ipip_mode", "Sometimes"),
    ("duplicate-pool-name", lambda p: p["pools"][1].update(name="p1"), "calico_nodes", "calico_pools[1].name", "p1"),
    ("selector-syntax", lambda p: pool(p, node_selector="rack == r1"), "calico_nodes", "calico_pools[0] (p1).node_selector", "rack == r1"),
    # an IPv6 cidr with the IPv4 pool's block size 26 and IPIP: fields of two families
    ("ipv6-pool-ipv4-block-size", lambda p: pool(p, cidr="fd00::/64"), "calico_nodes", "calico_pools[0] (p1).block_size", "26"),
    # dual stack (issue 17): IPv6 pools, calico_node_ipv6, the IPv6 twins of ip and pool
    ("ipv6-block-size-too-small", lambda p: v6pool(p, block_size=115), "calico_nodes", "calico_pools[2] (v6).block_size", "115"),
    ("ipv6-block-size-too-big", lambda p: v6pool(p, block_size=129), "calico_nodes", "calico_pools[2] (v6).block_size", "129"),
    ("ipv4-pool-ipv6-block-size", lambda p: pool(p, block_size=122), "calico_nodes", "calico_pools[0] (p1).block_size", "122"),
    ("ipip-on-ipv6-pool", lambda p: v6pool(p, ipip_mode="Always"), "calico_nodes", "calico_pools[2] (v6).ipip_mode", "Always"),
    ("ipv6-link-local-pool", lambda p: v6pool(p, cidr="fe80::/64"), "calico_nodes", "calico_pools[2] (v6).cidr", "fe80::/64"),
    ("ipv6-pool-host-bits", lambda p: v6pool(p, cidr="fd00:1::1/64"), "calico_nodes", "calico_pools[2] (v6).cidr", "fd00:1::1/64"),
    (
        "ipv6-overlapping-pools",
        lambda p: v6pool(p) or p["pools"].append({"name": "v6b", "cidr": "fd00:1::/80"}),
        "calico_nodes",
        "calico_pools[3] (v6b).cidr",
        "fd00:1::/80",
    ),
    ("node-ipv6-without-prefix", lambda p: v6pool(p) or p["nodes"][0].update(ipv6="fd00:100::1"), "n1", "calico_node_ipv6", "fd00:100::1"),
    ("node-ipv6-wrong-family", lambda p: v6pool(p) or p["nodes"][0].update(ipv6="192.168.1.1/24"), "n1", "calico_node_ipv6", "192.168.1.1/24"),
    ("node-ipv6-garbage", lambda p: v6pool(p) or p["nodes"][0].update(ipv6="fd00:100:::1/64"), "n1", "calico_node_ipv6", "fd00:100:::1/64"),
    ("node-ip-ipv6", lambda p: p["nodes"][0].update(ip="fd00:100::1/64"), "n1", "calico_node_ip", "fd00:100::1/64"),
    ("duplicate-node-ipv6", lambda p: v6pool(p) or both_ipv6(p, "fd00:100::1/64"), "n2", "calico_node_ipv6", "fd00:100::1/64"),
    ("workload-ipv6-outside", lambda p: v6pool(p) or wl(p, ipv6="fd00:2::5"), "n1", "calico_workloads[0].ipv6", "fd00:2::5"),
    ("workload-ipv6-wrong-family", lambda p: v6pool(p) or wl(p, ipv6="10.10.0.5"), "n1", "calico_workloads[0].ipv6", "10.10.0.5"),
    ("workload-ip-is-ipv6", lambda p: v6pool(p) or wl(p, ip="fd00:1::5"), "n1", "calico_workloads[0].ip", "fd00:1::5"),
    ("workload-pool-is-ipv6", lambda p: v6pool(p) or wl(p, pool="v6"), "n1", "calico_workloads[0].pool", "v6"),
    ("workload-ipv6-pool-is-ipv4", lambda p: v6pool(p) or wl(p, ipv6_pool="p1"), "n1", "calico_workloads[0].ipv6_pool", "p1"),
    (
        "workload-ipv6-reserved",
        lambda p: v6pool(p) or p.update(reservations=["fd00:1::5"]) or wl(p, ipv6="fd00:1::5"),
        "n1",
        "calico_workloads[0].ipv6",
        "fd00:1::5",
    ),
    ("workload-assign-ipv6-not-bool", lambda p: v6pool(p) or wl(p, assign_ipv6="yes"), "n1", "calico_workloads[0].assign_ipv6", "yes"),
    ("workload-assign-none", lambda p: v6pool(p) or wl(p, assign_ipv4=False, assign_ipv6=False), "n1", "calico_workloads[0].assign_ipv4", "False"),
    ("workload-ipv6-but-assign-false", lambda p: v6pool(p) or wl(p, ipv6="fd00:1::5", assign_ipv6=False), "n1", "calico_workloads[0].ipv6", "fd00:1::5"),
    ("workload-ipv6-no-pool-serves", lambda p: v6pool(p, node_selector="rack == 'r9'"), "n1", "calico_workloads[0]", "default.w1"),
    ("bad-ipv6-reservation", lambda p: p.update(reservations=["fd00::/129"]), "calico_nodes", "calico_reservations[0]", "fd00::/129"),
    ("nat-not-bool", lambda p: pool(p, nat_outgoing="yes"), "calico_nodes", "calico_pools[0] (p1).nat_outgoing", "yes"),
    ("duplicate-workload", lambda p: p["nodes"][0]["workloads"].append({"name": "w1"}), "n1", "calico_workloads[1].name", "w1"),
    ("workload-on-two-nodes", lambda p: p["nodes"][1]["workloads"].append({"name": "w1"}), "n2", "calico_workloads[2].name", "w1"),
    ("ip-outside-pools", lambda p: wl(p, ip="10.99.0.1"), "n1", "calico_workloads[0].ip", "10.99.0.1"),
    ("ip-taken", taken, "n2", "calico_workloads[0].ip", None),
    ("ip-reserved", lambda p: wl(p, ip="10.10.9.9"), "n1", "calico_workloads[0].ip", "10.10.9.9"),
    ("ip-in-pool-not-serving-namespace", lambda p: wl(p, ip="10.20.0.5"), "n1", "calico_workloads[0].ip", "10.20.0.5"),
    ("ip-not-an-address", lambda p: wl(p, ip="10.10.0.300"), "n1", "calico_workloads[0].ip", "10.10.0.300"),
    ("unknown-pool", lambda p: wl(p, pool="nope"), "n1", "calico_workloads[0].pool", "nope"),
    ("bad-workload-name", lambda p: wl(p, name="Web_1"), "n1", "calico_workloads[0].name", "Web_1"),
    ("bad-namespace", lambda p: wl(p, namespace="Blue NS"), "n1", "calico_workloads[0].namespace", "Blue NS"),
    # full matches ('$' of re.match accepts a trailing newline): web and web\n would collide, blue\n leak
    ("workload-name-trailing-newline", lambda p: wl(p, name="w1\n"), "n1", "calico_workloads[0].name", "w1\\n"),
    ("namespace-trailing-newline", lambda p: wl(p, namespace="blue\n"), "n1", "calico_workloads[0].namespace", "blue\\n"),
    ("pool-name-trailing-newline", lambda p: pool(p, name="p1\n"), "calico_nodes", "calico_pools[0].name", "p1\\n"),
    # node names are Calico Node names (DNS-1123 subdomains): they reach bird.conf, etcd keys and commands
    (
        "node-name-bird-protocol",
        lambda p: p["nodes"][1].update(name="n2\n protocol static evil { ipv4; }"),
        "calico_nodes",
        "inventory_hostname",
        "protocol static evil",
    ),
    ("node-name-shell", lambda p: p["nodes"][1].update(name="n2;curl x|sh;#"), "calico_nodes", "inventory_hostname", "n2;curl x|sh;#"),
    ("node-name-etcd-key", lambda p: p["nodes"][1].update(name="rack1/n2"), "calico_nodes", "inventory_hostname", "rack1/n2"),
    (
        "selector-nested-too-deep",
        lambda p: pool(p, node_selector="(" * 2000 + "all()" + ")" * 2000),
        "calico_nodes",
        "calico_pools[0] (p1).node_selector",
        "nested more than 64 deep",
    ),
    ("unknown-workload-key", lambda p: wl(p, adress="10.10.0.1"), "n1", "calico_workloads[0]", "adress"),
    # workload labels (for policy): Calico's label syntax, full matches
    ("workload-labels-not-a-dict", lambda p: wl(p, labels=["app=web"]), "n1", "calico_workloads[0].labels", "app=web"),
    ("workload-label-key-bad", lambda p: wl(p, labels={"app web": "x"}), "n1", "calico_workloads[0].labels.app web", "x"),
    ("workload-label-value-newline", lambda p: wl(p, labels={"app": "web\n"}), "n1", "calico_workloads[0].labels.app", "web\\n"),
    ("workload-label-value-int", lambda p: wl(p, labels={"tier": 1}), "n1", "calico_workloads[0].labels.tier", "1"),
    ("workload-label-implicit", lambda p: wl(p, labels={"projectcalico.org/namespace": "x"}), "n1", "projectcalico.org/namespace", "set by Calico"),
    ("workloads-not-a-list", lambda p: p["nodes"][0].update(workloads="w1,w2"), "n1", "calico_workloads", "w1,w2"),
    ("node-ip-without-prefix", lambda p: p["nodes"][0].update(ip="192.168.1.1"), "n1", "calico_node_ip", "192.168.1.1"),
    ("node-ip-garbage", lambda p: p["nodes"][0].update(ip="192.168.1/24"), "n1", "calico_node_ip", "192.168.1/24"),
    ("duplicate-node-ip", lambda p: p["nodes"][1].update(ip="192.168.1.1/24"), "n2", "calico_node_ip", "192.168.1.1/24"),
    ("labels-not-a-dict", lambda p: p["nodes"][0].update(labels=["rack=r1"]), "n1", "calico_node_labels", "rack=r1"),
    ("label-value-not-string", lambda p: p["nodes"][0].update(labels={"rack": ["r1"]}), "n1", "calico_node_labels.rack", "r1"),
    ("bad-reservation", lambda p: p.update(reservations=["10.10.0.0/33"]), "calico_nodes", "calico_reservations[0]", "10.10.0.0/33"),
    ("negative-max-blocks", lambda p: p.update(config={"max_blocks_per_host": -1}), "calico_nodes", "calico_ipam_config.max_blocks_per_host", "-1"),
    ("no-strict-no-auto", lambda p: p.update(config={"auto_allocate_blocks": False}), "calico_nodes", "calico_ipam_config.auto_allocate_blocks", "False"),
    ("unknown-config-key", lambda p: p.update(config={"strictAffinity": True}), "calico_nodes", "calico_ipam_config", "strictAffinity"),
    # 64 addresses in n1's only block (no tunnel: the pool has no IPIP): s64 is the first left without one
    ("strict-affinity-exhausted", strict, "n1", "calico_workloads[64]", "default.s64"),
    ("cidr-immutable", lambda p: pool(p, cidr="10.10.0.0/17"), "calico_nodes", "calico_pools[0] (p1).cidr", "10.10.0.0/17"),
    ("block-size-immutable", lambda p: pool(p, block_size=28), "calico_nodes", "calico_pools[0] (p1).block_size", "28"),
    ("unknown-node-option", lambda p: p.update(node="n9"), "n9", "node", "n9"),
    ("remove-unknown-node", lambda p: p.update(remove_nodes=["n9"]), "n9", "remove_nodes[0]", "n9"),
    ("remove-every-node", lambda p: p.update(remove_nodes=["n1", "n2"]), "calico_nodes", "remove_nodes", "n2"),
    ("remove-with-per-host-node", lambda p: p.update(node="n1", remove_nodes=["n2"]), "n1", "remove_nodes", "n2"),
    # pool migration steps (option evacuate)
    ("evacuate-unknown-pool", lambda p: p.update(evacuate={"pool": "p9", "nodes": ["n1"]}), "calico_nodes", "evacuate.pool", "p9"),
    ("evacuate-pool-not-disabled", lambda p: p.update(evacuate={"pool": "p1", "nodes": ["n1"]}), "calico_nodes", "calico_pools[0] (p1).disabled", "False"),
    ("evacuate-unknown-node", lambda p: migrate(p, nodes=["n1", "n9"]), "n9", "evacuate.nodes[1]", "n9"),
    (
        "evacuate-nodes-not-a-list",
        lambda p: p.update(evacuate={"pool": "p1", "nodes": 5}) or pool(p, disabled=True) or p["pools"].append({"name": "p3", "cidr": "10.30.0.0/16"}),
        "calico_nodes",
        "evacuate.nodes",
        "5",
    ),
    ("evacuate-not-a-mapping", lambda p: p.update(evacuate="p1"), "calico_nodes", "evacuate", "p1"),
    ("evacuate-unknown-key", lambda p: migrate(p, host="n1"), "calico_nodes", "evacuate", "host"),
    ("evacuate-run-node-not-evacuated", lambda p: migrate(p) or p["evacuate"].update(run_nodes=["n2"]), "n2", "evacuate.run_nodes[0]", "n2"),
    ("evacuate-run-node-not-a-name", lambda p: migrate(p) or p["evacuate"].update(run_nodes=["n1", 7]), "7", "evacuate.run_nodes[1]", "7"),
    ("evacuate-run-nodes-not-a-list", lambda p: migrate(p) or p["evacuate"].update(run_nodes="n1"), "calico_nodes", "evacuate.run_nodes", "n1"),
    ("evacuate-batch-zero", lambda p: migrate(p) or p["evacuate"].update(batch=0), "calico_nodes", "evacuate.batch", "0"),
    ("evacuate-batch-a-boolean", lambda p: migrate(p) or p["evacuate"].update(batch=True), "calico_nodes", "evacuate.batch", "True"),
    ("evacuate-batch-not-an-integer", lambda p: migrate(p) or p["evacuate"].update(batch="two"), "calico_nodes", "evacuate.batch", "two"),
    ("evacuate-with-per-host-node", lambda p: migrate(p, node="n1"), "n1", "evacuate", "p1"),
    ("evacuate-with-remove-nodes", lambda p: migrate(p, remove_nodes=["n2"]), "calico_nodes", "evacuate", "remove_nodes"),
    ("evacuate-no-enabled-pool", lambda p: migrate(p, new=False), "calico_nodes", "calico_pools", "p1"),
    ("evacuate-workload-pinned-to-old-pool", lambda p: (migrate(p), wl(p, pool="p1")), "n1", "calico_workloads[0].pool", "p1"),
    ("evacuate-workload-requests-old-address", lambda p: (migrate(p), wl(p, ip="10.10.0.9")), "n1", "calico_workloads[0].ip", "10.10.0.9"),
    # one address in the new pool for w1 (n1) and w2 (n2): n2 (planned after n1) finds it exhausted
    (
        "evacuate-new-pool-too-small",
        lambda p: migrate(p, nodes=["n1", "n2"], new={"name": "p3", "cidr": "10.30.0.0/32", "block_size": 32}),
        "n2",
        "calico_workloads[0]",
        "default.w2",
    ),
    ("pool-selector-excludes-node", lambda p: (pool(p, node_selector="rack == 'r1'"), wl(p, 1, 0, pool="p1")), "n2", "calico_workloads[0].pool", "p1"),
]


@pytest.fixture
def recorded(tmp_path):
    """A state file written by a good run, and the address w1 got."""
    params = copy.deepcopy(BASE)
    params["state_file"] = str(tmp_path / "calico_ipam.json")
    result, _diff = run(params, check_mode=False)
    w1 = result["nodes"]["n1"]["workloads"][0]["ip"]
    return params, w1


@pytest.mark.parametrize("mutate, host, field, value", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_nothing_written(recorded, mutate, host, field, value):
    params, w1 = recorded
    before = open(params["state_file"], "rb").read()
    bad = copy.deepcopy(params)
    bad["_w1"] = w1
    mutate(bad)
    bad.pop("_w1")
    with pytest.raises(IpamError) as err:
        run(bad, check_mode=False)
    message = str(err.value)
    assert message.startswith(f"{host}: "), message
    assert field in message, message
    assert (value if value is not None else w1) in message, message
    assert open(params["state_file"], "rb").read() == before


def test_at_least_twenty_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b'{"format": "l3.calico/ipam", "version": 99}',
        b'{"format": "something-else"}',
        b'{"format": "l3.calico/ipam", "version": 1, "blocks": 5}',
    ],
)
def test_corrupt_or_unknown_state_file_is_refused_and_kept(recorded, content):
    params, _w1 = recorded
    with open(params["state_file"], "wb") as handle:
        handle.write(content)
    with pytest.raises(IpamError) as err:
        run(params, check_mode=False)
    assert params["state_file"] in str(err.value) and "refusing" in str(err.value)
    assert open(params["state_file"], "rb").read() == content


def test_state_file_is_calico_shaped_json(recorded):
    params, _w1 = recorded
    doc = json.load(open(params["state_file"]))
    assert doc["format"] == "l3.calico/ipam" and doc["version"] == 1
    assert {"cidr", "affinity", "allocations", "unallocated", "attributes", "sequenceNumber", "deleted"} <= set(doc["blocks"][0])
    assert set(doc["affinities"][0]) == {"node", "cidr", "state", "deleted"}
    assert doc["config"] == {"strict_affinity": False, "auto_allocate_blocks": True, "maxBlocksPerHost": 0}
