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
    done = node.converge(lambda argv: (1, "", ""), packages=PACKAGES, node="n", nodes={}, pools={}, tunnel_args={},
                         sysctl_values={}, sysctl_file="/nonexistent", workloads=[], firewall_args={}, check_mode=False)
    assert done == {"missing_packages": PACKAGES, "tunnels": None, "sysctls": None, "firewall": None}
    assert seen == ["planned"]  # the tunnels only planned: a kernel without ipip fails here


def _converge(**kw):
    args = dict(packages=[], node="n", nodes={}, pools={}, tunnel_args={}, sysctl_values={}, sysctl_file="/nonexistent",
                workloads=[], firewall_args={}, check_mode=False)
    args.update(kw)
    return node.converge(lambda argv: pytest.fail(f"ran {argv}"), **args)


@pytest.fixture
def writes(monkeypatch):
    """Tunnels planned with a change pending; every write of every part recorded."""
    seen = []
    monkeypatch.setattr(node.tunnels, "prepare",
                        lambda *a, **kw: node.tunnels.Plan(ip_lines=["link add tunl0 type ipip"], changes=["tunl0 created"]))
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
        _converge(sysctl_values=sysctl_values, sysctl_file=str(conf), firewall_args={"runner": _fw_runner})
    assert writes == [] and not conf.exists()


@pytest.mark.parametrize("kw", [
    {"workloads": [{"name": "w1", "ip": "10.0.0.300"}]},
    {"workloads": [{"ip": "10.0.0.3"}]},
    {"firewall_args": {"backend": "pf", "runner": _fw_runner}},
    {"firewall_args": {"host_tcp_ports": [70000], "runner": _fw_runner}},
])
def test_bad_firewall_input_changes_nothing(writes, tmp_path, kw):
    conf = tmp_path / "60-l3-calico.conf"  # absent: the sysctls plan has a file to write
    kw.setdefault("firewall_args", {"runner": _fw_runner})
    with pytest.raises(node.firewall.FirewallError):
        _converge(sysctl_file=str(conf), **kw)
    assert writes == [] and not conf.exists()


def test_bad_ipam_result_changes_nothing(writes, tmp_path):
    """The IPAM result (nodes and pools, shared by tunnels and firewall) is checked once, first."""
    conf = tmp_path / "60-l3-calico.conf"
    with pytest.raises(node.tunnels.TunnelError, match=r"calico_ipam_result\.pools\.p\.cidr='not-a-cidr'"):
        _converge(sysctl_file=str(conf), pools={"p": {"cidr": "not-a-cidr"}}, firewall_args={"runner": _fw_runner})
    assert writes == [] and not conf.exists()


def test_everything_planned_before_anything_applied(writes, monkeypatch, tmp_path):
    order = []
    monkeypatch.setattr(node.firewall, "prepare", lambda *a, **kw: order.append(list(writes)) or node.firewall.Plan("iptables"))
    done = _converge(sysctl_file=str(tmp_path / "s.conf"))
    assert order == [[]]  # the firewall was planned while nothing was applied yet
    assert writes == ["tunnels", "sysctls", "firewall"]
    assert done["tunnels"].changed and done["sysctls"].changed


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
        node.sysctls.plan({"net.ipv4.conf.eth9.rp_filter": 0}, str(tmp_path / "s.conf"), proc_sys=str(proc),
                          creates=["tunl0"])
    the_plan = node.sysctls.plan(values, str(tmp_path / "s.conf"), proc_sys=str(proc), creates=["tunl0"])
    assert the_plan.runtime == {"net.ipv4.ip_forward": "1", "net.ipv4.conf.tunl0.rp_filter": "0"}
    (proc / "net" / "ipv4" / "conf" / "tunl0").mkdir(parents=True)  # what tunnels.apply does
    (proc / "net" / "ipv4" / "conf" / "tunl0" / "rp_filter").write_text("1\n")
    node.sysctls.apply(the_plan, str(tmp_path / "s.conf"), proc_sys=str(proc))
    assert (proc / "net" / "ipv4" / "conf" / "tunl0" / "rp_filter").read_text() == "0"


def test_node_passes_the_devices_the_tunnels_create_to_sysctls(writes, monkeypatch, tmp_path):
    monkeypatch.setattr(node.tunnels, "prepare", lambda *a, **kw: node.tunnels.Plan(changes=["x"], creates=["tunl0"]))
    seen = {}
    monkeypatch.setattr(node.sysctls, "plan", lambda values, path, creates=(): seen.setdefault("creates", creates)
                        and node.sysctls.Plan(content="", before=""))
    monkeypatch.setattr(node.firewall, "prepare", lambda *a, **kw: node.firewall.Plan("iptables"))
    _converge()
    assert seen["creates"] == ["tunl0"] and writes == ["tunnels", "firewall"]


@pytest.fixture
def removal(monkeypatch):
    """The three removal parts read nothing real; every apply recorded."""
    seen = []
    monkeypatch.setattr(node.tunnels, "read_state", lambda runner: node.tunnels.State({}, [], [], [], True))
    monkeypatch.setattr(node.tunnels, "plan_removal",
                        lambda *a: node.tunnels.Plan(ip_lines=["link del dev vxlan.calico"], changes=["x"]))
    monkeypatch.setattr(node.firewall, "read_nft", lambda runner: "table ip l3calico {}")
    monkeypatch.setattr(node.firewall, "read_iptables", lambda runner: {"mangle": None, "nat": None, "filter": None})
    monkeypatch.setattr(node.tunnels, "apply", lambda *a, **kw: seen.append("tunnels"))
    monkeypatch.setattr(node.firewall, "commit_removal", lambda *a, **kw: seen.append("firewall"))
    return seen


def _remove(tmp_path, **kw):
    args = dict(pools={}, ipip_address=None, sysctl_file=str(tmp_path / "s.conf"),
                firewall_state_file=str(tmp_path / "fw.json"), check_mode=False,
                runner=lambda argv, stdin=None: pytest.fail(f"ran {argv}"))
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
