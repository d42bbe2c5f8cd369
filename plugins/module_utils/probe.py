# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Observe a node's Calico data plane, read-only, in a handful of processes.

What ``l3.calico.probe`` returns and ``verify.py`` judges: BIRD's protocols, the main routing
table, the underlay device, every local workload's addresses, routes and neighbours, and a ping
from every local workload to every target: one forked child per workload joins its namespace
and pings all targets at once with one raw ICMP socket (no process per pair: on a small or
emulated host, process creation is what costs).

Plain Python: commands run through a ``run`` callable ``(argv, stdin) -> (rc, stdout, stderr)``, an
``iproute.Runner`` (:func:`run_command` by default); unit tests pass a fake one.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import socket
import struct
import subprocess
import time
from collections.abc import Iterable

from ansible_collections.l3.calico.plugins.module_utils import iproute, naming
from ansible_collections.l3.calico.plugins.module_utils import workloads as dataplane


def run_command(argv: list, stdin: str = "") -> iproute.Result:
    """Default runner: one process, text in and out."""
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False, env={"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    return iproute.Result(proc.returncode, proc.stdout, proc.stderr)


def parse_json_stream(text: str) -> list:
    """``ip -json -batch`` prints one JSON document per command, back to back."""
    decoder = json.JSONDecoder()
    docs, pos = [], 0
    text = text.strip()
    while pos < len(text):
        doc, end = decoder.raw_decode(text, pos)
        docs.append(doc)
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return docs


def parse_bird_protocols(text: str) -> list:
    """BGP protocols of ``birdc show protocols all``: name, state, BGP state, neighbour address."""
    protocols, current = [], None
    for line in text.splitlines():
        if not line.strip() or line.startswith(("BIRD ", "Name ")):
            continue
        if not line[0].isspace():
            fields = line.split()
            current = None
            if len(fields) >= 4 and fields[1] == "BGP":
                current = {"name": fields[0], "state": fields[3], "bgp_state": "", "neighbor": "", "info": " ".join(fields[5:])}
                protocols.append(current)
            continue
        if current is None:
            continue
        key, _sep, value = line.strip().partition(":")
        if key == "BGP state":
            current["bgp_state"] = value.strip()
        elif key == "Neighbor address":
            current["neighbor"] = value.strip().split("%")[0]
    return protocols


def simplify_route(route: dict) -> dict:
    """The fields verify compares, with ``ip -json`` defaults made explicit."""
    return {
        "dst": route.get("dst", ""),
        "type": route.get("type", "unicast"),
        "gateway": route.get("gateway", ""),
        "dev": route.get("dev", ""),
        "protocol": str(route.get("protocol", "")),
        "scope": route.get("scope", ""),
        "onlink": "onlink" in route.get("flags", []),
    }


def underlay_device(addrs: list, node_ip: str) -> str:
    """The interface holding the node's underlay address ('' if none)."""
    for link in addrs:
        for info in link.get("addr_info", []):
            if info.get("family") == "inet" and info.get("local") == node_ip:
                return link.get("ifname", "")
    return ""


def workload_view(docs: list) -> dict:
    """A workload namespace from ``ip -json -batch`` output of addr, route, neigh."""
    addrs, routes, neighbours = (docs + [[], [], []])[:3]
    return {
        "addresses": sorted(
            f"{i['local']}/{i['prefixlen']}" for link in addrs if link.get("ifname") != "lo" for i in link.get("addr_info", []) if i.get("family") == "inet"
        ),
        "interfaces": sorted(link.get("ifname", "") for link in addrs if link.get("ifname") != "lo"),
        "routes": [simplify_route(r) for r in routes],
        "neighbours": [
            {"dst": n.get("dst", ""), "lladdr": n.get("lladdr", ""), "dev": n.get("dev", ""), "state": (n.get("state") or [""])[0]} for n in neighbours
        ],
    }


CLONE_NEWNET = 0x40000000


def read_ip_forward(netns: str):
    """``net.ipv4.ip_forward`` of namespace ``netns``, or None (unreadable)."""
    try:
        return dataplane.netns_sysctl(netns, dataplane.IP_FORWARD)
    except OSError:
        return None


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int) -> bytes:
    payload = struct.pack("!d", time.monotonic()) + b"l3.calico probe!"
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload


def ping_all(targets: list, count: int, timeout: float) -> dict:
    """Ping every address from the current network namespace with one raw ICMP socket.

    Sends ``count`` rounds of echo requests to every target, 0.2 s apart, waits up to ``timeout``
    after the last round, and returns {address: the lowest RTT in ms, or None without a reply}
    (the lowest: the first round also pays for neighbour resolution).
    """
    ident = os.getpid() & 0xFFFF
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    rtts: dict = {t: [] for t in targets}
    sent: dict = {}
    start = time.monotonic()
    deadline = start + timeout + 0.2 * (count - 1)
    next_round, seq = start, 0
    try:
        while time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_round and seq < count:
                for n, target in enumerate(targets):
                    wire_seq = seq * 4096 + n
                    sent[wire_seq] = (target, time.monotonic())
                    try:
                        sock.sendto(echo_request(ident, wire_seq), (target, 0))
                    except OSError:
                        pass  # no route: stays unanswered
                seq += 1
                next_round = now + 0.2
            if seq >= count and all(len(v) >= count for v in rtts.values()):
                break
            wait = max(0.0, min(deadline, next_round if seq < count else deadline) - time.monotonic())
            ready, _writable, _errored = select.select([sock], [], [], wait)
            if not ready:
                continue
            packet, (src, _port) = sock.recvfrom(2048)
            ihl = (packet[0] & 0x0F) * 4
            if len(packet) < ihl + 8:
                continue
            kind, _code, _checksum, rid, rseq = struct.unpack("!BBHHH", packet[ihl : ihl + 8])
            if kind == 0 and rid == ident and rseq in sent and sent[rseq][0] == src:
                rtts[src].append((time.monotonic() - sent[rseq][1]) * 1000.0)
    finally:
        sock.close()
    return {t: (round(min(v), 3) if v else None) for t, v in rtts.items()}


