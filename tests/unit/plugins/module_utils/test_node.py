# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""node: the package check that decides whether the node module converges or waits for apt."""

from __future__ import annotations

import shutil

import pytest

from ansible_collections.l3.calico.plugins.module_utils import node

PACKAGES = ["iproute2", "bird2", "kmod"]


@pytest.fixture
def dpkg(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")


def test_installed_packages_are_not_missing(dpkg):
    calls = []

    def run(argv):
        calls.append(argv)
        return 0, "iproute2 installed\nbird2 installed\nkmod installed\n", ""

    assert node.missing_packages(run, PACKAGES) == []
    assert calls == [["dpkg-query", "-W", "-f", node.DPKG_QUERY_FORMAT, *PACKAGES]]


def test_unknown_and_half_installed_packages_are_missing(dpkg):
    def run(argv):  # dpkg-query exits 1 when a package is unknown; config-files: removed, not purged
        return 1, "iproute2 installed\nbird2 config-files\n", "dpkg-query: no packages found matching kmod\n"

    assert node.missing_packages(run, PACKAGES) == ["bird2", "kmod"]


def test_without_dpkg_every_package_is_missing(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert node.missing_packages(lambda argv: pytest.fail("dpkg-query ran"), PACKAGES) == PACKAGES


def test_missing_packages_converge_nothing_but_check_ipip(dpkg, monkeypatch):
    seen = []
    monkeypatch.setattr(node.tunnels, "prepare", lambda *a, **kw: seen.append("planned"))
    monkeypatch.setattr(node.sysctls, "plan", lambda *a, **kw: pytest.fail("sysctls planned"))
    monkeypatch.setattr(node.firewall, "prepare", lambda *a, **kw: pytest.fail("firewall planned"))
    done = node.converge(
        lambda argv: (1, "", ""),
        packages=PACKAGES,
        node="n",
        nodes={},
        pools={},
        workloads=[],
        sysctl_options=node.sysctls.Options({}, "/nonexistent"),
        check_mode=False,
    )
    assert done == {"missing_packages": PACKAGES, "tunnels": None, "sysctls": None, "firewall": None, "workload_mtu": None}
    assert seen == ["planned"]  # the tunnels only planned: a kernel without ipip fails here


def _converge(sysctl_values=None, sysctl_file="/nonexistent", **kw):
    args = dict(
        packages=[], node="n", nodes={}, pools={}, workloads=[], check_mode=False, sysctl_options=node.sysctls.Options(sysctl_values or {}, sysctl_file)
    )
    args.update(kw)
    return node.converge(lambda argv: pytest.fail(f"ran {argv}"), **args)


@pytest.fixture
def writes(monkeypatch):
    """Tunnels planned with a change pending; every write of every part recorded."""
    seen = []
    monkeypatch.setattr(node.tunnels, "prepare", lambda *a, **kw: node.tunnels.Plan(ip_lines=["link add tunl0 type ipip"], changes=["tunl0 created"]))
    monkeypatch.setattr(node.tunnels, "apply", lambda *a, **kw: seen.append("tunnels"))
    monkeypatch.setattr(node.sysctls, "apply", lambda *a, **kw: seen.append("sysctls"))
    monkeypatch.setattr(node.firewall, "commit", lambda *a, **kw: seen.append("firewall"))
    return seen


def _fw_runner(argv, stdin=None):
    pytest.fail(f"firewall ran {argv}")  # bad firewall input fails before the backend probe


@pytest.mark.parametrize("sysctl_values", [{"Not A Key": 1}, {"net.ipv4.no_such_sysctl_l3calico": 1}, {"net.ipv4.ip_forward": ""}])
def test_bad_sysctl_changes_nothing(writes, tmp_path, sysctl_values):
    conf = tmp_path / "60-l3-calico.conf"
    with pytest.raises(node.sysctls.SysctlError):
        _converge(sysctl_values=sysctl_values, sysctl_file=str(conf), runner=_fw_runner)
    assert writes == [] and not conf.exists()


@pytest.mark.parametrize(
    "kw",
    [
        {"workloads": [{"name": "w1", "ip": "10.0.0.300"}]},
        {"workloads": [{"ip": "10.0.0.3"}]},
        {"firewall_options": node.firewall.Options(backend="pf")},
        {"firewall_options": node.firewall.Options(host_tcp_ports=(70000,))},
    ],
)
def test_bad_firewall_input_changes_nothing(writes, tmp_path, kw):
    conf = tmp_path / "60-l3-calico.conf"  # absent: the sysctls plan has a file to write
    with pytest.raises(node.firewall.FirewallError):
        _converge(sysctl_file=str(conf), runner=_fw_runner, **kw)
    assert writes == [] and not conf.exists()


def test_bad_ipam_result_changes_nothing(writes, tmp_path):
    """The IPAM result (nodes and pools, shared by tunnels and firewall) is checked once, first."""
    conf = tmp_path / "60-l3-calico.conf"
    with pytest.raises(node.tunnels.TunnelError, match=r"calico_ipam_result\.pools\.p\.cidr='not-a-cidr'"):
        _converge(sysctl_file=str(conf), pools={"p": {"cidr": "not-a-cidr"}}, runner=_fw_runner)
    assert writes == [] and not conf.exists()


def test_everything_planned_before_anything_applied(writes, monkeypatch, tmp_path):
    order = []
    monkeypatch.setattr(node.firewall, "prepare", lambda *a, **kw: order.append(list(writes)) or node.firewall.Plan("iptables"))
    done = _converge(sysctl_file=str(tmp_path / "s.conf"))
    assert order == [[]]  # the firewall was planned while nothing was applied yet
    assert writes == ["tunnels", "sysctls", "firewall"]
    assert done["tunnels"].changed and done["sysctls"].changed


def _pool(ipip="Never", vxlan="Never", disabled=False):
    return {"cidr": "10.0.0.0/16", "block_size": 26, "ipip_mode": ipip, "vxlan_mode": vxlan, "disabled": disabled}


@pytest.mark.parametrize(
    "pools, underlay, mtu",
    [
        ({}, 1500, 1500),
        ({"p": _pool()}, 1500, 1500),
        ({"p": _pool(ipip="Always")}, 1500, 1480),
        ({"p": _pool(ipip="CrossSubnet")}, 9000, 8980),
        ({"p": _pool(vxlan="CrossSubnet")}, 1500, 1450),
        ({"a": _pool(ipip="Always"), "b": _pool(vxlan="Always")}, 1500, 1450),  # the largest overhead
        ({"a": _pool(ipip="Always"), "b": _pool(vxlan="Always", disabled=True)}, 1500, 1480),  # enabled pools only
        ({"a": _pool(ipip="Always", disabled=True)}, 1500, 1500),
        ({"p": _pool(vxlan="Always")}, None, 1450),  # no underlay found: 1500
        ({"p": {"cidr": "10.0.0.0/16"}}, 1400, 1400),  # modes absent: Never
    ],
)
def test_workload_mtu_is_the_underlay_minus_the_largest_overhead_of_the_enabled_pools(pools, underlay, mtu):
    assert node.workload_mtu(underlay, pools) == mtu


def test_converge_returns_the_workload_mtu_of_the_underlay_found(writes, monkeypatch, tmp_path):
    monkeypatch.setattr(node.tunnels, "prepare", lambda *a, **kw: node.tunnels.Plan(underlay_mtu=9000))
    monkeypatch.setattr(node.firewall, "prepare", lambda *a, **kw: node.firewall.Plan("iptables"))
    done = _converge(sysctl_file=str(tmp_path / "s.conf"), pools={"p": _pool(vxlan="Always")})
    assert done["workload_mtu"] == 8950


def test_check_mode_plans_all_and_applies_none(writes, monkeypatch, tmp_path):
    monkeypatch.setattr(node.firewall, "prepare", lambda *a, **kw: node.firewall.Plan("iptables", changes=["x"]))
    done = _converge(sysctl_file=str(tmp_path / "s.conf"), check_mode=True)
    assert writes == [] and done["firewall"].changed and not (tmp_path / "s.conf").exists()


def test_sysctls_of_a_tunnel_device_this_run_creates_are_planned(tmp_path):
    """Planned before the tunnels are applied: tunl0's keys do not exist yet, but will."""
    proc = tmp_path / "proc"
    (proc / "net" / "ipv4").mkdir(parents=True)
    (proc / "net" / "ipv4" / "ip_forward").write_text("0\n")
    values = {"net.ipv4.ip_forward": 1, "net.ipv4.conf.tunl0.rp_filter": 0}
    with pytest.raises(node.sysctls.SysctlError, match="net.ipv4.conf.tunl0.rp_filter does not exist"):
        node.sysctls.plan(values, str(tmp_path / "s.conf"), proc_sys=str(proc))
    with pytest.raises(node.sysctls.SysctlError, match="net.ipv4.conf.eth9.rp_filter does not exist"):
        node.sysctls.plan({"net.ipv4.conf.eth9.rp_filter": 0}, str(tmp_path / "s.conf"), proc_sys=str(proc), creates=["tunl0"])
    the_plan = node.sysctls.plan(values, str(tmp_path / "s.conf"), proc_sys=str(proc), creates=["tunl0"])
    assert the_plan.runtime == {"net.ipv4.ip_forward": "1", "net.ipv4.conf.tunl0.rp_filter": "0"}
    (proc / "net" / "ipv4" / "conf" / "tunl0").mkdir(parents=True)  # what tunnels.apply does
    (proc / "net" / "ipv4" / "conf" / "tunl0" / "rp_filter").write_text("1\n")
    node.sysctls.apply(the_plan, str(tmp_path / "s.conf"), proc_sys=str(proc))
    assert (proc / "net" / "ipv4" / "conf" / "tunl0" / "rp_filter").read_text() == "0"


def test_node_passes_the_devices_the_tunnels_create_to_sysctls(writes, monkeypatch, tmp_path):
    monkeypatch.setattr(node.tunnels, "prepare", lambda *a, **kw: node.tunnels.Plan(changes=["x"], creates=["tunl0"]))
    seen = {}
    monkeypatch.setattr(node.sysctls, "plan", lambda values, path, creates=(): seen.setdefault("creates", creates) and node.sysctls.Plan(content="", before=""))
    monkeypatch.setattr(node.firewall, "prepare", lambda *a, **kw: node.firewall.Plan("iptables"))
    _converge()
    assert seen["creates"] == ["tunl0"] and writes == ["tunnels", "firewall"]


@pytest.fixture
def removal(monkeypatch):
    """The three removal parts read nothing real; every apply recorded."""
    seen = []
    monkeypatch.setattr(node.tunnels, "read_state", lambda runner: node.tunnels.State({}, [], [], [], True))
    monkeypatch.setattr(node.tunnels, "plan_removal", lambda *a: node.tunnels.Plan(ip_lines=["link del dev vxlan.calico"], changes=["x"]))
    monkeypatch.setattr(node.firewall, "read_nft", lambda runner, family="ip": "table ip l3calico {}" if family == "ip" else None)
    monkeypatch.setattr(node.firewall, "read_iptables", lambda runner: {"mangle": None, "nat": None, "filter": None})
    monkeypatch.setattr(node.firewall, "read_ip6tables", lambda runner: {"mangle": None, "nat": None, "filter": None})
    monkeypatch.setattr(node.tunnels, "apply", lambda *a, **kw: seen.append("tunnels"))
    monkeypatch.setattr(node.firewall, "commit_removal", lambda *a, **kw: seen.append("firewall"))
    return seen


def _remove(tmp_path, **kw):
    args = dict(
        pools={},
        ipip_address=None,
        sysctl_file=str(tmp_path / "s.conf"),
        firewall_state_file=str(tmp_path / "fw.json"),
        check_mode=False,
        runner=lambda argv, stdin=None: pytest.fail(f"ran {argv}"),
    )
    args.update(kw)
    return node.remove(**args)


def test_remove_check_mode_plans_all_and_applies_none(removal, tmp_path):
    (tmp_path / "s.conf").write_text(node.sysctls.HEADER + "net.ipv4.ip_forward = 1\n")
    done = _remove(tmp_path, check_mode=True)
    assert removal == [] and (tmp_path / "s.conf").exists()
    assert done["tunnels"].changed and done["sysctls"].changed and done["firewall"].changed
    _remove(tmp_path)
    assert removal == ["tunnels", "firewall"] and not (tmp_path / "s.conf").exists()


def test_remove_refuses_a_foreign_sysctl_file_before_anything(removal, tmp_path):
    (tmp_path / "s.conf").write_text("vm.swappiness = 1\n")
    with pytest.raises(node.sysctls.SysctlError, match="not written by l3.calico"):
        _remove(tmp_path)
    assert removal == [] and (tmp_path / "s.conf").read_text() == "vm.swappiness = 1\n"


def test_the_node_result_is_its_parts_results_and_diffs(tmp_path):
    """node.result composes what each part's Plan.result()/diff() say: the node module adds nothing of its own."""
    tun = node.tunnels.Plan(ip_lines=["link set dev tunl0 up"], changes=["tunl0: up"], underlay="eth0", underlay_mtu=1500)
    sys_plan = node.sysctls.Plan(content="a\n", before="a\n", path=str(tmp_path / "s.conf"))  # nothing to do
    fw = node.firewall.Plan("nftables", changes=["nftables table ip l3calico created"], rendered="table ip l3calico {}\n")
    out = node.result({"tunnels": tun, "sysctls": sys_plan, "firewall": fw})
    assert out["changed"] is True
    assert out["changes"] == ["tunnels: tunl0: up", "firewall: nftables table ip l3calico created"]
    assert out["tunnels"] == tun.result() and out["tunnels"]["underlay_interface"] == "eth0"
    assert out["sysctls"] == {"changes": []} and out["firewall"] == {"backend": "nftables", "changes": fw.changes}
    assert out["diff"] == [tun.diff(), fw.diff()] and sys_plan.diff() is None
    assert fw.diff()["after"] == "table ip l3calico {}\n" and tun.diff()["after"] == "link set dev tunl0 up\n"


def test_removal_plans_say_what_goes(tmp_path):
    conf = tmp_path / "s.conf"
    conf.write_text(node.sysctls.HEADER)
    removal = node.sysctls.plan_removal(str(conf))
    assert removal.diff() == {"before": node.sysctls.HEADER, "after": "", "before_header": str(conf), "after_header": f"{conf} (removed)"}
    fw = node.firewall.plan_removal("table ip l3calico {}\n", {"mangle": None, "nat": None, "filter": None}, False)
    assert fw.diff()["after_header"] == "(removed)" and fw.result() == {"backend": "nftables", "changes": fw.changes}
    tun = node.tunnels.plan_removal(node.tunnels.State({"vxlan.calico": {"ifalias": "x"}}, [], [], [], True))
    assert tun.result() == {"changes": [], "kept": tun.kept} and tun.kept and tun.diff() is None


def test_options_are_built_from_the_module_params():
    params = {
        "underlay_interface": "eth1",
        "underlay_mtu": 9000,
        "vxlan_vni": 7,
        "vxlan_port": 8472,
        "modprobe_dir": None,
        "sysctls": None,
        "sysctl_file": "/x.conf",
        "firewall_backend": "iptables",
        "veth_prefix": "cali",
        "firewall_state_file": "/run/x.json",
        "host_tcp_ports": [179, 22],
    }
    assert node.tunnels.Options.from_params(params) == node.tunnels.Options("eth1", 9000, 7, 8472, None)
    assert node.sysctls.Options.from_params(params) == node.sysctls.Options({}, "/x.conf")
    assert node.firewall.Options.from_params(params) == node.firewall.Options("iptables", "cali", "/run/x.json", (179, 22))


def _node_with(ipv6):
    base = {"ip": "10.0.0.1", "network": "10.0.0.0/24", "blocks": [], "workloads": [], "borrowed": [], "tunnels": {}}
    return {"n": dict(base, ipv6=ipv6, network_ipv6="fd00::/64" if ipv6 else None)}


@pytest.mark.parametrize("ipv6, given, expected", [("fd00::1", {}, "1"), (None, {}, None), ("fd00::1", {"net.ipv6.conf.all.forwarding": 0}, "0")])
def test_a_node_with_an_ipv6_address_forwards_ipv6_unless_told(monkeypatch, ipv6, given, expected):
    """Calico: "IPv6 forwarding is globally enabled on each compute host"; a node without IPv6 gets nothing IPv6."""
    planned = {}
    monkeypatch.setattr(node.tunnels, "prepare", lambda *a, **kw: node.tunnels.Plan())
    monkeypatch.setattr(node.sysctls, "plan", lambda values, *a, **kw: planned.update(values) or node.sysctls.Plan(content="", before=""))
    monkeypatch.setattr(node.firewall, "prepare", lambda *a, **kw: None)
    monkeypatch.setattr(node.firewall, "commit", lambda *a, **kw: None)
    _converge(sysctl_values={"net.ipv4.ip_forward": 1, **given}, nodes=_node_with(ipv6))
    assert planned.get("net.ipv6.conf.all.forwarding") == (None if expected is None else int(expected))


def test_the_workload_mtu_knows_vxlan_over_ipv6():
    pools = {"v4": {"cidr": "10.1.0.0/16", "vxlan_mode": "Never", "ipip_mode": "CrossSubnet"}, "v6": {"cidr": "fd00:66::/48", "vxlan_mode": "Always"}}
    assert node.workload_mtu(1500, pools) == 1430  # the IPv6 pool's VXLAN: 70
    assert node.workload_mtu(1500, {"v4": pools["v4"]}) == 1480
