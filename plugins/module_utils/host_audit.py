# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Do a host's routes and tunnel addresses agree with the IPAM? (the host half of playbooks/audit.yml)

Plain Python over what ``ip -json route show table main`` and ``ip -json addr show`` print and the
IPAM result of docs/architecture.md; every problem comes with the command that fixes it.

What "right" is, per remote prefix (another node's block, or an address another node borrowed
from a block not its own, as a /32), is what the pieces program (docs/architecture.md):

- VXLAN pool, ``Always`` (or ``CrossSubnet`` towards a node in another subnet):
  ``<prefix> via <its VTEP> dev vxlan.calico onlink proto 80`` (l3.calico.tunnels, BGP or not);
- VXLAN pool, ``CrossSubnet``, same subnet: ``<prefix> via <its address> proto 80`` (tunnels);
- any other pool, only when both nodes run BIRD and the pool is exported: learned by BGP,
  ``via <its address> dev tunl0 onlink`` for IPIP ``Always`` (or ``CrossSubnet`` across subnets),
  ``via <its address>`` in the same subnet, via whatever router leads there otherwise
  (``gateway recursive``). Borrowed /32s travel the same way (BIRD exports them from the kernel
  route ``<ip> dev cali…`` of the node that holds them; bird.md), and win over the block's route
  by longest prefix on every host, the block's owner included.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

from ansible_collections.l3.calico.plugins.module_utils import naming

NOT_FORWARDING = ("blackhole", "unreachable", "prohibit", "throw")
TUNNEL_DEVICES = (("ipip", naming.IPIP_DEVICE, "IPIP"), ("vxlan", naming.VXLAN_DEVICE, "VXLAN"))


def _net(text: str) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(text if "/" in text else text + "/32")
    except ValueError:
        return None


def _addr(text) -> Optional[str]:
    if not text:
        return None
    try:
        return str(ipaddress.IPv4Interface(str(text)).ip)
    except ValueError:
        return None


@dataclass(frozen=True)
class Expect:
    """How a remote prefix must be routed: gateway and device (None: any), and who programs it."""

    gateway: Optional[str]
    dev: Optional[str]
    by: str  # "vxlan" (l3.calico.tunnels) or "bgp" (BIRD)
    onlink: bool = False

    def describe(self) -> str:
        parts = [f"via {self.gateway}" if self.gateway else "via a router", f"dev {self.dev}" if self.dev else ""]
        parts += ["onlink" if self.onlink else "", "proto 80" if self.by == "vxlan" else "(BGP)"]
        return " ".join(p for p in parts if p)


def expected_route(me: Mapping, owner: Mapping, pool: Mapping, bgp: bool) -> Optional[Expect]:
    """How this node (``me``) must reach a prefix held by ``owner`` in ``pool``; None: no route is due.

    ``bgp``: both nodes run BIRD (the prefix can be learned by BGP).
    """
    try:
        network = ipaddress.IPv4Network(str(me["network"]), strict=False) if me.get("network") else None
    except ValueError:
        network = None
    owner_ip = _addr(owner.get("ip"))
    same_subnet = bool(network and owner_ip and ipaddress.IPv4Address(owner_ip) in network)
    vxlan, ipip = pool.get("vxlan_mode") or "Never", pool.get("ipip_mode") or "Never"
    if vxlan != "Never":
        if vxlan == "CrossSubnet" and same_subnet:
            return Expect(owner_ip, None, "vxlan")
        vtep = _addr((owner.get("tunnels") or {}).get("vxlan"))
        if not vtep or not (me.get("tunnels") or {}).get("vxlan"):
            return None  # no VTEP: its tunnel address problem is reported instead
        return Expect(vtep, naming.VXLAN_DEVICE, "vxlan", onlink=True)
    if not bgp or pool.get("disable_bgp_export", False):
        return None
    if ipip == "Always" or (ipip == "CrossSubnet" and not same_subnet):
        return Expect(owner_ip, naming.IPIP_DEVICE, "bgp", onlink=True)
    return Expect(owner_ip if same_subnet else None, None, "bgp")


