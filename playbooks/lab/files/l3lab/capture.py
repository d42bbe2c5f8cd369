# SPDX-License-Identifier: MIT
"""Capture on the router with tcpdump; the flows read back with tcpdump's own reader (tcpdump -r).

A flow is what the verification judges: how a workload's ICMP crossed the underlay (``encap``:
``none``, ``ipip`` or ``vxlan:<VNI>``), the outer and inner addresses, the ICMP message, and how
many packets were alike. tcpdump decodes the packets (link types, IP options, VXLAN); this module
reads its one-line summaries, the form tcpdump prints for every packet::

    1700000000.000000 eth0  In  IP 192.168.100.100 > 192.168.200.101: IP 172.17.0.1 > 172.17.128.1: ICMP echo request, id 1, seq 1, length 64
    1700000000.000000 eth0  Out IP 192.168.100.100.40000 > 192.168.100.101.4789: VXLAN, flags [I] (0x08), vni 4096
    IP 172.18.0.3 > 172.18.64.3: ICMP echo request, id 1, seq 1, length 64

(a VXLAN packet's inner frame is printed on a line of its own, without a timestamp). IPv6 (a
dual-stack lab) the same way: ``IP6 fd00:17::1 > fd00:17::81: ICMP6, echo request, ...``, VXLAN over
IPv6 ``IP6 fd00:100::100.40000 > fd00:200::101.4789: VXLAN, ...`` with its inner ``IP6`` line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from . import common
from .common import ROUTER, LabError, alive, kill_pid, netns_list, read_pid, run

# The flush mark: an address no workload has (loopback, inside the capture's own namespace). Its
# echo reply in the file proves tcpdump has written every packet captured before it.
FLUSH_MARK = "127.255.0.1"


def flush(netns: str, pcap: Path, timeout: float = 10.0) -> None:
    """Return once tcpdump (capturing in ``netns`` into ``pcap``) has written every packet that
    reached it so far. SIGINT alone does not do this: tcpdump then leaves the packets still in its
    ring unread, and on a busy machine those are the last pings (seen in CI: 2 of 3 exchanges).
    Packets leave the ring in order, so once the mark's echo reply is in the file, so is the rest."""
    deadline = time.monotonic() + timeout
    while True:
        run("ip", "netns", "exec", netns, "ping", "-c", "1", "-W", "1", "-q", FLUSH_MARK, check=False)
        for _poll in range(10):
            found = read_pcap(pcap, marks=True, growing=True)
            if any(f["inner_src"] == FLUSH_MARK and f["icmp"] == "echo-reply" for f in found):
                return
            if time.monotonic() > deadline:
                raise LabError(f"capture: tcpdump did not write the flush mark to {pcap} within {timeout:.0f} s")
            time.sleep(0.05)


def stop_capture_process(flush_first: bool = False) -> bool:
    """Stop this lab's tcpdump, if it runs; ``flush_first``: once it has written what it captured."""
    pid = read_pid(common.LAB / "capture.pid")
    stopped = False
    # Ours: tcpdump writing this lab's capture file (a recycled PID would not match).
    marker = f"-w\0{common.LAB / 'capture.pcap'}\0"
    if pid is not None and alive(pid, marker):
        if flush_first:
            flush(ROUTER, common.LAB / "capture.pcap")
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and alive(pid, marker):
            time.sleep(0.05)
        kill_pid(pid, marker, timeout=1.0)
        stopped = True
    (common.LAB / "capture.pid").unlink(missing_ok=True)
    return stopped


def capture_argv(netns: str, pcap: Path) -> list[str]:
    """tcpdump in ``netns`` writing workload traffic only: IP-in-IP, VXLAN (UDP 4789, over either
    family) and plain ICMP and ICMPv6 (never SSH). ``--immediate-mode``: every packet reaches the file as it arrives; without
    it libpcap hands packets over in blocks retired up to a second later, and the SIGINT that
    stops the capture right after the last ping loses that block (seen: one node's pings missing)."""
    return [
        "ip",
        "netns",
        "exec",
        netns,
        "tcpdump",
        "-i",
        "any",
        "-nn",
        "-U",
        "--immediate-mode",
        "-s",
        "256",
        "-w",
        str(pcap),
        "ip proto 4 or udp port 4789 or icmp or icmp6",
    ]


def capture_start() -> dict:
    if ROUTER not in netns_list():
        raise LabError(f"no lab router namespace {ROUTER}")
    stop_capture_process()
    pcap, err = common.LAB / "capture.pcap", common.LAB / "capture.err"
    pcap.unlink(missing_ok=True)
    argv = capture_argv(ROUTER, pcap)
    with open(err, "wb") as errf:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf, start_new_session=True)
    (common.LAB / "capture.pid").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 10
    while b"listening on" not in err.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise LabError(f"tcpdump did not start: {err.read_text().strip()}")
        time.sleep(0.02)
    return {"changed": True, "pid": proc.pid, "pcap": str(pcap)}


