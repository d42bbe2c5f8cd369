# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Three nodes in one subnet, full mesh, real BIRD started by the role.

The tests of this module share one topology and run in file order: converge, routes,
idempotence, check mode, a filter change, a refused value, a rogue peer, an MD5 mismatch.
"""

from __future__ import annotations

import datetime
import os
import time

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.bird]

POOLS = {
    "default": {"cidr": "172.17.0.0/16", "ipip_mode": "CrossSubnet"},
    "blue-vxlan": {"cidr": "172.18.0.0/16", "vxlan_mode": "Always"},
    "private": {"cidr": "172.19.0.0/16", "disable_bgp_export": True},
}
NODES = {
    "n1": {"ip": "192.168.100.11/24", "blocks": [("172.17.0.0/26", "default"), ("172.18.0.0/26", "blue-vxlan")]},
    "n2": {"ip": "192.168.100.12/24", "blocks": [("172.17.0.64/26", "default"), ("172.19.0.0/26", "private")]},
    "n3": {
        "ip": "192.168.100.13/24",
        "blocks": [("172.17.0.128/26", "default")],
        "borrowed": [("172.17.0.5", "172.17.0.0/26", "default")],
    },
}
BORROWED = "172.17.0.5"
BIRD_TASK = "Configure BIRD, validated by BIRD before it replaces the old configuration, and run it"


@pytest.fixture(scope="module")
def mesh(fabric_factory, bgp):
    fabric = fabric_factory("m")
    fabric.add_subnet("a", "192.168.100.1/24")
    for name, node in NODES.items():
        fabric.add_node(name, node["ip"], "a")
    fabric.add_workload_route("n3", BORROWED)
    fabric.ipam = bgp.ipam_result(NODES, POOLS)
    fabric.inv = fabric.inventory(fabric.ipam)
    watch = bgp.Watch(lambda: all(fabric.established(n) for n in NODES))
    started = time.monotonic()
    fabric.first = fabric.converge(fabric.inv)
    converge = time.monotonic() - started
    done = datetime.datetime.now()
    established = watch.wait(30)
    runs = bgp.task_results(fabric.first, BIRD_TASK)
    assert all(runs[n]["started"] and runs[n]["changed"] for n in NODES)
    print(
        f"\nfirst run of the role: {converge:.1f} s; every session Established {max((established - done).total_seconds(), 0):.2f} s after the role's run ended"
    )
    return fabric


def test_mesh_sessions_established(mesh):
    for name in NODES:
        sessions = mesh.sessions(name)
        others = sorted(f"Mesh_{NODES[o]['ip'].split('/')[0].replace('.', '_')}" for o in NODES if o != name)
        assert sorted(sessions) == others
        assert {state for state, _since in sessions.values()} == {"Established"}


def test_mesh_kernel_routes(mesh, bgp):
    """Others' blocks proto bird straight out eth0 (same subnet), own blocks blackholed, a borrowed
    /32 routed to the node that hosts it, VXLAN blocks left to the data plane, private pools kept."""
    expected = {
        "n1": [
            "blackhole 172.17.0.0/26 proto bird",
            "blackhole 172.18.0.0/26 proto bird",
            "172.17.0.64/26 via 192.168.100.12 dev eth0 proto bird",
            "172.17.0.128/26 via 192.168.100.13 dev eth0 proto bird",
            f"{BORROWED} via 192.168.100.13 dev eth0 proto bird",
        ],
        "n2": [
            "blackhole 172.17.0.64/26 proto bird",
            "blackhole 172.19.0.0/26 proto bird",
            "172.17.0.0/26 via 192.168.100.11 dev eth0 proto bird",
            "172.17.0.128/26 via 192.168.100.13 dev eth0 proto bird",
            f"{BORROWED} via 192.168.100.13 dev eth0 proto bird",
        ],
        "n3": [
            "blackhole 172.17.0.128/26 proto bird",
            "172.17.0.0/26 via 192.168.100.11 dev eth0 proto bird",
            "172.17.0.64/26 via 192.168.100.12 dev eth0 proto bird",
        ],
    }
    for node, lines in expected.items():
        bgp.wait_for(lambda lines=lines, node=node: set(lines) <= set(mesh.routes(node)), 10, what=f"{node}: {lines} in {mesh.routes(node)}")
        routes = " | ".join(mesh.routes(node))
        # Nothing of the private pool (disable_bgp_export) leaves n2; the VXLAN block of n1 is
        # in BIRD's table elsewhere but not programmed (the data plane owns VXLAN routes).
        if node != "n2":
            assert "172.19." not in routes
        if node != "n1":
            assert "172.18.0.0/26" not in routes
            assert "172.18.0.0/26" in mesh.birdc(node, "show", "route", "172.18.0.0/26")
    # The node hosting the borrowed address keeps its workload route, and does not route it away.
    assert any(line.startswith(f"{BORROWED} dev cali") for line in mesh.routes("n3"))
    assert not any(line.startswith(f"{BORROWED} via") for line in mesh.routes("n3"))


def test_mesh_second_run_changes_nothing(mesh):
    result = mesh.converge(mesh.inv)
    assert {host: stats["changed"] for host, stats in result["stats"].items()} == {n: 0 for n in NODES}


def test_check_mode_shows_the_diff_and_changes_nothing(mesh, bgp):
    conf = mesh.nodes["n1"]["calico_bgp_config_file"]
    before = open(conf).read()
    inv = mesh.inventory(mesh.ipam, group_vars={"calico_bgp_connect_retry_time": 3})
    result = mesh.converge(inv, "--check", "--diff", "--limit", "n1")
    written = bgp.task_results(result, BIRD_TASK)
    assert written["n1"]["changed"]
    diff = written["n1"]["diff"]
    diff = diff[0] if isinstance(diff, list) else diff
    assert "connect retry time 3;" in diff["after"] and "connect retry time 2;" in diff["before"]
    assert open(conf).read() == before


def test_filter_change_keeps_sessions(mesh, bgp):
    """CrossSubnet -> Always changes only the kernel filter: routes move to tunl0 onlink, sessions stay."""
    before = {node: mesh.sessions(node) for node in NODES}
    ipam = bgp.ipam_result(NODES, {**POOLS, "default": {"cidr": "172.17.0.0/16", "ipip_mode": "Always"}})
    mesh.inv = mesh.inventory(ipam)
    tunnel_route = "172.17.0.64/26 via 192.168.100.12 dev tunl0 proto bird onlink"
    watch = bgp.Watch(lambda: tunnel_route in mesh.routes("n1"), interval=0.02)
    started = datetime.datetime.now()
    result = mesh.converge(mesh.inv)
    runs = bgp.task_results(result, BIRD_TASK)
    assert all(runs[n]["reconfigured"] and not runs[n]["started"] for n in NODES)
    landed = watch.wait(10)
    configured = started
    assert f"{BORROWED} via 192.168.100.13 dev tunl0 proto bird onlink" in mesh.routes("n1")
    assert "blackhole 172.17.0.0/26 proto bird" in mesh.routes("n1")
    after = {node: mesh.sessions(node) for node in NODES}
    assert after == before, "a filter change restarted BGP sessions"
    print(f"\nfilter change: the tunnel route was in the kernel {(landed - configured).total_seconds():.2f} s after the run started; no session restarted")


def test_bad_value_is_refused_by_bird_and_the_running_config_stays(mesh, bgp):
    conf = mesh.nodes["n1"]["calico_bgp_config_file"]
    before_text = open(conf).read()
    before_sessions = mesh.sessions("n1")
    inv = mesh.inventory(mesh.ipam, group_vars={"calico_bgp_hold_time": 1})
    result = mesh.converge(inv, "--limit", "n1", check=False)
    assert result["rc"] != 0
    written = bgp.task_results(result, BIRD_TASK)
    assert written["n1"]["failed"]
    assert "Hold time must be in range" in written["n1"]["stderr"] + written["n1"].get("msg", "")
    assert open(conf).read() == before_text
    assert mesh.sessions("n1") == before_sessions
    assert not written["n1"].get("reconfigured")


ROGUE_BIRD = """
router id 192.168.100.50;
protocol device {}
protocol static rogue {
  ipv4;
  route 0.0.0.0/0 blackhole;
  route 10.66.0.0/24 blackhole;
}
protocol bgp to_n1 {
  local 192.168.100.50 as 65099;
  neighbor 192.168.100.11 as 64512;
  connect delay time 1; connect retry time 2; error wait time 1, 5;
  ipv4 { import all; export all; };
}
"""


def test_rogue_peer_reaches_nothing(mesh, bgp):
    """An external peer announcing a default route and a prefix outside the pools: both are
    received and filtered on import; the kernels never see them. What n1 exports to it stays
    inside the exportable pools."""
    mesh.add_host("rg", "192.168.100.50/24", "a", tunl0=False)
    rogue = mesh.start_bird("rg", ROGUE_BIRD)
    mesh.inv = mesh.inventory(mesh.ipam, host_vars={"n1": {"calico_bgp_node_peers": [{"address": "192.168.100.50", "as": 65099}]}})
    mesh.converge(mesh.inv, "--limit", "n1")  # only n1 peers with it
    bgp.wait_for(
        lambda: mesh.sessions("n1").get("Node_192_168_100_50", ("",))[0] == "Established",
        15,
        what="the session to the rogue peer",
    )

    def import_updates():
        from ansible_collections.l3.calico.plugins.module_utils.bird_status import parse_protocols

        protocols = {p["name"]: p for p in parse_protocols(mesh.birdc("n1", "show", "protocols", "all"))}
        return protocols["Node_192_168_100_50"]["channels"]["ipv4"]["import_updates"]

    updates = bgp.wait_for(
        lambda: import_updates().get("received", 0) >= 2 and import_updates(),
        10,
        what="the rogue routes received by n1",
    )
    assert updates["filtered"] == 2 and updates["accepted"] == 0, updates
    time.sleep(2)  # two kernel scan periods: anything accepted would be in the kernels by now
    for node in NODES:
        routes = mesh.routes(node)
        assert not [r for r in routes if r.startswith("default") or r.startswith("10.66.")], (node, routes)
        table = mesh.birdc(node, "show", "route")
        assert "10.66.0.0/24" not in table and "0.0.0.0/0" not in table
    exported = mesh.sh(rogue["ns"], "birdc", "-s", rogue["sock"], "show", "route", "protocol", "to_n1")
    prefixes = {line.split()[0] for line in exported.splitlines() if line[:1].isdigit()}
    assert {"172.17.0.0/26", "172.17.0.64/26", "172.17.0.128/26", "172.18.0.0/26", BORROWED + "/32"} == prefixes


def test_default_route_only_where_asked(mesh, bgp):
    """The same rogue peer, now allowed to send the default route (import_default_route): the
    default reaches n1's kernel through it; 10.66.0.0/24 still does not."""
    mesh.inv = mesh.inventory(
        mesh.ipam,
        host_vars={"n1": {"calico_bgp_node_peers": [{"address": "192.168.100.50", "as": 65099, "import_default_route": True}]}},
    )
    mesh.converge(mesh.inv, "--limit", "n1")
    bgp.wait_for(
        lambda: "default via 192.168.100.50 dev eth0 proto bird" in mesh.routes("n1"),
        15,
        what=f"the default route from the peer in {mesh.routes('n1')}",
    )
    assert not [r for r in mesh.routes("n1") if r.startswith("10.66.")]
    assert not [r for r in mesh.routes("n2") if r.startswith("default")]


