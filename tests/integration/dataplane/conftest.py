# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Real kernel namespaces for the data-plane tests.

Topology (every name starts with ``l3tdp-<run>-``; everything is deleted at the end):

    host a  up0 192.168.100.100/24 ─┐
    host b  up0 192.168.100.101/24 ─┤ br100 (.1) ┐
                                    │            ├ router "rt" (forwards; "outside" = 203.0.113.1 on lo)
    host c  up0 192.168.200.101/24 ─┴ br200 (.1) ┘

Each host is a bare network namespace with a default route via the router (the proxy-ARP
gateway trick needs one). The code under test runs *inside* a host namespace through
``nsenter --net`` (only the network namespace: ``ip netns exec`` would also unshare the mount
namespace and hide the workload namespaces it creates).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PYTHONPATH = str(ROOT / ".collections")
PREFIX = "l3tdp-"

HOSTS = {
    "a": ("192.168.100.100", 24, "br100", "192.168.100.1"),
    "b": ("192.168.100.101", 24, "br100", "192.168.100.1"),
    "c": ("192.168.200.101", 24, "br200", "192.168.200.1"),
}
# The IPv6 underlay beside it (Topology.add_ipv6): each host's address and gateway, the router's addresses.
V6 = {"a": "fd00:100::100", "b": "fd00:100::101", "c": "fd00:200::101"}
ROUTER6 = {"br100": "fd00:100::1", "br200": "fd00:200::1"}
GW6 = {"a": "fd00:100::1", "b": "fd00:100::1", "c": "fd00:200::1"}
OUTSIDE = "203.0.113.1"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "nsenter", "bridge"):
        if shutil.which(tool) is None:
            return f"needs `{tool}`"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"`ip netns` unusable: {probe.stderr.strip()}"
    return None


