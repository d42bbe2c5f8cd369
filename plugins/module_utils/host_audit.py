# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Do a host's routes agree with the IPAM? (the host half of playbooks/audit.yml)

Plain Python over what ``ip -json -4 route show table main`` prints and the IPAM result of
docs/architecture.md; every problem comes with the command that fixes it.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.l3.calico.plugins.module_utils import naming

SITE = "ansible-playbook -i INVENTORY playbooks/site.yml --limit {node}"


def _net(text: str) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(text if "/" in text else text + "/32")
    except ValueError:
        return None


def audit_routes(node: str, ipam: dict, routes: list, veth_prefix: str = "cali", bgp: bool = True) -> list:
    """Problems ``{"problem", "fix"}`` of ``node``'s kernel routes against the IPAM result ``ipam``.

    - every workload of the node has ``<ip> dev <its veth>``; every /32 on a workload veth inside
      a pool is one of the node's workloads (else: a leftover, or an address two workloads use);
    - with ``bgp``, every own block is blackholed, and every block of another node whose routes
      reach this node (exported or VXLAN) has a route;
    - no route to a block-sized prefix inside a pool that no node of the IPAM holds (a stale block,
      e.g. of a removed node).
    """
    nodes = ipam.get("nodes") or {}
    me = nodes.get(node)
    if me is None:
        return [{"problem": f"{node}: not a node of the IPAM result", "fix": "check calico_nodes and the inventory"}]
    pools = {name: (ipaddress.IPv4Network(p["cidr"]), p) for name, p in (ipam.get("pools") or {}).items()}
    site = SITE.format(node=node)
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

    # Blocks: own ones blackholed, others' routed, no stale block routes.
    live = {}
    for name, other in nodes.items():
        for block in other.get("blocks") or []:
            live[ipaddress.IPv4Network(block["cidr"])] = (name, block.get("pool"))
    if bgp:
        for net, (owner, pool_name) in sorted(live.items()):
            rs = by_dst.get(net, [])
            pool = (pools.get(pool_name) or (None, {}))[1]
            if owner == node:
                if net.prefixlen < 32 and not any(r.get("type") == "blackhole" for r in rs):
                    found.append({"problem": f"{node}: own block {net} is not blackholed (BIRD not running "
                                             "or not configured?)",
                                  "fix": f"{site}   (then on {node}: birdc show protocols)"})
                continue
            reaches = pool.get("vxlan_mode", "Never") != "Never" or not pool.get("disable_bgp_export", False)
            if reaches and not [r for r in rs if r.get("type") != "blackhole"]:
                found.append({"problem": f"{node}: no route to block {net} of {owner} (a BGP session down, or "
                                         f"{owner}'s BIRD stopped?)",
                              "fix": f"{site.replace(node, node + ',' + owner)}   (then on {node}: birdc show "
                                     "protocols)"})
    for net, rs in sorted(by_dst.items()):
        cidr, pool = pool_of(net)
        if cidr is None or net.prefixlen != pool.get("block_size") or net in live:
            continue
        for route in rs:
            how = " ".join(str(route[k]) for k in ("type", "gateway", "dev", "protocol") if route.get(k))
            found.append({"problem": f"{node}: route to {net} ({how}) but no node holds that block in the IPAM "
                                     "(a stale route, e.g. of a removed node)",
                          "fix": f"{site}   (or on {node}: ip route del {net})"})
    return found
