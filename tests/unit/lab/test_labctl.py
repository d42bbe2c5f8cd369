# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""labctl.py without a lab: the topology it plans and the capture decoder."""

from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import struct
from pathlib import Path

import pytest

LABCTL = Path(__file__).resolve().parents[3] / "playbooks" / "lab" / "files" / "labctl.py"
_spec = importlib.util.spec_from_file_location("labctl", LABCTL)
labctl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(labctl)

LAB = {"hosts": {"node-a": "192.168.100.100/24", "node-b": "192.168.100.101/24", "node-c": "192.168.200.101/24"}}


def test_plan_puts_a_router_with_the_first_address_on_every_subnet():
    topo = labctl.plan(LAB)
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
    with pytest.raises(labctl.LabError, match=message):
        labctl.plan({"hosts": hosts})


def ipv4(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + payload


ECHO = bytes([8, 0, 0, 0, 0, 1, 0, 1]) + b"x" * 8


def pcap(packets: list, linktype: int = 276) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)
    for pkt in packets:
        if linktype == 276:  # LINUX_SLL2: protocol first
            frame = struct.pack("!HHI", 0x0800, 0, 3) + b"\0" * 12 + pkt
        else:  # LINUX_SLL
            frame = b"\0" * 14 + struct.pack("!H", 0x0800) + pkt
        out += struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame
    return out


@pytest.mark.parametrize("linktype", [276, 113])
def test_decode_pcap_tells_plain_ipip_and_vxlan_apart(linktype):
    plain = ipv4("172.17.0.1", "172.17.64.1", 1, ECHO)
    ipip = ipv4("192.168.100.100", "192.168.200.101", 4, ipv4("172.17.0.1", "172.17.128.1", 1, ECHO))
    inner_eth = b"\x66" * 6 + b"\x66" * 6 + b"\x08\x00"
    vxlan_hdr = bytes([8, 0, 0, 0]) + (4096).to_bytes(3, "big") + b"\0"
    udp = struct.pack("!HHHH", 40000, 4789, 0, 0) + vxlan_hdr + inner_eth + ipv4("172.18.0.3", "172.18.64.3", 1, ECHO)
    vxlan = ipv4("192.168.100.100", "192.168.100.101", 17, udp)
    ssh = ipv4("192.168.100.1", "192.168.100.100", 6, b"\0" * 20)
    flows = labctl.decode_pcap(pcap([plain, ipip, ipip, vxlan, ssh], linktype))
    by_encap = {f["encap"]: f for f in flows}
    assert set(by_encap) == {"none", "ipip", "vxlan:4096"}
    assert by_encap["ipip"] == {"encap": "ipip", "outer_src": "192.168.100.100", "outer_dst": "192.168.200.101",
                                "inner_src": "172.17.0.1", "inner_dst": "172.17.128.1", "icmp": "echo-request",
                                "packets": 2}
    assert (by_encap["none"]["outer_src"], by_encap["none"]["inner_src"]) == ("172.17.0.1", "172.17.0.1")
    assert by_encap["vxlan:4096"]["inner_dst"] == "172.18.64.3"


def test_decode_pcap_refuses_what_is_not_a_pcap():
    with pytest.raises(labctl.LabError, match="not a pcap"):
        labctl.decode_pcap(b"\0" * 64)


def test_restart_refuses_a_missing_lab_or_an_unknown_guest_naming_it(tmp_path, monkeypatch):
    monkeypatch.setattr(labctl, "LAB", tmp_path)
    with pytest.raises(labctl.LabError, match=f"restart node-a: no lab in {tmp_path}"):
        labctl.restart("node-a")
    (tmp_path / "topology.json").write_text('{"guests": [{"name": "node-a"}], "mem": "128M"}')
    with pytest.raises(labctl.LabError, match=r"restart node-x: no such guest; the guests are \['node-a'\]"):
        labctl.restart("node-x")


def test_plan_gives_each_guest_its_own_mac_and_the_default_memory():
    topo = labctl.plan(LAB)
    macs = [g["mac"] for g in topo["guests"]]
    assert len(set(macs)) == 3 and all(m.startswith("52:54:00:") for m in macs)
    assert topo["mem"] == "256M"
    assert labctl.plan({**LAB, "mem": "128M"})["mem"] == "128M"
    with pytest.raises(labctl.LabError, match="mem '1G'"):
        labctl.plan({**LAB, "mem": "1G"})