def capture_stop() -> dict:
    stop_capture_process(flush_first=True)
    pcap = common.LAB / "capture.pcap"
    flows = read_pcap(pcap) if pcap.exists() else []
    return {"changed": True, "pcap": str(pcap), "flows": flows}


# A packet starts with its timestamp (-tt); a line without one continues the packet before it.
_PACKET_START = re.compile(r"^\d+\.\d+ ")
# One IP header as tcpdump -nn prints it: "IP SRC[.PORT] > DST[.PORT]: ", or "IP6 ..." with IPv6
# addresses (a port follows an IPv6 address after a dot too); ARP never matches.
_IPV4 = re.compile(
    r"\bIP (\d{1,3}(?:\.\d{1,3}){3})(?:\.(\d+))? > (\d{1,3}(?:\.\d{1,3}){3})(?:\.(\d+))?: "
    r"|\bIP6 ([0-9a-f:]*:[0-9a-f:]*)(?:\.(\d+))? > ([0-9a-f:]*:[0-9a-f:]*)(?:\.(\d+))?: "
)
_VXLAN = re.compile(r"VXLAN, flags \[[^]]*\] \(0x[0-9a-f]+\), vni (\d+)\s+")
_ICMP = re.compile(r"ICMP6?,? ([^,]+)")
_ICMP_NAMES = {"echo request": "echo-request", "echo reply": "echo-reply"}


def read_pcap(pcap: Path, marks: bool = False, growing: bool = False) -> list[dict]:
    """The flows of a capture file, read by tcpdump itself (``tcpdump -nn -tt -r``); the flush marks
    only with ``marks``. ``growing``: tcpdump still writes it, so a packet cut short at its end (tcpdump
    then exits non-zero, having printed every packet before it) is no error."""
    if pcap.stat().st_size == 0:
        return []  # tcpdump stopped before it wrote the file's header: nothing was captured
    proc = run("tcpdump", "-nn", "-tt", "-r", str(pcap), check=False)
    if proc.returncode != 0 and not growing:
        raise LabError(f"capture: tcpdump cannot read {pcap}: {proc.stderr.strip()}")
    return flows(proc.stdout, marks=marks)


def packets(text: str) -> list[str]:
    """tcpdump's output, one string per packet (continuation lines joined to their packet)."""
    out: list[str] = []
    for line in text.splitlines():
        if _PACKET_START.match(line) or not out:
            out.append(line)
        else:
            out[-1] += " " + line.strip()
    return out


def _header(match: re.Match) -> tuple:
    """(src, src port, dst, dst port) of an IP or IP6 header ``_IPV4`` matched."""
    return match.group(1, 2, 3, 4) if match[1] else match.group(5, 6, 7, 8)


def flow(packet: str) -> dict | None:
    """One packet as a flow: plain ICMP or ICMPv6, or either inside IP-in-IP or VXLAN; None for anything else."""
    outer = _IPV4.search(packet)
    if outer is None:
        return None
    rest = packet[outer.end() :]
    encap, inner = "none", outer
    vxlan = _VXLAN.match(rest)
    if vxlan and "4789" in _header(outer)[1::2]:
        encap, inner = f"vxlan:{vxlan[1]}", _IPV4.match(rest, vxlan.end())
    elif rest.startswith("IP "):
        encap, inner = "ipip", _IPV4.match(rest)
    if inner is None:
        return None
    icmp = _ICMP.match(rest if inner is outer else rest[inner.end() :])
    src, sport, dst, dport = _header(inner)
    if icmp is None or sport or dport:  # not ICMP (ports: TCP, UDP)
        return None
    message = icmp[1].strip()
    outer_src, _sport, outer_dst, _dport = _header(outer)
    return {
        "encap": encap,
        "outer_src": outer_src,
        "outer_dst": outer_dst,
        "inner_src": src,
        "inner_dst": dst,
        "icmp": _ICMP_NAMES.get(message, "icmp-" + "-".join(message.split())),
    }


def flows(text: str, marks: bool = False) -> list[dict]:
    """Flows (alike packets once, with their count) of tcpdump's output; the flush marks left out
    unless ``marks``."""
    counts: dict[tuple, int] = {}
    for packet in packets(text):
        found = flow(packet)
        if found is not None and (marks or FLUSH_MARK not in (found["inner_src"], found["inner_dst"])):
            key = tuple(sorted(found.items()))
            counts[key] = counts.get(key, 0) + 1
    return [dict(key, packets=n) for key, n in sorted(counts.items())]
