# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""playbooks/pool-migrate.yml on three real nodes (namespaces, real IPAM state, workloads, real BIRD).

A VXLAN pool 172.17.0.0/24 with /26 blocks is migrated to a new CIDR, 172.18.0.0/24, with /28 blocks:
the workloads and the VXLAN tunnel addresses (the VTEPs) move host by host, each node's blocks go out
by BGP (a blackhole route exported by BIRD) and by the node role's VXLAN routes.

The tests share one fabric and run in file order: converge on the old pool, the plan in check mode
(nothing changes), the migration (verified after every host), a second run (nothing to do), the
audit with the old pool dropped from the inventory, and verify.yml on the result; then a second
migration, out of that pool into a third one, two hosts per round (calico_migrate_batch).
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from pathlib import Path

import pytest

from ansible_collections.l3.calico.plugins.module_utils import naming

pytestmark = [pytest.mark.netns, pytest.mark.bird]

ROOT = Path(__file__).resolve().parents[3]
PLAYBOOK = ROOT / "playbooks" / "pool-migrate.yml"
NODES = {"n1": "192.168.100.11/24", "n2": "192.168.100.12/24", "n3": "192.168.100.13/24"}
OLD = {"name": "old-pool", "cidr": "172.17.0.0/24", "block_size": 26, "vxlan_mode": "Always"}
NEW = {"name": "new-pool", "cidr": "172.18.0.0/24", "block_size": 28, "vxlan_mode": "Always"}
WORKLOADS = {
    "n1": [{"name": "web-1"}, {"name": "db-1"}],
    "n2": [{"name": "web-2"}],
    "n3": [{"name": "web-3"}, {"name": "api-3"}],
}
OLD_NET = ipaddress.ip_network(OLD["cidr"])
NEW_NET = ipaddress.ip_network(NEW["cidr"])
THIRD = {"name": "third-pool", "cidr": "172.19.0.0/24", "block_size": 28, "vxlan_mode": "Always"}
THIRD_NET = ipaddress.ip_network(THIRD["cidr"])


def workload_addresses(stack) -> dict:
    """workload id -> the /32 inside its namespace (what the kernel has, not what the IPAM says)."""
    found = {}
    for node in NODES:
        for ns in stack.netns(node):
            out = subprocess.run(["ip", "-n", ns, "-j", "-4", "addr", "show", "dev", "eth0"], capture_output=True, text=True, check=True, timeout=30).stdout
            addrs = [a["local"] for link in json.loads(out) for a in link.get("addr_info", [])]
            found[ns[len(stack.netns_prefix(node)) :]] = addrs
    return found


def vxlan_state(stack) -> dict:
    """Per node its vxlan.calico address, neighbours and FDB entries, and its routes."""
    out = {}
    for node in NODES:
        ns = stack.fabric.nodes[node]["ns"]
        out[node] = (
            stack.fabric.sh(ns, "ip", "-4", "-o", "addr", "show", "dev", "vxlan.calico"),
            stack.fabric.sh(ns, "ip", "neigh", "show", "dev", "vxlan.calico"),
            sorted(stack.fabric.routes(node)),
        )
    return out


def in_pool(state: dict, net) -> list:
    """Every allocation of the state inside ``net``: (address, handle id)."""
    found = []
    for block in state["blocks"]:
        base = ipaddress.ip_network(block["cidr"])
        if not base.subnet_of(net):
            continue
        for ordinal, index in enumerate(block["allocations"]):
            if index is not None:
                found.append((str(base.network_address + ordinal), block["attributes"][index]["handle_id"]))
    return found


@pytest.fixture(scope="module")
def stack(stack_factory, day2):
    stack = stack_factory("pm", NODES, [OLD], WORKLOADS, node_role=True)
    for node in NODES:  # as a real host, a default route: proxy ARP answers for 169.254.1.1 only with one
        stack.fabric.sh(stack.fabric.nodes[node]["ns"], "ip", "route", "add", "default", "via", "192.168.100.1")
    stack.inventory()
    stack.site()
    day2.wait_for(lambda: all(stack.fabric.established(n) for n in NODES), 30, what="every session Established")
    # Calico's way: the new pool is added, the old one disabled (the inventory edit the operator makes)
    stack.pools = [dict(OLD, disabled=True), NEW]
    stack.inventory({"calico_migrate_pool": OLD["name"]})
    return stack


