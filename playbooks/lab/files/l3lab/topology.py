# SPDX-License-Identifier: MIT
"""The lab's topology, computed from the spec: subnets with the router's bridge, guests with their ports."""

from __future__ import annotations

import hashlib
import ipaddress
import re

from .common import PREFIX, ROUTER, LabError

DEFAULT_MEM = "256M"  # systemd, sshd, BIRD and Ansible's modules; a UML guest uses less of it
NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?")
MEM_RE = re.compile(r"[1-9][0-9]{1,4}M")


def plan(spec: dict) -> dict:
    """The topology of ``spec``: ``hosts`` (name -> IPv4 address/prefix), optionally ``hosts6`` (name ->
    IPv6 address/prefix: a dual-stack underlay; every host of an IPv4 subnet in one IPv6 subnet of its
    own) and ``mem``. Without ``hosts6`` the topology is what it always was (IPv4 only)."""
    hosts = spec.get("hosts")
    if not isinstance(hosts, dict) or not hosts:
        raise LabError(f"spec: hosts must be a non-empty mapping of host name to address/prefix, got {hosts!r}")
    mem = str(spec.get("mem") or DEFAULT_MEM)
    if not MEM_RE.fullmatch(mem):
        raise LabError(f"spec: mem {mem!r} must be megabytes like 256M")
    nets: dict[str, ipaddress.IPv4Network] = {}
    guests = []
    for idx, (name, ip) in enumerate(hosts.items()):
        if not NAME_RE.fullmatch(str(name)):
            raise LabError(f"spec: host name {name!r} is not a DNS label of at most 32 characters")
        try:
            iface = ipaddress.IPv4Interface(str(ip))
        except ValueError as exc:
            raise LabError(f"spec: host {name}: ip {ip!r}: {exc}") from None
        if "/" not in str(ip) or iface.network.prefixlen > 30:
            raise LabError(f"spec: host {name}: ip {ip!r} needs a prefix length of at most 30")
        gateway = next(iface.network.hosts())
        if iface.ip == gateway:
            raise LabError(f"spec: host {name}: {iface.ip} is the router's address in {iface.network}")
        nets[str(iface.network)] = iface.network
        mac = "52:54:00:" + ":".join(f"{b:02x}" for b in hashlib.sha256(name.encode()).digest()[:3])
        guests.append(
            {
                "name": name,
                "ip": str(iface),
                "address": str(iface.ip),
                "gateway": str(gateway),
                "network": str(iface.network),
                "port": f"{PREFIX}p{idx}",
                "mac": mac,
                "netns": PREFIX + name,
            }
        )
    addrs = [g["address"] for g in guests]
    if len(set(addrs)) != len(addrs):
        raise LabError(f"spec: duplicate host addresses in {addrs}")
    nets6 = ipv6_underlay(spec.get("hosts6"), guests)
    subnets = []
    for idx, net in enumerate(sorted(nets.values())):
        subnet = {"network": str(net), "bridge": f"{PREFIX}s{idx}", "gateway": f"{next(net.hosts())}/{net.prefixlen}"}
        if str(net) in nets6:
            net6 = nets6[str(net)]
            subnet.update({"network6": str(net6), "gateway6": f"{net6[1]}/{net6.prefixlen}"})
        subnets.append(subnet)
    bridge_of = {s["network"]: s["bridge"] for s in subnets}
    for guest in guests:
        guest["bridge"] = bridge_of[guest["network"]]
    return {"router": ROUTER, "subnets": subnets, "guests": guests, "mem": mem}


def ipv6_underlay(hosts6, guests: list) -> dict:
    """The IPv6 side of a dual-stack lab: every guest named in ``hosts6`` gets ``ip6``, ``address6``,
    ``network6`` and ``gateway6`` (the router: the subnet's first address, as in IPv4). Returns IPv4
    subnet -> its IPv6 subnet: one each way (the hosts of an IPv4 subnet share one IPv6 subnet, and
    no two IPv4 subnets share one), so the router has one bridge per subnet carrying both families."""
    if hosts6 is None:
        return {}
    if not isinstance(hosts6, dict):
        raise LabError(f"spec: hosts6 must be a mapping of host name to IPv6 address/prefix, got {hosts6!r}")
    by_name = {g["name"]: g for g in guests}
    unknown = sorted(set(map(str, hosts6)) - set(by_name))
    if unknown:
        raise LabError(f"spec: hosts6 names hosts {unknown} that are not in hosts")
    nets6: dict = {}
    for name, ip6 in hosts6.items():
        guest = by_name[str(name)]
        try:
            iface = ipaddress.IPv6Interface(str(ip6))
        except ValueError as exc:
            raise LabError(f"spec: host {name}: ip6 {ip6!r}: {exc}") from None
        if "/" not in str(ip6) or iface.network.prefixlen > 126:
            raise LabError(f"spec: host {name}: ip6 {ip6!r} needs a prefix length of at most 126")
        gateway = iface.network[1]
        if iface.ip == gateway:
            raise LabError(f"spec: host {name}: {iface.ip} is the router's address in {iface.network}")
        if nets6.setdefault(guest["network"], iface.network) != iface.network:
            raise LabError(f"spec: host {name}: ip6 {ip6!r} is outside {nets6[guest['network']]}, the IPv6 subnet of the other hosts in {guest['network']}")
        guest.update({"ip6": str(iface), "address6": str(iface.ip), "network6": str(iface.network), "gateway6": str(gateway)})
    shared = [str(n) for n in nets6.values()]
    if len(set(shared)) != len(shared):
        raise LabError(f"spec: hosts6: two IPv4 subnets share one IPv6 subnet ({sorted(shared)}): one router bridge per subnet")
    addrs6 = [g["address6"] for g in guests if "address6" in g]
    if len(set(addrs6)) != len(addrs6):
        raise LabError(f"spec: duplicate host IPv6 addresses in {addrs6}")
    return nets6
