# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Planner of the workloads data plane, with a fake iproute2 (no root, no kernel)."""

from __future__ import annotations

import json

import pytest

from ansible_collections.l3.calico.plugins.module_utils import iproute, naming
from ansible_collections.l3.calico.plugins.module_utils import workloads as wl

W1 = {"name": "web-1", "ip": "172.17.72.1"}
W2 = {"id": "blue.db-1", "ip": "172.18.9.1/32", "pool": "ignored", "borrowed": False}


class FakeKernel:
    """Answers the reads the module makes with a given state; records every call."""

    def __init__(self, host_links=(), routes=(), netns=(), inside=None, routes6=()):
        self.host = {"addr show": list(host_links), "route show table main": list(routes), wl.ROUTES6_COMMAND: list(routes6), "netns list": list(netns)}
        self.inside = inside or {}
        self.ip_forward = {ns: "0" for ns in self.inside}  # each namespace's net.ipv4.ip_forward
        self.calls = []

    def __call__(self, argv, stdin=None):
        self.calls.append((tuple(argv), stdin))
        if "-json" in argv and "-n" in argv:
            ns = argv[argv.index("-n") + 1]
            links, routes = self.inside[ns]
            return iproute.Result(0, json.dumps(links) + "\n" + json.dumps(routes) + "\n", "")
        if "-json" in argv:  # the host's batch: one answer per command read from stdin
            return iproute.Result(0, "\n".join(json.dumps(self.host[c]) for c in stdin.splitlines()) + "\n", "")
        if argv[1:3] == ["netns", "exec"] and argv[4:6] == ["sysctl", "-n"]:
            value = self.ip_forward.get(argv[3])
            return iproute.Result(0, value + "\n", "") if value else iproute.Result(1, "", "no such namespace")
        return iproute.Result(0, "", "")

    def writes(self):
        return [c for c in self.calls if "-json" not in c[0] and "-n" not in c[0][4:6]]


