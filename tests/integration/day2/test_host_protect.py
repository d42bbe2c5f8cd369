# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""A workload cannot reach its host's BGP port (BIRD, TCP 179) unless allowed - real namespaces.

A host namespace with its node address on lo and a TCP listener on 179 and on 8179; a workload
namespace wired as l3.calico wires one (veth cali…, /32, 169.254.1.1 by proxy ARP). Before the
firewall module the workload reaches both ports; with it (default) 179 is refused and 8179 still
answers; with ``host_tcp_ports: []`` 179 answers again. Both backends where usable.
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

from ansible_collections.l3.calico.plugins.module_utils import naming
from tests.support.calico_wiring import wire_workload
from tests.support.firewall_backends import firewall_backends

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[3]
HOST, WL = "l3tday2-fw-h", "l3tday2-fw-w"
NODE_IP, WL_IP = "10.250.0.1", "172.17.0.5"
WID = "default.w"
POOLS = {"p": {"cidr": "172.17.0.0/16", "nat_outgoing": False, "disabled": False}}

SERVER = """
import socket, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(8)
    while True:
        c, _ = s.accept(); c.sendall(b"hello"); c.close()
for p in (179, 8179):
    threading.Thread(target=serve, args=(p,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""


def sh(*argv, check=True, stdin=None):
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60, input=stdin)


def reach(port: int) -> bool:
    code = (
        f"import socket\ns=socket.socket(); s.settimeout(1.5)\n"
        f"try:\n s.connect(('{NODE_IP}', {port})); print(s.recv(5).decode())\nexcept OSError as e: print('no', e)"
    )
    out = sh("ip", "netns", "exec", WL, sys.executable, "-c", code).stdout
    return out.startswith("hello")


def converge(backend: str, ports, state: Path) -> dict:
    code = (
        "import json, sys\n"
        "from ansible_collections.l3.calico.plugins.module_utils import firewall\n"
        "a = json.loads(sys.argv[1])\n"
        "p = firewall.converge(a['pools'], a['workloads'], backend=a['backend'], state_file=a['state'],"
        " host_tcp_ports=a['ports'])\n"
        "print(json.dumps({'changed': p.changed, 'backend': p.backend}))\n"
    )
    args = json.dumps({"pools": POOLS, "workloads": [{"id": WID, "ip": WL_IP}], "backend": backend, "state": str(state), "ports": ports})
    env = dict(os.environ, PYTHONPATH=str(ROOT / ".collections"))
    proc = subprocess.run(["ip", "netns", "exec", HOST, sys.executable, "-c", code, args], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def fabric():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    server = None
    work = Path(tempfile.mkdtemp(prefix="l3tday2-fw-"))
    try:
        veth = naming.veth_name(WID)
        for ns in (HOST, WL):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", HOST, "addr", "add", f"{NODE_IP}/32", "dev", "lo")
        # Proxy ARP answers for 169.254.1.1 only when the host forwards and routes it elsewhere
        # (a default route out of a spare veth, as a real host's uplink).
        sh("ip", "-n", HOST, "link", "add", "up0", "type", "veth", "peer", "name", "up1")
        sh("ip", "-n", HOST, "link", "set", "up0", "up")
        sh("ip", "-n", HOST, "link", "set", "up1", "up")
        sh("ip", "-n", HOST, "route", "add", "default", "dev", "up0")
        sh("ip", "netns", "exec", HOST, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        wire_workload(sh, HOST, WL, veth, WL_IP)
        server = subprocess.Popen(["ip", "netns", "exec", HOST, sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "ready"
        yield work
    finally:
        if server is not None:
            server.kill()
            server.wait(10)
        for ns in (WL, HOST):
            subprocess.run(["ip", "netns", "del", ns], check=False, timeout=30)
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("backend", firewall_backends())
def test_workload_cannot_reach_the_bgp_port_unless_allowed(fabric, backend):
    assert reach(179) and reach(8179)  # without the rules both answer (so the test can fail)
    state = fabric / "fw.json"
    assert converge(backend, [179], state) == {"changed": True, "backend": backend}
    assert not reach(179)
    assert reach(8179)  # only the BGP port is closed
    assert converge(backend, [179], state)["changed"] is False  # idempotent
    assert converge(backend, [], state)["changed"] is True  # calico_node_allow_workload_bgp: true
    assert reach(179)
