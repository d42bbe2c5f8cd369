# SPDX-License-Identifier: MIT
"""A guest's life, whatever its backend: SSH identity, start, readiness, stop by PID."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from . import common
from .common import PREFIX, QEMU, UML, LabError, alive, kill_pid, read_pid, run, tail

BOOT_TIMEOUT = 240.0  # three TCG guests booting systemd on two busy cores


def ssh_identity(guest: dict) -> None:
    hostkey = common.LAB / guest["name"] / "ssh_host_ed25519_key"
    if not hostkey.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", guest["name"], "-f", str(hostkey))


def runtime_record(guest: dict, runtime: dict) -> dict:
    """What a running guest was started as: a guest started otherwise is started again."""
    image = runtime["image"]["key"] if runtime["image"] else None
    return {**guest, "backend": runtime["backend"], "accel": runtime["accel"], "image": image}


def guest_marker(name: str) -> str:
    """What only this guest's process has on its command line (QEMU's -name, UML's umid=)."""
    try:
        backend = json.loads((common.LAB / name / "guest.json").read_text()).get("backend")
    except (OSError, ValueError):
        backend = None
    return f"umid={PREFIX}{name}\0" if backend == "uml" else f"-name\0{PREFIX}{name}\0"


def ready_uptime(name: str) -> float | None:
    """The guest's uptime when it said it is ready (sshd listening): from its console (QEMU) or
    the file its init wrote in the lab directory (UML)."""
    try:
        ready = (common.LAB / name / "ready").read_text()
        return float(ready.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        text = (common.LAB / name / "console.log").read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r"^l3lab-ready ([0-9.]+)", text, re.M)
    return float(match[1]) if match else None


def guest_running(guest: dict, runtime: dict) -> bool:
    gdir = common.LAB / guest["name"]
    pid = read_pid(gdir / "pid")
    if pid is None or not alive(pid, guest_marker(guest["name"])):
        return False
    try:
        same = json.loads((gdir / "guest.json").read_text()) == runtime_record(guest, runtime)
    except (OSError, ValueError):
        same = False
    return same and ready_uptime(guest["name"]) is not None


def wait_ready(started: dict[str, tuple[float, subprocess.Popen]]) -> dict[str, float]:
    boot = {}
    deadline = time.monotonic() + BOOT_TIMEOUT
    while started and time.monotonic() < deadline:
        for name, (t0, proc) in list(started.items()):
            if ready_uptime(name) is not None:
                boot[name] = round(time.monotonic() - t0, 2)
                del started[name]
                continue
            if proc.poll() is not None:
                said = tail(common.LAB / name / "qemu.log") if (common.LAB / name / "qemu.log").exists() else ""
                raise LabError(f"guest {name} exited during boot (exit {proc.returncode}); {said}\nconsole:\n{tail(common.LAB / name / 'console.log')}")
        time.sleep(0.1)
    if started:
        names = ", ".join(sorted(started))
        raise LabError(f"guests not ready after {BOOT_TIMEOUT:.0f} s: {names}; console of the first:\n{tail(common.LAB / sorted(started)[0] / 'console.log')}")
    return boot


def stop_guest(name: str, sig: signal.Signals = signal.SIGTERM) -> bool:
    pid = read_pid(common.LAB / name / "pid")
    return pid is not None and kill_pid(pid, guest_marker(name), sig=sig)


def our_guest_processes() -> list[int]:
    """PIDs of guest processes of this lab's prefix (a guest whose lab directory is gone, a UML
    guest's helper processes): QEMU with -name <prefix>..., the UML kernel with umid=<prefix>..."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        qemu = len(argv) > 2 and Path(argv[0].decode(errors="replace")).name == Path(QEMU).name and argv[1] == b"-name" and argv[2].startswith(PREFIX.encode())
        uml = len(argv) > 1 and argv[0] == UML.encode() and argv[1].startswith(f"umid={PREFIX}".encode())
        if qemu or uml:
            pids.append(int(entry.name))
    return pids


def sweep_guests() -> bool:
    """SIGKILL what is left of this lab's guests, by PID; True if anything was left."""
    pids = our_guest_processes()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline and our_guest_processes():
        time.sleep(0.05)
    return bool(pids)


def ensure_key() -> None:
    ssh = common.LAB / "ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    os.chmod(ssh, 0o700)
    key = ssh / "id_ed25519"
    if not key.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "l3lab", "-f", str(key))


def write_known_hosts(topo: dict) -> None:
    lines = []
    for guest in topo["guests"]:
        key = (common.LAB / guest["name"] / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        lines.append(f"{guest['address']} {' '.join(key)}")
    (common.LAB / "ssh" / "known_hosts").write_text("\n".join(lines) + "\n")
