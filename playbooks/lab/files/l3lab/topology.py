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
    subnets = []
    for idx, net in enumerate(sorted(nets.values())):
        subnets.append({"network": str(net), "bridge": f"{PREFIX}s{idx}", "gateway": f"{next(net.hosts())}/{net.prefixlen}"})
    bridge_of = {s["network"]: s["bridge"] for s in subnets}
    for guest in guests:
        guest["bridge"] = bridge_of[guest["network"]]
    return {"router": ROUTER, "subnets": subnets, "guests": guests, "mem": mem}