MD5_BIRD = """
router id 192.168.100.51;
protocol device {}
protocol bgp to_n2 {
  local 192.168.100.51 as 65098;
  neighbor 192.168.100.12 as 64512;
  password "%s";
  connect delay time 1; connect retry time 2; error wait time 1, 5;
  ipv4 { import all; export none; };
}
"""


def test_md5_mismatch_detected_by_verify(mesh, bgp):
    """The password comes from a vaulted variable, lives only in the secrets file (0640), and a
    peer with another key fails the BIRD task's wait (calico_bgp_verify) with the MD5 counter as the cause;
    once the peer has the same key the session comes up (the constant really is the key)."""
    mesh.add_host("md", "192.168.100.51/24", "a", tunl0=False)
    peer = mesh.start_bird("md", MD5_BIRD % "wrong-key")
    vaulted = mesh.vault_string("vault_md5_peer_password", "right-key")
    mesh.inv = mesh.inventory(
        mesh.ipam,
        group_vars={"calico_bgp_verify": True, "calico_bgp_verify_timeout": 6},
        host_vars={"n2": {"calico_bgp_node_peers": [{"address": "192.168.100.51", "as": 65098, "password": "{{ vault_md5_peer_password }}"}]}},
        raw_group_vars=vaulted,
    )
    result = mesh.converge(mesh.inv, check=False)
    assert result["rc"] != 0
    bird = bgp.task_results(result, "Configure BIRD, validated by BIRD before it replaces the old configuration, and run it")
    assert set(host for host, res in bird.items() if res.get("failed")) == {"n2"}
    message = bird["n2"]["msg"]
    assert message.startswith("1 BGP session(s) not Established after 6 s:"), message
    assert "Node_192_168_100_51" in message and "TcpExtTCPMD5Failure" in message, message
    assert bird["n2"]["bgp_sessions"]["not_established"] == ["Node_192_168_100_51"], bird["n2"]
    assert bird["n2"]["changed"], "what the failed run changed is still reported"
    assert "right-key" not in result["stderr"] and "right-key" not in str(result["plays"])

    n2 = mesh.nodes["n2"]
    assert "right-key" not in open(n2["calico_bgp_config_file"]).read()
    assert "password CALICO_PW_NODE_192_168_100_51;" in open(n2["calico_bgp_config_file"]).read()
    assert 'define CALICO_PW_NODE_192_168_100_51 = "right-key";' in open(n2["calico_bgp_secrets_file"]).read()
    assert os.stat(n2["calico_bgp_secrets_file"]).st_mode & 0o777 == 0o640
    assert os.stat(n2["calico_bgp_config_file"]).st_mode & 0o777 == 0o640

    peer["conf"].write_text(MD5_BIRD % "right-key")
    mesh.sh(peer["ns"], "birdc", "-s", peer["sock"], "configure")
    bgp.wait_for(
        lambda: mesh.sessions("n2")["Node_192_168_100_51"][0] == "Established",
        15,
        what="the session once both ends have the same key",
    )


