# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The lab controller (playbooks/lab/files/l3lab, run as labctl.py) without a lab: the topology it plans,
its command line, and the flows it reads from a capture with tcpdump's own reader."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest
from l3lab import backends, capture, cli, common, image, lab, qemu
from l3lab.common import LabError
from l3lab.topology import plan

LABCTL = Path(common.__file__).resolve().parents[1] / "labctl.py"

LAB = {"hosts": {"node-a": "192.168.100.100/24", "node-b": "192.168.100.101/24", "node-c": "192.168.200.101/24"}}


def test_plan_puts_a_router_with_the_first_address_on_every_subnet():
    topo = plan(LAB)
    assert [(s["network"], s["gateway"], s["bridge"]) for s in topo["subnets"]] == [
        ("192.168.100.0/24", "192.168.100.1/24", "l3lab-s0"),
        ("192.168.200.0/24", "192.168.200.1/24", "l3lab-s1"),
    ]
    guests = {g["name"]: g for g in topo["guests"]}
    assert guests["node-c"]["gateway"] == "192.168.200.1"
    assert guests["node-c"]["bridge"] == "l3lab-s1"
    assert guests["node-a"]["netns"] == "l3lab-node-a"
    assert len({g["port"] for g in topo["guests"]}) == 3
    assert all(len(g["port"]) <= 15 for g in topo["guests"])  # IFNAMSIZ


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        ({"node-a": "192.168.100.100"}, "prefix length"),
        ({"node-a": "192.168.100.1/24"}, "router's address"),
        ({"Node_A": "192.168.100.100/24"}, "DNS label"),
        ({"node-a\n": "192.168.100.100/24"}, "DNS label"),  # a full match: '$' would accept the newline
        ({"node-a": "192.168.100.100/24", "node-b": "192.168.100.100/24"}, "duplicate host addresses"),
        ({"node-a": "not-an-ip/24"}, "node-a: ip"),
        ([], "mapping"),
    ],
)
def test_plan_refuses_bad_specs_naming_the_host_and_value(hosts, message):
    with pytest.raises(LabError, match=message):
        plan({"hosts": hosts})


def ipv4(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0, socket.inet_aton(src), socket.inet_aton(dst)) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


ECHO = bytes([8, 0, 0, 0, 0, 1, 0, 1]) + b"x" * 8
REPLY = bytes([0, 0, 0, 0, 0, 1, 0, 1]) + b"x" * 8
PLAIN = ipv4("172.17.0.1", "172.17.64.1", 1, ECHO)
IPIP = ipv4("192.168.100.100", "192.168.200.101", 4, ipv4("172.17.0.1", "172.17.128.1", 1, ECHO))
VXLAN = ipv4(
    "192.168.100.100",
    "192.168.100.101",
    17,
    udp(40000, 4789, bytes([8, 0, 0, 0]) + (4096).to_bytes(3, "big") + b"\0" + b"\x66" * 12 + b"\x08\x00" + ipv4("172.18.0.3", "172.18.64.3", 1, REPLY)),
)
SSH = ipv4("192.168.100.1", "192.168.100.100", 6, b"\0" * 20)
IPIP_TCP = ipv4("192.168.100.100", "192.168.200.101", 4, ipv4("172.17.0.1", "172.17.128.1", 6, b"\0" * 20))


