# SPDX-License-Identifier: MIT
"""A workload wired by hand as l3.calico wires one, for tests that need the plumbing without the module."""

from __future__ import annotations

from collections.abc import Callable


def wire_workload(sh: Callable[..., object], host: str, workload: str, veth: str, ip: str) -> None:
    """veth `veth` in namespace `host` <-> eth0 in `workload` with ip/32, the 169.254.1.1 gateway by proxy
    ARP (no delay), the host route ip/32 dev veth; `sh` runs one command (argv as arguments)."""
    sh("ip", "-n", host, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", workload)
    sh("ip", "-n", host, "link", "set", veth, "up")
    sh("ip", "netns", "exec", host, "sysctl", "-qw", f"net.ipv4.conf.{veth}.proxy_arp=1")
    sh("ip", "netns", "exec", host, "sysctl", "-qw", f"net.ipv4.neigh.{veth}.proxy_delay=0")
    sh("ip", "-n", host, "route", "add", f"{ip}/32", "dev", veth, "scope", "link")
    sh("ip", "-n", workload, "addr", "add", f"{ip}/32", "dev", "eth0")
    sh("ip", "-n", workload, "link", "set", "eth0", "up")
    sh("ip", "-n", workload, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
    sh("ip", "-n", workload, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