def in_netns(netns_path: str, func, *args):
    """Run func(*args) in a forked child that joined the network namespace; return its JSON result."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        status = 0
        try:
            os.close(rfd)
            fd = os.open(netns_path, os.O_RDONLY)
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {netns_path}")
            out = json.dumps({"result": func(*args)})
        except Exception as exc:  # report anything to the parent, never return into the module
            out, status = json.dumps({"error": f"{type(exc).__name__}: {exc}"}), 1
        with os.fdopen(wfd, "w") as pipe:
            pipe.write(out)
        os._exit(status)
    os.close(wfd)
    return pid, rfd


def collect(pid: int, rfd: int) -> dict:
    with os.fdopen(rfd) as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    try:
        return json.loads(data)
    except ValueError:
        return {"error": "no answer from the child process"}


def ping_matrix(
    sources: Iterable[dict], targets: list, count: int, timeout: int, start=in_netns, finish=collect, netns_prefix: str = naming.NETNS_PREFIX
) -> dict:
    """Ping every target from every source at once, one child process per source namespace.

    Returns {src id: {dst id: {ok, rtt_ms}}} (plus ``error`` in a cell when the namespace could
    not be entered).
    """
    running = []
    for src in sources:
        others = [t for t in targets if t["id"] != src["id"]]
        addrs = sorted({t["ip"] for t in others})
        running.append((src, others, start(f"/run/netns/{naming.netns_name(src['id'], netns_prefix)}", ping_all, addrs, count, timeout)))
    matrix: dict = {}
    for src, others, child in running:
        answer = finish(*child)
        rtts = answer.get("result") or {}
        for dst in others:
            rtt = rtts.get(dst["ip"])
            cell = {"ok": rtt is not None, "rtt_ms": rtt}
            if "error" in answer:
                cell["error"] = answer["error"]
            matrix.setdefault(src["id"], {})[dst["id"]] = cell
    return matrix


def read_bgp(bird_socket: str, run: iproute.Runner) -> tuple:
    rc, out, err = run(["birdc", "-s", bird_socket, "show", "protocols", "all"], "")
    return (parse_bird_protocols(out), "") if rc == 0 else ([], (err or out).strip())


def wait_bgp(bird_socket: str, neighbors: list, timeout: float, run: iproute.Runner, sleep=time.sleep, clock=time.monotonic) -> tuple:
    """BIRD's protocols once every neighbour is Established, or as they are at the timeout."""
    deadline = clock() + timeout
    while True:
        protocols, error = read_bgp(bird_socket, run)
        states = {p["neighbor"]: p["bgp_state"] for p in protocols}
        if all(states.get(n) == "Established" for n in neighbors) or clock() >= deadline:
            return protocols, error
        sleep(0.5)


def probe(
    node_ip: str,
    workloads: list,
    targets: list,
    bird_socket: str,
    ping: bool = True,
    ping_count: int = 2,
    ping_timeout: int = 2,
    bgp_neighbors: list | None = None,
    bgp_wait: float = 0,
    netns_prefix: str = naming.NETNS_PREFIX,
    veth_prefix: str = naming.VETH_PREFIX,
    run: iproute.Runner = run_command,
    allow_ip_forwarding: bool = False,
) -> dict:
    """Everything verify needs from one node."""
    result: dict = {"node_ip": node_ip, "veth_prefix": veth_prefix, "ip_forward_expected": "1" if allow_ip_forwarding else "0"}

    # First BGP: right after a converge the sessions may still be coming up (seconds).
    result["bgp_expected"] = list(bgp_neighbors or [])
    result["bgp"], result["bird_error"] = wait_bgp(bird_socket, result["bgp_expected"], bgp_wait, run)

    rc, out, err = run(["ip", "-json", "-batch", "-"], "address show\nroute show table main\n")
    docs = parse_json_stream(out) if rc == 0 else [[], []]
    result["underlay_device"] = underlay_device(docs[0], node_ip)
    result["routes"] = [simplify_route(r) for r in docs[1]]
    if rc != 0:
        result["routes_error"] = err.strip()

    result["pings"] = ping_matrix(workloads, targets, ping_count, ping_timeout, netns_prefix=netns_prefix) if ping else {}

    # Read the workloads after the pings, so the gateway neighbour is resolved.
    views = {}
    for wl in workloads:
        netns = naming.netns_name(wl["id"], netns_prefix)
        rc, out, err = run(["ip", "-n", netns, "-json", "-batch", "-"], "address show\nroute show table main\nneigh show\n")
        view = workload_view(parse_json_stream(out)) if rc == 0 else workload_view([])
        view.update(
            {
                "netns": netns,
                "exists": rc == 0,
                "error": "" if rc == 0 else err.strip(),
                "veth": naming.veth_name(wl["id"], veth_prefix),
                "ip_forward": read_ip_forward(netns),
            }
        )
        views[wl["id"]] = view
    result["workloads"] = views
    return result
