# SPDX-License-Identifier: MIT
"""User-mode Linux guests (the fast path): the machine's root read-only, a disk of their own, a veth port."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from . import common
from .common import CACHE, PREFIX, PROBE_TIMEOUT, UML, UML_INIT, run
from .guests import ssh_identity
from .network import veth_port


def probe_uml() -> tuple[bool, str]:
    """Boot User-mode Linux to a shell script of ours as init: on CPUs whose XSAVE area UML's
    ptrace code does not fit (AMX) it panics before init runs."""
    if not os.access(UML, os.X_OK):
        return False, f"User-mode Linux is not installed ({UML}: Debian package user-mode-linux)"
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="uml-probe-", dir=CACHE))
    try:
        init = work / "init.sh"
        init.write_text("#!/bin/sh\necho l3lab-probe-ok\n")
        init.chmod(0o755)
        argv = [
            UML,
            f"umid={PREFIX}probe-{os.getpid()}",
            f"uml_dir={work}",
            "mem=64M",
            "rootfstype=hostfs",
            "rootflags=/",
            "ro",
            "con=null",
            "con0=null,fd:1",
            f"init={init}",
        ]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            out, _err = proc.communicate(timeout=PROBE_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the kernel and its helper processes, all ours
            proc.communicate()
            return False, f"a probe boot of User-mode Linux did not run init in {PROBE_TIMEOUT:.0f} s"
        if "l3lab-probe-ok" in out:
            return True, "a probe boot of User-mode Linux ran init"
        said = next((line for line in out.splitlines() if "failed" in line or "panic" in line.lower()), f"exit {proc.returncode}")
        return False, f"a probe boot of User-mode Linux failed: {said.strip()}"
    finally:
        shutil.rmtree(work, ignore_errors=True)


# Run in a kernel's private mount namespace before exec'ing it: the given directory stays
# writable, /dev/shm is a private tmpfs of the given size (the guest's memory file), every other
# mount read-only.
UML_SANDBOX = r"""
writable=$1; shm_size=$2; shift 2
mount --bind "$writable" "$writable"
mount -t tmpfs -o size="$shm_size",mode=1777 l3lab-shm /dev/shm
awk '{print $2}' /proc/self/mounts | sort -u | while read -r mp; do
  case "$mp" in "$writable"|/dev/shm) continue ;; esac
  mount -o remount,bind,ro "$mp" 2>/dev/null || true
done
exec env TMPDIR=/dev/shm "$@"
"""


def sandboxed_uml(writable: Path, umid: str, uml_dir: Path, mem: str, *kernel_args: str, shm_size: str = "1g") -> list[str]:
    """The command line of a User-mode Linux kernel booting the machine's root read-only through
    hostfs, in a private mount namespace (``UML_SANDBOX``) where only ``writable`` can be written;
    console on stdout. The lab's guests and the data-plane test on the lab's kernel both boot this way."""
    return [
        *("unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-ec", UML_SANDBOX, "l3lab-sandbox"),
        *(str(writable), shm_size, UML),
        *(f"umid={umid}", f"uml_dir={uml_dir}", f"mem={mem}", "rootfstype=hostfs", "rootflags=/", "ro", "con=null", "con0=null,fd:1"),
        *kernel_args,
    ]


UML_DISK_SIZE = "1G"  # sparse: a converged guest uses a few MB of it


def start_uml_guest(guest: dict, mem: str) -> subprocess.Popen:
    """A User-mode Linux guest (the fast path): the machine's root read-only through hostfs with
    an overlay on the guest's own ext4 disk (guest-init.sh), its NIC a veth end in a namespace of
    its own (vector raw transport), the veth's peer the guest's port on the router."""
    gdir = common.LAB / guest["name"]
    (gdir / "uml").mkdir(parents=True, exist_ok=True)
    ssh_identity(guest)
    shutil.copyfile(common.LAB / "ssh" / "id_ed25519.pub", gdir / "authorized_keys")
    (gdir / "sshd_config").write_text(
        f"# sshd of lab guest {guest['name']} (written by labctl.py)\n"
        f"ListenAddress {guest['address']}\n"
        f"HostKey {gdir / 'ssh_host_ed25519_key'}\n"
        f"AuthorizedKeysFile {gdir / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "UseDNS no\nPrintMotd no\nMaxSessions 64\nMaxStartups 64\n"
        "StrictModes no\n"  # the lab directory may sit under a world-writable /tmp
        "PidFile /run/sshd.pid\n"
        "Subsystem sftp /usr/lib/openssh/sftp-server\n"
    )
    disk = gdir / "disk.img"
    if not disk.exists():
        # Made on the machine (mke2fs formats a plain file); written only by the guest's kernel.
        run("mkfs.ext4", "-q", "-F", "-L", guest["name"], "-E", "lazy_itable_init=1,lazy_journal_init=1", str(disk) + ".tmp", UML_DISK_SIZE)
        os.replace(str(disk) + ".tmp", disk)
    veth_port(guest)
    argv = [
        *("ip", "netns", "exec", guest["netns"]),
        *sandboxed_uml(
            common.LAB,
            f"{PREFIX}{guest['name']}",
            gdir / "uml",
            mem,
            "ssl=null",
            f"vec0:transport=raw,ifname={PREFIX}u,gro=1",
            f"ubd0={disk}",
            f"init={UML_INIT}",
            f"l3lab_name={guest['name']}",
            f"l3lab_ip={guest['ip']}",
            f"l3lab_gw={guest['gateway']}",
            f"l3lab_dir={gdir}",
            *((f"l3lab_ip6={guest['ip6']}", f"l3lab_gw6={guest['gateway6']}") if "ip6" in guest else ()),
        ),
    ]
    with open(gdir / "console.log", "wb") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
