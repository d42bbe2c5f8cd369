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
from typing import Callable, Mapping, Sequence

from ansible_collections.l3.calico.plugins.module_utils import firewall, iproute, sysctls, tunnels

Runner = Callable[[list], "tuple[int, str, str]"]
DPKG_QUERY_FORMAT = "${Package} ${db:Status-Status}\n"


def missing_packages(run: Runner, packages: Sequence[str]) -> list[str]:
    """Packages of the list dpkg does not report as installed (all of them without dpkg-query)."""
    if not packages:
        return []
    if shutil.which("dpkg-query") is None:
        return list(packages)
    _rc, out, _err = run(["dpkg-query", "-W", "-f", DPKG_QUERY_FORMAT, *packages])  # rc 1: some unknown
    installed = {line.split(" ", 1)[0] for line in out.splitlines() if line.endswith(" installed")}
    return [name for name in packages if name not in installed]


def converge(
    run: Runner,
    *,
    packages: Sequence[str],
    node: str,
    nodes: Mapping,
    pools: Mapping,
    tunnel_args: Mapping,
    sysctl_values: Mapping,
    sysctl_file: str,
    workloads: Sequence[Mapping],
    firewall_args: Mapping,
    check_mode: bool,
) -> dict:
    """Returns {missing_packages, tunnels, sysctls, firewall} (the last three None when packages are missing).

    All three are validated, read and planned before any of them is applied: bad input for any
    part (a sysctl name, a workload address, a firewall backend) fails with nothing changed.
    """
    missing = missing_packages(run, packages)
    ipam = tunnels.load({"nodes": nodes, "pools": pools})  # the IPAM result, checked once
    if missing:
        tunnels.prepare(node, ipam, **tunnel_args)
        return {"missing_packages": missing, "tunnels": None, "sysctls": None, "firewall": None}
    tun = tunnels.prepare(node, ipam, **tunnel_args)
    sys_plan = sysctls.plan(sysctl_values, sysctl_file, creates=tun.creates)  # e.g. tunl0's keys
    fw = firewall.prepare(pools, workloads, node_addresses=ipam.node_addresses(), **firewall_args)
    if not check_mode:
        if tun.changed:
            tunnels.apply(tunnel_args.get("runner", iproute.subprocess_runner), tun, tunnel_args.get("modprobe_dir"))
        if sys_plan.changed:
            sysctls.apply(sys_plan, sysctl_file)
        firewall.commit(
            firewall_args.get("runner", iproute.subprocess_runner),
            fw,
            firewall_args.get("state_file", firewall.DEFAULT_STATE_FILE),
        )
    return {"missing_packages": [], "tunnels": tun, "sysctls": sys_plan, "firewall": fw}


def remove(
    *,
    pools: Mapping,
    ipip_address: str | None,
    sysctl_file: str,
    firewall_state_file: str,
    check_mode: bool,
    runner: iproute.Runner = iproute.subprocess_runner,
) -> dict:
    """Take away what :func:`converge` set up on a node that leaves: {tunnels, sysctls, firewall} plans.

    All three are read and planned first (a sysctl file that is not ours fails with nothing
    changed), then applied unless check mode. Packages and kernel modules stay; the sysctl values
    applied at run time stay too (see :func:`sysctls.plan_removal`).
    """
    tun = tunnels.plan_removal(tunnels.read_state(runner), pools, ipip_address)
    sys_plan = sysctls.plan_removal(sysctl_file)
    fw = firewall.plan_removal(firewall.read_nft(runner), firewall.read_iptables(runner),
                               os.path.exists(firewall_state_file))
    if not check_mode:
        if tun.changed:
            tunnels.apply(runner, tun)
        if sys_plan.changed:
            sysctls.apply(sys_plan, sysctl_file)
        firewall.commit_removal(runner, fw, firewall_state_file)
    return {"tunnels": tun, "sysctls": sys_plan, "firewall": fw}