def test_converged_on_the_old_pool(stack):
    addresses = workload_addresses(stack)
    assert len(addresses) == 5
    assert all(len(a) == 1 and ipaddress.ip_address(a[0]) in OLD_NET for a in addresses.values()), addresses
    state = stack.state()
    assert all(b["cidr"].endswith("/26") for b in state["blocks"])
    assert len([h for _address, h in in_pool(state, OLD_NET) if h.startswith("vxlan-tunnel-addr-")]) == 3


def test_check_mode_prints_the_plan_and_changes_nothing(stack):
    before = stack.state_file.read_bytes()
    addresses, vxlan = workload_addresses(stack), vxlan_state(stack)
    proc = stack.play(PLAYBOOK, "--check", "--diff", json_output=False)
    out = proc.stdout
    assert "pool migration out of old-pool (172.17.0.0/24) into new-pool, host by host: n1, n2, n3" in out, out[-4000:]
    assert "new pool new-pool: 172.18.0.0/24, /28 blocks" in out
    for wid, (ip,) in addresses.items():
        assert re.search(rf"{re.escape(wid)} {re.escape(ip)} -> 172\.18\.0\.\d+ \(block 172\.18\.0\.\d+/28\)", out), (wid, out[-4000:])
    for node in NODES:
        assert re.search(rf"vxlan-tunnel-addr-{node} 172\.17\.0\.\d+ -> 172\.18\.0\.\d+", out), node
    for block in json.loads(before)["blocks"]:
        assert f"block {block['cidr']} released" in out
    assert "then pool old-pool holds nothing and leaves the IPAM state: drop it from calico_pools" in out
    # the plan only: nothing changed anywhere
    assert "Migrate host by host" in out and "Move out of the old pool" not in out
    assert stack.state_file.read_bytes() == before
    assert workload_addresses(stack) == addresses
    assert vxlan_state(stack) == vxlan


def test_a_pool_still_enabled_is_refused_before_anything(stack):
    before = stack.state_file.read_bytes()
    stack.pools = [OLD, NEW]
    try:
        stack.inventory({"calico_migrate_pool": OLD["name"]})
        proc = stack.play(PLAYBOOK, json_output=False, check=False)
    finally:
        stack.pools = [dict(OLD, disabled=True), NEW]
        stack.inventory({"calico_migrate_pool": OLD["name"]})
    assert proc.returncode != 0
    assert "calico_nodes: calico_pools[0] (old-pool).disabled=False" in proc.stdout, proc.stdout[-3000:]
    assert stack.state_file.read_bytes() == before


def judged(day2, result, name):
    """The message of the verification after round ``name`` (None when that round did not run)."""
    found = day2.task_results(result, f"Judge the network after {name}")
    return next(iter(found.values()))["msg"] if found else None


def test_a_failed_verification_stops_before_any_host_moves(stack, day2):
    """A workload that does not answer (something the roles do not repair): the round's verification
    fails and the run stops there - no host has moved, the failure names the workload."""
    ns = f"{stack.netns_prefix('n2')}default.web-2"
    subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1"], check=True, timeout=30)
    before = workload_addresses(stack)
    try:
        result = stack.play(PLAYBOOK, check=False)
    finally:
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=0"], check=True, timeout=30)
    assert result["rc"] != 0
    failed = day2.failures(result)
    assert len(failed) == 1 and "after prepare: " in failed[0] and "ping default.web-2" in failed[0], failed
    assert judged(day2, result, "n1") is None and not day2.task_results(result, "Show what moved (n1)")
    assert workload_addresses(stack) == before
    assert {h for _address, h in in_pool(stack.state(), NEW_NET)} == set()


