# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""A fabric of nodes in network namespaces running the whole stack (IPAM, workloads, real BIRD).

Reuses the BGP tests' fabric (tests.support.bgp_fabric: a router namespace with a bridge, node
namespaces, a Python wrapper entering each node's namespace, BIRD stopped by PID) under a prefix of
the suite's own (``l3tday2-`` for the day-2 tests, ``l3tmig-`` for the pool migration), so suites
running at the same time never share a namespace, a process or a file. The IPAM is real: a state
file in the test's directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import types
from pathlib import Path

import pytest
import yaml

from tests.support import bgp_fabric as BGP
from tests.support.bgp_fabric import ROOT

SITE = """\
- name: IPAM, workloads and BGP of the test nodes
  hosts: calico_nodes
  gather_facts: false
  roles:
    - role: l3.calico.calico_ipam
%s    - role: l3.calico.calico_workloads
    - role: l3.calico.calico_bgp
"""
# With VXLAN pools the node role runs too (this kernel has the vxlan driver; IPIP it has not).
NODE_ROLE = "    - role: l3.calico.calico_node\n"


class Stack:
    """A BGP fabric plus the inventory of a real IPAM and workloads per node."""

    def __init__(self, fabric, pools: list, workloads: dict, node_role: bool = False):
        self.fabric = fabric
        self.work: Path = fabric.work
        self.state_file = self.work / "calico_ipam.json"
        self.pools = pools
        self.workloads = workloads
        self.node_role = node_role
        (self.work / "site.yml").write_text(SITE % (NODE_ROLE if node_role else ""))

    def netns_prefix(self, node: str) -> str:
        return f"{self.fabric.prefix}{self.fabric.tag}-{node}-"

    def inventory(self, group_vars: dict | None = None, raw_group_vars: str = "") -> Path:
        hosts = {}
        for name, node in self.fabric.nodes.items():
            hosts[name] = {
                "ansible_connection": "local",
                "ansible_python_interpreter": node["python"],
                "calico_bgp_supervisor": str(self.work / "calico-bird-service"),
                **{k: v for k, v in node.items() if k.startswith("calico_bgp_")},
                "calico_node_ip": node["address"],
                "calico_workloads": self.workloads.get(name, []),
                "calico_workloads_netns_prefix": self.netns_prefix(name),
                "calico_workloads_state_file": str(self.work / name / "workloads.json"),
                # the node role's files stay in the test's directory; packages are not its business
                "calico_node_install_packages": False,
                "calico_node_sysctl_file": str(self.work / name / "sysctl.d" / "60-l3-calico.conf"),
                "calico_node_firewall_state_file": str(self.work / name / "firewall.json"),
            }
        inventory = {
            "all": {
                "children": {
                    "calico_nodes": {
                        "hosts": hosts,
                        "vars": {
                            "calico_pools": self.pools,
                            "calico_ipam_state_file": str(self.state_file),
                            **BGP.FAST,
                            **(group_vars or {}),
                        },
                    }
                }
            }
        }
        path = self.work / "inventory"
        path.mkdir(exist_ok=True)
        (path / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
        (path / "group_vars").mkdir(exist_ok=True)
        (path / "group_vars" / "calico_nodes.yml").write_text("---\n" + raw_group_vars)
        return path / "hosts.yml"

    def play(self, playbook: str | Path, *args: str, json_output: bool = True, check: bool = True):
        """ansible-playbook on the inventory; the JSON callback's result (or the text output)."""
        env = self.fabric._env()
        if not json_output:
            env.pop("ANSIBLE_STDOUT_CALLBACK", None)
            env["ANSIBLE_STDOUT_CALLBACK"] = "default"
            env["ANSIBLE_NOCOLOR"] = "1"
        proc = subprocess.run(
            ["ansible-playbook", "-i", str(self.work / "inventory" / "hosts.yml"), str(playbook), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=600,
            check=False,
        )
        if not json_output:
            if check and proc.returncode != 0:
                raise AssertionError(f"rc={proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
            return proc
        result = BGP.json_result(proc)
        if check and proc.returncode != 0:
            raise AssertionError(f"rc={proc.returncode}: {BGP.failures(result)}\n{proc.stderr[-2000:]}")
        return result

    def site(self, *args: str, **kw):
        return self.play(self.work / "site.yml", *args, **kw)

    def state(self) -> dict:
        return json.loads(self.state_file.read_text())

    def netns(self, node: str) -> list[str]:
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True, timeout=30).stdout
        return sorted(line.split()[0] for line in names.splitlines() if line.startswith(self.netns_prefix(node)))

    def close(self) -> None:
        for node in self.fabric.nodes:
            for name in self.netns(node):
                subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)


def stack_factory(request, prefix: str):
    """The body of a suite's module-scoped ``stack_factory`` fixture: make(tag, nodes, pools, workloads)
    builds a Stack of namespaces named ``<prefix><tag>-...``; all of it goes when the module ends."""
    reason = BGP.missing()
    if reason:
        pytest.skip(f"needs {reason}")
    stacks: list[Stack] = []
    fabrics: list = []
    work = Path(tempfile.mkdtemp(prefix=prefix))
    work.chmod(0o755)  # BIRD runs as user bird and reads its config below

    def make(tag: str, nodes: dict, pools: list, workloads: dict, node_role: bool = False) -> Stack:
        fabric = BGP.Fabric(tag, work / tag, prefix)
        fabrics.append(fabric)  # cleaned up even when start() fails half-way
        fabric.start()
        stack = Stack(fabric, pools, workloads, node_role)
        stacks.append(stack)
        fabric.add_subnet("a", "192.168.100.1/24")
        for name, address in nodes.items():
            node = fabric.add_node(name, address, "a")
            # Enter only the node's network namespace (not a new mount namespace as `ip netns exec`
            # makes): the workload namespaces the workloads module mounts under /run/netns must
            # outlive the module's process, as on a real host.
            Path(node["python"]).write_text(f'#!/bin/sh\nexec /usr/bin/nsenter --net=/run/netns/{node["ns"]} /usr/bin/python3 "$@"\n')
        return stack

    def cleanup():
        if os.environ.get("L3TDAY2_KEEP"):
            print(f"L3TDAY2_KEEP: kept {work} and the namespaces")
            return
        for stack in stacks:
            stack.close()
        for fabric in fabrics:
            fabric.close()
        shutil.rmtree(work, ignore_errors=True)

    request.addfinalizer(cleanup)
    return make


def helpers():
    """What the day-2 tests use of the fabric's helpers (the ``day2`` fixture)."""
    return types.SimpleNamespace(wait_for=BGP.wait_for, failures=BGP.failures, task_results=BGP.task_results)