def test_supervisor_restarts_bird_and_stops_by_pid(mesh, bgp):
    """BIRD killed hard comes back by itself; `calico-bird-service stop` ends both by their pids."""
    import signal
    import subprocess
    from pathlib import Path

    n3 = mesh.nodes["n3"]
    old = int(Path(n3["calico_bgp_pid_file"]).read_text())
    os.kill(old, signal.SIGKILL)
    bgp.wait_for(lambda: Path(n3["calico_bgp_pid_file"]).read_text().strip() not in ("", str(old)), 15, what="a new BIRD pid")
    bgp.wait_for(lambda: mesh.established("n3"), 20, what="the sessions of the restarted BIRD")
    service = str(mesh.work / "calico-bird-service")
    supervisor = int(Path(n3["calico_bgp_supervisor_pid_file"]).read_text())
    bird = int(Path(n3["calico_bgp_pid_file"]).read_text())
    assert subprocess.run([service, "status", n3["calico_bgp_supervisor_pid_file"]], timeout=10, check=False).returncode == 0
    assert subprocess.run([service, "stop", n3["calico_bgp_supervisor_pid_file"]], timeout=30, check=False).returncode == 0
    assert not Path(f"/proc/{supervisor}").exists() and not Path(f"/proc/{bird}").exists()
    assert subprocess.run([service, "status", n3["calico_bgp_supervisor_pid_file"]], timeout=10, check=False).returncode == 1