def _hops(route: Mapping) -> list:
    return [(h.get("gateway"), h.get("dev")) for h in (route.get("nexthops") or [route])]


def _how(route: Mapping) -> str:
    hops = ", ".join(" ".join(f"{k} {v}" for k, v in (("via", g), ("dev", d)) if v) for g, d in _hops(route))
    return f"{hops}" + (f" proto {route['protocol']}" if route.get("protocol") else "")


def _matches(route: Mapping, want: Expect) -> bool:
    return any((want.gateway is None or g == want.gateway) and (want.dev is None or d == want.dev)
               for g, d in _hops(route))


def audit_routes(node: str, ipam: dict, routes: list, veth_prefix: str = "cali", bgp: bool = True,
                 bgp_nodes: Optional[Iterable[str]] = None) -> list:
    """Problems ``{"problem", "fix"}`` of ``node``'s kernel routes against the IPAM result ``ipam``.

    - every workload of the node has ``<ip> dev <its veth>``; every /32 on a workload veth inside
      a pool is one of the node's workloads (else: a leftover, or an address two workloads use);
    - with ``bgp`` (this node runs BIRD), every own block is blackholed;
    - every block of another node, and every address another node borrowed, has its route as
      :func:`expected_route` says (missing, or misdirected: towards another node);
    - no route to a block-sized prefix inside a pool that no node of the IPAM holds (a stale block,
      e.g. of a removed node), no /32 towards another host for an address nobody borrowed.

    ``bgp_nodes``: the nodes that run BIRD (default: every node when ``bgp``, none otherwise).
    """
    nodes = ipam.get("nodes") or {}
    me = nodes.get(node)
    if me is None:
        return [{"problem": f"{node}: not a node of the IPAM result", "fix": "check calico_nodes and the inventory"}]
    speakers = set(nodes) if bgp_nodes is None and bgp else set(bgp_nodes or ())
    if not bgp:
        speakers.discard(node)
    pools = {name: (ipaddress.IPv4Network(p["cidr"]), p) for name, p in (ipam.get("pools") or {}).items()}
    site = naming.run_site(node)
    found = []

    def pool_of(net):
        for cidr, pool in pools.values():
            if net.subnet_of(cidr):
                return cidr, pool
        return None, None

    by_dst: dict = {}
    for route in routes:
        net = _net(route.get("dst", ""))
        if net is not None:
            by_dst.setdefault(net, []).append(route)

    def forwarding(net) -> list:
        return [r for r in by_dst.get(net, []) if r.get("type") not in NOT_FORWARDING]

    # Workloads: the /32 routes on workload veths.
    mine = {}
    for wl in me.get("workloads") or []:
        if wl.get("ip"):
            mine[wl["ip"]] = (wl, naming.veth_name(wl["id"], veth_prefix))
    elsewhere = {wl["ip"]: (name, wl["id"]) for name, other in nodes.items() if name != node
                 for wl in other.get("workloads") or [] if wl.get("ip")}
    for ip, (wl, veth) in sorted(mine.items()):
        devs = [r.get("dev") for r in by_dst.get(ipaddress.IPv4Network(ip + "/32"), [])]
        if veth not in devs:
            found.append({"problem": f"{node}: workload {wl['id']} ({ip}) has no route '{ip} dev {veth}'"
                                     + (f" (routes: {', '.join(str(d) for d in devs)})" if devs else ""),
                          "fix": site})
    for net, rs in sorted(by_dst.items()):
        if net.prefixlen != 32:
            continue
        for route in rs:
            dev = route.get("dev") or ""
            if not dev.startswith(veth_prefix) or pool_of(net)[0] is None:
                continue
            ip = str(net.network_address)
            if ip in mine and mine[ip][1] == dev:
                continue
            if ip in elsewhere:
                other, wid = elsewhere[ip]
                found.append({"problem": f"{node}: address {ip} is used here (dev {dev}) but the IPAM gives it to "
                                         f"workload {wid} on {other}: two workloads with one address",
                              "fix": f"{site}   (removes a workload of ours the IPAM no longer knows; anything "
                                     f"else: on {node}, ip route del {ip}/32 dev {dev})"})
            elif ip not in mine:
                found.append({"problem": f"{node}: route '{ip} dev {dev}' belongs to no workload of {node} in the "
                                         "IPAM (a leftover workload)",
                              "fix": f"{site}   (or on {node}: ip route del {ip}/32 dev {dev})"})

    # Blocks: own ones blackholed (BIRD's static protocol), others' routed, no stale block routes.
    live = {}
    for name, other in nodes.items():
        for block in other.get("blocks") or []:
            live[ipaddress.IPv4Network(block["cidr"])] = (name, block.get("pool"))
    for net, (owner, pool_name) in sorted(live.items()):
        if owner == node:
            if bgp and net.prefixlen < 32 and not any(r.get("type") == "blackhole" for r in by_dst.get(net, [])):
                found.append({"problem": f"{node}: own block {net} is not blackholed (BIRD not running "
                                         "or not configured?)",
                              "fix": f"{site}   (then on {node}: birdc show protocols)"})
            continue
        pool = (pools.get(pool_name) or (None, {}))[1]
        want = expected_route(me, nodes[owner], pool, node in speakers and owner in speakers)
        if want is not None:
            found += _check(node, owner, net, f"block {net} of {owner}", want, forwarding(net))

    # Borrowed addresses: a /32 towards the node that holds them, on every other node.
    borrowed = {}
    for name, other in nodes.items():
        own = {b["cidr"] for b in other.get("blocks") or []}
        for wl in other.get("workloads") or []:
            if wl.get("ip") and (wl.get("borrowed") or (wl.get("block") and wl["block"] not in own)):
                borrowed[wl["ip"]] = (name, wl)
    for ip, (holder, wl) in sorted(borrowed.items(), key=lambda item: ipaddress.IPv4Address(item[0])):
        if holder == node:
            continue  # its route here is the workload's '<ip> dev cali…', checked above
        net = ipaddress.IPv4Network(ip + "/32")
        block_owner = next((o for b, (o, _pool) in live.items() if net.subnet_of(b)), None)
        origin = (f"block {wl.get('block')} of {block_owner}" if block_owner
                  else f"block {wl.get('block')}, affine to no node")
        pool = (pools.get(wl.get("pool")) or pool_of(net))[1] or {}
        want = expected_route(me, nodes[holder], pool, node in speakers and holder in speakers)
        if want is not None:
            what = f"{ip}/32 (workload {wl.get('id')} on {holder}, borrowed from {origin})"
            found += _check(node, holder, net, what, want, forwarding(net), block_owner)

    # Stale: block-sized prefixes nobody holds; /32s towards other hosts for addresses nobody borrowed.
    for net, rs in sorted(by_dst.items()):
        cidr, pool = pool_of(net)
        if cidr is None or net in live:
            continue
        if net.prefixlen == pool.get("block_size"):
            for route in rs:
                how = " ".join(str(route[k]) for k in ("type", "gateway", "dev", "protocol") if route.get(k))
                found.append({"problem": f"{node}: route to {net} ({how}) but no node holds that block in the IPAM "
                                         "(a stale route, e.g. of a removed node)",
                              "fix": f"{site}   (or on {node}: ip route del {net})"})
        elif net.prefixlen == 32 and str(net.network_address) not in borrowed:
            ip = str(net.network_address)
            for route in rs:
                if (route.get("dev") or "").startswith(veth_prefix) or route.get("type") in NOT_FORWARDING:
                    continue  # workload routes: checked above
                if ip in elsewhere or ip in mine:
                    holder, wid = elsewhere.get(ip) or (node, mine[ip][0]["id"])
                    what = (f"but {ip} is workload {wid} on {holder}, inside its own block: the /32 takes its traffic "
                            "away (another host announces it: see its 'two workloads with one address')")
                else:
                    what = "but no node borrowed that address in the IPAM (a stale /32: its workload left or moved)"
                found.append({"problem": f"{node}: route to {ip}/32 ({_how(route)}) {what}",
                              "fix": f"{site}   (BGP-learned: it goes once the host announcing it converges; "
                                     f"or on {node}: ip route del {ip}/32)"})
    return found


