# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""A workload cannot take over its host's BGP session on another node - the attack itself, on namespaces.

Two nodes on one underlay (na 192.168.77.1, nb 192.168.77.2), real BIRD 2 on each in a mesh session
(na passive, as the project's mesh: the greater address connects; graceful restart on, as the
project's default - a new connection from an Established peer is then taken as its restart), na
exporting its block 172.17.0.0/26. A workload of na (172.17.0.5 in pool 172.17.0.0/24 with nat_outgoing, wired as
l3.calico wires one) runs a BIRD of its own towards nb, AS 64512, exporting 172.17.0.200/32.
Without the forward-path protection natOutgoing masquerades it to na's address, nb takes it for
na, the attacker's session replaces na's (``Neighbor ID 172.17.0.5``) and nb installs the
workload's route. With the node's firewall (``node.converge``, as the calico_node role applies it,
node addresses from the IPAM result): the hijack fails, na's session stays up with its own router
id, no route of the workload's appears on either node, and the workload's other traffic to nb is
not masqueraded (nb sees 172.17.0.5). Both firewall backends where usable. Prefix ``l3h13-``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ansible_collections.l3.calico.plugins.module_utils import naming
from tests.support.calico_wiring import wire_workload
from tests.support.firewall_backends import firewall_backends

pytestmark = [pytest.mark.netns, pytest.mark.bird]

ROOT = Path(__file__).resolve().parents[3]
PREFIX = "l3h13-"
NA, NB, WL = f"{PREFIX}na", f"{PREFIX}nb", f"{PREFIX}w1"
NA_IP, NB_IP, WL_IP, EVIL = "192.168.77.1", "192.168.77.2", "172.17.0.5", "172.17.0.200"
WID = "default.w1"
POOLS = {"p1": {"cidr": "172.17.0.0/24", "nat_outgoing": True, "disabled": False, "ipip_mode": "Never", "vxlan_mode": "Never"}}
NODES = {  # the IPAM result's nodes, as the calico_node role passes them
    "na": {
        "ip": NA_IP,
        "network": "192.168.77.0/24",
        "blocks": [{"cidr": "172.17.0.0/26", "pool": "p1"}],
        "workloads": [{"id": WID, "ip": WL_IP}],
        "borrowed": [],
        "tunnels": {"ipip": None, "vxlan": None},
    },
    "nb": {"ip": NB_IP, "network": "192.168.77.0/24", "blocks": [], "workloads": [], "borrowed": [], "tunnels": {"ipip": None, "vxlan": None}},
}
BIRD = shutil.which("bird") or "/usr/sbin/bird"
BIRDC = shutil.which("birdc") or "/usr/sbin/birdc"

TIMERS = "hold time 9; keepalive time 3; connect delay time 1; connect retry time 2; error wait time 1, 2;"
NODE_CONF = """
router id {me};
protocol device {{ scan time 2; }}
protocol direct {{ ipv4; interface "ul0"; }}
protocol kernel {{ ipv4 {{ import none; export where proto != "own"; }}; graceful restart; }}
protocol static own {{ ipv4; {own} }}
protocol bgp Mesh_{peer_} {{
  local {me} as 64512; neighbor {peer} as 64512; {passive}
  {timers} graceful restart on; graceful restart time 120;
  ipv4 {{ import all; export where proto = "own"; next hop self; }};
}}
"""
ATTACKER_CONF = f"""
router id {WL_IP};
protocol device {{ scan time 2; }}
protocol static evil {{ ipv4; route {EVIL}/32 blackhole; }}
protocol bgp hijack {{
  local as 64512; neighbor {NB_IP} as 64512; multihop;
  {TIMERS}
  ipv4 {{ import none; export all; next hop address {NA_IP}; }};
}}
"""
LISTENER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8179)); s.listen(8)
print("ready", flush=True)
while True:
    c, peer = s.accept(); c.sendall(peer[0].encode()); c.close()
"""
CONVERGE = """
import json, sys
from ansible_collections.l3.calico.plugins.module_utils import iproute, node
a = json.loads(sys.argv[1])
done = node.converge(lambda argv, **kw: (0, "", ""), packages=[], node="na", nodes=a["nodes"], pools=a["pools"],
                     workloads=a["workloads"], sysctl_options=node.sysctls.Options({}, a["sysctl_file"]),
                     firewall_options=node.firewall.Options(backend=a["backend"], state_file=a["state_file"]),
                     check_mode=False)
