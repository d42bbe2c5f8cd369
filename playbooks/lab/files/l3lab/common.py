# SPDX-License-Identifier: MIT
"""What every part of the lab shares: its names and directories, its error, commands and processes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

# Every namespace, link and process of the lab carries this prefix (tests use another one).
PREFIX = os.environ.get("L3LAB_PREFIX", "l3lab-")
ROUTER = PREFIX + "router"
FILES = Path(__file__).resolve().parents[1]  # playbooks/lab/files: the image's inputs, guest-init.sh
REPO = FILES.parents[2]
LAB = Path(os.environ.get("L3LAB_DIR", REPO / ".lab")).resolve()
IMAGE_FILES = FILES / "image"
# Kept across labs: the guests' root image and the probes' verdicts (shared by every prefix).
CACHE = Path(os.environ.get("L3LAB_CACHE", REPO / ".cache" / "lab")).resolve()
IMAGE_CACHE = CACHE / "image"
QEMU = os.environ.get("L3LAB_QEMU", "qemu-system-x86_64")
UML = os.environ.get("L3LAB_UML", "/usr/bin/linux")
UML_INIT = FILES / "guest-init.sh"
PROBE_TIMEOUT = 20.0

# What running guests needs, and the Debian package that brings it (`make setup` installs them).
TOOLS = {
    QEMU: "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "mmdebstrap": "mmdebstrap",
    "mke2fs": "e2fsprogs",
    "cpio": "cpio",
    "gzip": "gzip",
    "ssh-keygen": "openssh-client",
    "ip": "iproute2",
}


class LabError(Exception):
    """A lab command that cannot be done: printed as {"failed": true, "msg": ...}."""


def run(*argv: str, check: bool = True, capture: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, text=True, capture_output=capture, check=False, timeout=timeout)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {proc.returncode}: {(proc.stderr or '').strip()[-2000:]}")
    return proc


def netns_list() -> list[str]:
    out = run("ip", "netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def alive(pid: int, marker: str) -> bool:
    """True if PID runs and its command line holds marker (a PID file may outlive its process)."""
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def kill_pid(pid: int, marker: str, timeout: float = 5.0, sig: signal.Signals = signal.SIGTERM) -> bool:
    """Signal a process we started (checked by its command line), SIGKILL its group if it lingers."""
    if not alive(pid, marker):
        return False
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid, marker):
        time.sleep(0.05)
    if alive(pid, marker):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return True


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive flock on path (held until the block ends, released if the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def can_run_guests(need_build: bool) -> None:
    """One clear error, before anything is created, when this machine cannot run the lab."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, tap devices)")
    missing = sorted(
        {pkg for tool, pkg in TOOLS.items() if (tool != "mmdebstrap" or need_build) and shutil.which(tool) is None and not Path("/usr/sbin", tool).exists()}
    )
    if missing:
        raise LabError(
            "this machine cannot run the lab's guests: missing the Debian packages "
            f"{', '.join(missing)}; install them with `apt-get install {' '.join(missing)}` "
            "(or `make setup`, which installs everything bindep.txt lists)"
        )
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        raise LabError(
            "this machine cannot run the lab's guests: /dev/net/tun is missing (the kernel's tun "
            "driver: `modprobe tun`); QEMU connects each guest to the router with a tap device"
        )
