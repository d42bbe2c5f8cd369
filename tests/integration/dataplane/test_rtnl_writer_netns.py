# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The in-process rtnetlink writer against the real kernel: same result as `ip -batch`, clear refusals,
and a run the kernel partly refused is repaired by the next one. Names start with ``l3tperf-``."""

from __future__ import annotations

import errno
import json
import sys

import pytest

from ansible_collections.l3.calico.plugins.module_utils import naming, rtnl
from ansible_collections.l3.calico.plugins.module_utils import workloads as wl

from .conftest import PYTHONPATH, Topology, _missing, ping, sh

pytestmark = pytest.mark.netns

PREFIX = "l3tperf-"
W1 = {"name": "web-1", "ip": "172.17.72.1"}
W2 = {"name": "web-2", "ip": "172.17.72.2"}


@pytest.fixture
def spaces():
    """A host namespace and two workload-like namespaces, each with a fresh veth peer named eth0."""
    missing = _missing()
    if missing:
        pytest.skip(missing)
    topology = Topology(prefix=PREFIX)
    host, by_ip, by_netlink = (topology.run + suffix for suffix in ("h", "wip", "wnl"))
    try:
        for ns in (host, by_ip, by_netlink):
            sh("ip", "netns", "add", ns)
        topology.ip(
            host,
            *(
                f"link add v{i} mtu 1450 address {naming.HOST_VETH_MAC} type veth peer name eth0 mtu 1450 netns {ns}"
                for i, ns in enumerate((by_ip, by_netlink))
            ),
        )
        yield topology, by_ip, by_netlink
    finally:
        topology.cleanup()


def configuration(topology: Topology, ns: str):
    """What `ip -json` shows of a namespace's configuration (minus what differs by nature: MACs,
    peer indexes, carrier, the MAC-derived IPv6 link-local address)."""
    links = topology.ip_json(ns, "-d", "addr", "show")
    for link in links:
        for key in ("address", "link_index", "link_netnsid", "operstate"):
            link.pop(key, None)
        link["flags"] = [f for f in link["flags"] if f not in ("LOWER_UP", "NO-CARRIER")]
        link["addr_info"] = [a for a in link["addr_info"] if not (a["family"] == "inet6" and a["scope"] == "link")]
    routes = topology.ip_json(ns, "-4", "-d", "route", "show", "table", "all")
    return links, routes


def apply_both(topology, by_ip, by_netlink, changes):
    topology.ip(by_ip, *(str(c) for c in changes))
    rtnl.apply_netns(by_netlink, changes)


def test_writer_leaves_exactly_what_ip_batch_leaves(spaces):
    topology, by_ip, by_netlink = spaces
    w = wl.Workload(wid="default.web-1", ip="172.17.72.1", netns=by_netlink, veth="v1", mtu=1450)
    apply_both(topology, by_ip, by_netlink, wl._create_inside_ops(w))  # the create path
    links, routes = configuration(topology, by_netlink)
    assert (links, routes) == configuration(topology, by_ip)
    eth0 = next(link for link in links if link["ifname"] == "eth0")
    assert "UP" in eth0["flags"] and eth0["mtu"] == 1450
    assert [(a["local"], a["prefixlen"], a["scope"]) for a in eth0["addr_info"]] == [("172.17.72.1", 32, "global")]
    main = [r for r in routes if r["table"] == "main"]
    assert {(r["dst"], r.get("gateway"), r["dev"], r["protocol"], r["scope"]) for r in main} == {
        ("default", naming.GATEWAY, "eth0", "boot", "global"),
        (naming.GATEWAY, None, "eth0", "boot", "link"),
    }

    # the repair path: MTU, a stray address removed, routes replaced and added
    topology.ip(by_ip, "addr add 10.9.9.9/24 dev eth0")
    topology.ip(by_netlink, "addr add 10.9.9.9/24 dev eth0")
    apply_both(
        topology,
        by_ip,
        by_netlink,
        [
            rtnl.LinkSet("eth0", 1400),
            rtnl.AddrDel("10.9.9.9", 24, "eth0"),
            rtnl.RouteReplace("default", "eth0", gateway=naming.GATEWAY),
            rtnl.RouteReplace("10.5.0.0/24", "eth0", gateway=naming.GATEWAY),
        ],
    )
    assert configuration(topology, by_netlink) == configuration(topology, by_ip)
    assert next(link for link in configuration(topology, by_netlink)[0] if link["ifname"] == "eth0")["mtu"] == 1400
    # and what the module's reader sees is the same in both
    assert rtnl.read_netns(by_netlink)[1] == rtnl.read_netns(by_ip)[1]


def test_kernel_refusals_are_collected_with_errno_and_message(spaces):
    topology, _by_ip, by_netlink = spaces
    rtnl.apply_netns(by_netlink, [rtnl.LinkSet("eth0"), rtnl.AddrAdd("10.1.1.1", 32, "eth0")])
    with pytest.raises(rtnl.NetlinkError) as info:
        rtnl.apply_netns(
            by_netlink,
            [
                rtnl.AddrAdd("10.1.1.1", 32, "eth0"),  # exists: EXCL, like `ip addr add`
                rtnl.RouteReplace("10.8.0.0/16", "eth1", gateway="10.1.1.2"),  # no such device
                rtnl.RouteReplace("10.7.0.0/16", "eth0", gateway="10.99.99.99"),  # gateway not reachable
                rtnl.RouteReplace("10.6.0.0/16", "eth0", scope_link=True),  # fine: applied anyway
            ],
        )
    assert [(str(c), e) for c, e, _m in info.value.failures] == [
        ("addr add 10.1.1.1/32 dev eth0", errno.EEXIST),
        ("route replace 10.8.0.0/16 via 10.1.1.2 dev eth1", errno.ENODEV),
        ("route replace 10.7.0.0/16 via 10.99.99.99 dev eth0", errno.ENETUNREACH),
    ]
    assert "EEXIST (File exists" in str(info.value) and "ENETUNREACH" in str(info.value)
    assert topology.ip_json(by_netlink, "route", "show", "10.6.0.0/16")


RACE_CODE = r"""
import json, subprocess, sys
from ansible_collections.l3.calico.plugins.module_utils import workloads as wl
kwargs, race = json.load(sys.stdin)
real_plan = wl.plan

