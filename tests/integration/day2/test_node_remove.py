# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""playbooks/node-remove.yml on three real nodes (namespaces, real IPAM state, workloads, real BIRD).

Two pools: a plain BGP-routed one (no encapsulation: this kernel has no ipip driver) and a
VXLAN one (the node role's vxlan.calico, neighbours, FDB entries and routes), so the removal must
clean both the BGP and the VXLAN data plane of the others.

The tests share one fabric and run in file order: converge, the plan in check mode (nothing
changes), the removal, a second removal run (nothing left to do).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.l3.calico.plugins.module_utils import naming

pytestmark = [pytest.mark.netns, pytest.mark.bird]

ROOT = Path(__file__).resolve().parents[3]
PLAYBOOK = ROOT / "playbooks" / "node-remove.yml"
NODES = {"n1": "192.168.100.11/24", "n2": "192.168.100.12/24", "n3": "192.168.100.13/24"}
# IPIP CrossSubnet on one subnet: routed by BIRD without encapsulation, but every node has an IPIP
# tunnel address on tunl0 (a stand-in veth: this kernel has no ipip driver), which the removal takes away.
POOLS = [
    {"name": "default-ipv4-ippool", "cidr": "172.17.0.0/16", "block_size": 26, "ipip_mode": "CrossSubnet"},
    {"name": "blue-vxlan", "cidr": "172.18.0.0/16", "block_size": 26, "vxlan_mode": "Always", "namespaces": ["blue"]},
]
WORKLOADS = {
    "n1": [{"name": "web-1"}, {"name": "db-1", "namespace": "blue"}],
    "n2": [{"name": "web-2"}],
    "n3": [{"name": "web-3"}, {"name": "api-3", "namespace": "blue"}],
}


def bird_running(stack, node: str) -> bool:
    pid_file = Path(stack.fabric.nodes[node]["calico_bgp_pid_file"])
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        return "bird" in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


def vxlan_peers(stack, node: str) -> str:
    """The VXLAN neighbours and FDB entries of node (what the node role programs per remote VTEP)."""
    ns = stack.fabric.nodes[node]["ns"]
    return stack.fabric.sh(ns, "ip", "neigh", "show", "dev", "vxlan.calico") + stack.fabric.sh(ns, "bridge", "fdb", "show", "dev", "vxlan.calico")


def leftovers(stack, node: str) -> dict:
    """What the node role set up on node, as the kernel and the file system show it."""
    ns = stack.fabric.nodes[node]["ns"]
    links = {link["ifname"]: link for link in json.loads(stack.fabric.sh(ns, "ip", "-json", "addr", "show"))}
    return {
        "vxlan.calico": naming.VXLAN_DEVICE in links,
        "tunl0 address": [a["local"] for a in links["tunl0"]["addr_info"] if a["family"] == "inet"],
        "sysctl file": sysctl_file(stack, node).exists(),
        "nft table": bool(stack.fabric.sh(ns, "nft", "list", "table", "ip", "l3calico", check=False)),
    }


def sysctl_file(stack, node: str) -> Path:
    return stack.work / node / "sysctl.d" / "60-l3-calico.conf"


def foreign(stack, node: str) -> dict:
    """Things l3.calico did not create, put on node by the test: they must survive the removal."""
    ns = stack.fabric.nodes[node]["ns"]
    return {
        "nft table": bool(stack.fabric.sh(ns, "nft", "list", "table", "ip", "l3tleave_foreign", check=False)),
        "sysctl file": (stack.work / node / "sysctl.d" / "50-l3tleave-foreign.conf").exists(),
        "link": "l3tleave-f0" in stack.fabric.sh(ns, "ip", "-o", "link", "show"),
    }


def n3_in_state(state: dict) -> list[str]:
    """Everything of n3 the IPAM state still holds."""
    found = [b["cidr"] for b in state["blocks"] if b.get("affinity") == "host:n3"]
    found += [f"affinity {a['cidr']}" for a in state["affinities"] if a["node"] == "n3"]
    for block in state["blocks"]:
        for attr in block["attributes"]:
            if (attr.get("secondary") or {}).get("node") == "n3":
                found.append(f"address of {attr['handle_id']}")
    found += [h for h in state["handles"] if h.endswith("n3") or h.endswith("-3")]
    return found


@pytest.fixture(scope="module")
def stack(stack_factory, day2):
    stack = stack_factory("nr", NODES, POOLS, WORKLOADS, node_role=True)
    stack.inventory()
    stack.first = stack.site()
    day2.wait_for(lambda: all(stack.fabric.established(n) for n in NODES), 30, what="every session Established")
    ns = stack.fabric.nodes["n3"]["ns"]
    stack.fabric.sh(ns, "nft", "add", "table", "ip", "l3tleave_foreign")
    (stack.work / "n3" / "sysctl.d" / "50-l3tleave-foreign.conf").write_text("net.ipv4.ip_forward = 1\n")
    stack.fabric.sh(ns, "ip", "link", "add", "l3tleave-f0", "type", "veth", "peer", "name", "l3tleave-f1")
    return stack


def test_converged(stack):
    state = stack.state()
    assert n3_in_state(state), "n3 holds blocks and addresses before its removal"
    assert len(stack.netns("n3")) == 2
    assert len([r for r in stack.fabric.routes("n3") if " dev cali" in r]) == 2
    assert bird_running(stack, "n3")
    n3_blocks = [b["cidr"] for b in state["blocks"] if b["affinity"] == "host:n3"]
    routes = stack.fabric.routes("n1")
    assert len(n3_blocks) == 2
    assert any(r.startswith(f"{b} via 192.168.100.13 dev eth0 proto bird") for r in routes for b in n3_blocks), routes
    assert any(r.startswith(b) and "dev vxlan.calico" in r for r in routes for b in n3_blocks), routes
    assert naming.vxlan_mac("n3") in vxlan_peers(stack, "n1")
    assert (os.stat(stack.state_file).st_mode & 0o777) == 0o600
    assert "ipip-tunnel-addr-n3" in state["handles"]
    found = leftovers(stack, "n3")
    assert found["vxlan.calico"] and found["sysctl file"] and found["nft table"] and len(found["tunl0 address"]) == 1
    assert foreign(stack, "n3") == {"nft table": True, "sysctl file": True, "link": True}


def test_check_mode_prints_the_plan_and_changes_nothing(stack):
    before = stack.state_file.read_bytes()
    confs = {n: Path(stack.fabric.nodes[n]["calico_bgp_config_file"]).read_text() for n in NODES}
    proc = stack.play(PLAYBOOK, "-e", "calico_remove_node=n3", "--check", "--diff", json_output=False)
    out = proc.stdout
    assert "node n3 leaves" in out
    state = json.loads(before)
    for block in (b["cidr"] for b in state["blocks"] if b["affinity"] == "host:n3"):
        assert f"- block {block} affinity to n3" in out, out[-3000:]
    assert "default.web-3 on n3" in out and "blue.api-3 on n3" in out
    # what would go from n3 (the node role's removal, shown with its diff)
    removal = out[out.index("calico_node : Remove the node's tunnels") :]
    assert "-vxlan.calico: removed" in removal and "-tunl0: address 172.17." in removal, removal[:3000]
    assert "60-l3-calico.conf (removed)" in removal and "-nftables table ip l3calico removed" in removal
    # nothing changed anywhere
    assert stack.state_file.read_bytes() == before
    assert len(stack.netns("n3")) == 2
    assert bird_running(stack, "n3")
    for node, text in confs.items():
        assert Path(stack.fabric.nodes[node]["calico_bgp_config_file"]).read_text() == text
    found = leftovers(stack, "n3")
    assert found["vxlan.calico"] and found["sysctl file"] and found["nft table"] and found["tunl0 address"]


def test_unknown_node_is_refused_before_anything(stack):
    before = stack.state_file.read_bytes()
    proc = stack.play(PLAYBOOK, "-e", "calico_remove_node=n9", json_output=False, check=False)
    assert proc.returncode != 0
    assert "calico_remove_node=n9" in proc.stdout and "n1, n2, n3" in proc.stdout
    assert stack.state_file.read_bytes() == before
    assert bird_running(stack, "n3")


def test_remove_node(stack, day2):
    state = stack.state()
    n3_blocks = [b["cidr"] for b in state["blocks"] if b["affinity"] == "host:n3"]
    result = stack.play(PLAYBOOK, "-e", "calico_remove_node=n3")
    # on n3: workloads and BIRD gone, config removed
    assert stack.netns("n3") == []
    assert [r for r in stack.fabric.routes("n3") if " dev cali" in r] == []
    assert not bird_running(stack, "n3")
    assert not Path(stack.fabric.nodes["n3"]["calico_bgp_config_file"]).exists()
    # ... and what the node role set up: no vxlan.calico, no tunnel address, no sysctl file, no nft table
    assert leftovers(stack, "n3") == {"vxlan.calico": False, "tunl0 address": [], "sysctl file": False, "nft table": False}
    assert foreign(stack, "n3") == {"nft table": True, "sysctl file": True, "link": True}
    assert "tunl0" in stack.fabric.sh(stack.fabric.nodes["n3"]["ns"], "ip", "-o", "link", "show")  # the kernel's
    # the IPAM holds nothing of n3; the others keep their addresses
    after = stack.state()
    assert n3_in_state(after) == []
    assert {b["cidr"] for b in after["blocks"]}.isdisjoint(n3_blocks)
    kept = {b["cidr"] for b in state["blocks"] if b["affinity"] != "host:n3"}
    assert kept == {b["cidr"] for b in after["blocks"]}
    # the others drop n3 from bird.conf, keep their session with each other, lose n3's routes
    for node in ("n1", "n2"):
        conf = Path(stack.fabric.nodes[node]["calico_bgp_config_file"]).read_text()
        assert "192.168.100.13" not in conf and "192_168_100_13" not in conf
        other = "n2" if node == "n1" else "n1"
        assert sorted(stack.fabric.sessions(node)) == [f"Mesh_{NODES[other].partition('/')[0].replace('.', '_')}"]
        day2.wait_for(lambda n=node: stack.fabric.established(n), 30, what=f"{node} Established")
        routes = stack.fabric.routes(node)
        assert not [r for r in routes for b in n3_blocks if r.startswith(b)], routes
        assert naming.vxlan_mac("n3") not in vxlan_peers(stack, node)
    # the audit found no leak
    audit = day2.task_results(result, "Check that the IPAM keeps nothing of the node (no leak)")
    assert audit and all(not r.get("failed") for r in audit.values())
    ipam = day2.task_results(result, "Plan and record the IPAM of every node")
    assert next(iter(ipam.values()))["problems"] == []


def test_second_removal_run_changes_nothing_in_the_ipam(stack, day2):
    before = stack.state_file.read_bytes()
    result = stack.play(PLAYBOOK, "-e", "calico_remove_node=n3")
    assert stack.state_file.read_bytes() == before
    ipam = day2.task_results(result, "Plan and record the IPAM of every node")
    assert not next(iter(ipam.values())).get("changed")
    for node in ("n1", "n2", "n3"):
        assert result["stats"][node]["changed"] == 0, result["stats"]


def test_audit_after_removal_finds_no_leak(stack, day2):
    """The user's next step: n3 leaves the inventory; the audit of the IPAM and of n1, n2 is clean."""
    removed = stack.fabric.nodes.pop("n3")
    try:
        stack.inventory()
        result = stack.play(ROOT / "playbooks" / "audit.yml", check=False)
        msg = next(iter(day2.task_results(result, "List every problem with its fix").values()))["msg"]
        assert isinstance(msg, str) and msg.startswith("no problem"), msg
        assert result["rc"] == 0
    finally:
        stack.fabric.nodes["n3"] = removed