def pcap(packets: list, linktype: int) -> bytes:
    """A pcap file as tcpdump -i any writes it (LINUX_SLL2, or LINUX_SLL before libpcap 1.10), or Ethernet."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)
    for pkt in packets:
        if linktype == 276:  # LINUX_SLL2: protocol first
            frame = struct.pack("!HHI", 0x0800, 0, 3) + b"\0" * 12 + pkt
        elif linktype == 113:  # LINUX_SLL
            frame = b"\0" * 14 + struct.pack("!H", 0x0800) + pkt
        else:  # EN10MB
            frame = b"\x02" * 12 + b"\x08\x00" + pkt
        out += struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame
    return out


@pytest.fixture
def tcpdump():
    if shutil.which("tcpdump") is None:
        pytest.skip("needs tcpdump (Debian package tcpdump): the capture is read by tcpdump -r")


@pytest.mark.parametrize("linktype", [276, 113, 1])
def test_tcpdump_reads_plain_ipip_and_vxlan_flows_apart(tmp_path, tcpdump, linktype):
    path = tmp_path / "capture.pcap"
    path.write_bytes(pcap([PLAIN, IPIP, IPIP, VXLAN, SSH, IPIP_TCP], linktype))
    flows = capture.read_pcap(path)
    assert flows == [
        {
            "encap": "ipip",
            "outer_src": "192.168.100.100",
            "outer_dst": "192.168.200.101",
            "inner_src": "172.17.0.1",
            "inner_dst": "172.17.128.1",
            "icmp": "echo-request",
            "packets": 2,
        },
        {
            "encap": "none",
            "outer_src": "172.17.0.1",
            "outer_dst": "172.17.64.1",
            "inner_src": "172.17.0.1",
            "inner_dst": "172.17.64.1",
            "icmp": "echo-request",
            "packets": 1,
        },
        {
            "encap": "vxlan:4096",
            "outer_src": "192.168.100.100",
            "outer_dst": "192.168.100.101",
            "inner_src": "172.18.0.3",
            "inner_dst": "172.18.64.3",
            "icmp": "echo-reply",
            "packets": 1,
        },
    ]


def ipv6(src: str, dst: str, next_header: int, payload: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), next_header, 64, *(socket.inet_pton(socket.AF_INET6, a) for a in (src, dst))) + payload


ECHO6 = bytes([128, 0, 0, 0, 0, 1, 0, 1]) + b"x" * 8
PLAIN6 = ipv6("fd00:17::1", "fd00:17::41", 58, ECHO6)
VXLAN6 = ipv6(
    "fd00:100::100",
    "fd00:200::101",
    17,
    udp(40000, 4789, bytes([8, 0, 0, 0]) + (4096).to_bytes(3, "big") + b"\0" + b"\x66" * 12 + b"\x86\xdd" + ipv6("fd00:17::1", "fd00:17::81", 58, ECHO6)),
)
NDP = ipv6("fd00:100::100", "ff02::1:ff00:101", 58, bytes([135, 0, 0, 0, 0, 0, 0, 0]) + socket.inet_pton(socket.AF_INET6, "fd00:100::101"))


def test_tcpdump_reads_ipv6_flows_plain_and_over_vxlan_v6_beside_ipv4(tmp_path, tcpdump):
    path = tmp_path / "capture.pcap"
    frames = b""
    for pkt in (PLAIN6, VXLAN6, VXLAN6, NDP, IPIP):
        frame = struct.pack("!HHI", 0x86DD if pkt[0] >> 4 == 6 else 0x0800, 0, 3) + b"\0" * 12 + pkt
        frames += struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 276) + frames)
    flows = {(f["encap"], f["inner_src"], f["inner_dst"]): f for f in capture.read_pcap(path)}
    assert flows[("vxlan:4096", "fd00:17::1", "fd00:17::81")] == {
        "encap": "vxlan:4096",
        "outer_src": "fd00:100::100",
        "outer_dst": "fd00:200::101",
        "inner_src": "fd00:17::1",
        "inner_dst": "fd00:17::81",
        "icmp": "echo-request",
        "packets": 2,
    }
    assert flows[("none", "fd00:17::1", "fd00:17::41")]["icmp"] == "echo-request"
    assert flows[("ipip", "172.17.0.1", "172.17.128.1")]["outer_dst"] == "192.168.200.101"
    assert flows[("none", "fd00:100::100", "ff02::1:ff00:101")]["icmp"].startswith("icmp-neighbor-solicitation")
    assert "icmp6" in capture.capture_argv("ns", path)[-1]


def test_other_icmp_messages_are_named_as_tcpdump_says(tmp_path, tcpdump):
    unreachable = ipv4("172.17.64.1", "172.17.0.1", 1, bytes([3, 1, 0, 0, 0, 0, 0, 0]) + ipv4("172.17.0.1", "172.17.64.1", 17, udp(1, 2, b"")))
    path = tmp_path / "capture.pcap"
    path.write_bytes(pcap([unreachable], 276))
    assert [f["icmp"] for f in capture.read_pcap(path)] == ["icmp-host-172.17.64.1-unreachable"]


def test_an_empty_capture_has_no_flows_and_a_broken_one_is_refused(tmp_path, tcpdump):
    path = tmp_path / "capture.pcap"
    path.write_bytes(b"")  # tcpdump stopped before writing its header
    assert capture.read_pcap(path) == []
    path.write_bytes(b"\0" * 64)
    with pytest.raises(LabError, match=f"capture: tcpdump cannot read {path}: .*"):
        capture.read_pcap(path)


def test_the_command_line_prints_json_and_refuses_what_it_does_not_know(tmp_path, tcpdump):
    """labctl.py under the system's Python (as the playbooks run it): the entry script runs the package."""
    env = dict(os.environ, L3LAB_DIR=str(tmp_path), L3LAB_PREFIX="l3tlabctl-")

    def labctl(*args):
        return subprocess.run(["/usr/bin/python3", str(LABCTL), *args], env=env, capture_output=True, text=True, timeout=60, check=False)

    status = labctl("status")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) == {"router": False, "namespaces": [], "guests": {}, "lab_dir": str(tmp_path)}
    (tmp_path / "capture.pcap").write_bytes(pcap([IPIP], 276))
    stopped = labctl("capture", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert [f["encap"] for f in json.loads(stopped.stdout)["flows"]] == ["ipip"]
    failed = labctl("restart", "node-a")
    assert (failed.returncode, json.loads(failed.stdout)) == (1, {"failed": True, "msg": f"restart node-a: no lab in {tmp_path}"})
    assert labctl("up", "{not json").returncode == 1
    for wrong in ([], ["down", "extra"], ["capture", "pause"], ["relay", "192.168.100.100", "ssh"]):
        proc = labctl(*wrong)
        assert proc.returncode == 2 and "usage: labctl.py" in proc.stderr, wrong


def test_every_subcommand_is_on_the_command_line():
    assert set(cli.parser()._subparsers._group_actions[0].choices) == {"image", "backend", "up", "down", "status", "restart", "relay", "capture"}


def test_restart_refuses_a_missing_lab_or_an_unknown_guest_naming_it(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "LAB", tmp_path)
    with pytest.raises(LabError, match=f"restart node-a: no lab in {tmp_path}"):
        lab.restart("node-a")
    (tmp_path / "topology.json").write_text('{"guests": [{"name": "node-a"}], "mem": "128M"}')
    with pytest.raises(LabError, match=r"restart node-x: no such guest; the guests are \['node-a'\]"):
        lab.restart("node-x")


LAB6 = {**LAB, "hosts6": {"node-a": "fd00:100::100/64", "node-b": "fd00:100::101/64", "node-c": "fd00:200::101/64"}}


def test_a_dual_stack_plan_gives_each_subnet_and_guest_its_ipv6_side_and_leaves_ipv4_as_it_was():
    topo, four = plan(LAB6), plan(LAB)
    assert [(s["network6"], s["gateway6"]) for s in topo["subnets"]] == [("fd00:100::/64", "fd00:100::1/64"), ("fd00:200::/64", "fd00:200::1/64")]
    guests = {g["name"]: g for g in topo["guests"]}
    assert {k: guests["node-c"][k] for k in ("ip6", "address6", "network6", "gateway6")} == {
        "ip6": "fd00:200::101/64",
        "address6": "fd00:200::101",
        "network6": "fd00:200::/64",
        "gateway6": "fd00:200::1",
    }
    strip = ("ip6", "address6", "network6", "gateway6")
    assert [{k: v for k, v in g.items() if k not in strip} for g in topo["guests"]] == four["guests"]
    assert plan({**LAB, "hosts6": {}}) == four  # no IPv6 address: the IPv4 lab, unchanged (a running lab stays up)


@pytest.mark.parametrize(
    ("hosts6", "message"),
    [
        ({"node-x": "fd00:100::100/64"}, r"hosts6 names hosts \['node-x'\] that are not in hosts"),
        ({"node-a": "fd00:100::100"}, "node-a: ip6 'fd00:100::100' needs a prefix length"),
        ({"node-a": "192.168.100.100/24"}, "node-a: ip6 '192.168.100.100/24'"),
        ({"node-a": "fd00:100::1/64"}, "router's address"),
        ({"node-a": "fd00:100::100/64", "node-b": "fd00:101::101/64"}, "node-b: ip6 'fd00:101::101/64' is outside fd00:100::/64"),
        ({"node-a": "fd00:100::100/64", "node-c": "fd00:100::101/64"}, "two IPv4 subnets share one IPv6 subnet"),
        ({"node-a": "fd00:100::100/64", "node-b": "fd00:100:0::100/64"}, "duplicate host IPv6 addresses"),
        (["fd00:100::100/64"], "hosts6 must be a mapping"),
    ],
)
def test_plan_refuses_bad_ipv6_specs_naming_the_host_and_value(hosts6, message):
    with pytest.raises(LabError, match=message):
        plan({**LAB, "hosts6": hosts6})


def test_a_dual_stack_guest_gets_its_ipv6_side_on_the_kernel_command_line_or_through_fw_cfg(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "LAB", tmp_path)
    guest = plan(LAB6)["guests"][2]
    argv = qemu.qemu_argv(guest, "256M", {"kernel_file": "/k", "initrd": "/i"}, "tcg")
    fw_cfg = [argv[i + 1] for i, a in enumerate(argv) if a == "-fw_cfg"]
    assert {"name=opt/l3lab/ip6,string=fd00:200::101/64", "name=opt/l3lab/gateway6,string=fd00:200::1"} <= set(fw_cfg)
    four = qemu.qemu_argv(plan(LAB)["guests"][2], "256M", {"kernel_file": "/k", "initrd": "/i"}, "tcg")
    assert not any("ip6" in a for a in four)


def test_plan_gives_each_guest_its_own_mac_and_the_default_memory():
    topo = plan(LAB)
    macs = [g["mac"] for g in topo["guests"]]
    assert len(set(macs)) == 3 and all(m.startswith("52:54:00:") for m in macs)
    assert topo["mem"] == "256M"
    assert plan({**LAB, "mem": "128M"})["mem"] == "128M"
    with pytest.raises(LabError, match="mem '1G'"):
        plan({**LAB, "mem": "1G"})


def test_qemu_guest_gets_its_identity_through_fw_cfg_and_qemus_own_cpu_under_tcg(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "LAB", tmp_path)
    guest = plan(LAB)["guests"][2]
    image = {"kernel_file": "/img/vmlinuz", "initrd": "/img/initrd.img"}
    argv = qemu.qemu_argv(guest, "256M", image, "tcg")
    assert argv[argv.index("-cpu") + 1] == "max" and argv[argv.index("-accel") + 1] == "tcg"
    assert argv[argv.index("-m") + 1] == "256"
    fw_cfg = [argv[i + 1] for i, a in enumerate(argv) if a == "-fw_cfg"]
    assert "name=opt/l3lab/name,string=node-c" in fw_cfg
    assert "name=opt/l3lab/ip,string=192.168.200.101/24" in fw_cfg
    assert "name=opt/l3lab/gateway,string=192.168.200.1" in fw_cfg
    assert f"name=opt/l3lab/hostkey,file={tmp_path / 'node-c' / 'ssh_host_ed25519_key'}" in fw_cfg
    assert f"tap,id=n0,ifname={guest['port']},script=no,downscript=no" in argv
    assert qemu.qemu_argv(guest, "256M", image, "kvm")[argv.index("-cpu") + 1] == "host"


def test_image_key_follows_every_input_file(tmp_path, monkeypatch):
    files = tmp_path / "image"
    files.mkdir()
    (files / "packages.txt").write_text("# comment\npython3\n\nbird2\n")
    (files / "customize.sh").write_text("#!/bin/sh\n")
    monkeypatch.setattr(common, "IMAGE_FILES", files)
    assert image.image_packages() == ["python3", "bird2"]
    first = image.image_key()
    (files / "customize.sh").write_text("#!/bin/sh\ntrue\n")
    assert image.image_key() != first


def test_the_real_image_lists_what_the_roles_need():
    packages = set(image.image_packages())
    assert {
        "systemd-sysv",
        "linux-image-cloud-amd64",
        "openssh-server",
        "python3",
        "bird2",
        "nftables",
        "iptables",
        "iproute2",
        "kmod",
        "procps",
        "busybox-static",
    } <= packages


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("L3LAB_BACKEND", "docker", "L3LAB_BACKEND='docker': use auto, qemu or uml"),
        ("L3LAB_ACCEL", "hvf", "L3LAB_ACCEL='hvf': use auto, tcg or kvm"),
    ],
)
def test_backend_and_accelerator_choices_are_checked(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("L3LAB_BACKEND" if variable == "L3LAB_ACCEL" else "L3LAB_ACCEL", "tcg")
    with pytest.raises(LabError, match=re.escape(message)):
        if variable == "L3LAB_BACKEND":
            backends.choose_backend()
        else:
            backends.choose_accel({"kernel": "6.1"})


def test_a_machine_without_qemu_gets_one_error_naming_the_packages(monkeypatch):
    monkeypatch.setattr(common.os, "geteuid", lambda: 0)
    monkeypatch.setattr(common.shutil, "which", lambda tool: None if tool in ("qemu-system-x86_64", "qemu-img") else "/x")
    with pytest.raises(LabError) as err:
        common.can_run_guests(need_build=False)
    assert "qemu-system-x86, qemu-utils" in str(err.value)
    assert "apt-get install qemu-system-x86 qemu-utils" in str(err.value)


def test_backend_falls_back_to_qemu_when_the_uml_probe_fails(monkeypatch, tmp_path):
    monkeypatch.setenv("L3LAB_BACKEND", "auto")
    monkeypatch.setattr(
        backends,
        "verdict",
        lambda name, key, probe: {
            "uml": {"ok": False, "why": "a probe boot of User-mode Linux failed: ptrace set fp regs failed"},
            "kvm": {"ok": False, "why": "no usable /dev/kvm"},
        }[name],
    )
    monkeypatch.setattr(backends, "can_run_guests", lambda need_build: None)
    monkeypatch.setattr(backends, "ensure_image", lambda: {"kernel": "6.1", "changed": False})
    runtime = backends.choose_backend()
    assert (runtime["backend"], runtime["accel"]) == ("qemu", "tcg")
    assert "ptrace set fp regs failed" in runtime["why"] and "no usable /dev/kvm" in runtime["why"]
    monkeypatch.setenv("L3LAB_BACKEND", "uml")
    with pytest.raises(LabError, match="L3LAB_BACKEND=uml, but a probe boot"):
        backends.choose_backend()


def test_the_kvm_probe_never_hands_qemu_our_stdin(monkeypatch):
    """QEMU's stdio chardev sets O_NONBLOCK on its stdin, a flag shared with whoever else holds it:
    pytest's stdin became non-blocking and every later ansible-playbook refused to start."""
    seen = {}

    def fake_run(argv, **kwargs):
        seen.update(kwargs)
        return subprocess.CompletedProcess(argv, 1, "", "qemu-system-x86_64: failed to set MSR 0x10a\n")

    monkeypatch.setattr(qemu.os, "access", lambda path, mode: True)
    monkeypatch.setattr(qemu.subprocess, "run", fake_run)
    ok, why = qemu.probe_kvm({"kernel_file": "/k", "initrd": "/i"})
    assert seen["stdin"] is subprocess.DEVNULL
    assert not ok and "failed to set MSR 0x10a" in why