def plan_then_race(*args, **kw):  # another actor changes a namespace between read and apply
    the_plan = real_plan(*args, **kw)
    for ns, lines in race.items():
        subprocess.run(["ip", "-n", ns, "-batch", "-"], input="".join(l + "\n" for l in lines), text=True, check=True)
    return the_plan

wl.plan = plan_then_race
try:
    the_plan = wl.converge(**kwargs)
except Exception as exc:
    print(json.dumps({"ok": False, "type": type(exc).__name__, "error": str(exc)}))
else:
    print(json.dumps({"ok": True, "changed": the_plan.changed, "update": the_plan.update}))
"""


@pytest.fixture
def topo_perf():
    missing = _missing()
    if missing:
        pytest.skip(missing)
    topology = Topology(prefix=PREFIX)
    try:
        topology.build()
        yield topology
    finally:
        topology.cleanup()


def test_a_partly_refused_run_names_the_workload_and_the_next_run_repairs(topo_perf, tmp_path):
    topo = topo_perf
    assert topo.workloads("a", [W1, W2], tmp_path, mtu=1450)["ok"]
    n1, n2 = (topo.netns_prefix("a") + naming.workload_id("default", w["name"]) for w in (W1, W2))
    topo.ip(n1, "addr add 10.9.9.9/32 dev eth0", "route del default")  # drift: the plan removes, re-adds
    topo.ip(n2, "link set dev eth0 mtu 1300")  # drift elsewhere: must be repaired despite n1's refusal

    kwargs = {"workloads": [W1, W2], "mtu": 1450, "netns_prefix": topo.netns_prefix("a"), "state_file": str(tmp_path / "workloads-a.json")}
    race = {n1: ["addr del 10.9.9.9/32 dev eth0", f"route del {naming.GATEWAY} dev eth0"]}
    proc = topo.nsexec(topo.host("a"), "env", f"PYTHONPATH={PYTHONPATH}", sys.executable, "-c", RACE_CODE, stdin=json.dumps([kwargs, race]))
    result = json.loads(proc.stdout)
    assert not result["ok"] and result["type"] == "ApplyError", result
    error = result["error"]
    assert f"workload default.web-1 (namespace {n1}): `addr del 10.9.9.9/32 dev eth0`: EADDRNOTAVAIL" in error
    assert (f"workload default.web-1 (namespace {n1}): `route replace default via {naming.GATEWAY} dev eth0`: ENETUNREACH") in error
    assert "a next run repairs" in error
    assert topo.ip_json(n2, "link", "show", "eth0")[0]["mtu"] == 1450  # the other namespace was applied

    repaired = topo.workloads("a", [W1, W2], tmp_path, mtu=1450)
    assert repaired["ok"] and list(repaired["update"]) == ["default.web-1"], repaired
    assert any("169.254.1.1 dev eth0 scope link added" in r for r in repaired["update"]["default.web-1"])
    assert ping(topo, n1, W2["ip"])
    again = topo.workloads("a", [W1, W2], tmp_path, mtu=1450)
    assert again["ok"] and again["changed"] is False


def test_a_workload_readdressed_converges_in_one_run(topo_perf, tmp_path):
    """Its new address goes on before the old one goes: removing a device's last IPv4 address
    would make the kernel flush the routes through it (the gateway and default routes)."""
    topo = topo_perf
    assert topo.workloads("a", [W1, W2], tmp_path)["ok"]
    moved = dict(W1, ip="172.17.72.9")
    result = topo.workloads("a", [moved, W2], tmp_path)
    assert result["ok"] and list(result["update"]) == ["default.web-1"], result
    n1 = topo.netns_prefix("a") + "default.web-1"
    eth0 = topo.ip_json(n1, "addr", "show", "dev", "eth0")[0]
    assert [a["local"] for a in eth0["addr_info"] if a["family"] == "inet"] == ["172.17.72.9"]
    routes = topo.ip_json(n1, "route", "show")
    assert {"dst": "default", "gateway": naming.GATEWAY, "dev": "eth0", "flags": []} in routes
    assert ping(topo, n1, W2["ip"])
    assert topo.workloads("a", [moved, W2], tmp_path)["changed"] is False
