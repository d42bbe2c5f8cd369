# SPDX-License-Identifier: MIT
"""The router namespace: a bridge per underlay subnet (the subnet's first address), forwarding; the guests' ports."""

from __future__ import annotations

from .common import PREFIX, ROUTER, netns_list, run


def ensure_router(topo: dict) -> None:
    """The router: IPv4 forwarding; IPv6 off, unless a subnet has an IPv6 side (a dual-stack lab):
    then IPv6 on, forwarding, the subnet's IPv6 gateway on its bridge too (``nodad``: usable at once)."""
    run("ip", "netns", "add", ROUTER)
    ns = ("ip", "-n", ROUTER)
    dual = any("gateway6" in subnet for subnet in topo["subnets"])
    six = (("net.ipv6.conf.all.forwarding", "1"),) if dual else (("net.ipv6.conf.all.disable_ipv6", "1"), ("net.ipv6.conf.default.disable_ipv6", "1"))
    for key, value in (*six, ("net.ipv4.ip_forward", "1")):
        run("ip", "netns", "exec", ROUTER, "sysctl", "-qw", f"{key}={value}")
    run(*ns, "link", "set", "lo", "up")
    for subnet in topo["subnets"]:
        run(*ns, "link", "add", subnet["bridge"], "type", "bridge", "forward_delay", "0")
        run(*ns, "addr", "add", subnet["gateway"], "dev", subnet["bridge"])
        if "gateway6" in subnet:
            run(*ns, "addr", "add", subnet["gateway6"], "dev", subnet["bridge"], "nodad")
        run(*ns, "link", "set", subnet["bridge"], "up")


def tap_port(guest: dict) -> None:
    """The QEMU guest's port: a tap device on its subnet's bridge (made anew: it may be another kind's)."""
    ns = ("ip", "-n", ROUTER)
    run(*ns, "link", "del", guest["port"], check=False)
    run(*ns, "tuntap", "add", "dev", guest["port"], "mode", "tap")
    run(*ns, "link", "set", guest["port"], "master", guest["bridge"], "up")


def veth_port(guest: dict) -> None:
    """The UML guest's port: a veth whose end ``<prefix>u`` lies in a namespace of the guest's own
    (its vector raw transport opens it there), the peer a port of its subnet's bridge on the router."""
    if guest["netns"] in netns_list():
        run("ip", "netns", "delete", guest["netns"])
    run("ip", "-n", ROUTER, "link", "del", guest["port"], check=False)
    run("ip", "netns", "add", guest["netns"])
    run("ip", "netns", "exec", guest["netns"], "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
    run("ip", "-n", ROUTER, "link", "add", guest["port"], "type", "veth", "peer", "name", PREFIX + "u", "netns", guest["netns"])
    run("ip", "-n", ROUTER, "link", "set", guest["port"], "master", guest["bridge"], "up")
    run("ip", "-n", guest["netns"], "link", "set", PREFIX + "u", "up")


def remove_namespaces() -> bool:
    """Delete every network namespace of this lab's prefix (the router, UML guests' own)."""
    changed = False
    for ns in netns_list():
        if ns.startswith(PREFIX):
            run("ip", "netns", "delete", ns)
            changed = True
    return changed