def sh(*argv, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


RUNNER_CODE = r"""
import dataclasses, json, sys
from ansible_collections.l3.calico.plugins.module_utils import firewall, tunnels, workloads
kind, kwargs = json.load(sys.stdin)
module = {"workloads": workloads, "tunnels": tunnels, "firewall": firewall}[kind]
try:
    plan = module.converge(**kwargs)
except Exception as exc:
    print(json.dumps({"ok": False, "type": type(exc).__name__, "error": str(exc)}))
else:
    data = {f.name: getattr(plan, f.name) for f in dataclasses.fields(plan)}
    print(json.dumps({"ok": True, "changed": plan.changed, **data}, default=str))
"""


class Topology:
    def __init__(self, prefix: str = PREFIX) -> None:
        self.run = prefix + uuid.uuid4().hex[:5] + "-"
        self.router = self.run + "rt"
        self.children: list[subprocess.Popen] = []

    # names ---------------------------------------------------------------------------------
    def host(self, key: str) -> str:
        return self.run + "h" + key

    def netns_prefix(self, key: str) -> str:
        return self.run + key + "-"

    # building --------------------------------------------------------------------------------
    def build(self) -> None:
        rt = self.router
        sh("ip", "netns", "add", rt)
        self.ip(
            rt,
            "link set lo up",
            f"addr add {OUTSIDE}/32 dev lo",
            "link add br100 type bridge",
            "link add br200 type bridge",
            "addr add 192.168.100.1/24 dev br100",
            "addr add 192.168.200.1/24 dev br200",
            "link set br100 up",
            "link set br200 up",
        )
        sh("ip", "netns", "exec", rt, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for key, (address, plen, bridge, gateway) in HOSTS.items():
            host = self.host(key)
            sh("ip", "netns", "add", host)
            self.ip(
                host,
                "link set lo up",
                f"link add up0 type veth peer name p-{key} netns {rt}",
                f"addr add {address}/{plen} dev up0",
                "link set up0 up",
                f"route add default via {gateway}",
            )
            self.ip(rt, f"link set p-{key} master {bridge} up")
            self.nsexec(host, "sysctl", "-qw", "net.ipv4.ip_forward=1")

    def add_ipv6(self, *router_commands: str) -> None:
        """The IPv6 underlay on a built topology: V6 on the hosts (default route via GW6), ROUTER6 on the
        router's bridges (and ``router_commands``), IPv6 forwarding on everywhere."""
        self.ip(self.router, *(f"addr add {address}/64 dev {bridge} nodad" for bridge, address in ROUTER6.items()), *router_commands)
        self.nsexec(self.router, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        for key, address in V6.items():
            host = self.host(key)
            self.ip(host, f"addr add {address}/64 dev up0 nodad", f"route add default via {GW6[key]} dev up0")
            self.nsexec(host, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")

    def cleanup(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    child.kill()
        for _attempt in range(3):
            names = [n for n in os.listdir("/run/netns") if n.startswith(self.run)] if os.path.isdir("/run/netns") else []
            if not names:
                return
            for name in names:
                sh("ip", "netns", "del", name, check=False)
            time.sleep(0.1)

    # running things --------------------------------------------------------------------------
    def ip(self, ns: str, *lines: str) -> None:
        sh("ip", "-n", ns, "-batch", "-", stdin="".join(line + "\n" for line in lines))

    def ip_json(self, ns: str, *args: str):
        out = sh("ip", "-n", ns, "-json", *args).stdout.strip()
        return json.loads(out) if out else []

    def nsexec(self, ns: str, *argv: str, check: bool = True, stdin: str | None = None):
        """Run in the network namespace ``ns`` only (no mount namespace games)."""
        return sh("nsenter", f"--net=/run/netns/{ns}", *argv, check=check, stdin=stdin)

    def converge(self, key: str, kind: str, **kwargs) -> dict:
        """Run ``<kind>.converge(**kwargs)`` of module_utils inside host ``key``."""
        proc = self.nsexec(
            self.host(key),
            "env",
            f"PYTHONPATH={PYTHONPATH}",
            sys.executable,
            "-c",
            RUNNER_CODE,
            stdin=json.dumps([kind, kwargs]),
        )
        return json.loads(proc.stdout)

    def workloads(self, key: str, items, tmp_path: Path, **kwargs) -> dict:
        kwargs.setdefault("netns_prefix", self.netns_prefix(key))
        kwargs.setdefault("state_file", str(tmp_path / f"workloads-{key}.json"))
        return self.converge(key, "workloads", workloads=items, **kwargs)

    def spawn(self, ns: str, code: str) -> subprocess.Popen:
        """A Python helper inside namespace ``ns`` (stopped by PID at cleanup)."""
        child = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{ns}", sys.executable, "-u", "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.children.append(child)
        return child

    def snapshot(self, key: str) -> dict:
        """Everything the modules could touch in host ``key`` and its workload namespaces."""
        host = self.host(key)
        snap = {
            "links": self.ip_json(host, "-d", "addr", "show"),
            "routes": _stable_routes(self.ip_json(host, "-4", "route", "show", "table", "all")),
            "neigh": [n for n in self.ip_json(host, "neigh", "show") if "PERMANENT" in n.get("state", [])],
            "netns": sorted(n for n in os.listdir("/run/netns") if n.startswith(self.run)),
        }
        for ns in snap["netns"]:
            if ns.startswith(self.netns_prefix(key)):
                snap[ns] = [_stable(self.ip_json(ns, "addr", "show")), _stable_routes(self.ip_json(ns, "route", "show"))]
        _stable(snap["links"])
        return snap


def _stable(links: list) -> list:
    """Drop what moves on its own (IPv6 DAD state, lifetimes, carrier state), keep configuration."""
    for link in links:
        link["addr_info"] = [a for a in link.get("addr_info", []) if a.get("family") == "inet"]
        link.pop("operstate", None)
        if "flags" in link:
            link["flags"] = [f for f in link["flags"] if f not in ("LOWER_UP", "NO-CARRIER")]
    return links


def _stable_routes(routes: list) -> list:
    """Routes without the kernel's ``linkdown`` flag: it follows the device's carrier (a veth's comes up a
    moment after its peer, later on a loaded machine), not what a module configured."""
    for route in routes:
        if "flags" in route:
            route["flags"] = [f for f in route["flags"] if f != "linkdown"]
    return routes


@pytest.fixture
def topo():
    missing = _missing()
    if missing:
        pytest.skip(missing)
    topology = Topology()
    try:
        topology.build()
        yield topology
    finally:
        topology.cleanup()


SERVER_CODE = r"""
import socket, sys
kind, port = sys.argv[1], int(sys.argv[2])
if kind == "tcp":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16); print("ready", flush=True)
    while True:
        c, peer = s.accept(); c.sendall(peer[0].encode()); c.close()
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port)); print("ready", flush=True)
    while True:
        data, peer = s.recvfrom(2048); print(data.decode(), peer[0], flush=True)
"""


def start_server(topo: Topology, ns: str, kind: str, port: int) -> subprocess.Popen:
    child = topo.spawn(ns, "import sys; sys.argv[1:] = %r\n" % [kind, str(port)] + SERVER_CODE)
    assert child.stdout.readline().strip() == "ready"
    return child


def tcp_peer(topo: Topology, ns: str, address: str, port: int, source: str | None = None) -> str:
    """Connect from ``ns`` to address:port; return the peer address the server saw."""
    code = (
        "import socket,sys\n"
        "s=socket.socket(); s.settimeout(3)\n"
        + (f"s.bind(({source!r},0))\n" if source else "")
        + f"s.connect(({address!r},{port})); print(s.recv(64).decode())"
    )
    return topo.nsexec(ns, sys.executable, "-c", code).stdout.strip()


def udp_send(topo: Topology, ns: str, address: str, port: int, payload: str, source: str | None = None) -> None:
    code = (
        "import socket\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        + (f"s.setsockopt(socket.SOL_IP, 19, 1); s.bind(({source!r},0))\n" if source else "")  # IP_TRANSPARENT: any source
        + f"s.sendto({payload!r}.encode(),({address!r},{port}))"
    )
    topo.nsexec(ns, sys.executable, "-c", code)


def ping(topo: Topology, ns: str, address: str, count: int = 1, deadline: int = 5) -> bool:
    """``count`` replies within ``deadline`` seconds, a request every 0.2 s until then: a path just made may
    need a moment (a veth's carrier comes up after its peer's, later on a loaded machine)."""
    return topo.nsexec(ns, "ping", "-c", str(count), "-w", str(deadline), "-i", "0.2", address, check=False).returncode == 0