def _check(node: str, target: str, net, what: str, want: Expect, routes: list, block_owner: str = None) -> list:
    """A missing or misdirected route to ``net`` (held by ``target``) as a problem with its fix."""
    site = naming.run_site(node)
    dst = str(net) if net.prefixlen < 32 else f"{net.network_address}/32"
    if want.by == "vxlan":
        command = f"ip route replace {dst} via {want.gateway}{' dev ' + want.dev if want.dev else ''}" + (
            " onlink" if want.onlink else "") + " proto 80"
        fix = f"{site}   (l3.calico.tunnels programs it; or on {node}: {command})"
        why = "vxlan.calico not converged" if want.dev else "the tunnels module not run"
    else:
        fix = (f"{naming.run_site(node, target)}   (BIRD on {target} announces it: on {target} and {node}, "
               f"birdc show route {dst} all; birdc show protocols)")
        why = f"a BGP session down, or {target}'s BIRD stopped"
    if not routes:
        lost = f"; its traffic follows {block_owner}'s block route instead" if block_owner and block_owner != node else ""
        return [{"problem": f"{node}: no route to {what}, expected {want.describe()} ({why}?){lost}", "fix": fix}]
    if any(_matches(r, want) for r in routes):
        return []
    actual = "; ".join(_how(r) for r in routes)
    return [{"problem": f"{node}: route to {what} goes {actual}, not towards {target}; expected {want.describe()}",
             "fix": fix}]