print(json.dumps({"backend": done["firewall"].backend, "changes": done["firewall"].changes}))
"""


def sh(*argv, check=True, stdin=None, timeout=60):
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout, input=stdin)


def birdc(ns: str, sock: Path, *command: str) -> str:
    return sh("ip", "netns", "exec", ns, BIRDC, "-s", str(sock), *command, check=False).stdout


def routes(ns: str, prefix: str) -> list:
    return json.loads(sh("ip", "-n", ns, "-json", "route", "show", prefix).stdout or "[]")


def wait_for(what: str, test, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = test()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


class Fabric:
    def __init__(self, work: Path):
        self.work = work
        self.procs: list = []

    def bird(self, ns: str, name: str, conf: str) -> Path:
        path, sock = self.work / f"{name}.conf", self.work / f"{name}.ctl"
        path.write_text(conf)
        sh(BIRD, "-p", "-c", str(path))
        self.procs.append(
            subprocess.Popen(["ip", "netns", "exec", ns, BIRD, "-f", "-c", str(path), "-s", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        wait_for(f"BIRD {name} answering", lambda: "Daemon is up" in birdc(ns, sock, "show", "status"), 15)
        return sock

    def stop(self):
        for proc in self.procs:  # our own PIDs only
            proc.kill()
            proc.wait(10)


@pytest.fixture
def fabric():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    if not os.path.exists(BIRD):
        pytest.skip("needs BIRD 2 (Debian package bird2)")
    work = Path(tempfile.mkdtemp(prefix=PREFIX))
    fab = Fabric(work)
    try:
        veth = naming.veth_name(WID)
        for ns in (NA, NB, WL):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        # the underlay: one link between the two nodes
        sh("ip", "-n", NA, "link", "add", "ul0", "type", "veth", "peer", "name", "ul0", "netns", NB)
        for ns, ip in ((NA, NA_IP), (NB, NB_IP)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "ul0")
            sh("ip", "-n", ns, "link", "set", "ul0", "up")
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # Proxy ARP answers for 169.254.1.1 only when the host routes it elsewhere: a default route out
        # of a spare veth, as a real host's uplink.
        sh("ip", "-n", NA, "link", "add", "up0", "type", "veth", "peer", "name", "up1")
        sh("ip", "-n", NA, "link", "set", "up0", "up")
        sh("ip", "-n", NA, "link", "set", "up1", "up")
        sh("ip", "-n", NA, "route", "add", "default", "dev", "up0")
        # the workload, wired as l3.calico wires one (veth cali..., /32, 169.254.1.1 by proxy ARP)
        wire_workload(sh, NA, WL, veth, WL_IP)
        fab.na = fab.bird(
            NA,
            "na",
            NODE_CONF.format(me=NA_IP, peer=NB_IP, peer_=NB_IP.replace(".", "_"), passive="passive on;", timers=TIMERS, own="route 172.17.0.0/26 blackhole;"),
        )
        fab.nb = fab.bird(NB, "nb", NODE_CONF.format(me=NB_IP, peer=NA_IP, peer_=NA_IP.replace(".", "_"), passive="", timers=TIMERS, own=""))
        listener = subprocess.Popen(["ip", "netns", "exec", NB, sys.executable, "-c", LISTENER], stdout=subprocess.PIPE, text=True)
        fab.procs.append(listener)
        assert listener.stdout.readline().strip() == "ready"
        yield fab
    finally:
        fab.stop()
        for ns in (WL, NA, NB):
            subprocess.run(["ip", "netns", "del", ns], check=False, timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def session(fab: Fabric) -> str:
    return birdc(NB, fab.nb, "show", "protocols", "all", f"Mesh_{NA_IP.replace('.', '_')}")


def na_session_up(fab: Fabric) -> bool:
    text = session(fab)
    return "Established" in text and f"Neighbor ID:      {NA_IP}" in " ".join(text.split("\n"))


def peer_seen_by_nb() -> str:
    code = f"import socket\ns=socket.create_connection(('{NB_IP}', 8179), timeout=3)\nprint(s.recv(64).decode())"
    proc = sh("ip", "netns", "exec", WL, sys.executable, "-c", code, check=False)
    return proc.stdout.strip() or proc.stderr.strip()[-300:]


@pytest.mark.parametrize("backend", firewall_backends())
def test_a_workload_cannot_hijack_its_hosts_bgp_session_on_another_node(fabric, backend):
    fab = fabric
    wait_for("na's session on nb", lambda: "Established" in session(fab))
    wait_for("na's block routed on nb", lambda: routes(NB, "172.17.0.0/26"))
    args = {
        "nodes": NODES,
        "pools": POOLS,
        "workloads": [{"id": WID, "ip": WL_IP}],
        "backend": backend,
        "state_file": str(fab.work / "firewall.json"),
        "sysctl_file": str(fab.work / "60-l3-calico.conf"),
    }
    proc = subprocess.run(
        ["ip", "netns", "exec", NA, sys.executable, "-c", CONVERGE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=dict(os.environ, PYTHONPATH=str(ROOT / ".collections")),
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["backend"] == backend

    attacker = fab.bird(WL, "w1", ATTACKER_CONF)
    # The attacker retries every 2 s; give it several tries (and the kernel time to install a route).
    time.sleep(12)
    attack = birdc(WL, attacker, "show", "protocols", "all", "hijack")
    nb_view = session(fab)
    assert "Established" not in attack, f"the workload's BGP session came up:\n{attack}\n{nb_view}"
    assert na_session_up(fab), f"na's session on nb is not na's own any more:\n{nb_view}"
    assert WL_IP not in nb_view, nb_view
    for ns in (NA, NB):
        assert routes(ns, f"{EVIL}/32") == [], f"{ns} routes the workload's {EVIL}"
    assert "172.17.0.200" not in birdc(NB, fab.nb, "show", "route", "all")
    # Other traffic of the workload to a node address still flows, and is not masqueraded.
    seen = peer_seen_by_nb()
    assert seen == WL_IP, seen + "\n" + sh("ip", "-n", NB, "route").stdout + sh("ip", "-n", NA, "route").stdout
