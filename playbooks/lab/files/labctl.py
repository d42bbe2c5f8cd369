# SPDX-License-Identifier: MIT
"""Control the l3.calico lab: QEMU virtual machines running Debian 12 behind a router namespace.

    labctl.py image            build the guests' root image unless it is current; prints JSON
    labctl.py backend          which guests this machine runs (QEMU or the UML fast path), and why
    labctl.py up SPEC_JSON     create what is missing (a no-op on a running lab); prints JSON
    labctl.py down             remove every trace: guests and relays by PID, namespaces, files
    labctl.py status           what runs, as JSON
    labctl.py restart HOST     power-cycle one guest: its disk stays, its memory and kernel state go
    labctl.py relay HOST PORT  stdin/stdout <-> TCP HOST:PORT (an ssh ProxyCommand, run in the router)
    labctl.py capture start    tcpdump on the router's ports (tunnelled and plain workload traffic)
    labctl.py capture stop     stop it; prints the decoded flows as JSON

SPEC_JSON: {"hosts": {"node-a": "192.168.100.100/24", ...}, "mem": "256M"}  (host name: address/prefix)

Topology: one network namespace `l3lab-router` holds a bridge per underlay subnet (with the
subnet's first address as gateway) and forwards between them; every guest's NIC is a tap device
`l3lab-p<N>` in that namespace, a port of its subnet's bridge. The guests are QEMU virtual
machines (QEMU runs inside the router's namespace, so it opens its tap there) booting Debian 12's
own kernel (linux-image-cloud-amd64, with the real ipip, vxlan and nftables) and systemd from a
root image built once from Debian's packages (`image`). Nothing is configured in the machine's
own network namespace, and a guest sees none of the machine's files.

Each guest has a disk of its own (`<lab>/<host>/disk.qcow2`, a copy-on-write overlay of the
image): what a guest writes survives a `restart`, like a host's disk survives a reboot; its
memory, processes and kernel state do not. Its identity (name, address, gateway, SSH host key,
the lab's key) comes through QEMU's fw_cfg device and is applied at every boot by
`l3lab-guest.service` (image/l3lab-guest).

CPU: QEMU's TCG emulator by default, which runs everywhere and does not depend on the host's CPU
features; KVM only where a probe boot under KVM reaches the initramfs (`accel`), or as forced
by L3LAB_ACCEL=tcg|kvm.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Every namespace, link and process of the lab carries this prefix (tests use another one).
PREFIX = os.environ.get("L3LAB_PREFIX", "l3lab-")
ROUTER = PREFIX + "router"
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
LAB = Path(os.environ.get("L3LAB_DIR", REPO / ".lab")).resolve()
IMAGE_FILES = HERE / "image"
# Kept across labs: the guests' root image and the probes' verdicts (shared by every prefix).
CACHE = Path(os.environ.get("L3LAB_CACHE", REPO / ".cache" / "lab")).resolve()
IMAGE_CACHE = CACHE / "image"
QEMU = os.environ.get("L3LAB_QEMU", "qemu-system-x86_64")
UML = os.environ.get("L3LAB_UML", "/usr/bin/linux")
UML_INIT = HERE / "guest-init.sh"
SUITE = "bookworm"  # Debian 12: the release the users' hosts run
IMAGE_SIZE = "2G"  # sparse; the image holds about 400 MB
INITRAMFS_MODULES = ("virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
                     "virtio_blk")
BOOT_TIMEOUT = 240.0  # three TCG guests booting systemd on two busy cores
PROBE_TIMEOUT = 20.0
DEFAULT_MEM = "256M"  # systemd, sshd, BIRD and Ansible's modules; a UML guest uses less of it
NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?")
MEM_RE = re.compile(r"[1-9][0-9]{1,4}M")

# What running guests needs, and the Debian package that brings it (`make setup` installs them).
TOOLS = {QEMU: "qemu-system-x86", "qemu-img": "qemu-utils", "mmdebstrap": "mmdebstrap", "mke2fs": "e2fsprogs",
         "cpio": "cpio", "gzip": "gzip", "ssh-keygen": "openssh-client", "ip": "iproute2"}


class LabError(Exception):
    pass


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


def can_run_guests(need_build: bool) -> None:
    """One clear error, before anything is created, when this machine cannot run the lab."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, tap devices)")
    missing = sorted({pkg for tool, pkg in TOOLS.items()
                      if (tool != "mmdebstrap" or need_build) and shutil.which(tool) is None
                      and not Path("/usr/sbin", tool).exists()})
    if missing:
        raise LabError("this machine cannot run the lab's guests: missing the Debian packages "
                       f"{', '.join(missing)}; install them with `apt-get install {' '.join(missing)}` "
                       "(or `make setup`, which installs everything bindep.txt lists)")
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        raise LabError("this machine cannot run the lab's guests: /dev/net/tun is missing (the kernel's tun "
                       "driver: `modprobe tun`); QEMU connects each guest to the router with a tap device")