def test_migrate_one_host_and_stop(stack, day2):
    """calico_migrate_hosts=[n1]: n1 moves (verified), n2 and n3 are untouched, the old pool stays."""
    before = workload_addresses(stack)
    result = stack.play(PLAYBOOK, "-e", '{"calico_migrate_hosts": ["n1"]}')
    for name in ("prepare", "n1"):
        assert judged(day2, result, name).startswith(f"verified after {name}: ") and "pings 20/20" in judged(day2, result, name)
    assert judged(day2, result, "n2") is None and judged(day2, result, "finish") is None
    text = next(iter(day2.task_results(result, "Show what moved (n1)").values()))["msg"]
    assert "n1: default.web-1 172.17." in text and "n2:" not in text and "n3:" not in text, text
    now = workload_addresses(stack)
    for wid, (ip,) in now.items():
        expected = NEW_NET if wid in ("default.web-1", "default.db-1") else OLD_NET
        assert ipaddress.ip_address(ip) in expected, (wid, ip)
    assert {w: now[w] for w in ("default.web-2", "default.web-3", "default.api-3")} == {
        w: before[w] for w in ("default.web-2", "default.web-3", "default.api-3")
    }
    state = stack.state()
    assert sorted(state["pools"]) == ["new-pool", "old-pool"]
    assert {h for _address, h in in_pool(state, OLD_NET)} == {
        "l3-workload.default.web-2",
        "l3-workload.default.web-3",
        "l3-workload.default.api-3",
        "vxlan-tunnel-addr-n2",
        "vxlan-tunnel-addr-n3",
    }
    final = next(iter(day2.task_results(result, "Say what is left to do").values()))["msg"]
    assert final == "Pool old-pool still holds 5 address(es): run again without calico_migrate_hosts to move the other hosts.", final


def test_rerun_continues_with_the_other_hosts_and_finishes(stack, day2):
    old = stack.state()
    result = stack.play(PLAYBOOK)
    # the traffic was verified after every round, in order, and every ping passed each time; n1 is done
    for name in ("prepare", "n2", "n3", "finish"):
        msg = judged(day2, result, name)
        assert msg and msg.startswith(f"verified after {name}: ") and "pings 20/20" in msg, (name, msg)  # 5 x 4
    assert judged(day2, result, "n1") is None
    # the end: nothing in the old pool, the pool gone from the state, every address in the new pool
    state = stack.state()
    assert in_pool(state, OLD_NET) == []
    assert list(state["pools"]) == ["new-pool"]
    assert all(b["cidr"].endswith("/28") and ipaddress.ip_network(b["cidr"]).subnet_of(NEW_NET) for b in state["blocks"])
    addresses = workload_addresses(stack)
    assert len(addresses) == 5
    assert all(len(a) == 1 and ipaddress.ip_address(a[0]) in NEW_NET for a in addresses.values()), addresses
    assert len([h for _address, h in in_pool(state, NEW_NET) if h.startswith("vxlan-tunnel-addr-")]) == 3
    # every node: a new VTEP address, routes to the others' new blocks over VXLAN, none to the old blocks
    new_blocks = {b["cidr"]: b["affinity"][len("host:") :] for b in state["blocks"]}
    old_blocks = [b["cidr"] for b in old["blocks"] if ipaddress.ip_network(b["cidr"]).subnet_of(OLD_NET)]
    for node in NODES:
        addr, neigh, routes = vxlan_state(stack)[node]
        assert " 172.18.0." in addr, addr
        for cidr, owner in new_blocks.items():
            if owner != node:
                assert any(r.startswith(cidr) and "dev vxlan.calico" in r for r in routes), (node, cidr, routes)
        assert not [r for r in routes for b in old_blocks if r.startswith(b)], (node, routes)
        for other in set(NODES) - {node}:
            assert naming.vxlan_mac(other) in neigh
    final = next(iter(day2.task_results(result, "Say what is left to do").values()))["msg"]
    assert final.startswith("Pool old-pool holds no address any more and left the IPAM state: now drop it"), final


def test_second_run_changes_nothing(stack, day2):
    before = stack.state_file.read_bytes()
    addresses = workload_addresses(stack)
    result = stack.play(PLAYBOOK)
    assert stack.state_file.read_bytes() == before
    assert workload_addresses(stack) == addresses
    for node in NODES:
        assert result["stats"][node]["changed"] == 0, result["stats"]
    # nothing left to move: the plan, then one round that converges and verifies every node
    assert judged(day2, result, "prepare").startswith("verified after prepare: ")
    for name in ("n1", "n2", "n3", "finish"):
        assert judged(day2, result, name) is None


def test_audit_with_the_old_pool_dropped_is_clean(stack, day2):
    stack.pools = [NEW]
    stack.inventory()
    result = stack.play(ROOT / "playbooks" / "audit.yml", check=False)
    msg = next(iter(day2.task_results(result, "List every problem with its fix").values()))["msg"]
    assert isinstance(msg, str) and msg.startswith("no problem"), msg
    assert result["rc"] == 0


