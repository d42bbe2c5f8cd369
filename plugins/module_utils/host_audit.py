# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Do a host's routes and tunnel addresses agree with the IPAM? (the host half of playbooks/audit.yml)

Plain Python over what ``ip -json route show table main`` and ``ip -json addr show`` print and the
IPAM result of docs/architecture.md; every problem comes with the command that fixes it.

What "right" is - every route the node must have, per own block, workload, remote block and
borrowed /32, who programs it and how - is ``IpamResult.expected_routes`` (module_utils/ipam_result.py),
the same answer the tunnels module programs and verify expects. Borrowed /32s win over the block's
route by longest prefix on every host, the block's owner included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Optional

from ansible_collections.l3.calico.plugins.module_utils import naming
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import int_to_ip
from ansible_collections.l3.calico.plugins.module_utils.ipam_result import (
    BORROWED,
    BY_TUNNELS,
    OWN_BLOCK,
    REMOTE_BLOCK,
    WORKLOAD,
    IpamResult,
    IpamResultError,
    Route,
    Subnet,
    parse_address,
    subnet,
)

NOT_FORWARDING = ("blackhole", "unreachable", "prohibit", "throw")
TUNNEL_DEVICES = (("ipip", naming.IPIP_DEVICE, "IPIP"), ("vxlan", naming.VXLAN_DEVICE, "VXLAN"))


def _subnet(text) -> Optional[Subnet]:
    """A route's destination as printed by ``ip -json`` (host routes without /32); None: not IPv4."""
    if not isinstance(text, str):
        return None
    try:
        return subnet(text if "/" in text else text + "/32", "dst")
    except IpamResultError:
        return None


def describe(want: Route) -> str:
    """How a route must go, as the problems say it."""
    parts = [f"via {want.gateway}" if want.gateway else "via a router", f"dev {want.dev}" if want.dev else ""]
    parts += ["onlink" if want.onlink else "", "proto 80" if want.by == BY_TUNNELS else "(BGP)"]
    return " ".join(p for p in parts if p)


def _hops(route: Mapping) -> list:
    return [(h.get("gateway"), h.get("dev")) for h in (route.get("nexthops") or [route])]


def _how(route: Mapping) -> str:
    hops = ", ".join(" ".join(f"{k} {v}" for k, v in (("via", g), ("dev", d)) if v) for g, d in _hops(route))
    return f"{hops}" + (f" proto {route['protocol']}" if route.get("protocol") else "")


TUNNELS = (naming.IPIP_DEVICE, naming.VXLAN_DEVICE)


def _matches(route: Mapping, want: Route) -> bool:
    """One hop goes as ``want`` says: its gateway (None: any), its device (None: the underlay, any device but a
    tunnel's - a route through a tunnel where none is due is encapsulated where Calico would not)."""
    gateway, dev = want.gateway, want.dev
    hops = route.get("nexthops")
    if not hops:  # one hop (the usual route, once per remote prefix: without _hops' list)
        g, d = route.get("gateway"), route.get("dev")
        return (gateway is None or g == gateway) and (d == dev if dev else d not in TUNNELS)
    return any((gateway is None or g == gateway) and (d == dev if dev else d not in TUNNELS) for g, d in _hops(route))


