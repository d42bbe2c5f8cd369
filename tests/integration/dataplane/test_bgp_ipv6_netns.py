# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""IPv6 BGP with real BIRD 2 in real namespaces (issue 17): bird.conf printed by module_utils/bird_conf.py
(what l3.calico.bird writes) for every node of a dual-stack underlay, BIRD started from it in each host.

The topology of conftest - a, b on 192.168.100.0/24, c on 192.168.200.0/24, behind a router - gets the
IPv6 underlay of test_dualstack_netns beside it (a fd00:100::100, b fd00:100::101, c fd00:200::101, the
router forwarding both families). Every name starts with ``l3tb6-<run>-``; the BIRDs are stopped by PID.
Proven: the IPv6 sessions between the nodes' IPv6 addresses are Established (TCP-MD5 on); every node's
IPv6 blocks are learned into the other nodes' kernels as ``proto bird`` (c across the router: ``gateway
recursive``), its own ones blackholed; the IPv4 sessions and routes beside them; a node without an IPv6
address has no IPv6 session and no IPv6 route; l3.calico.bird_facts reports both families.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.l3.calico.plugins.module_utils import bird_conf
from ansible_collections.l3.calico.plugins.module_utils.bird_status import parse_protocols

from .conftest import GW6, HOSTS, PYTHONPATH, ROOT, V6, Topology, _missing, sh

pytestmark = [pytest.mark.netns, pytest.mark.bird]

PREFIX = "l3tb6-"
BLOCKS = {"a": "172.17.0.0/26", "b": "172.17.0.64/26", "c": "172.17.0.128/26"}
BLOCKS6 = {"a": "fd00:10::/122", "b": "fd00:10::40/122", "c": "fd00:10::80/122"}
POOLS = {"default": {"cidr": "172.17.0.0/16"}}
POOLS6 = {"v6": {"cidr": "fd00:10::/48"}, "vx6": {"cidr": "fd00:11::/48", "vxlan_mode": "Always"}}
SETTINGS = {"mesh_password": "mesh-6-key"}


def routing(ipv6_nodes=("a", "b", "c")) -> dict:
    """The fleet's routing view: every node dual stack but those left out of ``ipv6_nodes``; a also holds a
    block of the VXLAN IPv6 pool (announced, but never BIRD's to program)."""
    nodes = {}
    for key, (address, plen, _bridge, _gw) in HOSTS.items():
        node = {"ip": address, "network": f"{address.rsplit('.', 1)[0]}.0/{plen}", "blocks": [{"cidr": BLOCKS[key], "pool": "default"}]}
        if key in ipv6_nodes:
            node.update(ipv6=V6[key], network_ipv6=V6[key].rsplit("::", 1)[0] + "::/64", blocks_ipv6=[{"cidr": BLOCKS6[key], "pool": "v6"}])
        nodes[key] = node
    if "a" in ipv6_nodes:
        nodes["a"]["blocks_ipv6"].append({"cidr": "fd00:11::/122", "pool": "vx6"})
    return nodes


class Birds:
    """One BIRD per host namespace, from the bird.conf l3.calico.bird would write there."""

    def __init__(self, topo: Topology, tmp_path: Path) -> None:
        self.topo, self.tmp, self.pids = topo, tmp_path, []

    def socket(self, key: str) -> str:
        return str(self.tmp / f"{key}.ctl")

    def start(self, nodes: dict) -> dict:
        configs = {}
        for key in HOSTS:
            secrets_file = self.tmp / f"{key}-secrets.conf"
            bgp = {"node": key, "nodes": nodes, "pools": POOLS, "pools_ipv6": POOLS6, "settings": SETTINGS, "layout": {"kernel_scan_time": 1}}
            config, secrets = bird_conf.from_bgp(bgp, str(self.tmp / f"{key}.conf"), str(secrets_file))
            (self.tmp / f"{key}.conf").write_text(config)
            secrets_file.write_text(secrets or "")
            configs[key] = config
            pid = self.tmp / f"{key}.pid"
            self.topo.nsexec(self.topo.host(key), "bird", "-c", str(self.tmp / f"{key}.conf"), "-s", self.socket(key), "-P", str(pid))
            self.pids.append(pid)
        return configs

    def stop(self) -> None:
        for pid in self.pids:  # ours, by PID
            try:
                os.kill(int(pid.read_text()), signal.SIGTERM)
            except (OSError, ValueError):
                pass

    def protocols(self, key: str) -> dict:
        out = sh("birdc", "-r", "-s", self.socket(key), "show", "protocols", "all").stdout
        return {p["name"]: p for p in parse_protocols(out)}

    def facts(self, key: str) -> dict:
        """l3.calico.bird_facts itself, run inside host ``key``."""
        args = self.tmp / f"{key}-facts.json"
        args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"socket": self.socket(key), "birdc": shutil.which("birdc")}}))
        module = ROOT / "plugins" / "modules" / "bird_facts.py"
        proc = self.topo.nsexec(self.topo.host(key), "env", f"PYTHONPATH={PYTHONPATH}", sys.executable, str(module), str(args))
        return json.loads(proc.stdout)["ansible_facts"]["calico_bird"]


