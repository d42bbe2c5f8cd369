# SPDX-License-Identifier: MIT
"""QEMU guests: Debian's kernel and systemd on a copy-on-write disk of the image, a tap port on the router."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from . import common
from .common import PREFIX, PROBE_TIMEOUT, QEMU, ROUTER, run
from .guests import ssh_identity
from .network import tap_port


def probe_kvm(image: dict) -> tuple[bool, str]:
    """Boot the image's kernel under KVM to its initramfs, which says so and powers off."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "no usable /dev/kvm"
    argv = [
        QEMU,
        "-M",
        "pc",
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-m",
        "128",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-serial",
        "stdio",
        "-kernel",
        image["kernel_file"],
        "-initrd",
        image["initrd"],
        "-append",
        "console=ttyS0 quiet panic=-1 l3lab.probe",
    ]
    try:
        # stdin not ours: QEMU's stdio chardev sets O_NONBLOCK on it, which is shared with the caller
        # (ansible-playbook refuses to run on a non-blocking stdin).
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, f"a probe boot under KVM did not reach the initramfs in {PROBE_TIMEOUT:.0f} s"
    if "l3lab-probe-ok" in proc.stdout:
        return True, "a probe boot under KVM reached the initramfs"
    said = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[0]
    return False, f"a probe boot under KVM failed: {said}"


def write_guest_files(guest: dict, image: dict) -> Path:
    gdir = common.LAB / guest["name"]
    gdir.mkdir(parents=True, exist_ok=True)
    ssh_identity(guest)
    disk = gdir / "disk.qcow2"
    backing = gdir / "disk.backing"
    if disk.exists() and (not backing.exists() or backing.read_text() != image["root"]):
        disk.unlink()  # made from another image: the guest starts from the new one
    if not disk.exists():
        run("qemu-img", "create", "-q", "-f", "qcow2", "-b", image["root"], "-F", "raw", str(disk) + ".tmp")
        os.replace(str(disk) + ".tmp", disk)
        backing.write_text(image["root"])
    return gdir


def qemu_argv(guest: dict, mem: str, image: dict, accel: str) -> list[str]:
    gdir = common.LAB / guest["name"]
    # mitigations=off: a guest of the lab runs only the lab's code, and under TCG every page-table
    # switch a mitigation adds costs a flush of QEMU's translated TLB.
    cmdline = "console=ttyS0 quiet panic=-1 net.ifnames=0 mitigations=off"
    fw_cfg = [
        ("name", "string", guest["name"]),
        ("ip", "string", guest["ip"]),
        ("gateway", "string", guest["gateway"]),
        ("hostkey", "file", str(gdir / "ssh_host_ed25519_key")),
        ("hostkey.pub", "file", str(gdir / "ssh_host_ed25519_key.pub")),
        ("authorized_keys", "file", str(common.LAB / "ssh" / "id_ed25519.pub")),
    ]
    argv = [
        QEMU,
        "-name",
        f"{PREFIX}{guest['name']}",
        "-M",
        "pc",
        "-accel",
        accel,
        "-cpu",
        "host" if accel == "kvm" else os.environ.get("L3LAB_QEMU_CPU", "max"),
        "-m",
        mem.removesuffix("M"),
        "-smp",
        "1",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-sandbox",
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        "-kernel",
        image["kernel_file"],
        "-initrd",
        image["initrd"],
        "-append",
        cmdline,
        "-drive",
        f"file={gdir / 'disk.qcow2'},format=qcow2,if=virtio,cache=unsafe",
        "-netdev",
        f"tap,id=n0,ifname={guest['port']},script=no,downscript=no",
        "-device",
        f"virtio-net-pci,netdev=n0,mac={guest['mac']}",
        "-serial",
        f"file:{gdir / 'console.log'}",
    ]
    if "ip6" in guest:  # a dual-stack underlay
        fw_cfg += [("ip6", "string", guest["ip6"]), ("gateway6", "string", guest["gateway6"])]
    for key, kind, value in fw_cfg:
        argv += ["-fw_cfg", f"name=opt/l3lab/{key},{kind}={value}"]
    return argv


def start_qemu_guest(guest: dict, mem: str, image: dict, accel: str) -> subprocess.Popen:
    gdir = write_guest_files(guest, image)
    tap_port(guest)
    argv = ["ip", "netns", "exec", ROUTER, *qemu_argv(guest, mem, image, accel)]
    with open(gdir / "qemu.log", "wb") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