def audit_routes(node: str, ipam, routes: list, veth_prefix: str = "cali", bgp: bool = True, bgp_nodes: Optional[Iterable[str]] = None) -> list:
    """Problems ``{"problem", "fix"}`` of ``node``'s kernel routes against the IPAM result ``ipam``
    (the result's dict or its model).

    - every workload of the node has ``<ip> dev <its veth>``; every /32 on a workload veth inside
      a pool is one of the node's workloads (else: a leftover, or an address two workloads use);
    - with ``bgp`` (this node runs BIRD), every own block is blackholed;
    - every block of another node, and every address another node borrowed, has its route as
      ``IpamResult.expected_routes`` says (missing, or misdirected: towards another node); more than
      ``MISSING_ONE_BY_ONE`` remote blocks without any route, expected the same way, are one problem
      (the node's BIRD or tunnels, not each other node, are what is wrong);
    - no route to a block-sized prefix inside a pool that no node of the IPAM holds (a stale block,
      e.g. of a removed node), no /32 towards another host for an address nobody borrowed.

    ``bgp_nodes``: the nodes that run BIRD (default: every node when ``bgp``, none otherwise).

    A dict is read lazily (``IpamResult.from_dict`` ``lazy=True``): of the other nodes what their routes
    need (address, tunnels, blocks, the workloads that may be borrowed), their other workloads only when
    an address found here must be named; bad data in what is read raises :class:`IpamResultError`.
    """
    result = IpamResult.of(ipam, lazy=True)
    if node not in result.nodes:
        return [{"problem": f"{node}: not a node of the IPAM result", "fix": "check calico_nodes and the inventory"}]
    speakers = set(result.nodes) if bgp_nodes is None and bgp else set(bgp_nodes or ())
    if bgp:
        speakers.add(node)
    else:
        speakers.discard(node)
    expected = {kind: [] for kind in (OWN_BLOCK, WORKLOAD, REMOTE_BLOCK, BORROWED)}
    for want in result.expected_routes(node, speakers, veth_prefix):
        expected[want.kind].append(want)
    site = naming.run_site(node)
    found = []

    by_dst: dict = {}
    for route in routes:
        net = _subnet(route.get("dst"))
        if net is not None:
            by_dst.setdefault(net, []).append(route)

    forwarding_to: dict = {}

    def forwarding(net) -> list:
        found = forwarding_to.get(net)
        if found is None:
            found = forwarding_to[net] = [r for r in by_dst.get(net, []) if r.get("type") not in NOT_FORWARDING]
        return found

    # Workloads: the /32 routes on workload veths.
    mine = {want.dst: want for want in expected[WORKLOAD]}
    held: Optional[dict] = None  # address -> (node, workload id) of the other nodes' workloads, read on first need

    def elsewhere(address: int) -> Optional[tuple]:
        nonlocal held
        if held is None:
            held = {w.address: (name, w.id) for name, other in result.nodes.items() if name != node for w in other.workloads if w.address is not None}
        return held.get(address)

    for dst, want in sorted(mine.items()):
        ip = int_to_ip(dst.base)
        devs = [r.get("dev") for r in by_dst.get(dst, [])]
        if want.dev not in devs:
            found.append(
                {
                    "problem": f"{node}: workload {want.workload} ({ip}) has no route '{ip} dev {want.dev}'"
                    + (f" (routes: {', '.join(str(d) for d in devs)})" if devs else ""),
                    "fix": site,
                }
            )
    for net, rs in sorted(by_dst.items()):
        if net.prefix != 32:
            continue
        for route in rs:
            dev = route.get("dev") or ""
            if not dev.startswith(veth_prefix) or result.pool_containing(net) is None:
                continue
            ip = int_to_ip(net.base)
            if net in mine and mine[net].dev == dev:
                continue
            holder = elsewhere(net.base)
            if holder is not None:
                other, wid = holder
                found.append(
                    {
                        "problem": f"{node}: address {ip} is used here (dev {dev}) but the IPAM gives it to "
                        f"workload {wid} on {other}: two workloads with one address",
                        "fix": f"{site}   (removes a workload of ours the IPAM no longer knows; anything else: on {node}, ip route del {ip}/32 dev {dev})",
                    }
                )
            elif net not in mine:
                found.append(
                    {
                        "problem": f"{node}: route '{ip} dev {dev}' belongs to no workload of {node} in the IPAM (a leftover workload)",
                        "fix": f"{site}   (or on {node}: ip route del {ip}/32 dev {dev})",
                    }
                )

    # Blocks: own ones blackholed (BIRD's static protocol), others' routed.
    for want in expected[OWN_BLOCK]:
        if not any(r.get("type") == "blackhole" for r in by_dst.get(want.dst, [])):
            found.append(
                {
                    "problem": f"{node}: own block {want.dst} is not blackholed (BIRD not running or not configured?)",
                    "fix": f"{site}   (then on {node}: birdc show protocols)",
                }
            )
    missing: dict = {}  # by -> the remote blocks with no route at all, listed one by one only when few
    for want in sorted(expected[REMOTE_BLOCK], key=lambda r: r.dst):
        if forwarding(want.dst):
            found += _check(node, want.node, want.dst, f"block {want.dst} of {want.node}", want, forwarding(want.dst))
        else:
            missing.setdefault(want.by, []).append(want)
    for wants in missing.values():
        if len(wants) <= MISSING_ONE_BY_ONE:
            for want in wants:
                found += _check(node, want.node, want.dst, f"block {want.dst} of {want.node}", want, [])
        else:
            found.append(_missing_blocks(node, wants))

    # Borrowed addresses: a /32 towards the node that holds them, on every other node.
    for want in sorted(expected[BORROWED], key=lambda r: r.dst):
        block_owner = result.block_owner(want.dst)
        block = want.origin if want.origin is not None else "(unknown)"
        origin = f"block {block} of {block_owner}" if block_owner else f"block {block}, affine to no node"
        what = f"{want.dst} (workload {want.workload} on {want.node}, borrowed from {origin})"
        found += _check(node, want.node, want.dst, what, want, forwarding(want.dst), block_owner)

    # Stale: block-sized prefixes nobody holds; /32s towards other hosts for addresses nobody borrowed.
    live = {block.cidr for other in result.nodes.values() for block in other.blocks}
    borrowed = {item.address for other in result.nodes.values() for item in other.borrowed()}
    for net, rs in sorted(by_dst.items()):
        if net in live:
            continue
        pool = result.pool_containing(net)
        if pool is None:
            continue
        if net.prefix == pool.block_size:
            for route in rs:
                how = " ".join(str(route[k]) for k in ("type", "gateway", "dev", "protocol") if route.get(k))
                found.append(
                    {
                        "problem": f"{node}: route to {net} ({how}) but no node holds that block in the IPAM (a stale route, e.g. of a removed node)",
                        "fix": f"{site}   (or on {node}: ip route del {net})",
                    }
                )
        elif net.prefix == 32 and net.base not in borrowed:
            ip = int_to_ip(net.base)
            for route in rs:
                if (route.get("dev") or "").startswith(veth_prefix) or route.get("type") in NOT_FORWARDING:
                    continue  # workload routes: checked above
                other = elsewhere(net.base)
                if other is not None or net in mine:
                    holder, wid = other or (node, mine[net].workload)
                    what = (
                        f"but {ip} is workload {wid} on {holder}, inside its own block: the /32 takes its traffic "
                        "away (another host announces it: see its 'two workloads with one address')"
                    )
                else:
                    what = "but no node borrowed that address in the IPAM (a stale /32: its workload left or moved)"
                found.append(
                    {
                        "problem": f"{node}: route to {ip}/32 ({_how(route)}) {what}",
                        "fix": f"{site}   (BGP-learned: it goes once the host announcing it converges; or on {node}: ip route del {ip}/32)",
                    }
                )
    return found