def audit_tunnels(node: str, ipam: dict, links: list) -> list:
    """Problems of ``node``'s tunnel addresses (``ip -json addr show``) against the IPAM's.

    The IPIP address on ``tunl0`` and the VXLAN address on ``vxlan.calico`` must be exactly the
    node's tunnel addresses of the IPAM (``nodes[node].tunnels``), each device present and up; a
    device holding an address inside a pool when the IPAM gives the node none is a leftover.
    """
    me = (ipam.get("nodes") or {}).get(node)
    if me is None:
        return []
    pools = [ipaddress.IPv4Network(p["cidr"]) for p in (ipam.get("pools") or {}).values()]
    by_name = {link.get("ifname"): link for link in links}
    site = naming.run_site(node)
    found = []
    for kind, dev, label in TUNNEL_DEVICES:
        want = _addr((me.get("tunnels") or {}).get(kind))
        link = by_name.get(dev)
        have = [f"{a['local']}/{a.get('prefixlen', 32)}" for a in (link or {}).get("addr_info", [])
                if a.get("family") == "inet"]
        ours = [a for a in have if any(ipaddress.IPv4Network(a, strict=False).subnet_of(p) for p in pools)]
        if want is None:
            for addr in ours:
                found.append({"problem": f"{node}: {dev} holds {addr} but the IPAM gives {node} no {label} tunnel "
                                         "address (a leftover)",
                              "fix": f"{site}   (or on {node}: ip addr del {addr} dev {dev})"})
            continue
        if link is None:
            found.append({"problem": f"{node}: {dev} does not exist, but the IPAM gives {node} the {label} tunnel "
                                     f"address {want}",
                          "fix": site})
            continue
        wrong = [a for a in ours if a != f"{want}/32"]
        if f"{want}/32" not in have:
            found.append({"problem": f"{node}: {dev} has {', '.join(have) or 'no address'}, but the IPAM gives "
                                     f"{node} the {label} tunnel address {want}",
                          "fix": f"{site}   (or on {node}: "
                                 + "".join(f"ip addr del {a} dev {dev}; " for a in wrong)
                                 + f"ip addr add {want}/32 dev {dev})"})
        elif wrong:
            found.append({"problem": f"{node}: {dev} holds {', '.join(wrong)} besides its {label} tunnel address "
                                     f"{want}",
                          "fix": f"{site}   (or on {node}: " + "; ".join(f"ip addr del {a} dev {dev}" for a in wrong)
                                 + ")"})
        if "UP" not in (link.get("flags") or []):
            found.append({"problem": f"{node}: {dev} is down", "fix": f"{site}   (or on {node}: ip link set {dev} up)"})
    return found
