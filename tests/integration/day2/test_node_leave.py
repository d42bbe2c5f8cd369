# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Role calico_node ``tasks_from: remove`` on a real host namespace, both firewall backends.

A host namespace converged by ``l3.calico.node`` (module_utils, as the role does) from an IPAM
result with an IPIP pool (a stand-in ``tunl0``: this kernel has no ipip driver), a VXLAN
``Always`` pool and a VXLAN ``CrossSubnet`` pool (a direct route, protocol 80, on the underlay):
``tunl0`` with its address, ``vxlan.calico`` with a peer's neighbour/FDB entry/route, the
sysctl file, the firewall objects of the backend under test. Foreign things sit beside them: an
nftables table, an iptables-legacy chain jumped from INPUT, a sysctl file, a link, an address on
``tunl0``, a protocol-80 route outside the pools.

The removal runs through ansible-playbook (role entry point ``remove``, module ``state: absent``):
``--check --diff`` shows what goes and changes nothing; the run removes exactly what is ours; a
second run changes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from ansible_collections.l3.calico.plugins.module_utils import firewall, naming, sysctls
from tests.support.firewall_backends import firewall_backends

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[3]
CALLBACKS = ROOT / "tests" / "integration" / "roles" / "calico_bgp" / "callback_plugins"
HOST = "l3tleave-h"
POOLS = {
    "ipip": {"cidr": "172.19.0.0/16", "block_size": 26, "ipip_mode": "CrossSubnet", "vxlan_mode": "Never", "nat_outgoing": True, "disabled": False},
    "always": {"cidr": "172.17.0.0/16", "block_size": 26, "ipip_mode": "Never", "vxlan_mode": "Always", "nat_outgoing": False, "disabled": False},
    "cross": {"cidr": "172.18.0.0/16", "block_size": 26, "ipip_mode": "Never", "vxlan_mode": "CrossSubnet", "nat_outgoing": False, "disabled": False},
}


def _node(ip, blocks, ipip, vxlan, workloads=()):
    return {
        "ip": ip,
        "network": "10.251.0.0/24",
        "blocks": [{"cidr": c, "pool": p} for c, p in blocks],
        "workloads": list(workloads),
        "borrowed": [],
        "tunnels": {"ipip": ipip, "vxlan": vxlan},
    }


NODES = {
    "h": _node(
        "10.251.0.1",
        [("172.19.0.0/26", "ipip"), ("172.17.0.0/26", "always"), ("172.18.0.0/26", "cross")],
        "172.19.0.0",
        "172.17.0.0",
        [{"id": "default.w", "ip": "172.19.0.1"}],
    ),
    "p": _node("10.251.0.2", [("172.17.1.0/26", "always"), ("172.18.1.0/26", "cross")], None, "172.17.1.0"),
}
FOREIGN_CHAIN = "L3TLEAVE-FOREIGN"
FOREIGN_TABLE = "l3tleave_foreign"


def sh(*argv, check=True, stdin=None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60, input=stdin)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: rc={proc.returncode} {proc.stderr.strip()}")
    return proc.stdout


def ns(*argv, check=True) -> str:
    return sh("ip", "netns", "exec", HOST, *argv, check=check)


def links() -> dict:
    return {link["ifname"]: link for link in json.loads(ns("ip", "-json", "-details", "addr", "show"))}


