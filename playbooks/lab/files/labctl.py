#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Control the l3.calico lab: User-mode Linux guests behind a router namespace.

    labctl.py up SPEC_JSON     create what is missing (a no-op on a running lab); prints JSON
    labctl.py down             remove every trace: guests and relays by PID, namespaces, files
    labctl.py status           what runs, as JSON
    labctl.py restart HOST     power-cycle one guest: its disk stays, its memory and kernel state go
    labctl.py relay HOST PORT  stdin/stdout <-> TCP HOST:PORT (an ssh ProxyCommand, run in the router)
    labctl.py capture start    tcpdump on the router's ports (tunnelled and plain workload traffic)
    labctl.py capture stop     stop it; prints the decoded flows as JSON

SPEC_JSON: {"hosts": {"node-a": "192.168.100.100/24", ...}, "mem": "128M"}  (host name: address/prefix)

Topology: one network namespace `l3lab-router` holds a bridge per underlay subnet (with the
subnet's first address as gateway) and forwards between them; every guest has a namespace
`l3lab-<host>` holding only the end of a veth whose peer is a port of its subnet's bridge; the
guest's UML process runs there, attached to that veth with the vector raw transport, inside a
private mount namespace where every mount but the lab directory is read-only.
Nothing is configured in the machine's own network namespace.

Each guest has a disk of its own (`<lab>/<host>/disk.img`, ext4, the UML block device ubda) that
holds the writable layer of its root: what a guest writes (/etc, /var, /usr/local) survives a
`restart`, like a host's disk survives a reboot; /run, /tmp and the kernel state do not.
"""

from __future__ import annotations

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
import time
from pathlib import Path

# Every namespace, link and process of the lab carries this prefix (tests use another one).
PREFIX = os.environ.get("L3LAB_PREFIX", "l3lab-")
ROUTER = PREFIX + "router"
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
LAB = Path(os.environ.get("L3LAB_DIR", REPO / ".lab")).resolve()
INIT = HERE / "guest-init.sh"
UML = os.environ.get("L3LAB_UML", "/usr/bin/linux")
BOOT_TIMEOUT = 60.0
DISK_SIZE = "1G"  # sparse: a converged guest uses a few MB of it
NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?")

# Run in the guest's private mount namespace before exec'ing the kernel: the lab directory
# stays writable, /dev/shm is private (the guest's memory file), every other mount read-only.
SANDBOX = r"""
lab=$1; shift
mount --bind "$lab" "$lab"
mount -t tmpfs -o size=1g,mode=1777 l3lab-shm /dev/shm
awk '{print $2}' /proc/self/mounts | sort -u | while read -r mp; do
  case "$mp" in "$lab"|/dev/shm) continue ;; esac
  mount -o remount,bind,ro "$mp" 2>/dev/null || true
done
exec env TMPDIR=/dev/shm "$@"
"""


class LabError(Exception):
    pass


def run(*argv: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, text=True, capture_output=capture, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {proc.returncode}: {(proc.stderr or '').strip()}")
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


# ---------------------------------------------------------------------------------------------
# The topology, computed from the spec


def plan(spec: dict) -> dict:
    hosts = spec.get("hosts")
    if not isinstance(hosts, dict) or not hosts:
        raise LabError(f"spec: hosts must be a non-empty mapping of host name to address/prefix, got {hosts!r}")
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
        guests.append({"name": name, "ip": str(iface), "address": str(iface.ip), "gateway": str(gateway),
                       "network": str(iface.network), "port": f"{PREFIX}p{idx}", "netns": PREFIX + name})
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
    return {"router": ROUTER, "subnets": subnets, "guests": guests, "mem": str(spec.get("mem", "128M"))}


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


def write_guest_files(guest: dict) -> Path:
    gdir = LAB / guest["name"]
    (gdir / "uml").mkdir(parents=True, exist_ok=True)
    hostkey = gdir / "ssh_host_ed25519_key"
    if not hostkey.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", guest["name"], "-f", str(hostkey))
    shutil.copyfile(LAB / "ssh" / "id_ed25519.pub", gdir / "authorized_keys")
    (gdir / "sshd_config").write_text(
        f"# sshd of lab guest {guest['name']} (written by labctl.py)\n"
        f"ListenAddress {guest['address']}\n"
        f"HostKey {hostkey}\n"
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
            str(disk) + ".tmp", DISK_SIZE)
        os.replace(str(disk) + ".tmp", disk)
    return gdir


def start_guest(guest: dict, mem: str) -> subprocess.Popen:
    gdir = write_guest_files(guest)
    for stale in ("ready", "pid"):
        (gdir / stale).unlink(missing_ok=True)
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
        "/bin/sh", "-ec", SANDBOX, "l3lab-sandbox", str(LAB),
        UML, f"umid={PREFIX}{guest['name']}", f"uml_dir={gdir / 'uml'}", f"mem={mem}",
        "rootfstype=hostfs", "rootflags=/", "ro", "con=null", "ssl=null", "con0=null,fd:1",
        f"vec0:transport=raw,ifname={PREFIX}u,gro=1", f"ubd0={gdir / 'disk.img'}", f"init={INIT}",
        f"l3lab_name={guest['name']}", f"l3lab_ip={guest['ip']}", f"l3lab_gw={guest['gateway']}",
        f"l3lab_dir={gdir}",
    ]
    with open(gdir / "console.log", "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    (gdir / "pid").write_text(f"{proc.pid}\n")
    (gdir / "guest.json").write_text(json.dumps(guest, sort_keys=True) + "\n")
    return proc


def guest_running(guest: dict) -> bool:
    gdir = LAB / guest["name"]
    pid = read_pid(gdir / "pid")
    if pid is None or not alive(pid, f"umid={PREFIX}{guest['name']}"):
        return False
    try:
        same = json.loads((gdir / "guest.json").read_text()) == guest
    except (OSError, ValueError):
        same = False
    return same and (gdir / "ready").exists()


def wait_ready(started: dict[str, tuple[float, subprocess.Popen]]) -> dict[str, float]:
    boot = {}
    deadline = time.monotonic() + BOOT_TIMEOUT
    while started and time.monotonic() < deadline:
        for name, (t0, proc) in list(started.items()):
            gdir = LAB / name
            if (gdir / "ready").exists():
                boot[name] = round(time.monotonic() - t0, 2)
                del started[name]
                continue
            if proc.poll() is not None:
                raise LabError(f"guest {name} exited during boot; console:\n{tail(gdir / 'console.log')}")
        time.sleep(0.05)
    if started:
        names = ", ".join(sorted(started))
        raise LabError(f"guests not ready after {BOOT_TIMEOUT:.0f} s: {names}; console of the first:\n"
                       f"{tail(LAB / sorted(started)[0] / 'console.log')}")
    return boot


def tail(path: Path, lines: int = 25) -> str:
    """The end of a guest's console, without kernel stack dumps."""
    try:
        text = path.read_text(errors="replace").splitlines()
        return "\n".join([t for t in text if not t.startswith((" [<", "Stack:", " 6", " 0"))][-lines:])
    except OSError:
        return "(no console log)"