def converged_kernel(items, mtu=1500, prefix="calico-"):
    """A kernel state exactly as the module leaves it for ``items``."""
    desired = wl.build_desired(items, mtu, prefix)
    links, routes, netns, inside = [], [], [], {}
    for index, w in enumerate(sorted(desired.values(), key=lambda w: w.wid)):
        links.append(
            {
                "ifindex": 10 + index,
                "ifname": w.veth,
                "link_index": 2,
                "link_netnsid": index,
                "flags": ["BROADCAST", "UP"],
                "mtu": mtu,
                "address": naming.HOST_VETH_MAC,
                "linkinfo": {"info_kind": "veth"},
                "ifalias": wl.MARKER_PREFIX + w.netns,
                "addr_info": [{"family": "inet6", "local": "fe80::1", "prefixlen": 64}],
            }
        )
        routes.append({"dst": w.ip, "dev": w.veth, "scope": "link", "flags": []})
        netns.append({"name": w.netns, "id": index})
        inside[w.netns] = (
            [
                {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"], "mtu": 65536, "addr_info": []},
                {"ifindex": 2, "ifname": "eth0", "flags": ["UP"], "mtu": mtu, "addr_info": [{"family": "inet", "local": w.ip, "prefixlen": 32}]},
            ],
            [{"dst": "default", "gateway": naming.GATEWAY, "dev": "eth0", "flags": []}, {"dst": naming.GATEWAY, "dev": "eth0", "scope": "link", "flags": []}],
        )
    return FakeKernel(links, routes, netns, inside), desired


def sysctl_tree(tmp_path, desired, value_of=lambda path: None):
    for w in desired.values():
        for path, value in wl.veth_sysctls(w.veth, 1).items():
            file = tmp_path / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text((value_of(path) or value) + "\n")
    return str(tmp_path)


def test_create_from_empty_is_one_host_batch_and_one_batch_per_namespace(tmp_path):
    kernel = FakeKernel()
    (tmp_path / "net/ipv4/conf").mkdir(parents=True)
    plan = wl.converge([W1, W2], mtu=1450, runner=kernel, inside="ip", state_file=str(tmp_path / "s.json"), proc_sys=str(tmp_path), check_mode=True)
    assert plan.create == ["blue.db-1", "default.web-1"] and plan.changed
    veth = naming.veth_name("default.web-1")
    assert "netns add calico-default.web-1" in plan.host_lines
    assert (
        f"link add {veth} numtxqueues 1 numrxqueues 1 mtu 1450 address ee:ee:ee:ee:ee:ee "
        "type veth peer name eth0 numtxqueues 1 numrxqueues 1 mtu 1450 netns calico-default.web-1"
    ) in plan.host_lines
    assert f"route replace 172.17.72.1/32 dev {veth} scope link" in plan.host_lines
    assert plan.ns_lines["calico-default.web-1"] == [
        "link set dev lo up",
        "link set dev eth0 up",
        "addr add 172.17.72.1/32 dev eth0",
        "route replace 169.254.1.1 dev eth0 scope link",
        "route replace default via 169.254.1.1 dev eth0",
    ]
    assert plan.sysctls[f"net/ipv4/conf/{veth}/proxy_arp"] == "1"
    assert plan.sysctls[f"net/ipv4/neigh/{veth}/proxy_delay"] == "0"
    assert kernel.writes() == []  # check mode: reads only


def test_noop_reads_once_per_namespace_and_writes_nothing(tmp_path):
    kernel, desired = converged_kernel([W1, W2])
    state = tmp_path / "s.json"
    wl.write_recorded(str(state), [w.netns for w in desired.values()])
    plan = wl.converge([W1, W2], runner=kernel, inside="ip", state_file=str(state), proc_sys=sysctl_tree(tmp_path, desired))
    assert not plan.changed and not plan.host_lines and not plan.ns_lines and not plan.sysctls
    assert len(kernel.calls) == 1 + 2 * 2 and kernel.writes() == []  # host; per namespace addr/routes, ip_forward


def test_drift_is_planned_per_attribute(tmp_path):
    kernel, desired = converged_kernel([W1])
    ns = "calico-default.web-1"
    kernel.inside[ns][0][1]["mtu"] = 1300
    kernel.inside[ns][1].pop(0)  # default route gone
    veth = naming.veth_name("default.web-1")
    proc = sysctl_tree(tmp_path, desired, lambda p: "0" if p.endswith("proxy_arp") else None)
    plan = wl.converge([W1], runner=kernel, inside="ip", state_file=str(tmp_path / "s.json"), proc_sys=proc, check_mode=True)
    assert list(plan.update) == ["default.web-1"]
    assert plan.ns_lines[ns] == ["link set dev eth0 mtu 1500 up", "route replace default via 169.254.1.1 dev eth0"]
    assert plan.sysctls == {f"net/ipv4/conf/{veth}/proxy_arp": "1"}
    assert plan.host_lines == []


def test_a_workload_is_no_router_and_a_host_veth_takes_no_router_advertisements(tmp_path):
    veth = naming.veth_name("default.web-1")
    created = wl.plan(wl.build_desired([W1]), wl.State(links={}, routes=[], netns={}))
    assert created.ns_sysctls == {"calico-default.web-1": {"net/ipv4/ip_forward": "0"}}
    assert created.sysctls[f"net/ipv6/conf/{veth}/accept_ra"] == "0"
    allowed = wl.plan(wl.build_desired([W1], allow_ip_forwarding=True), wl.State(links={}, routes=[], netns={}, ipv6=False))
    assert allowed.ns_sysctls == {"calico-default.web-1": {"net/ipv4/ip_forward": "1"}}
    assert not [path for path in allowed.sysctls if "ipv6" in path]  # a kernel without IPv6 has no accept_ra

    # a namespace that turned into a router (it inherits the host's ip_forward=1) is put back
    kernel, desired = converged_kernel([W1])
    kernel.ip_forward["calico-default.web-1"] = "1"
    state = tmp_path / "s.json"
    wl.write_recorded(str(state), ["calico-default.web-1"])
    plan = wl.converge([W1], runner=kernel, inside="ip", state_file=str(state), proc_sys=sysctl_tree(tmp_path, desired))
    assert plan.update == {"default.web-1": ["sysctl net.ipv4.ip_forward 1 -> 0 inside"]} and not plan.ns_ops
    assert kernel.writes() == [(("ip", "netns", "exec", "calico-default.web-1", "sysctl", "-qw", "net.ipv4.ip_forward=0"), None)]


def test_removal_deletes_veth_then_namespace(tmp_path):
    kernel, desired = converged_kernel([W1, W2])
    plan = wl.converge([W1], runner=kernel, inside="ip", state_file=str(tmp_path / "s.json"), proc_sys=sysctl_tree(tmp_path, desired), check_mode=True)
    assert plan.remove == ["blue.db-1"]
    assert plan.host_lines == [f"link del dev {naming.veth_name('blue.db-1')}", "netns del calico-blue.db-1"]


def test_foreign_objects_are_refused_before_any_change(tmp_path):
    foreign_veth = {"ifname": naming.veth_name("default.web-1"), "linkinfo": {"info_kind": "veth"}, "flags": []}
    kernel = FakeKernel(host_links=[foreign_veth])
    with pytest.raises(wl.WorkloadError, match="not created by l3.calico"):
        wl.converge([W1], runner=kernel, inside="ip", state_file=str(tmp_path / "s.json"), proc_sys=str(tmp_path))
    kernel = FakeKernel(netns=[{"name": "calico-default.web-1"}])
    with pytest.raises(wl.WorkloadError, match="network namespace calico-default.web-1"):
        wl.converge([W1], runner=kernel, inside="ip", state_file=str(tmp_path / "s.json"), proc_sys=str(tmp_path))
    assert kernel.writes() == []


def test_other_l3calico_devices_are_not_workloads():
    vxlan = {"ifname": "vxlan.calico", "ifalias": "l3.calico:vxlan", "linkinfo": {"info_kind": "vxlan"}}
    plan = wl.plan({}, wl.State(links={"vxlan.calico": vxlan}, routes=[], netns={}))
    assert not plan.changed and plan.host_lines == []


@pytest.mark.parametrize(
    "items, message",
    [
        ([W1, dict(W1)], "listed twice"),
        ([W1, {"name": "web-2", "ip": "172.17.72.1"}], "already used by workload 'default.web-1'"),
        ([{"name": "web-1", "ip": "172.17.72.0/24"}], "single address"),
        ([{"name": "web-1", "ip": "fe80::1"}], "not IPv4"),
        ([{"name": "web-1", "ip": "nope"}], "'nope'"),
        ([{"name": "Web_1", "ip": "172.17.72.1"}], "'Web_1' is not a DNS label"),
        # full matches: '$' of re.match would take these (web and web\n would collide, blue\n would leak)
        ([{"name": "web-1\n", "ip": "172.17.72.1"}], r"'web-1\\n' is not a DNS label"),
        ([{"name": "web-1", "namespace": "blue\n", "ip": "172.17.72.1"}], r"namespace 'blue\\n' is not a DNS label"),
        ([{"id": "blue.web\n", "ip": "172.17.72.1"}], "needs 'name'"),
        ([{"ip": "172.17.72.1"}], "needs 'name'"),
        ([{"id": "x.y", "name": "z", "ip": "172.17.72.1"}], "does not match"),
    ],
)
def test_bad_input_names_item_field_and_value(items, message):
    with pytest.raises(wl.WorkloadError, match=message) as info:
        wl.build_desired(items)
    assert "workloads[" in str(info.value)


def test_options_are_validated():
    with pytest.raises(wl.WorkloadError, match="mtu"):
        wl.build_desired([W1], mtu=40)
    with pytest.raises(wl.WorkloadError, match="veth_prefix"):
        wl.build_desired([W1], veth_prefix="toolong")
    for prefix in ("cal\n", "ca\u00b2"):  # a full match, ASCII only: the prefix reaches nft and iptables
        with pytest.raises(wl.WorkloadError, match="veth_prefix"):
            wl.build_desired([W1], veth_prefix=prefix)
    with pytest.raises(wl.WorkloadError, match="netns_prefix"):
        wl.build_desired([W1], netns_prefix="l3-\n")


def test_a_host_that_never_had_a_namespace_reads_as_empty():
    """`ip -json netns list` prints nothing at all when /run/netns does not exist yet."""

    def runner(argv, stdin=None):
        return iproute.Result(0, '[{"ifindex":1,"ifname":"lo","flags":[],"addr_info":[]}]\n[]\n', "")

    links, routes, netns = iproute.ip_json_batch(runner, ["addr show", "route show", "netns list"])
    assert netns == [] and routes == [] and links[0]["ifname"] == "lo"


def test_a_new_address_goes_on_before_the_old_one_comes_off(tmp_path):
    """Removing eth0's last IPv4 address first would make the kernel flush the workload's routes."""
    kernel, desired = converged_kernel([W1])
    plan = wl.converge(
        [dict(W1, ip="172.17.72.9")], runner=kernel, inside="ip", state_file=str(tmp_path / "s.json"), proc_sys=sysctl_tree(tmp_path, desired), check_mode=True
    )
    assert plan.ns_lines["calico-default.web-1"] == ["addr add 172.17.72.9/32 dev eth0", "addr del 172.17.72.1/32 dev eth0"]


def _many(n):
    return [{"id": f"w{i}", "ip": f"10.9.{i // 256}.{i % 256}"} for i in range(n)]


def test_many_namespaces_are_created_first_in_parallel_batches_then_the_rest(tmp_path):
    n = wl.NETNS_SPLIT_MIN
    plan = wl.plan(wl.build_desired(_many(n)), wl.State(links={}, routes=[], netns={}))
    stages = wl.host_batches(plan.host_lines, workers=2)
    adds = [line for line in plan.host_lines if line.startswith("netns add ")]
    assert len(stages) == 2 and len(stages[0]) == 2
    assert sorted(stages[0][0] + stages[0][1]) == sorted(adds) and abs(len(stages[0][0]) - len(stages[0][1])) <= 1
    assert stages[1] == [[line for line in plan.host_lines if not line.startswith("netns add ")]]


def test_removals_come_before_the_parallel_namespaces_and_few_namespaces_stay_one_batch():
    lines = ["link del dev caliold", "netns del old"] + [f"netns add n{i}" for i in range(40)] + ["link add x"]
    stages = wl.host_batches(lines, workers=3)
    assert stages[0] == [lines[:2]] and [len(b) for b in stages[1]] == [14, 13, 13] and stages[2] == [["link add x"]]
    few = lines[:2] + [f"netns add n{i}" for i in range(wl.NETNS_SPLIT_MIN - 1)] + ["link add x"]
    assert wl.host_batches(few, workers=4) == [[few]]
    assert wl.host_batches(lines, workers=1) == [[lines]] and wl.host_batches([]) == []
    with pytest.raises(ValueError, match="contiguous"):
        wl.host_batches(lines + ["netns add late"], workers=2)


def test_a_failing_parallel_batch_lets_its_sibling_finish_and_stops_the_next_stage():
    ran = []

    def runner(argv, stdin=None):
        ran.append(stdin)
        return iproute.Result(1 if "netns add bad" in stdin else 0, "", "Cannot create namespace file")

    stages = [[["netns add bad"], ["netns add good"]], [["link add x"]]]
    with pytest.raises(iproute.CommandError, match="Cannot create namespace"):
        wl.run_host_batches(runner, stages)
    assert sorted(ran) == ["netns add bad\n", "netns add good\n"]


def test_gateway6_is_the_eui64_link_local_of_the_host_veth_mac():
    assert naming.GATEWAY6 == "fe80::ecee:eeff:feee:eeee" == naming.eui64_link_local("ee:ee:ee:ee:ee:ee")
    assert naming.eui64_link_local("02:00:00:00:00:01") == "fe80::ff:fe00:1"


def test_dual_stack_create_plans_the_host_ipv6_side_after_the_sysctls(tmp_path):
    (tmp_path / "net/ipv6/conf").mkdir(parents=True)
    item = {"name": "web-1", "ip": "172.17.72.1", "ipv6": "fd00:65:0:0::1"}
    plan = wl.converge([item, W2], runner=FakeKernel(), inside="ip", state_file=str(tmp_path / "s.json"), proc_sys=str(tmp_path), check_mode=True)
    veth = naming.veth_name("default.web-1")
    assert [str(op) for op in plan.host_ops6] == [f"addr replace fe80::ecee:eeff:feee:eeee/64 dev {veth}", f"route replace fd00:65::1 dev {veth} scope link"]
    assert not any("fd00" in line or "fe80" in line for line in plan.host_lines)  # not in the host batch: IPv6 may be off there
    for key, value in (("disable_ipv6", "0"), ("accept_dad", "0"), ("proxy_ndp", "1"), ("forwarding", "1"), ("accept_ra", "0")):
        assert plan.sysctls[f"net/ipv6/conf/{veth}/{key}"] == value
    assert plan.ns_sysctls["calico-default.web-1"] == {
        wl.IP_FORWARD: "0",
        "net/ipv6/conf/all/disable_ipv6": "0",
        "net/ipv6/conf/default/disable_ipv6": "0",
        "net/ipv6/conf/lo/disable_ipv6": "0",
        "net/ipv6/conf/eth0/accept_dad": "0",
        wl.IP6_FORWARD: "0",
    }
    # The IPv4-only workload beside it: nothing IPv6 but accept_ra, as before dual stack.
    other = naming.veth_name("blue.db-1")
    assert [k for k in plan.sysctls if k.startswith(f"net/ipv6/conf/{other}/")] == [f"net/ipv6/conf/{other}/accept_ra"]
    assert plan.ns_sysctls["calico-blue.db-1"] == {wl.IP_FORWARD: "0"}
    # A node without IPv6: the workload's ipv6 is left out.
    without = wl.converge([item], runner=FakeKernel(), inside="ip", state_file=str(tmp_path / "s.json"), proc_sys=str(tmp_path), check_mode=True, ipv6=False)
    assert without.host_ops6 == [] and without.workloads[0].ipv6 is None


@pytest.mark.parametrize(
    "item, message",
    [
        ({"name": "w", "ip": "10.0.0.1", "ipv6": "10.0.0.2"}, "workloads[0]: ipv6 '10.0.0.2' of workload 'default.w' is not an IPv6 address"),
        ({"name": "w", "ip": "10.0.0.1", "ipv6": "fd00::/120"}, "must be a single address (/128)"),
        ({"name": "w", "ip": "10.0.0.1", "ipv6": "ff02::1"}, "is not a unicast address"),
        ({"name": "w", "ip": "10.0.0.1", "ipv6": 7}, "workloads[0]: ipv6 7 of workload 'default.w' is not an IPv6 address"),
        ({"name": "w", "ip": "fd00::1"}, "is not IPv4 (its IPv6 address goes in 'ipv6')"),
        ({"name": "w", "ip": None, "ipv6": None}, "workloads[0]: workload 'default.w' has no ip"),
    ],
)
def test_bad_ipv6_input_names_item_field_and_value(item, message):
    with pytest.raises(wl.WorkloadError, match=None) as info:
        wl.build_desired([item])
    assert message in str(info.value)


def test_ipv6_workloads_on_a_kernel_without_ipv6_fail_before_any_change(tmp_path):
    (tmp_path / "net/ipv4/conf").mkdir(parents=True)
    kernel = FakeKernel()
    with pytest.raises(wl.WorkloadError, match="workload 'default.w': ipv6 fd00::1: this host's kernel has no IPv6"):
        wl.converge(
            [{"name": "w", "ip": "10.0.0.1", "ipv6": "fd00::1"}], runner=kernel, inside="ip", state_file=str(tmp_path / "s.json"), proc_sys=str(tmp_path)
        )
    assert kernel.writes() == []