def test_qemu_guest_gets_its_identity_through_fw_cfg_and_qemus_own_cpu_under_tcg(tmp_path, monkeypatch):
    monkeypatch.setattr(labctl, "LAB", tmp_path)
    guest = labctl.plan(LAB)["guests"][2]
    image = {"kernel_file": "/img/vmlinuz", "initrd": "/img/initrd.img"}
    argv = labctl.qemu_argv(guest, "256M", image, "tcg")
    assert argv[argv.index("-cpu") + 1] == "max" and argv[argv.index("-accel") + 1] == "tcg"
    assert argv[argv.index("-m") + 1] == "256"
    fw_cfg = [argv[i + 1] for i, a in enumerate(argv) if a == "-fw_cfg"]
    assert "name=opt/l3lab/name,string=node-c" in fw_cfg
    assert "name=opt/l3lab/ip,string=192.168.200.101/24" in fw_cfg
    assert "name=opt/l3lab/gateway,string=192.168.200.1" in fw_cfg
    assert f"name=opt/l3lab/hostkey,file={tmp_path / 'node-c' / 'ssh_host_ed25519_key'}" in fw_cfg
    assert f"tap,id=n0,ifname={guest['port']},script=no,downscript=no" in argv
    assert labctl.qemu_argv(guest, "256M", image, "kvm")[argv.index("-cpu") + 1] == "host"


def test_image_key_follows_every_input_file(tmp_path, monkeypatch):
    files = tmp_path / "image"
    files.mkdir()
    (files / "packages.txt").write_text("# comment\npython3\n\nbird2\n")
    (files / "customize.sh").write_text("#!/bin/sh\n")
    monkeypatch.setattr(labctl, "IMAGE_FILES", files)
    assert labctl.image_packages() == ["python3", "bird2"]
    first = labctl.image_key()
    (files / "customize.sh").write_text("#!/bin/sh\ntrue\n")
    assert labctl.image_key() != first


def test_the_real_image_lists_what_the_roles_need():
    packages = set(labctl.image_packages())
    assert {"systemd-sysv", "linux-image-cloud-amd64", "openssh-server", "python3", "bird2", "nftables",
            "iptables", "iproute2", "kmod", "procps", "busybox-static"} <= packages


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("L3LAB_BACKEND", "docker", "L3LAB_BACKEND='docker': use auto, qemu or uml"),
    ("L3LAB_ACCEL", "hvf", "L3LAB_ACCEL='hvf': use auto, tcg or kvm"),
])
def test_backend_and_accelerator_choices_are_checked(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("L3LAB_BACKEND" if variable == "L3LAB_ACCEL" else "L3LAB_ACCEL", "tcg")
    with pytest.raises(labctl.LabError, match=re.escape(message)):
        if variable == "L3LAB_BACKEND":
            labctl.choose_backend()
        else:
            labctl.choose_accel({"kernel": "6.1"})


def test_a_machine_without_qemu_gets_one_error_naming_the_packages(monkeypatch):
    monkeypatch.setattr(labctl.os, "geteuid", lambda: 0)
    monkeypatch.setattr(labctl.shutil, "which", lambda tool: None if tool in ("qemu-system-x86_64", "qemu-img") else "/x")
    with pytest.raises(labctl.LabError) as err:
        labctl.can_run_guests(need_build=False)
    assert "qemu-system-x86, qemu-utils" in str(err.value)
    assert "apt-get install qemu-system-x86 qemu-utils" in str(err.value)


def test_backend_falls_back_to_qemu_when_the_uml_probe_fails(monkeypatch, tmp_path):
    monkeypatch.setenv("L3LAB_BACKEND", "auto")
    monkeypatch.setattr(labctl, "verdict", lambda name, key, probe: {
        "uml": {"ok": False, "why": "a probe boot of User-mode Linux failed: ptrace set fp regs failed"},
        "kvm": {"ok": False, "why": "no usable /dev/kvm"}}[name])
    monkeypatch.setattr(labctl, "can_run_guests", lambda need_build: None)
    monkeypatch.setattr(labctl, "ensure_image", lambda: {"kernel": "6.1", "changed": False})
    runtime = labctl.choose_backend()
    assert (runtime["backend"], runtime["accel"]) == ("qemu", "tcg")
    assert "ptrace set fp regs failed" in runtime["why"] and "no usable /dev/kvm" in runtime["why"]
    monkeypatch.setenv("L3LAB_BACKEND", "uml")
    with pytest.raises(labctl.LabError, match="L3LAB_BACKEND=uml, but a probe boot"):
        labctl.choose_backend()


def test_the_kvm_probe_never_hands_qemu_our_stdin(monkeypatch):
    """QEMU's stdio chardev sets O_NONBLOCK on its stdin, a flag shared with whoever else holds it:
    pytest's stdin became non-blocking and every later ansible-playbook refused to start."""
    seen = {}

    def fake_run(argv, **kwargs):
        seen.update(kwargs)
        return subprocess.CompletedProcess(argv, 1, "", "qemu-system-x86_64: failed to set MSR 0x10a\n")

    monkeypatch.setattr(labctl.os, "access", lambda path, mode: True)
    monkeypatch.setattr(labctl.subprocess, "run", fake_run)
    ok, why = labctl.probe_kvm({"kernel_file": "/k", "initrd": "/i"})
    assert seen["stdin"] is subprocess.DEVNULL
    assert not ok and "failed to set MSR 0x10a" in why