def test_verify_playbook_proves_the_migrated_network_and_names_a_failure(stack, day2, monkeypatch):
    """playbooks/verify.yml - role calico_verify's two entry points, as each round above uses the whole
    role: on the migrated network every check passes and the report is written; a workload that does not
    answer fails the run, which names it."""
    monkeypatch.setenv("L3LAB_PREFIX", "l3tmig-nolab-")  # no lab router here: never the machine's lab capture
    verify, report = ROOT / "playbooks" / "verify.yml", stack.work / "verify.json"
    result = stack.play(verify, "-e", f"verify_report_file={report}")
    summary = next(iter(day2.task_results(result, "Show the summary").values()))["msg"]
    assert re.fullmatch(r"\d+ checks, 0 failed; BGP sessions 6/6 Established; pings 20/20; TCP 20/20", summary), summary
    data = json.loads(report.read_text())
    assert data["findings"] == [] and data["summary"]["pings"] == 20 and data["summary"]["tcp"] == 20 and data["capture"] is None
    ns = f"{stack.netns_prefix('n3')}default.api-3"
    subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1"], check=True, timeout=30)
    try:
        result = stack.play(verify, check=False)
    finally:
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=0"], check=True, timeout=30)
    assert result["rc"] != 0
    failed = day2.failures(result)
    assert len(failed) == 1 and re.search(r"Judge the network: \d+ of \d+ checks failed:\n", failed[0]), failed
    assert "ping default.api-3" in failed[0], failed[0]


def test_a_batch_that_is_not_a_positive_integer_is_refused_before_anything(stack):
    before = stack.state_file.read_bytes()
    stack.pools = [dict(NEW, disabled=True), THIRD]
    stack.inventory({"calico_migrate_pool": NEW["name"]})
    for bad, shown in (("calico_migrate_batch=0", "calico_migrate_batch=0"), ('{"calico_migrate_batch": true}', "calico_migrate_batch=True")):
        proc = stack.play(PLAYBOOK, "-e", bad, json_output=False, check=False)
        assert proc.returncode != 0
        assert "calico_nodes: calico_migrate_pool=new-pool, calico_migrate_hosts=" in proc.stdout, proc.stdout[-3000:]
        assert f", {shown}: name the old pool" in proc.stdout, proc.stdout[-3000:]
        assert "Move out of the old pool" not in proc.stdout
    assert stack.state_file.read_bytes() == before


def test_migrate_two_hosts_per_round(stack, day2):
    """A second migration (new-pool -> third-pool) with -e calico_migrate_batch=2: prepare, n1 and n2
    together, n3, finish - each verified by the ping matrix; the batch round moves both hosts' addresses."""
    stack.pools = [dict(NEW, disabled=True), THIRD]
    stack.inventory({"calico_migrate_pool": NEW["name"]})
    result = stack.play(PLAYBOOK, "-e", "calico_migrate_batch=2")
    plan = next(iter(day2.task_results(result, "Show the plan").values()))["msg"]
    assert plan.startswith("pool migration out of new-pool (172.18.0.0/24) into third-pool, up to 2 hosts per round: n1, n2, n3"), plan
    for name in ("prepare", "n1 .. n2 (2 hosts)", "n3", "finish"):
        msg = judged(day2, result, name)
        assert msg and msg.startswith(f"verified after {name}: ") and "pings 20/20" in msg, (name, msg)
    for name in ("n1", "n2", "n2 .. n3 (2 hosts)"):
        assert judged(day2, result, name) is None
    moved = next(iter(day2.task_results(result, "Show what moved (n1 .. n2 (2 hosts))").values()))["msg"]
    assert "n1: default.web-1 172.18." in moved and "n2: default.web-2 172.18." in moved and "n3:" not in moved, moved
    state = stack.state()
    assert in_pool(state, NEW_NET) == [] and list(state["pools"]) == ["third-pool"]
    addresses = workload_addresses(stack)
    assert len(addresses) == 5
    assert all(len(a) == 1 and ipaddress.ip_address(a[0]) in THIRD_NET for a in addresses.values()), addresses
    assert len([h for _address, h in in_pool(state, THIRD_NET) if h.startswith("vxlan-tunnel-addr-")]) == 3