def kernel6(topo: Topology, key: str) -> dict:
    """The IPv6 routes BIRD installed in host ``key``: destination -> the route."""
    return {r["dst"]: r for r in topo.ip_json(topo.host(key), "-6", "route", "show", "proto", "bird")}


def kernel4(topo: Topology, key: str) -> dict:
    return {r["dst"]: r for r in topo.ip_json(topo.host(key), "-4", "route", "show", "proto", "bird")}


def wait(condition, timeout: float = 40):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def wait_for(fetch, ok, timeout: float = 40):
    """``fetch()`` once ``ok`` holds of it (the last value when the time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


@pytest.fixture
def birds(tmp_path):
    missing = _missing()
    if missing:
        pytest.skip(missing)
    if not shutil.which("bird") or not shutil.which("birdc"):
        pytest.skip("needs BIRD 2 (bird, birdc: Debian package bird2)")
    topology = Topology(PREFIX)
    running = Birds(topology, tmp_path)
    try:
        topology.build()
        topology.add_ipv6()
        yield running
    finally:
        running.stop()
        topology.cleanup()


def established(birds: Birds, key: str, names) -> bool:
    protocols = birds.protocols(key)
    return all(protocols.get(name, {}).get("established") for name in names)


BORROWED6 = "fd00:10::5"  # inside a's block, held by a workload on c (borrowed): its /128 on c's cali veth


def test_ipv6_sessions_established_and_blocks_learned_into_the_kernel(birds):
    topo = birds.topo
    # The workload's host side on c, as l3.calico.workloads leaves it: <address>/128 dev cali... (learned by kernel6)
    topo.ip(topo.host("c"), "link add cali6b0rr0w type veth peer name l3tb6-wl", "link set cali6b0rr0w up", "link set l3tb6-wl up")
    topo.ip(topo.host("c"), f"route add {BORROWED6}/128 dev cali6b0rr0w")
    configs = birds.start(routing())
    mesh6 = {key: [f"Mesh_{V6[o].replace(':', '_')}" for o in HOSTS if o != key] for key in HOSTS}
    mesh4 = {key: [f"Mesh_{HOSTS[o][0].replace('.', '_')}" for o in HOSTS if o != key] for key in HOSTS}
    for key in HOSTS:
        assert f"protocol bgp {mesh6[key][0]} from calico_peer6 {{" in configs[key]
        assert wait(lambda key=key: established(birds, key, mesh6[key] + mesh4[key])), (key, birds.protocols(key))
    for key in HOSTS:
        protocols = birds.protocols(key)
        for name in mesh6[key]:
            assert protocols[name]["neighbor_address"] in V6.values() and "ipv6" in protocols[name]["channels"], protocols[name]
        others6 = {BLOCKS6[o] for o in HOSTS if o != key}
        routes = wait_for(lambda key=key: kernel6(topo, key), lambda r, others6=others6: others6 <= set(r))
        assert others6 <= set(routes), (key, routes)
        for other in HOSTS:
            if other == key:
                continue
            route = routes[BLOCKS6[other]]
            # Same subnet: via the owner; across the router: via the router (the owner's address resolved recursively).
            same = V6[other].rsplit("::", 1)[0] == V6[key].rsplit("::", 1)[0]
            assert route.get("gateway") == (V6[other] if same else GW6[key]) and route["dev"] == "up0", (key, other, route)
        own = routes.get(BLOCKS6[key])
        assert own is not None and own.get("type") == "blackhole", (key, routes)
        # The VXLAN IPv6 pool's block is announced, never programmed by BIRD (the data plane's, vxlan-v6.calico).
        if key != "a":
            assert not any(d.startswith("fd00:11:") for d in routes), (key, routes)
        # IPv4 beside it, unchanged.
        others4 = {BLOCKS[o] for o in HOSTS if o != key}
        routes4 = wait_for(lambda key=key: kernel4(topo, key), lambda r, others4=others4: others4 <= set(r))
        assert others4 <= set(routes4), (key, routes4)
    # a's blocks are announced as aggregates (the VXLAN one too); the borrowed /128 c hosts inside a's block
    # reaches a and b through c (longer than a's blackhole), and c keeps its own route on the veth.
    learned_b = sh("birdc", "-r", "-s", birds.socket("b"), "show", "route", "table", "master6", "protocol", mesh6["b"][0]).stdout
    assert BLOCKS6["a"] in learned_b and "fd00:11::/122" in learned_b, learned_b
    for key in ("a", "b"):
        routes = wait_for(lambda key=key: kernel6(topo, key), lambda r: BORROWED6 in r)
        assert routes.get(BORROWED6, {}).get("gateway") == GW6[key], (key, routes)
    assert BORROWED6 not in kernel6(topo, "c")


def test_a_node_without_an_ipv6_address_gets_no_ipv6_session_and_no_ipv6_route(birds):
    topo = birds.topo
    configs = birds.start(routing(ipv6_nodes=("a", "b")))
    assert "calico_peer6" not in configs["c"] and "ipv6" not in configs["c"].split("protocol kernel", 1)[1]
    assert "fd00:200::101" not in configs["a"] and "fd00:200::101" not in configs["b"]
    assert wait(lambda: established(birds, "a", ["Mesh_fd00_100__101", "Mesh_192_168_100_101", "Mesh_192_168_200_101"]))
    assert wait(lambda: established(birds, "c", ["Mesh_192_168_100_100", "Mesh_192_168_100_101"]))
    assert wait(lambda: BLOCKS6["b"] in kernel6(topo, "a")), kernel6(topo, "a")
    assert wait(lambda: BLOCKS["a"] in kernel4(topo, "c")), kernel4(topo, "c")
    time.sleep(2)  # a full kernel scan later still nothing IPv6 on c
    assert kernel6(topo, "c") == {}
    assert all(name.count("_") == 4 for name in birds.protocols("c") if name.startswith("Mesh_"))  # IPv4 sessions only


def test_bird_facts_reports_both_families(birds):
    birds.start(routing())
    assert wait(lambda: established(birds, "a", ["Mesh_fd00_100__101", "Mesh_fd00_200__101", "Mesh_192_168_100_101", "Mesh_192_168_200_101"]))
    facts = wait_for(lambda: birds.facts("a"), lambda f: {BLOCKS6["b"], BLOCKS6["c"]} <= set(f["ipv6"]["routes"]))
    assert {BLOCKS6["b"], BLOCKS6["c"]} <= set(facts["ipv6"]["routes"]), facts
    assert facts["ipv6"]["established"] == ["Mesh_fd00_100__101", "Mesh_fd00_200__101"] and facts["ipv6"]["not_established"] == []
    assert facts["ipv4"]["established"] == ["Mesh_192_168_100_101", "Mesh_192_168_200_101"]
    assert set(facts["established"]) == set(facts["ipv4"]["established"]) | set(facts["ipv6"]["established"])
    route = facts["ipv6"]["routes"][BLOCKS6["b"]]
    assert route[0]["protocol"] == "Mesh_fd00_100__101" and route[0]["via"] == ["fd00:100::101"], route
    assert facts["ipv6"]["routes"][BLOCKS6["c"]][0]["via"] == ["fd00:100::1"]  # resolved through the router
    assert set(facts["ipv4"]["routes"]) >= {BLOCKS["b"], BLOCKS["c"]} and not any(":" in d for d in facts["ipv4"]["routes"])
