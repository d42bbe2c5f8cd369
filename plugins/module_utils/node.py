# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""A node's prerequisites as one step: packages checked, then tunnels, sysctls and firewall.

Plain Python (no Ansible import): the module ``l3.calico.node`` is its thin adapter and composes
``tunnels``, ``sysctls`` and ``firewall`` (each *read -> plan -> apply*): all three are planned
(and so validated) first, then applied unless check mode.

When packages are missing nothing is converged: the tunnels are only planned (so a
kernel without the ipip driver fails now, before the packages are installed) and the missing
packages are returned for the package manager; the role then runs the module again.

:func:`remove` is the opposite, for a node leaving the cluster: it takes away what the three
parts own (``vxlan.calico``, ``tunl0``'s address, the sysctl file, the firewall objects) and
nothing else.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence

from ansible_collections.l3.calico.plugins.module_utils import firewall, iproute, sysctls, tunnels
from ansible_collections.l3.calico.plugins.module_utils.ipam_model import tunnel_kinds

DPKG_QUERY_FORMAT = "${Package} ${db:Status-Status}\n"
# The underlay MTU assumed when none is known (no interface holds the node address, or no node ran).
DEFAULT_UNDERLAY_MTU = 1500


def workload_mtu(underlay_mtu: int | None, pools: Mapping) -> int:
    """The MTU of a node's workload veths, as Felix picks it: the underlay MTU (1500 when unknown) minus the
    largest encapsulation overhead of the enabled pools - VXLAN over IPv6 70 (an IPv6 pool's), VXLAN 50, else
    IPIP 20, else 0.

    ``pools`` is the IPAM result's (name -> settings); every node gets the same overhead, whether or not a
    pool of that encapsulation selects it (a workload's packets may cross any tunnel of the cluster).
    """
    enabled = [pool for pool in pools.values() if not pool.get("disabled")]
    overhead = {"vxlan": tunnels.VXLAN_OVERHEAD, "ipip": tunnels.IPIP_OVERHEAD, "vxlan_v6": tunnels.VXLAN_V6_OVERHEAD}
    overheads = [0]
    for pool in enabled:
        six = ":" in str(pool.get("cidr", ""))  # an IPv6 pool's VXLAN runs over vxlan-v6.calico
        kinds = tunnel_kinds(pool.get("ipip_mode", "Never"), pool.get("vxlan_mode", "Never"), 128 if six else 32)
        overheads += [overhead[kind] for kind in kinds]
    return (underlay_mtu or DEFAULT_UNDERLAY_MTU) - max(overheads)


def missing_packages(run: iproute.Runner, packages: Sequence[str]) -> list[str]:
    """Packages of the list dpkg does not report as installed (all of them without dpkg-query)."""
    if not packages:
        return []
    if shutil.which("dpkg-query") is None:
        return list(packages)
    _rc, out, _err = run(["dpkg-query", "-W", "-f", DPKG_QUERY_FORMAT, *packages])  # rc 1: some unknown
    installed = {line.split(" ", 1)[0] for line in out.splitlines() if line.endswith(" installed")}
    return [name for name in packages if name not in installed]


# A node with an IPv6 address forwards IPv6 (Calico: "IPv6 forwarding is globally enabled on each compute
# host", docs "IPv6 Support", implementation details; Felix's IPForwarding=Enabled); added to the sysctls
# unless they name it. Note that a host forwarding IPv6 ignores router advertisements (accept_ra=1).
IPV6_FORWARDING = "net.ipv6.conf.all.forwarding"

# The parts' defaults (frozen: one shared instance each).
DEFAULT_TUNNEL_OPTIONS = tunnels.Options()
DEFAULT_FIREWALL_OPTIONS = firewall.Options()


def converge(
    run: iproute.Runner,
    *,
    packages: Sequence[str],
    node: str,
    nodes: Mapping,
    pools: Mapping,
    workloads: Sequence[Mapping],
    pools_ipv6: Mapping | None = None,
    tunnel_options: tunnels.Options = DEFAULT_TUNNEL_OPTIONS,
    sysctl_options: sysctls.Options,
    firewall_options: firewall.Options = DEFAULT_FIREWALL_OPTIONS,
    check_mode: bool,
    runner: iproute.Runner = iproute.subprocess_runner,
) -> dict:
    """Returns {missing_packages, tunnels, sysctls, firewall, workload_mtu} (all but the first None when packages
    are missing); ``workload_mtu`` is :func:`workload_mtu` of the underlay the tunnels found.

    ``run`` answers the package check (the module's ``iproute.module_runner``); ``runner`` runs the tunnels' and the
    firewall's commands. All three are validated, read and planned before any of them is applied: bad
    input for any part (a sysctl name, a workload address, a firewall backend) fails with nothing changed.
    """
    missing = missing_packages(run, packages)
    ipam = tunnels.load({"nodes": nodes, "pools": pools, "pools_ipv6": pools_ipv6})  # the IPAM result, checked once
    if missing:
        tunnels.prepare(node, ipam, tunnel_options, runner)
        return {"missing_packages": missing, "tunnels": None, "sysctls": None, "firewall": None, "workload_mtu": None}
    tun = tunnels.prepare(node, ipam, tunnel_options, runner)
    wanted_sysctls = sysctl_options.values
    me = ipam.nodes.get(node)
    if me is not None and me.address6 is not None and IPV6_FORWARDING not in wanted_sysctls:
        wanted_sysctls = {**wanted_sysctls, IPV6_FORWARDING: 1}
    sys_plan = sysctls.plan(wanted_sysctls, sysctl_options.path, creates=tun.creates)  # e.g. tunl0's keys
    fw = firewall.prepare(pools, workloads, firewall_options, ipam.node_addresses(), runner, pools_ipv6 or {}, ipam.node_addresses(6))
    if not check_mode:
        if tun.changed:
            tunnels.apply(runner, tun, tunnel_options.modprobe_dir)
        if sys_plan.changed:
            sysctls.apply(sys_plan, sysctl_options.path)
        firewall.commit(runner, fw, firewall_options.state_file)
    all_pools = {**pools, **(pools_ipv6 or {})}
    return {"missing_packages": [], "tunnels": tun, "sysctls": sys_plan, "firewall": fw, "workload_mtu": workload_mtu(tun.underlay_mtu, all_pools)}


def result(parts: Mapping) -> dict:
    """The node module's result from its parts' plans ({name: plan}, in the order they apply): ``changed``,
    ``changes`` (each line prefixed by its part), ``diff`` (those of the parts that change) and each part's own
    result under its name."""
    out = {
        "changed": any(the_plan.changed for the_plan in parts.values()),
        "changes": [f"{name}: {line}" for name, the_plan in parts.items() for line in the_plan.changes],
        "diff": [d for d in (the_plan.diff() for the_plan in parts.values()) if d is not None],
    }
    out.update((name, the_plan.result()) for name, the_plan in parts.items())
    return out


def remove(
    *,
    pools: Mapping,
    ipip_address: str | None,
    sysctl_file: str,
    pools_ipv6: Mapping | None = None,
    firewall_state_file: str,
    check_mode: bool,
    runner: iproute.Runner = iproute.subprocess_runner,
) -> dict:
    """Take away what :func:`converge` set up on a node that leaves: {tunnels, sysctls, firewall} plans.

    All three are read and planned first (a sysctl file that is not ours fails with nothing
    changed), then applied unless check mode. Packages and kernel modules stay; the sysctl values
    applied at run time stay too (see :func:`sysctls.plan_removal`).
    """
    tun = tunnels.plan_removal(tunnels.read_state(runner), pools, ipip_address, pools_ipv6 or {})
    sys_plan = sysctls.plan_removal(sysctl_file)
    fw = firewall.plan_removal(
        firewall.read_nft(runner),
        firewall.read_iptables(runner),
        os.path.exists(firewall_state_file),
        firewall.read_nft(runner, "ip6"),
        firewall.read_ip6tables(runner),
    )
    if not check_mode:
        if tun.changed:
            tunnels.apply(runner, tun)
        if sys_plan.changed:
            sysctls.apply(sys_plan, sysctl_file)
        firewall.commit_removal(runner, fw, firewall_state_file)
    return {"tunnels": tun, "sysctls": sys_plan, "firewall": fw}