# ---------------------------------------------------------------------------------------------
# The topology, computed from the spec


def plan(spec: dict) -> dict:
    hosts = spec.get("hosts")
    if not isinstance(hosts, dict) or not hosts:
        raise LabError(f"spec: hosts must be a non-empty mapping of host name to address/prefix, got {hosts!r}")
    mem = str(spec.get("mem") or DEFAULT_MEM)
    if not MEM_RE.fullmatch(mem):
        raise LabError(f"spec: mem {mem!r} must be megabytes like 256M")
    nets: dict[str, ipaddress.IPv4Network] = {}
    guests = []
    for idx, (name, ip) in enumerate(hosts.items()):
        if not NAME_RE.fullmatch(str(name)):
            raise LabError(f"spec: host name {name!r} is not a DNS label of at most 32 characters")
        try:
            iface = ipaddress.IPv4Interface(str(ip))
        except ValueError as exc:
            raise LabError(f"spec: host {name}: ip {ip!r}: {exc}") from None
        if "/" not in str(ip) or iface.network.prefixlen > 30:
            raise LabError(f"spec: host {name}: ip {ip!r} needs a prefix length of at most 30")
        gateway = next(iface.network.hosts())
        if iface.ip == gateway:
            raise LabError(f"spec: host {name}: {iface.ip} is the router's address in {iface.network}")
        nets[str(iface.network)] = iface.network
        mac = "52:54:00:" + ":".join(f"{b:02x}" for b in hashlib.sha256(name.encode()).digest()[:3])
        guests.append({"name": name, "ip": str(iface), "address": str(iface.ip), "gateway": str(gateway),
                       "network": str(iface.network), "port": f"{PREFIX}p{idx}", "mac": mac,
                       "netns": PREFIX + name})
    addrs = [g["address"] for g in guests]
    if len(set(addrs)) != len(addrs):
        raise LabError(f"spec: duplicate host addresses in {addrs}")
    subnets = []
    for idx, net in enumerate(sorted(nets.values())):
        subnets.append({"network": str(net), "bridge": f"{PREFIX}s{idx}",
                        "gateway": f"{next(net.hosts())}/{net.prefixlen}"})
    bridge_of = {s["network"]: s["bridge"] for s in subnets}
    for guest in guests:
        guest["bridge"] = bridge_of[guest["network"]]
    return {"router": ROUTER, "subnets": subnets, "guests": guests, "mem": mem}


# ---------------------------------------------------------------------------------------------
# The guests' root image: Debian 12 from Debian's packages, built once, cached by its inputs