@pytest.fixture
def host():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    if shutil.which("ansible-playbook") is None and not (ROOT / ".venv" / "bin" / "ansible-playbook").exists():
        pytest.skip("needs ansible-playbook")
    work = Path(tempfile.mkdtemp(prefix="l3tleave-"))
    try:
        sh("ip", "netns", "add", HOST)
        ns("ip", "link", "set", "lo", "up")
        ns("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer")
        for dev in ("eth0", "eth0-peer"):
            ns("ip", "link", "set", dev, "up")
        ns("ip", "addr", "add", "10.251.0.1/24", "dev", "eth0")
        # The kernel here has no ipip driver: a veth end named tunl0 stands in for the IPIP device.
        ns("ip", "link", "add", "tunl0", "type", "veth", "peer", "name", "tunl0-peer")
        python = work / "python"
        python.write_text(f'#!/bin/sh\nexec /usr/bin/nsenter --net=/run/netns/{HOST} {sys.executable} "$@"\n')
        python.chmod(0o755)
        yield work
    finally:
        subprocess.run(["ip", "netns", "del", HOST], check=False, timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def converge(work: Path, backend: str) -> None:
    code = (
        "import json, sys\n"
        "from ansible_collections.l3.calico.plugins.module_utils import node\n"
        "a = json.loads(sys.argv[1])\n"
        "node.converge(lambda argv: (0, '', ''), packages=[], node='h', nodes=a['nodes'], pools=a['pools'],\n"
        "              workloads=a['nodes']['h']['workloads'],\n"
        "              sysctl_options=node.sysctls.Options({'net.ipv4.ip_forward': 1}, a['sysctl']),\n"
        "              firewall_options=node.firewall.Options(backend=a['backend'], state_file=a['fw']),\n"
        "              check_mode=False)\n"
    )
    args = json.dumps(
        {"nodes": NODES, "pools": POOLS, "backend": backend, "sysctl": str(work / "sysctl.d" / "60-l3-calico.conf"), "fw": str(work / "firewall.json")}
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / ".collections"))
    proc = subprocess.run([str(work / "python"), "-c", code, args], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert proc.returncode == 0, proc.stderr


def remove(work: Path, *args: str) -> dict:
    """The role's remove entry point through ansible-playbook; the JSON callback's result."""
    playbook = work / "remove.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Remove",
                    "hosts": "all",
                    "gather_facts": False,
                    "tasks": [{"name": "Remove the node", "ansible.builtin.include_role": {"name": "l3.calico.calico_node", "tasks_from": "remove"}}],
                }
            ]
        )
    )
    inventory = work / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "h": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": str(work / "python"),
                            "calico_node_sysctl_file": str(work / "sysctl.d" / "60-l3-calico.conf"),
                            "calico_node_firewall_state_file": str(work / "firewall.json"),
                            "calico_ipam_result": {"nodes": NODES, "pools": POOLS},
                        }
                    }
                }
            }
        )
    )
    env = dict(
        os.environ,
        PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="test_json",
        ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
        ANSIBLE_HOME=str(work / ".ansible"),
        ANSIBLE_LOCAL_TEMP=str(work / ".ansible-tmp"),
    )
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(playbook), *args], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT, check=False
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
    result = json.loads(proc.stdout)
    for play in result["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].endswith("Remove the node's tunnels, sysctl file and firewall rules"):
                return task["hosts"]["h"]
    raise AssertionError(f"the removal task did not run: {proc.stdout[-2000:]}")


def snapshot(work: Path) -> dict:
    return {
        "addr": ns("ip", "-4", "-details", "addr", "show"),
        "link": ns("ip", "-details", "link", "show"),
        "route": ns("ip", "route", "show", "table", "main"),
        "neigh": ns("ip", "neigh", "show"),
        "nft": ns("nft", "list", "ruleset", check=False),
        "ipt": [line for t in ("filter", "nat", "mangle") for line in ns("iptables-legacy-save", "-t", t, check=False).splitlines() if not line.startswith("#")]
        if shutil.which("iptables-legacy-save")
        else [],
        "files": sorted(str(p.relative_to(work)) for p in work.rglob("*") if ".ansible" not in str(p) and p.name not in ("hosts.yml", "remove.yml")),
    }


@pytest.mark.parametrize("backend", firewall_backends())
def test_remove_takes_only_what_is_ours(host, backend):
    work = host
    converge(work, backend)
    sysctl_file = work / "sysctl.d" / "60-l3-calico.conf"
    # converged: everything of ours is there
    assert sysctl_file.read_text().startswith(sysctls.HEADER)
    assert naming.VXLAN_DEVICE in links()
    assert [a["local"] for a in links()["tunl0"]["addr_info"] if a["family"] == "inet"] == ["172.19.0.0"]
    assert "172.18.1.0/26 via 10.251.0.2 dev eth0 proto 80" in ns("ip", "route", "show")
    if backend == "nftables":
        assert ns("nft", "list", "table", "ip", firewall.TABLE, check=False)
    else:
        assert "-A INPUT -j L3CALICO-HOST-PROTECT" in ns("iptables-legacy-save", "-t", "filter")
    # foreign things beside them
    (work / "sysctl.d" / "50-l3tleave-foreign.conf").write_text("net.ipv4.ip_forward = 1\n")
    ns("ip", "link", "add", "l3tleave-f0", "type", "veth", "peer", "name", "l3tleave-f1")
    ns("ip", "addr", "add", "10.66.0.1/32", "dev", "tunl0")
    ns("ip", "route", "add", "10.77.0.0/16", "via", "10.251.0.9", "dev", "eth0", "proto", "80")
    if shutil.which("nft"):
        ns("nft", "add", "table", "ip", FOREIGN_TABLE)
    if firewall.iptables_usable()[0]:
        ns("iptables-legacy", "-N", FOREIGN_CHAIN)
        ns("iptables-legacy", "-A", "INPUT", "-j", FOREIGN_CHAIN)

    # --check --diff: the plan, nothing changes
    before = snapshot(work)
    planned = remove(work, "--check", "--diff")
    assert planned["changed"] is True
    text = "\n".join(planned["changes"])
    assert "tunnels: vxlan.calico: removed" in text and "tunnels: tunl0: address 172.19.0.0/32 removed" in text
    assert "sysctls: file removed" in text
    assert ("nftables table ip l3calico removed" if backend == "nftables" else "chain L3CALICO-HOST-PROTECT removed") in text
    assert snapshot(work) == before

    # the removal
    done = remove(work)
    assert done["changed"] is True and done["changes"] == planned["changes"]
    now = links()
    assert naming.VXLAN_DEVICE not in now
    # a foreign address is left on tunl0: the device stays up for it, only our alias goes
    assert "tunl0" in now and "UP" in now["tunl0"]["flags"] and not now["tunl0"].get("ifalias")
    assert [a["local"] for a in now["tunl0"]["addr_info"] if a["family"] == "inet"] == ["10.66.0.1"]
    routes = ns("ip", "route", "show")
    assert "proto 80" in routes and "10.77.0.0/16" in routes  # outside the pools: not ours
    assert "172.18.1.0/26" not in routes and "172.17.1.0/26" not in routes
    assert not sysctl_file.exists() and (work / "sysctl.d" / "50-l3tleave-foreign.conf").exists()
    assert not (work / "firewall.json").exists()
    assert ns("sysctl", "-n", "net.ipv4.ip_forward").strip() == "1"  # run-time values stay
    assert "l3tleave-f0" in now
    if shutil.which("nft"):
        assert ns("nft", "list", "table", "ip", firewall.TABLE, check=False) == ""
        assert ns("nft", "list", "table", "ip", FOREIGN_TABLE, check=False)
    if firewall.iptables_usable()[0]:
        saved = "".join(ns("iptables-legacy-save", "-t", t, check=False) for t in ("filter", "nat", "mangle"))
        assert "L3CALICO" not in saved
        assert f"-A INPUT -j {FOREIGN_CHAIN}" in saved

    # a second run: nothing left to do
    after = snapshot(work)
    again = remove(work)
    assert again["changed"] is False and again["changes"] == []
    assert snapshot(work) == after
