# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""bird_service.reload_out against real BIRD: why the BGP role asks for it after the tunnels change.

Two BIRDs in two namespaces, one iBGP session; B's kernel export sends the learned block through a
device named in the filter, as the IPIP filter sends it through tunl0. B starts before that device
exists (systemd at boot, before the node role recreates tunl0): the route cannot be installed, and
BIRD does not try again when the device appears. ``reload_out(..., "kernel1")`` installs it.
(The device is a veth here: this machine's kernel has no ipip driver and no dummy links.)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from ansible_collections.l3.calico.plugins.module_utils import bird_service

pytestmark = [pytest.mark.netns, pytest.mark.bird]

BLOCK = "10.9.0.0/26"
CONF_A = """router id 10.77.0.1;
protocol device { scan time 1; }
protocol direct { ipv4; interface "l3va"; }
protocol static blocks { ipv4; route 10.9.0.0/26 blackhole; }
protocol bgp { local 10.77.0.1 as 64512; neighbor 10.77.0.2 as 64512;
  ipv4 { import none; export where proto = "blocks"; next hop self; }; }
"""
CONF_B = """router id 10.77.0.2;
protocol device { scan time 1; }
protocol direct { ipv4; interface "l3vb"; }
filter to_kernel { if source != RTS_BGP then reject; ifname = "l3tun"; onlink = true; gw = bgp_next_hop; accept; }
protocol kernel { learn; persist; scan time 1; ipv4 { import none; export filter to_kernel; }; }
protocol bgp { local 10.77.0.2 as 64512; neighbor 10.77.0.1 as 64512; ipv4 { import all; export none; }; }
"""


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def pair(tmp_path):
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("bird") or not shutil.which("birdc"):
        pytest.skip("needs root, iproute2 (ip) and BIRD 2 (bird, birdc)")
    tag = uuid.uuid4().hex[:6]
    a, b = f"l3tbro-{tag}-a", f"l3tbro-{tag}-b"
    pids: list[Path] = []
    for ns in (a, b):
        sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", a, "link", "add", "l3va", "type", "veth", "peer", "name", "l3vb", "netns", b)
        for ns, dev, addr in ((a, "l3va", "10.77.0.1/24"), (b, "l3vb", "10.77.0.2/24")):
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sockets = {}
        for ns, name, conf in ((a, "a", CONF_A), (b, "b", CONF_B)):
            (tmp_path / f"{name}.conf").write_text(conf)
            sockets[name], pid = str(tmp_path / f"{name}.ctl"), tmp_path / f"{name}.pid"
            sh("ip", "netns", "exec", ns, "bird", "-c", str(tmp_path / f"{name}.conf"), "-s", sockets[name], "-P", str(pid))
            pids.append(pid)
        yield b, sockets["b"]
    finally:
        for pid in pids:  # ours, by PID
            try:
                os.kill(int(pid.read_text()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        for ns in (a, b):
            subprocess.run(["ip", "netns", "delete", ns], check=False)


def kernel_routes(ns: str) -> str:
    return sh("ip", "-n", ns, "route", "show", "proto", "bird")


def learned(socket: str) -> bool:
    return BLOCK in run(["birdc", "-s", socket, "show", "route", "protocol", "bgp1"])[1]


def wait(condition, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_a_route_through_a_device_that_came_late_is_installed_only_by_reload_out(pair):
    ns, socket = pair
    assert wait(lambda: learned(socket)), "B never learned the block over BGP"
    assert BLOCK not in kernel_routes(ns)  # no such device yet
    sh("ip", "-n", ns, "link", "add", "l3tun", "type", "veth", "peer", "name", "l3tunp")
    sh("ip", "-n", ns, "link", "set", "l3tunp", "up")
    sh("ip", "-n", ns, "link", "set", "l3tun", "up")
    # BIRD sees the device (scan time 1) and scans the kernel table (scan time 1), yet installs nothing
    time.sleep(4)
    assert BLOCK not in kernel_routes(ns), "BIRD retried by itself: the BGP role's reload_out is not needed"
    said = bird_service.reload_out(run, "birdc", socket, "kernel1")
    assert "kernel1: reloading" in said
    assert wait(lambda: BLOCK in kernel_routes(ns), 5), kernel_routes(ns)
    assert f"{BLOCK} via 10.77.0.1 dev l3tun" in kernel_routes(ns) and "onlink" in kernel_routes(ns)


def test_reload_out_of_a_protocol_bird_does_not_have_fails_naming_it(pair):
    _ns, socket = pair
    with pytest.raises(bird_service.BirdServiceError, match="birdc reload out kernel9 failed"):
        bird_service.reload_out(run, "birdc", socket, "kernel9")
