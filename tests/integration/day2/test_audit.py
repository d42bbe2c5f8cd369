# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""playbooks/audit.yml on three real nodes: clean, then faults injected, each found with its fix.

Shared fabric, file order: converge and a clean audit; six faults (a leaked IPAM address, a
missing workload route, an address used by two workloads, a stale block route, a borrowed /32
route deleted on one node, a tunnel address changed) each reported with the command that fixes
it; the printed fixes applied; a clean audit again.

The node role runs too (tunl0 -- a stand-in veth, this kernel has no ipip driver -- gets the IPIP
tunnel address, vxlan.calico the VXLAN one), and n3 holds an address of the VXLAN pool borrowed
from n1's block (requested explicitly), which every other node routes with a /32 over VXLAN.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.bird]

ROOT = Path(__file__).resolve().parents[3]
AUDIT = ROOT / "playbooks" / "audit.yml"
NODES = {"n1": "192.168.100.21/24", "n2": "192.168.100.22/24", "n3": "192.168.100.23/24"}
POOLS = [
    {"name": "default-ipv4-ippool", "cidr": "172.17.0.0/16", "block_size": 26, "ipip_mode": "CrossSubnet"},
    {"name": "blue-vxlan", "cidr": "172.18.0.0/16", "block_size": 26, "vxlan_mode": "Always", "namespaces": ["blue"]},
]
WORKLOADS = {
    "n1": [{"name": "web-1"}],
    "n2": [{"name": "web-2"}],
    "n3": [{"name": "web-3"}, {"name": "api-3"}],
}
LIST_TASK = "List every problem with its fix"


def problems(result, day2) -> list[dict]:
    msg = next(iter(day2.task_results(result, LIST_TASK).values()))["msg"]
    return [] if isinstance(msg, str) else msg


@pytest.fixture(scope="module")
def stack(stack_factory, day2):
    stack = stack_factory("au", NODES, POOLS, WORKLOADS, node_role=True)
    stack.inventory()
    stack.site()
    # n3's workload blue.borrow-3 takes an address of n1's VXLAN block (n1's tunnel address claimed it).
    n1_block = next(ipaddress.IPv4Network(b["cidr"]) for b in stack.state()["blocks"] if b["affinity"] == "host:n1" and b["cidr"].startswith("172.18."))
    stack.borrowed = str(n1_block[10])
    stack.workloads = {**WORKLOADS, "n3": WORKLOADS["n3"] + [{"name": "borrow-3", "namespace": "blue", "ip": stack.borrowed}]}
    stack.inventory()
    stack.site()
    day2.wait_for(lambda: all(stack.fabric.established(n) for n in NODES), 30, what="every session Established")
    return stack


def tunnel_address(stack, node: str, kind: str) -> str:
    for block in stack.state()["blocks"]:
        for ordinal, index in enumerate(block["allocations"]):
            if index is not None and block["attributes"][index]["handle_id"] == f"{kind}-tunnel-addr-{node}":
                return str(ipaddress.IPv4Network(block["cidr"])[ordinal])
    raise AssertionError(f"{node} has no {kind} tunnel address")


def test_borrowed_address_is_routed_towards_its_holder(stack):
    """What the audit checks, seen in the kernel: the /32 over VXLAN to n3 on n1 (the block's owner) and n2."""
    n3_vtep = tunnel_address(stack, "n3", "vxlan")
    for node in ("n1", "n2"):
        assert f"{stack.borrowed} via {n3_vtep} dev vxlan.calico proto 80 onlink" in stack.fabric.routes(node)
    assert any(r.startswith(f"{stack.borrowed} dev cali") for r in stack.fabric.routes("n3"))


def address(stack, node: str, wid: str) -> str:
    for block in stack.state()["blocks"]:
        for ordinal, index in enumerate(block["allocations"]):
            if index is not None and block["attributes"][index]["handle_id"] == f"l3-workload.{wid}":
                return str(ipaddress.IPv4Network(block["cidr"])[ordinal])
    raise AssertionError(f"{wid} has no address")


def test_clean_network_has_no_problem(stack, day2):
    before = stack.state_file.read_bytes()
    result = stack.play(AUDIT, check=False)
    assert problems(result, day2) == []
    assert result["rc"] == 0
    assert "no problem" in next(iter(day2.task_results(result, LIST_TASK).values()))["msg"]
    assert stack.state_file.read_bytes() == before
    assert all(s["changed"] == 0 for s in result["stats"].values()), result["stats"]