# More remote blocks than this without any route, for one reason (BGP, or the tunnels module), make one
# problem: the host's BIRD or its sessions (or its tunnels), not each other node, are what to look at - and
# a host cut off from a fleet of 1,000 would otherwise report 999 lines.
MISSING_ONE_BY_ONE = 5


def _missing_blocks(node: str, wants: list) -> dict:
    """One problem for many remote blocks with no route at all, all expected the same way (``want.by``)."""
    site = naming.run_site(node)
    owners = sorted({want.node for want in wants})
    shown = ", ".join(f"{want.dst} of {want.node}" for want in wants[:3])
    if wants[0].by == BY_TUNNELS:
        how, why, fix = "programmed by the tunnels module (proto 80)", "vxlan.calico not converged or the tunnels module not run", site
    else:
        how, why, fix = "learned by BGP", f"{node}'s BIRD stopped or its BGP sessions down", f"{site}   (then on {node}: birdc show protocols)"
    return {
        "problem": f"{node}: no route to {len(wants)} blocks of {len(owners)} other nodes ({shown} and {len(wants) - 3} more), expected {how} ({why}?)",
        "fix": fix,
    }


def _check(node: str, target: str, net: Subnet, what: str, want: Route, routes: list, block_owner: str = None) -> list:
    """A missing or misdirected route to ``net`` (held by ``target``) as a problem with its fix."""
    if routes and any(_matches(r, want) for r in routes):
        return []  # the common case, once per remote prefix: nothing to write
    site = naming.run_site(node)
    dst = str(net)
    if want.by == BY_TUNNELS:
        command = f"ip route replace {dst} via {want.gateway}{' dev ' + want.dev if want.dev else ''}" + (" onlink" if want.onlink else "") + " proto 80"
        fix = f"{site}   (l3.calico.tunnels programs it; or on {node}: {command})"
        why = "vxlan.calico not converged" if want.dev else "the tunnels module not run"
    else:
        fix = f"{naming.run_site(node, target)}   (BIRD on {target} announces it: on {target} and {node}, birdc show route {dst} all; birdc show protocols)"
        why = f"a BGP session down, or {target}'s BIRD stopped"
    if not routes:
        lost = f"; its traffic follows {block_owner}'s block route instead" if block_owner and block_owner != node else ""
        return [{"problem": f"{node}: no route to {what}, expected {describe(want)} ({why}?){lost}", "fix": fix}]
    actual = "; ".join(_how(r) for r in routes)
    return [{"problem": f"{node}: route to {what} goes {actual}, not towards {target}; expected {describe(want)}", "fix": fix}]


