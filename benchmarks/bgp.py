# SPDX-License-Identifier: MIT
"""BGP benchmark: apply a kernel-filter change with `birdc configure` (what the role does) versus
restarting BIRD (the plain alternative), between two real BIRDs in network namespaces.

Prints: time to Established after start, time for a filter change to reach the kernel with
configure (sessions kept), time until the routes are back after a restart, and the ratio.
Needs root, bird2 and iproute2; namespaces l3tbgp-bench-*, removed at the end; BIRD stopped by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".collections"))

from ansible_collections.l3.calico.plugins.module_utils import bird_conf  # noqa: E402
from ansible_collections.l3.calico.plugins.module_utils.bgp import node_config  # noqa: E402

PREFIX = "l3tbgp-bench-"
NODES = {"n1": ("192.168.100.11", "172.17.0.0/26"), "n2": ("192.168.100.12", "172.17.0.64/26")}
ROUNDS = 5


def sh(ns: str, *argv: str, check: bool = True) -> str:
    proc = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=30, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{ns}: {' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout


def ipam(mode: str) -> dict:
    return {
        "nodes": {n: {"ip": ip, "network": "192.168.100.0/24", "blocks": [{"cidr": b}]} for n, (ip, b) in NODES.items()},
        "pools": {"default": {"cidr": "172.17.0.0/16", "ipip_mode": mode, "vxlan_mode": "Never"}},
    }


def render(node: str, mode: str, path: Path) -> None:
    """bird.conf as the module l3.calico.bird prints it: the role's defaults, faster connect and kernel scan."""
    layout = bird_conf.Layout(header="benchmark", connect_delay_time=2, kernel_scan_time=1)
    path.write_text(bird_conf.render(node_config(ipam(mode), node), layout))


def wait(predicate, timeout: float = 30.0) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise RuntimeError("timeout")
        time.sleep(0.01)
    return time.monotonic() - start


def main() -> int:
    if os.geteuid() != 0 or not shutil.which("bird"):
        print("bgp benchmark skipped: needs root and bird (Debian bird2)")
        return 0
    work = Path(tempfile.mkdtemp(prefix=PREFIX))
    router = PREFIX + "r"
    namespaces = [router] + [PREFIX + n for n in NODES]
    pids: list[Path] = []
    try:
        for ns in namespaces:
            subprocess.run(["ip", "netns", "add", ns], check=True)
            sh(ns, "ip", "link", "set", "lo", "up")
        sh(router, "ip", "link", "add", "br0", "type", "bridge")
        sh(router, "ip", "link", "set", "br0", "up")
        for node, (ip, _block) in NODES.items():
            ns = PREFIX + node
            sh(router, "ip", "link", "add", f"v-{node}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh(router, "ip", "link", "set", f"v-{node}", "master", "br0", "up")
            sh(ns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
            sh(ns, "ip", "link", "set", "eth0", "up")
            sh(ns, "ip", "link", "add", "tunl0", "type", "veth", "peer", "name", "tunl0-peer")
            sh(ns, "ip", "link", "set", "tunl0", "up")
            sh(ns, "ip", "link", "set", "tunl0-peer", "up")
        sock = {n: str(work / f"{n}.ctl") for n in NODES}

        def start(node: str) -> None:
            pid = work / f"{node}.pid"
            pids.append(pid)
            sh(PREFIX + node, "bird", "-c", str(work / f"{node}.conf"), "-s", sock[node], "-P", str(pid))

        def stop(node: str) -> None:
            pid = int((work / f"{node}.pid").read_text())
            os.kill(pid, signal.SIGTERM)
            wait(lambda: not Path(f"/proc/{pid}").exists(), 10)

        def established(node: str) -> bool:
            out = sh(PREFIX + node, "birdc", "-s", sock[node], "show", "protocols", check=False)
            return "Established" in out

        plain = "172.17.0.64/26 via 192.168.100.12 dev eth0 proto bird"
        tunnel = "172.17.0.64/26 via 192.168.100.12 dev tunl0 proto bird onlink"

        def route(expected: str) -> bool:
            return expected in " ".join(sh(PREFIX + "n1", "ip", "route").split())

        for node in NODES:
            render(node, "CrossSubnet", work / f"{node}.conf")
        started = time.monotonic()
        for node in NODES:
            start(node)
        wait(lambda: established("n1") and route(plain))
        first = time.monotonic() - started

        configure, restart = [], []
        for i in range(ROUNDS):
            mode, expected = ("Always", tunnel) if i % 2 == 0 else ("CrossSubnet", plain)
            before = sh(PREFIX + "n1", "birdc", "-s", sock["n1"], "show", "protocols", "Mesh_192_168_100_12")
            render("n1", mode, work / "n1.conf")
            t0 = time.monotonic()
            sh(PREFIX + "n1", "birdc", "-s", sock["n1"], "configure")
            wait(lambda expected=expected: route(expected))
            configure.append(time.monotonic() - t0)
            after = sh(PREFIX + "n1", "birdc", "-s", sock["n1"], "show", "protocols", "Mesh_192_168_100_12")
            assert before.splitlines()[-1].split()[4:6] == after.splitlines()[-1].split()[4:6], "session restarted"
        for _round in range(ROUNDS):
            # The plain alternative: restart BIRD (persist keeps the routes; wait for the session
            # to be Established again and the routes to be re-announced).
            stop("n1")
            t0 = time.monotonic()
            start("n1")
            wait(lambda: established("n1") and established("n2"))
            restart.append(time.monotonic() - t0)
        med = statistics.median_high
        print(f"bgp: first start to Established + routes in the kernel: {first:.2f} s (connect delay 2 s)")
        print(f"bgp: filter change by birdc configure, route flipped in the kernel: median {med(configure) * 1000:.0f} ms over {ROUNDS} (sessions kept)")
        print(f"bgp: BIRD restart instead, sessions Established again: median {med(restart):.2f} s over {ROUNDS}")
        print(f"bgp: ratio restart / configure: {med(restart) / med(configure):.0f}x")
        return 0
    finally:
        for pid_file in pids:
            try:
                pid = int(pid_file.read_text())
                if b"bird" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError):
                pass
        time.sleep(0.2)
        for ns in namespaces:
            subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
