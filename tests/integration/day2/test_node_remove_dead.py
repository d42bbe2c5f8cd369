# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""playbooks/node-remove.yml when the leaving node is already dead (unreachable, BIRD gone).

The usual case of autoscaling and hardware loss: the node cannot be contacted, so its part is
skipped with a warning, and everything else happens: the IPAM releases it, the other nodes drop
it from bird.conf, the audit (with the node out of the inventory) is clean.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.bird]

ROOT = Path(__file__).resolve().parents[3]
NODES = {"d1": "192.168.100.41/24", "d2": "192.168.100.42/24", "d3": "192.168.100.43/24"}
# BGP-routed, no encapsulation: node-remove.yml runs the node role, and this kernel has no ipip driver.
POOLS = [{"name": "default-ipv4-ippool", "cidr": "172.17.0.0/16", "block_size": 26}]
WORKLOADS = {"d1": [{"name": "web-1"}], "d2": [{"name": "web-2"}], "d3": [{"name": "web-3"}]}
# TEST-NET-1: nothing answers there; a short timeout keeps the run fast.
DEAD = {"ansible_connection": "ssh", "ansible_host": "192.0.2.1", "ansible_ssh_common_args": "-o ConnectTimeout=2 -o StrictHostKeyChecking=no"}


def test_dead_node_is_removed(stack_factory, day2):
    stack = stack_factory("nd", NODES, POOLS, WORKLOADS)
    stack.inventory()
    stack.site()
    day2.wait_for(lambda: all(stack.fabric.established(n) for n in NODES), 30, what="every session Established")
    d3 = stack.fabric.nodes["d3"]
    # d3 dies: its BIRD stops (by its supervisor's pid), and it cannot be reached any more.
    subprocess.run([str(stack.work / "calico-bird-service"), "stop", d3["calico_bgp_supervisor_pid_file"]], check=True, timeout=30)
    d3_block = next(b["cidr"] for b in stack.state()["blocks"] if b["affinity"] == "host:d3")
    hosts = stack.inventory()
    text = hosts.read_text()
    import yaml

    inventory = yaml.safe_load(text)
    inventory["all"]["children"]["calico_nodes"]["hosts"]["d3"].update(DEAD)
    hosts.write_text(yaml.safe_dump(inventory, sort_keys=False))

    result = stack.play(ROOT / "playbooks" / "node-remove.yml", "-e", "calico_remove_node=d3")
    removed = day2.task_results(result, "Converge the workloads of this host (namespaces, veths, /32 routes, proxy ARP)")
    assert removed["d3"].get("unreachable"), removed
    state = stack.state()
    assert not [b for b in state["blocks"] if b["affinity"] == "host:d3"]
    assert not [a for a in state["affinities"] if a["node"] == "d3"]
    assert d3_block not in {b["cidr"] for b in state["blocks"]}
    for node in ("d1", "d2"):
        conf = Path(stack.fabric.nodes[node]["calico_bgp_config_file"]).read_text()
        assert "192.168.100.43" not in conf
        day2.wait_for(lambda n=node: stack.fabric.established(n), 30, what=f"{node} Established")
        assert not [r for r in stack.fabric.routes(node) if r.startswith(d3_block)]

    removed_node = stack.fabric.nodes.pop("d3")
    try:
        stack.inventory()
        audit = stack.play(ROOT / "playbooks" / "audit.yml", check=False)
        msg = next(iter(day2.task_results(audit, "List every problem with its fix").values()))["msg"]
        assert isinstance(msg, str) and msg.startswith("no problem"), msg
    finally:
        stack.fabric.nodes["d3"] = removed_node