def _in_a_pool(result: IpamResult, address: str, prefix) -> bool:
    """Whether an interface address's network (``ip -json addr``: local and prefixlen) lies inside a pool."""
    try:
        base = parse_address(address, "local")
    except IpamResultError:
        return False
    if isinstance(prefix, bool) or not isinstance(prefix, int) or not 0 <= prefix <= 32:
        return False
    return result.pool_containing(Subnet.around(base, prefix)) is not None


def audit_tunnels(node: str, ipam, links: list) -> list:
    """Problems of ``node``'s tunnel addresses (``ip -json addr show``) against the IPAM's (the result's dict
    or its model).

    The IPIP address on ``tunl0`` and the VXLAN address on ``vxlan.calico`` must be exactly the
    node's tunnel addresses of the IPAM (``nodes[node].tunnels``), each device present and up; a
    device holding an address inside a pool when the IPAM gives the node none is a leftover.
    """
    result = IpamResult.of(ipam, lazy=True)
    me = result.nodes.get(node)
    if me is None:
        return []
    by_name = {link.get("ifname"): link for link in links}
    site = naming.run_site(node)
    found = []
    for kind, dev, label in TUNNEL_DEVICES:
        want = me.ipip if kind == "ipip" else me.vxlan
        link = by_name.get(dev)
        inet = [a for a in (link or {}).get("addr_info", []) if a.get("family") == "inet"]
        have = [f"{a['local']}/{a.get('prefixlen', 32)}" for a in inet]
        ours = [f"{a['local']}/{a.get('prefixlen', 32)}" for a in inet if _in_a_pool(result, a.get("local"), a.get("prefixlen", 32))]
        if want is None:
            for addr in ours:
                found.append(
                    {
                        "problem": f"{node}: {dev} holds {addr} but the IPAM gives {node} no {label} tunnel address (a leftover)",
                        "fix": f"{site}   (or on {node}: ip addr del {addr} dev {dev})",
                    }
                )
            continue
        if link is None:
            found.append({"problem": f"{node}: {dev} does not exist, but the IPAM gives {node} the {label} tunnel address {want}", "fix": site})
            continue
        wrong = [a for a in ours if a != f"{want}/32"]
        if f"{want}/32" not in have:
            found.append(
                {
                    "problem": f"{node}: {dev} has {', '.join(have) or 'no address'}, but the IPAM gives {node} the {label} tunnel address {want}",
                    "fix": f"{site}   (or on {node}: " + "".join(f"ip addr del {a} dev {dev}; " for a in wrong) + f"ip addr add {want}/32 dev {dev})",
                }
            )
        elif wrong:
            found.append(
                {
                    "problem": f"{node}: {dev} holds {', '.join(wrong)} besides its {label} tunnel address {want}",
                    "fix": f"{site}   (or on {node}: " + "; ".join(f"ip addr del {a} dev {dev}" for a in wrong) + ")",
                }
            )
        if "UP" not in (link.get("flags") or []):
            found.append({"problem": f"{node}: {dev} is down", "fix": f"{site}   (or on {node}: ip link set {dev} up)"})
    return found