def image_packages() -> list[str]:
    lines = (IMAGE_FILES / "packages.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def image_key() -> str:
    """A digest of everything the image is made from: a change to any of it builds a new one."""
    digest = hashlib.sha256(f"{SUITE}\0{IMAGE_SIZE}\0{INITRAMFS_MODULES}\0".encode())
    for path in sorted(IMAGE_FILES.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive flock on path (held until the block ends, released if the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def apt_sources() -> str:
    """The machine's own Debian sources (its mirror and suites) for mmdebstrap, else Debian's."""
    for path in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        if path.is_file() and re.search(rf"\b{SUITE}\b", path.read_text()):
            return str(path)
    return "http://deb.debian.org/debian"


def make_initramfs(root: Path, out: Path) -> None:
    """A small initramfs: busybox, the virtio drivers of the image's kernel, image/initramfs-init."""
    kernel = sorted((root / "lib" / "modules").iterdir())[-1]
    tree = out.parent / "initramfs"
    (tree / "bin").mkdir(parents=True)
    (tree / "modules").mkdir()
    shutil.copy2(root / "bin" / "busybox", tree / "bin" / "busybox")
    found = {p.name.removesuffix(".ko"): p for p in (kernel / "kernel").rglob("*.ko")}
    for module in INITRAMFS_MODULES:
        if module not in found:
            raise LabError(f"image: the kernel {kernel.name} has no module {module}")
        shutil.copy2(found[module], tree / "modules" / f"{module}.ko")
    shutil.copy2(IMAGE_FILES / "initramfs-init", tree / "init")
    (tree / "init").chmod(0o755)
    files = sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))
    with open(out, "wb") as handle:
        listing = subprocess.Popen(["cpio", "-o", "-H", "newc", "--quiet"], cwd=tree, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE)
        gzip = subprocess.Popen(["gzip", "-1"], stdin=listing.stdout, stdout=handle)
        listing.stdout.close()
        listing.stdin.write(("\n".join(["."] + files) + "\n").encode())
        listing.stdin.close()
        if listing.wait() != 0 or gzip.wait() != 0:
            raise LabError("image: cpio/gzip failed making the initramfs")
    shutil.rmtree(tree)


def build_image(dest: Path) -> dict:
    t0 = time.monotonic()
    work = dest.with_name(dest.name + f".build-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    root = work / "root"
    try:
        argv = ["mmdebstrap", "--quiet", "--variant=minbase", "--mode=root", "--format=directory",
                f"--include={','.join(image_packages())}",
                "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-include=/usr/share/doc/*/copyright",
                f"--customize-hook={IMAGE_FILES / 'customize.sh'} \"$1\"",
                SUITE, str(root), apt_sources()]
        run(*argv, timeout=900)
        kernels = sorted((root / "boot").glob("vmlinuz-*"))
        if not kernels:
            raise LabError("image: no kernel in /boot (linux-image-cloud-amd64 missing from packages.txt?)")
        shutil.copy2(kernels[-1], work / "vmlinuz")
        make_initramfs(root, work / "initrd.img")
        packages = run("dpkg-query", f"--admindir={root / 'var/lib/dpkg'}", "-W", "-f", "${Package} ${Version}\n").stdout
        run("mke2fs", "-q", "-t", "ext4", "-d", str(root), "-L", "l3lab-root", "-F", str(work / "root.img"), IMAGE_SIZE)
        shutil.rmtree(root)
        manifest = {"key": dest.name, "suite": SUITE, "kernel": kernels[-1].name.removeprefix("vmlinuz-"),
                    "packages": dict(line.split(" ", 1) for line in packages.splitlines() if line),
                    "build_seconds": round(time.monotonic() - t0, 1)}
        (work / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        os.replace(work, dest)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_image() -> dict:
    """The current image (built now if its inputs changed); older images are removed."""
    dest = IMAGE_CACHE / image_key()
    with locked(IMAGE_CACHE / ".lock"):
        built = False
        if not (dest / "manifest.json").exists():
            can_run_guests(need_build=True)
            build_image(dest)
            built = True
            for old in IMAGE_CACHE.iterdir():
                if old.is_dir() and old != dest:
                    shutil.rmtree(old, ignore_errors=True)
        manifest = json.loads((dest / "manifest.json").read_text())
    return {"changed": built, "dir": str(dest), "kernel_file": str(dest / "vmlinuz"),
            "initrd": str(dest / "initrd.img"), "root": str(dest / "root.img"), **manifest}


def probe_kvm(image: dict) -> tuple[bool, str]:
    """Boot the image's kernel under KVM to its initramfs, which says so and powers off."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "no usable /dev/kvm"
    argv = [QEMU, "-M", "pc", "-accel", "kvm", "-cpu", "host", "-m", "128", "-nodefaults", "-no-user-config",
            "-display", "none", "-no-reboot", "-serial", "stdio", "-kernel", image["kernel_file"],
            "-initrd", image["initrd"], "-append", "console=ttyS0 quiet panic=-1 l3lab.probe"]
    try:
        # stdin not ours: QEMU's stdio chardev sets O_NONBLOCK on it, which is shared with the caller
        # (ansible-playbook refuses to run on a non-blocking stdin).
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, f"a probe boot under KVM did not reach the initramfs in {PROBE_TIMEOUT:.0f} s"
    if "l3lab-probe-ok" in proc.stdout:
        return True, "a probe boot under KVM reached the initramfs"
    said = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[0]
    return False, f"a probe boot under KVM failed: {said}"


def verdict(name: str, key: str, probe) -> dict:
    """A probe's verdict {"ok", "why"}, kept per machine boot (and key: the kernel probed)."""
    cache = CACHE / f"{name}.json"
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    with locked(CACHE / f".{name}.lock"):
        try:
            known = json.loads(cache.read_text())
        except (OSError, ValueError):
            known = {}
        if known.get("boot_id") != boot_id or known.get("key") != key:
            ok, why = probe()
            known = {"boot_id": boot_id, "key": key, "ok": ok, "why": why}
            cache.write_text(json.dumps(known) + "\n")
    return known


def choose_accel(image: dict) -> dict:
    """TCG, unless KVM is asked for or proven to work by a probe boot."""
    want = os.environ.get("L3LAB_ACCEL", "auto")
    if want not in ("auto", "tcg", "kvm"):
        raise LabError(f"L3LAB_ACCEL={want!r}: use auto, tcg or kvm")
    if want == "tcg":
        return {"accel": "tcg", "why": "L3LAB_ACCEL=tcg"}
    known = verdict("kvm", image["kernel"], lambda: probe_kvm(image))
    if want == "kvm" and not known["ok"]:
        raise LabError(f"L3LAB_ACCEL=kvm, but {known['why']}")
    return {"accel": "kvm" if known["ok"] else "tcg", "why": known["why"]}


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
        argv = [UML, f"umid={PREFIX}probe-{os.getpid()}", f"uml_dir={work}", "mem=64M", "rootfstype=hostfs",
                "rootflags=/", "ro", "con=null", "con0=null,fd:1", f"init={init}"]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        try:
            out, _err = proc.communicate(timeout=PROBE_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the kernel and its helper processes, all ours
            proc.communicate()
            return False, f"a probe boot of User-mode Linux did not run init in {PROBE_TIMEOUT:.0f} s"
        if "l3lab-probe-ok" in out:
            return True, "a probe boot of User-mode Linux ran init"
        said = next((line for line in out.splitlines() if "failed" in line or "panic" in line.lower()),
                    f"exit {proc.returncode}")
        return False, f"a probe boot of User-mode Linux failed: {said.strip()}"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def choose_backend() -> dict:
    """The guests: QEMU everywhere (Debian's kernel, systemd), or User-mode Linux as the fast
    path where its probe boot works (L3LAB_BACKEND=auto, the default), or as forced."""
    want = os.environ.get("L3LAB_BACKEND", "auto")
    if want not in ("auto", "qemu", "uml"):
        raise LabError(f"L3LAB_BACKEND={want!r}: use auto, qemu or uml")
    if want != "qemu":
        uml = verdict("uml", str(Path(UML).resolve()) if os.path.exists(UML) else "", probe_uml)
        if uml["ok"]:
            return {"backend": "uml", "accel": None, "why": uml["why"], "image": None}
        if want == "uml":
            raise LabError(f"L3LAB_BACKEND=uml, but {uml['why']}")
        why_not_uml = uml["why"]
    else:
        why_not_uml = "L3LAB_BACKEND=qemu"
    can_run_guests(need_build=False)
    image = ensure_image()
    accel = choose_accel(image)
    return {"backend": "qemu", "accel": accel["accel"], "why": f"{why_not_uml}; {accel['why']}", "image": image}


# ---------------------------------------------------------------------------------------------
# up


def ensure_key() -> None:
    ssh = LAB / "ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    os.chmod(ssh, 0o700)
    key = ssh / "id_ed25519"
    if not key.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "l3lab", "-f", str(key))


def ensure_router(topo: dict) -> None:
    run("ip", "netns", "add", ROUTER)
    ns = ("ip", "-n", ROUTER)
    for key, value in (("net.ipv6.conf.all.disable_ipv6", "1"), ("net.ipv6.conf.default.disable_ipv6", "1"),
                       ("net.ipv4.ip_forward", "1")):
        run("ip", "netns", "exec", ROUTER, "sysctl", "-qw", f"{key}={value}")
    run(*ns, "link", "set", "lo", "up")
    for subnet in topo["subnets"]:
        run(*ns, "link", "add", subnet["bridge"], "type", "bridge", "forward_delay", "0")
        run(*ns, "addr", "add", subnet["gateway"], "dev", subnet["bridge"])
        run(*ns, "link", "set", subnet["bridge"], "up")


def write_guest_files(guest: dict, image: dict) -> Path:
    gdir = LAB / guest["name"]
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
    gdir = LAB / guest["name"]
    # mitigations=off: a guest of the lab runs only the lab's code, and under TCG every page-table
    # switch a mitigation adds costs a flush of QEMU's translated TLB.
    cmdline = "console=ttyS0 quiet panic=-1 net.ifnames=0 mitigations=off"
    fw_cfg = [("name", "string", guest["name"]), ("ip", "string", guest["ip"]),
              ("gateway", "string", guest["gateway"]), ("hostkey", "file", str(gdir / "ssh_host_ed25519_key")),
              ("hostkey.pub", "file", str(gdir / "ssh_host_ed25519_key.pub")),
              ("authorized_keys", "file", str(LAB / "ssh" / "id_ed25519.pub"))]
    argv = [QEMU, "-name", f"{PREFIX}{guest['name']}", "-M", "pc", "-accel", accel,
            "-cpu", "host" if accel == "kvm" else os.environ.get("L3LAB_QEMU_CPU", "max"), "-m", mem.removesuffix("M"), "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
            "-kernel", image["kernel_file"], "-initrd", image["initrd"], "-append", cmdline,
            "-drive", f"file={gdir / 'disk.qcow2'},format=qcow2,if=virtio,cache=unsafe",
            "-netdev", f"tap,id=n0,ifname={guest['port']},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=n0,mac={guest['mac']}",
            "-serial", f"file:{gdir / 'console.log'}"]
    for key, kind, value in fw_cfg:
        argv += ["-fw_cfg", f"name=opt/l3lab/{key},{kind}={value}"]
    return argv


# Run in a UML guest's private mount namespace before exec'ing the kernel: the lab directory
# stays writable, /dev/shm is private (the guest's memory file), every other mount read-only.
UML_SANDBOX = r"""
lab=$1; shift
mount --bind "$lab" "$lab"
mount -t tmpfs -o size=1g,mode=1777 l3lab-shm /dev/shm
awk '{print $2}' /proc/self/mounts | sort -u | while read -r mp; do
  case "$mp" in "$lab"|/dev/shm) continue ;; esac
  mount -o remount,bind,ro "$mp" 2>/dev/null || true
done
exec env TMPDIR=/dev/shm "$@"
"""
UML_DISK_SIZE = "1G"  # sparse: a converged guest uses a few MB of it


def start_uml_guest(guest: dict, mem: str) -> subprocess.Popen:
    """A User-mode Linux guest (the fast path): the machine's root read-only through hostfs with
    an overlay on the guest's own ext4 disk (guest-init.sh), its NIC a veth end in a namespace of
    its own (vector raw transport), the veth's peer the guest's port on the router."""
    gdir = LAB / guest["name"]
    (gdir / "uml").mkdir(parents=True, exist_ok=True)
    ssh_identity(guest)
    shutil.copyfile(LAB / "ssh" / "id_ed25519.pub", gdir / "authorized_keys")
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
        run("mkfs.ext4", "-q", "-F", "-L", guest["name"], "-E", "lazy_itable_init=1,lazy_journal_init=1",
            str(disk) + ".tmp", UML_DISK_SIZE)
        os.replace(str(disk) + ".tmp", disk)
    if guest["netns"] in netns_list():
        run("ip", "netns", "delete", guest["netns"])
    run("ip", "-n", ROUTER, "link", "del", guest["port"], check=False)
    run("ip", "netns", "add", guest["netns"])
    run("ip", "netns", "exec", guest["netns"], "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
    run("ip", "-n", ROUTER, "link", "add", guest["port"], "type", "veth",
        "peer", "name", PREFIX + "u", "netns", guest["netns"])
    run("ip", "-n", ROUTER, "link", "set", guest["port"], "master", guest["bridge"], "up")
    run("ip", "-n", guest["netns"], "link", "set", PREFIX + "u", "up")
    argv = [
        "ip", "netns", "exec", guest["netns"], "unshare", "--mount", "--propagation", "private", "--",
        "/bin/sh", "-ec", UML_SANDBOX, "l3lab-sandbox", str(LAB),
        UML, f"umid={PREFIX}{guest['name']}", f"uml_dir={gdir / 'uml'}", f"mem={mem}",
        "rootfstype=hostfs", "rootflags=/", "ro", "con=null", "ssl=null", "con0=null,fd:1",
        f"vec0:transport=raw,ifname={PREFIX}u,gro=1", f"ubd0={disk}", f"init={UML_INIT}",
        f"l3lab_name={guest['name']}", f"l3lab_ip={guest['ip']}", f"l3lab_gw={guest['gateway']}",
        f"l3lab_dir={gdir}",
    ]
    with open(gdir / "console.log", "wb") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)


def ssh_identity(guest: dict) -> None:
    hostkey = LAB / guest["name"] / "ssh_host_ed25519_key"
    if not hostkey.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", guest["name"], "-f", str(hostkey))


def start_qemu_guest(guest: dict, mem: str, image: dict, accel: str) -> subprocess.Popen:
    gdir = write_guest_files(guest, image)
    # The guest's port: a tap device on its subnet's bridge (made anew: it may be another kind's).
    ns = ("ip", "-n", ROUTER)
    run(*ns, "link", "del", guest["port"], check=False)
    run(*ns, "tuntap", "add", "dev", guest["port"], "mode", "tap")
    run(*ns, "link", "set", guest["port"], "master", guest["bridge"], "up")
    argv = ["ip", "netns", "exec", ROUTER, *qemu_argv(guest, mem, image, accel)]
    with open(gdir / "qemu.log", "wb") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)


def runtime_record(guest: dict, runtime: dict) -> dict:
    """What a running guest was started as: a guest started otherwise is started again."""
    image = runtime["image"]["key"] if runtime["image"] else None
    return {**guest, "backend": runtime["backend"], "accel": runtime["accel"], "image": image}


def start_guest(guest: dict, mem: str, runtime: dict) -> subprocess.Popen:
    gdir = LAB / guest["name"]
    gdir.mkdir(parents=True, exist_ok=True)
    for stale in ("pid", "ready", "console.log"):
        (gdir / stale).unlink(missing_ok=True)
    if runtime["backend"] == "uml":
        proc = start_uml_guest(guest, mem)
    else:
        proc = start_qemu_guest(guest, mem, runtime["image"], runtime["accel"])
    (gdir / "pid").write_text(f"{proc.pid}\n")
    (gdir / "guest.json").write_text(json.dumps(runtime_record(guest, runtime), sort_keys=True) + "\n")
    return proc


def guest_marker(name: str) -> str:
    """What only this guest's process has on its command line (QEMU's -name, UML's umid=)."""
    try:
        backend = json.loads((LAB / name / "guest.json").read_text()).get("backend")
    except (OSError, ValueError):
        backend = None
    return f"umid={PREFIX}{name}\0" if backend == "uml" else f"-name\0{PREFIX}{name}\0"


def ready_uptime(name: str) -> float | None:
    """The guest's uptime when it said it is ready (sshd listening): from its console (QEMU) or
    the file its init wrote in the lab directory (UML)."""
    try:
        ready = (LAB / name / "ready").read_text()
        return float(ready.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        text = (LAB / name / "console.log").read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r"^l3lab-ready ([0-9.]+)", text, re.M)
    return float(match[1]) if match else None


def guest_running(guest: dict, runtime: dict) -> bool:
    gdir = LAB / guest["name"]
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
                said = tail(LAB / name / "qemu.log") if (LAB / name / "qemu.log").exists() else ""
                raise LabError(f"guest {name} exited during boot (exit {proc.returncode}); {said}\n"
                               f"console:\n{tail(LAB / name / 'console.log')}")
        time.sleep(0.1)
    if started:
        names = ", ".join(sorted(started))
        raise LabError(f"guests not ready after {BOOT_TIMEOUT:.0f} s: {names}; console of the first:\n"
                       f"{tail(LAB / sorted(started)[0] / 'console.log')}")
    return boot


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def write_known_hosts(topo: dict) -> None:
    lines = []
    for guest in topo["guests"]:
        key = (LAB / guest["name"] / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        lines.append(f"{guest['address']} {' '.join(key)}")
    (LAB / "ssh" / "known_hosts").write_text("\n".join(lines) + "\n")


def up(spec: dict) -> dict:
    topo = plan(spec)
    runtime = choose_backend()
    LAB.mkdir(parents=True, exist_ok=True)
    spec_file = LAB / "topology.json"
    changed = bool(runtime["image"] and runtime["image"]["changed"])
    if spec_file.exists() and json.loads(spec_file.read_text()) != topo:
        down()  # another topology: start from nothing
        LAB.mkdir(parents=True, exist_ok=True)
        changed = True
    ensure_key()
    if ROUTER not in netns_list():
        ensure_router(topo)
        changed = True
    spec_file.write_text(json.dumps(topo, indent=1, sort_keys=True) + "\n")
    started = {}
    for guest in topo["guests"]:
        if not guest_running(guest, runtime):
            stop_guest(guest["name"])
            started[guest["name"]] = (time.monotonic(), start_guest(guest, topo["mem"], runtime))
    boot = wait_ready(started) if started else {}
    write_known_hosts(topo)
    image = runtime["image"]
    return {"changed": changed or bool(started), "started": sorted(boot), "boot_seconds": boot,
            "guest_uptime_ready": {name: ready_uptime(name) for name in boot}, "lab_dir": str(LAB),
            "backend": runtime["backend"], "accel": runtime["accel"], "why": runtime["why"],
            "image": {k: image[k] for k in ("key", "kernel", "build_seconds", "dir")} if image else None, **topo}


def restart(name: str) -> dict:
    """Power-cycle one guest (a reboot as a power cut): stop its QEMU by PID (SIGKILL: nothing is
    flushed), drop the SSH relays to it, boot it again on the same network and disk. Its disk
    keeps what reached it; its memory, /run, /tmp, network namespaces, links, routes, sysctls and
    processes are gone."""
    try:
        topo = json.loads((LAB / "topology.json").read_text())
    except (OSError, ValueError):
        raise LabError(f"restart {name}: no lab in {LAB}") from None
    guest = next((g for g in topo["guests"] if g["name"] == name), None)
    if guest is None:
        raise LabError(f"restart {name}: no such guest; the guests are {[g['name'] for g in topo['guests']]}")
    runtime = choose_backend()
    stop_relays(guest["address"])
    # A power cut: QEMU is killed outright; a UML kernel goes on SIGTERM (its helpers with it).
    was_running = stop_guest(name, sig=signal.SIGTERM if runtime["backend"] == "uml" else signal.SIGKILL)
    t0 = time.monotonic()
    boot = wait_ready({name: (t0, start_guest(guest, topo["mem"], runtime))})
    write_known_hosts(topo)
    return {"changed": True, "was_running": was_running, "started": [name], "boot_seconds": boot}


# ---------------------------------------------------------------------------------------------
# down


def stop_relays(address: str | None = None) -> bool:
    """Stop this script's relays (all, or those to one address), by PID: an SSH master whose
    relay goes ends at once instead of waiting on a connection to a guest that is gone."""
    stopped = False
    for pidfile in sorted(LAB.glob("relays/*")):
        pid = read_pid(pidfile)
        marker = f"{Path(__file__).name}\0relay\0" + (f"{address}\0" if address else "")
        # Ours: this script's relay (a recycled PID would not match).
        if pid is not None and kill_pid(pid, marker, timeout=1.0):
            stopped = True
    return stopped


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


def stop_guest(name: str, sig: signal.Signals = signal.SIGTERM) -> bool:
    pid = read_pid(LAB / name / "pid")
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
        qemu = (len(argv) > 2 and Path(argv[0].decode(errors="replace")).name == Path(QEMU).name
                and argv[1] == b"-name" and argv[2].startswith(PREFIX.encode()))
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


def down() -> dict:
    changed = False
    if LAB.exists():
        stop_capture_process()
        changed |= stop_relays()
        guests = [p.parent.name for p in LAB.glob("*/pid")]
        # Signal every guest first, then wait: they go in parallel.
        for name in guests:
            pid = read_pid(LAB / name / "pid")
            if pid is not None and alive(pid, guest_marker(name)):
                os.kill(pid, signal.SIGTERM)
                changed = True
        for name in guests:
            stop_guest(name)
    changed |= sweep_guests()
    for ns in netns_list():
        if ns.startswith(PREFIX):
            run("ip", "netns", "delete", ns)
            changed = True
    if LAB.exists():
        shutil.rmtree(LAB)
        changed = True
    return {"changed": changed}


# ---------------------------------------------------------------------------------------------
# status


def status() -> dict:
    namespaces = [ns for ns in netns_list() if ns.startswith(PREFIX)]
    guests = {}
    for pidfile in sorted(LAB.glob("*/pid")):
        name = pidfile.parent.name
        pid = read_pid(pidfile)
        try:
            record = json.loads((pidfile.parent / "guest.json").read_text())
        except (OSError, ValueError):
            record = {}
        guests[name] = {"pid": pid, "running": pid is not None and alive(pid, guest_marker(name)),
                        "ready": ready_uptime(name) is not None, "uptime_ready": ready_uptime(name),
                        "backend": record.get("backend"),
                        "accel": record.get("accel")}
    return {"router": ROUTER in namespaces, "namespaces": namespaces, "guests": guests, "lab_dir": str(LAB)}


# ---------------------------------------------------------------------------------------------
# relay (ssh ProxyCommand)


def relay(host: str, port: int) -> int:
    import selectors

    rdir = LAB / "relays"
    rdir.mkdir(parents=True, exist_ok=True)
    pidfile = rdir / str(os.getpid())
    pidfile.write_text(f"{os.getpid()}\n")
    try:
        sock = socket.create_connection((host, port), timeout=10)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sel = selectors.DefaultSelector()
        sel.register(0, selectors.EVENT_READ, "in")
        sel.register(sock, selectors.EVENT_READ, "sock")
        open_ends = 2
        while open_ends:
            for key, _events in sel.select():
                if key.data == "in":
                    data = os.read(0, 65536)
                    if data:
                        sock.sendall(data)
                    else:
                        sel.unregister(0)
                        sock.shutdown(socket.SHUT_WR)
                        open_ends -= 1
                else:
                    data = sock.recv(65536)
                    if data:
                        view = memoryview(data)
                        while view:
                            view = view[os.write(1, view):]
                    else:
                        sel.unregister(sock)
                        open_ends = 0
        return 0
    finally:
        pidfile.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# capture on the router


def stop_capture_process() -> bool:
    pid = read_pid(LAB / "capture.pid")
    stopped = False
    # Ours: tcpdump writing this lab's capture file (a recycled PID would not match).
    marker = f"-w\0{LAB / 'capture.pcap'}\0"
    if pid is not None and alive(pid, marker):
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and alive(pid, marker):
            time.sleep(0.05)
        kill_pid(pid, marker, timeout=1.0)
        stopped = True
    (LAB / "capture.pid").unlink(missing_ok=True)
    return stopped


def capture_argv(netns: str, pcap: Path) -> list[str]:
    """tcpdump in ``netns`` writing workload traffic only: IP-in-IP, VXLAN (UDP 4789) and plain
    ICMP (never SSH). ``--immediate-mode``: every packet reaches the file as it arrives; without
    it libpcap hands packets over in blocks retired up to a second later, and the SIGINT that
    stops the capture right after the last ping loses that block (seen: one node's pings missing)."""
    return ["ip", "netns", "exec", netns, "tcpdump", "-i", "any", "-nn", "-U", "--immediate-mode", "-s", "256",
            "-w", str(pcap), "ip proto 4 or udp port 4789 or icmp"]


def capture_start() -> dict:
    if ROUTER not in netns_list():
        raise LabError(f"no lab router namespace {ROUTER}")
    stop_capture_process()
    pcap, err = LAB / "capture.pcap", LAB / "capture.err"
    pcap.unlink(missing_ok=True)
    argv = capture_argv(ROUTER, pcap)
    with open(err, "wb") as errf:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf,
                                start_new_session=True)
    (LAB / "capture.pid").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 10
    while b"listening on" not in err.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise LabError(f"tcpdump did not start: {err.read_text().strip()}")
        time.sleep(0.02)
    return {"changed": True, "pid": proc.pid, "pcap": str(pcap)}


def capture_stop() -> dict:
    stop_capture_process()
    pcap = LAB / "capture.pcap"
    flows = decode_pcap(pcap.read_bytes()) if pcap.exists() else []
    return {"changed": True, "pcap": str(pcap), "flows": flows}


def _ipv4(buf: bytes, off: int) -> tuple[str, str, int, int] | None:
    if len(buf) < off + 20 or buf[off] >> 4 != 4:
        return None
    ihl = (buf[off] & 0x0F) * 4
    proto = buf[off + 9]
    src = socket.inet_ntoa(buf[off + 12:off + 16])
    dst = socket.inet_ntoa(buf[off + 16:off + 20])
    return src, dst, proto, off + ihl


def decode_packet(buf: bytes, off: int) -> dict | None:
    """Decode one IPv4 packet at off: plain ICMP, IP-in-IP or VXLAN carrying ICMP."""
    outer = _ipv4(buf, off)
    if outer is None:
        return None
    src, dst, proto, l4 = outer
    encap, inner = "none", outer
    if proto == 4:
        encap, inner = "ipip", _ipv4(buf, l4)
    elif proto == 17 and len(buf) >= l4 + 8 and struct.unpack("!H", buf[l4 + 2:l4 + 4])[0] == 4789:
        # UDP(8) + VXLAN(8) + Ethernet(14) then the inner IPv4 packet.
        vni = int.from_bytes(buf[l4 + 12:l4 + 15], "big")
        encap, inner = f"vxlan:{vni}", _ipv4(buf, l4 + 8 + 8 + 14)
    if inner is None or inner[2] != 1 or len(buf) < inner[3] + 1:
        return None
    icmp = {0: "echo-reply", 8: "echo-request"}.get(buf[inner[3]], f"icmp-{buf[inner[3]]}")
    return {"encap": encap, "outer_src": src, "outer_dst": dst, "inner_src": inner[0], "inner_dst": inner[1],
            "icmp": icmp}


def decode_pcap(data: bytes) -> list[dict]:
    """Flows (deduplicated packets with a count) of a pcap written by tcpdump -i any."""
    if len(data) < 24:
        return []
    magic = data[:4]
    endian = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
              b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
    if endian is None:
        raise LabError("capture: not a pcap file")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    # LINUX_SLL (113): 16-byte header; LINUX_SLL2 (276): 20-byte header; EN10MB (1): 14 bytes.
    hdr = {113: 16, 276: 20, 1: 14}.get(linktype)
    if hdr is None:
        raise LabError(f"capture: unsupported link type {linktype}")
    counts: dict[tuple, int] = {}
    pos = 24
    while pos + 16 <= len(data):
        caplen = struct.unpack(endian + "I", data[pos + 8:pos + 12])[0]
        pkt = data[pos + 16:pos + 16 + caplen]
        pos += 16 + caplen
        if linktype == 276:
            ethertype = struct.unpack("!H", pkt[0:2])[0] if len(pkt) >= 2 else 0
        elif linktype == 113:
            ethertype = struct.unpack("!H", pkt[14:16])[0] if len(pkt) >= 16 else 0
        else:
            ethertype = struct.unpack("!H", pkt[12:14])[0] if len(pkt) >= 14 else 0
        if ethertype != 0x0800:
            continue
        flow = decode_packet(pkt, hdr)
        if flow is not None:
            key = tuple(sorted(flow.items()))
            counts[key] = counts.get(key, 0) + 1
    return [dict(key, packets=n) for key, n in sorted(counts.items())]


# ---------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "relay":
        return relay(args[0], int(args[1]))
    try:
        if cmd == "image" and not args:
            result = ensure_image()
        elif cmd == "backend" and not args:
            runtime = choose_backend()
            result = {"backend": runtime["backend"], "accel": runtime["accel"], "why": runtime["why"]}
        elif cmd == "up" and len(args) == 1:
            result = up(json.loads(args[0]))
        elif cmd == "down":
            result = down()
        elif cmd == "status":
            result = status()
        elif cmd == "restart" and len(args) == 1:
            result = restart(args[0])
        elif cmd == "capture" and args == ["start"]:
            result = capture_start()
        elif cmd == "capture" and args == ["stop"]:
            result = capture_stop()
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except (LabError, json.JSONDecodeError) as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