def write_known_hosts(topo: dict) -> None:
    lines = []
    for guest in topo["guests"]:
        key = (LAB / guest["name"] / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        lines.append(f"{guest['address']} {' '.join(key)}")
    (LAB / "ssh" / "known_hosts").write_text("\n".join(lines) + "\n")


def up(spec: dict) -> dict:
    topo = plan(spec)
    LAB.mkdir(parents=True, exist_ok=True)
    spec_file = LAB / "topology.json"
    changed = False
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
        if not guest_running(guest):
            stop_guest(guest["name"])
            t0 = time.monotonic()
            started[guest["name"]] = (t0, start_guest(guest, topo["mem"]))
    boot = wait_ready(started) if started else {}
    write_known_hosts(topo)
    return {"changed": changed or bool(started), "started": sorted(boot), "boot_seconds": boot,
            "lab_dir": str(LAB), **topo}


def restart(name: str) -> dict:
    """Power-cycle one guest (a reboot as a power cut): stop its kernel by PID, drop the SSH relays
    to it, boot it again on the same network and disk. Its disk keeps what was written to it; its
    memory, /run, /tmp, network namespaces, links, routes, sysctls and processes are gone."""
    try:
        topo = json.loads((LAB / "topology.json").read_text())
    except (OSError, ValueError):
        raise LabError(f"restart {name}: no lab in {LAB}") from None
    guest = next((g for g in topo["guests"] if g["name"] == name), None)
    if guest is None:
        raise LabError(f"restart {name}: no such guest; the guests are {[g['name'] for g in topo['guests']]}")
    stop_relays(guest["address"])
    was_running = stop_guest(name)
    t0 = time.monotonic()
    boot = wait_ready({name: (t0, start_guest(guest, topo["mem"]))})
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


def kill_pid(pid: int, marker: str, timeout: float = 5.0) -> bool:
    """SIGTERM a process we started (checked by its command line), SIGKILL its group if it lingers."""
    if not alive(pid, marker):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid, marker):
        time.sleep(0.05)
    if alive(pid, marker):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return True


def stop_guest(name: str) -> bool:
    pid = read_pid(LAB / name / "pid")
    return pid is not None and kill_pid(pid, f"umid={PREFIX}{name}")


def our_uml_processes() -> list[int]:
    """PIDs of UML processes of this lab's prefix (a guest's helper processes, or a guest whose
    lab directory is gone): the kernel binary with umid=<prefix>... on its command line."""
    pids = []
    marker = f"umid={PREFIX}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 1 and argv[0] == UML.encode() and argv[1].startswith(marker):
            pids.append(int(entry.name))
    return pids


def sweep_guests() -> bool:
    """SIGKILL what is left of this lab's guests, by PID; True if anything was left."""
    pids = our_uml_processes()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline and our_uml_processes():
        time.sleep(0.05)
    return bool(pids)


def down() -> dict:
    changed = False
    if LAB.exists():
        stop_capture_process()
        changed |= stop_relays()
        guests = [p.parent.name for p in LAB.glob("*/pid")]
        # SIGTERM all guests first, then wait: they shut down in parallel.
        for name in guests:
            pid = read_pid(LAB / name / "pid")
            if pid is not None and alive(pid, f"umid={PREFIX}{name}"):
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
        guests[name] = {"pid": pid, "running": pid is not None and alive(pid, f"umid={PREFIX}{name}"),
                        "ready": (pidfile.parent / "ready").exists()}
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
            for key, _ in sel.select():
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
        if cmd == "up":
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