def test_faults_are_found_with_their_fix(stack, day2):
    fab = stack.fabric
    web2 = address(stack, "n2", "default.web-2")
    web3 = address(stack, "n3", "default.web-3")
    live = {b["cidr"] for b in stack.state()["blocks"]}
    stale = next(str(n) for n in ipaddress.IPv4Network("172.17.0.0/16").subnets(new_prefix=26) if str(n) not in live)
    # 1. a leak: api-3 leaves the inventory but nobody ran the IPAM
    stack.workloads = {**stack.workloads, "n3": [w for w in stack.workloads["n3"] if w["name"] != "api-3"]}
    stack.inventory()
    # 2. n2's workload lost its route
    fab.sh(fab.nodes["n2"]["ns"], "ip", "route", "del", f"{web2}/32")
    # 3. n1 routes n3's workload address to a veth of its own (two workloads, one address)
    fab.sh(fab.nodes["n1"]["ns"], "ip", "link", "add", "calil3tday2x", "type", "veth", "peer", "name", "l3tday2-xp")
    fab.sh(fab.nodes["n1"]["ns"], "ip", "link", "set", "calil3tday2x", "up")
    fab.sh(fab.nodes["n1"]["ns"], "ip", "route", "add", f"{web3}/32", "dev", "calil3tday2x")
    # 4. a stale block route on n1
    fab.sh(fab.nodes["n1"]["ns"], "ip", "route", "add", stale, "via", "192.168.100.22")
    # 5. n2 loses its /32 towards n3 for the address n3 borrowed from n1's block
    fab.sh(fab.nodes["n2"]["ns"], "ip", "route", "del", f"{stack.borrowed}/32")
    # 6. n1's IPIP tunnel address is not the IPAM's any more
    n1_ipip = tunnel_address(stack, "n1", "ipip")
    fab.sh(fab.nodes["n1"]["ns"], "ip", "addr", "del", f"{n1_ipip}/32", "dev", "tunl0")
    fab.sh(fab.nodes["n1"]["ns"], "ip", "addr", "add", "172.17.255.254/32", "dev", "tunl0")
    before = stack.state_file.read_bytes()

    result = stack.play(AUDIT, check=False)
    assert result["rc"] != 0
    found = problems(result, day2)
    text = "\n".join(f"{p['problem']} => {p['fix']}" for p in found)
    print(text)
    assert stack.state_file.read_bytes() == before  # the audit writes nothing
    api3 = "l3-workload.default.api-3"
    assert any(api3 in p["problem"] and "no longer lists" in p["problem"] and "playbooks/ipam.yml" in p["fix"] for p in found), text
    assert any(p["problem"].startswith(f"n2: workload default.web-2 ({web2}) has no route") and "--limit n2" in p["fix"] for p in found), text
    assert any(p["problem"].startswith("n2: its workloads differ from the IPAM") for p in found), text
    assert any(f"address {web3} is used here (dev calil3tday2x)" in p["problem"] and "default.web-3 on n3" in p["problem"] for p in found), text
    assert any(f"route to {stale}" in p["problem"] and f"ip route del {stale}" in p["fix"] for p in found), text
    assert any(p["problem"].startswith("n3: route") and "no workload of n3" in p["problem"] for p in found), text
    # ... and n1's BIRD announces that /32: n2 routes web-3's address to n1 instead of n3's block
    assert any(
        p["problem"].startswith(
            f"n2: route to {web3}/32 (via 192.168.100.21 dev eth0 proto bird) but {web3} is workload default.web-3 on n3, inside its own block"
        )
        for p in found
    ), text
    n3_vtep = tunnel_address(stack, "n3", "vxlan")
    assert any(
        p["problem"].startswith(f"n2: no route to {stack.borrowed}/32 (workload blue.borrow-3 on n3, borrowed from block 172.18.")
        and "of n1)" in p["problem"]
        and p["fix"].endswith(f"ip route replace {stack.borrowed}/32 via {n3_vtep} dev vxlan.calico onlink proto 80)")
        for p in found
    ), text
    assert any(
        p["problem"] == f"n1: tunl0 has 172.17.255.254/32, but the IPAM gives n1 the IPIP tunnel address {tunnel_address(stack, 'n1', 'ipip')}"
        and "--limit n1" in p["fix"]
        for p in found
    ), text
    assert not [p for p in found if "n1: no route" in p["problem"] or "n3: no route" in p["problem"]], text


def test_the_printed_fixes_make_it_clean(stack, day2):
    fab = stack.fabric
    stack.site()  # releases api-3 in the IPAM, removes its namespace, restores web-2's route
    web3 = address(stack, "n3", "default.web-3")
    fab.sh(fab.nodes["n1"]["ns"], "ip", "route", "del", f"{web3}/32", "dev", "calil3tday2x")
    for route in fab.routes("n1"):
        if route.endswith("via 192.168.100.22 dev eth0") and "proto" not in route:
            fab.sh(fab.nodes["n1"]["ns"], "ip", "route", "del", route.split()[0])
    result = stack.play(AUDIT)
    assert problems(result, day2) == []
    assert stack.netns("n3") == [f"{stack.netns_prefix('n3')}blue.borrow-3", f"{stack.netns_prefix('n3')}default.web-3"]
    assert f"{stack.borrowed} via" in "\n".join(fab.routes("n2"))
    assert [a for a in fab.sh(fab.nodes["n1"]["ns"], "ip", "-o", "-4", "addr", "show", "dev", "tunl0").split() if a.startswith("172.17.")] == [
        f"{tunnel_address(stack, 'n1', 'ipip')}/32"
    ]
