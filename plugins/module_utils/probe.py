# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Observe a node's Calico data plane, read-only, in a handful of processes.

What ``l3.calico.probe`` returns and ``verify.py`` judges: BIRD's protocols, the main routing
table, the underlay device, every local workload's addresses, routes and neighbours, and a ping
from every local workload to every target: one forked child per workload joins its namespace
and pings all targets at once with one raw ICMP socket (no process per pair: on a small or
emulated host, process creation is what costs).

Plain Python: commands run through a ``run`` callable ``(argv, stdin) -> (rc, stdout, stderr)``, an
``iproute.Runner`` (``iproute.subprocess_runner`` by default, ``module_runner`` in the module); unit tests pass a fake one.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import select
import signal
import socket
import struct
import time
from collections.abc import Iterable
from typing import Optional

from ansible_collections.l3.calico.plugins.module_utils import iproute, naming, rtnl
from ansible_collections.l3.calico.plugins.module_utils import workloads as dataplane
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.fileutil import atomic_write


class ProbeError(L3CalicoError, RuntimeError):
    """The probe could not do what it was asked (a listener record unreadable, a listener not started)."""


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


# --------------------------------------------------------------------------- TCP reachability
# A listener in every local workload (one process holding a listening socket per workload
# namespace: a socket stays in the namespace it was created in, and the kernel completes the
# handshake of a listening socket without an accept), then a connect from every local workload to
# every target at once. Started on every node before any node connects (the verify role's task
# order), stopped afterwards by its recorded PID and start time; it also ends by itself after
# ``lifetime`` seconds, should the stop never come.

LISTENER_RECORD = "/run/l3-calico/probe-listener.json"
TCP_OPEN, TCP_REFUSED, TCP_TIMEOUT, TCP_UNREACHABLE = "open", "refused", "timeout", "unreachable"


def _start_time(pid: int) -> Optional[str]:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22): with the PID,
    what identifies one process (a PID is reused, the pair is not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _read_record(record_file: str) -> Optional[dict]:
    try:
        with open(record_file, encoding="utf-8") as fh:
            record = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ProbeError(f"{record_file}: unreadable listener record ({exc})") from None
    if not (isinstance(record, dict) and isinstance(record.get("pid"), int) and isinstance(record.get("start"), str)):
        raise ProbeError(f"{record_file}: not a listener record: {record!r}")
    return record


def listener_running(record_file: str = LISTENER_RECORD) -> Optional[dict]:
    """The record of the listener this module started, when that very process still runs."""
    record = _read_record(record_file)
    if record is None or _start_time(record["pid"]) != record["start"]:
        return None
    return record


def _listen_in(netns_names: list, port: int, netns_dir: str) -> tuple[list, dict]:
    socks, errors = [], {}
    for netns in netns_names:
        try:
            with rtnl.entered(netns, netns_dir):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("0.0.0.0", port))
            sock.listen(1024)
            socks.append(sock)
        except OSError as exc:
            errors[netns] = str(exc)
    return socks, errors


def start_listener(
    netns_names: list, port: int, lifetime: int, record_file: str = LISTENER_RECORD, netns_dir: str = "/run/netns", check_mode: bool = False
) -> dict:
    """Listen on TCP ``port`` in every namespace named, from a detached process of its own; returns
    ``changed``, ``pid`` and ``errors`` (namespace -> why it could not listen there). A listener this
    module started that still runs with the same port and namespaces is kept (changed false)."""
    wanted = {"port": port, "netns": sorted(netns_names)}
    running = listener_running(record_file)
    if running is not None and {k: running.get(k) for k in wanted} == wanted:
        return {"changed": False, "pid": running["pid"], "errors": running.get("errors", {})}
    if check_mode:
        return {"changed": True, "pid": None, "errors": {}}
    if running is not None:
        stop_listener(record_file)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the first child: a session of its own, then the listener as its child
        try:
            os.close(rfd)
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            socks, errors = _listen_in(wanted["netns"], port, netns_dir)
            me = os.getpid()
            record = dict(wanted, pid=me, start=_start_time(me), errors=errors, until=time.time() + lifetime)
            atomic_write(record_file, json.dumps(record, sort_keys=True) + "\n", mode=0o644, make_parents=True)
            os.write(wfd, json.dumps(record).encode())
            os.close(wfd)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            signal.signal(signal.SIGTERM, lambda *_args: os._exit(0))
            time.sleep(lifetime)
            del socks
        except BaseException:  # never return into the module's code from a child
            pass
        os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    if not answer:
        raise ProbeError(f"the TCP listener did not start (record {record_file})")
    record = json.loads(answer)
    return {"changed": True, "pid": record["pid"], "errors": record["errors"]}


def stop_listener(record_file: str = LISTENER_RECORD, check_mode: bool = False) -> dict:
    """Stop the listener this module started (by its recorded PID, only when that process has the
    recorded start time) and remove its record; ``changed`` false when there is none."""
    record = _read_record(record_file)
    if record is None:
        return {"changed": False, "pid": None}
    if check_mode:
        return {"changed": True, "pid": record["pid"]}
    if _start_time(record["pid"]) == record["start"]:
        try:
            os.kill(record["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
    with contextlib.suppress(FileNotFoundError):  # removed meanwhile by another stop
        os.unlink(record_file)
    return {"changed": True, "pid": record["pid"]}


def connect_all(targets: list, port: int, timeout: float) -> dict:
    """Open a TCP connection to ``port`` of every address at once from the current namespace;
    {address: open | refused | unreachable | timeout}. A dropped SYN is retransmitted by the kernel
    (after 1 s, then 3 s) until ``timeout``."""
    pending, result = {}, {}
    poller = select.poll()
    try:
        for target in targets:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            err = sock.connect_ex((target, port))
            if err in (0, errno.EINPROGRESS):
                pending[sock.fileno()] = (sock, target)
                poller.register(sock, select.POLLOUT)
            else:
                result[target] = _tcp_outcome(err)
                sock.close()
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for fd, _event in poller.poll(left * 1000):
                sock, target = pending.pop(fd)
                poller.unregister(fd)
                result[target] = _tcp_outcome(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
                sock.close()
    finally:
        for sock, target in pending.values():
            result[target] = TCP_TIMEOUT
            sock.close()
    return result


def _tcp_outcome(err: int) -> str:
    if err == 0:
        return TCP_OPEN
    if err == errno.ECONNREFUSED:
        return TCP_REFUSED
    if err in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return TCP_UNREACHABLE
    return f"error {errno.errorcode.get(err, err)}"


def tcp_matrix(
    sources: Iterable[dict], targets: list, port: int, timeout: float, start=in_netns, finish=collect, netns_prefix: str = naming.NETNS_PREFIX
) -> dict:
    """A TCP connect from every source to every other target at once, one child per source namespace:
    {src id: {dst id: {ok, outcome}}} (``ok``: the handshake completed)."""
    running = []
    for src in sources:
        others = [t for t in targets if t["id"] != src["id"]]
        addrs = sorted({t["ip"] for t in others})
        running.append((src, others, start(f"/run/netns/{naming.netns_name(src['id'], netns_prefix)}", connect_all, addrs, port, timeout)))
    matrix: dict = {}
    for src, others, child in running:
        answer = finish(*child)
        outcomes = answer.get("result") or {}
        for dst in others:
            outcome = outcomes.get(dst["ip"], answer.get("error", "not tried"))
            matrix.setdefault(src["id"], {})[dst["id"]] = {"ok": outcome == TCP_OPEN, "outcome": outcome}
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
    tcp_port: int = 0,
    tcp_timeout: float = 3,
    bgp_neighbors: list | None = None,
    bgp_wait: float = 0,
    netns_prefix: str = naming.NETNS_PREFIX,
    veth_prefix: str = naming.VETH_PREFIX,
    run: iproute.Runner = iproute.subprocess_runner,
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
    if tcp_port:
        result["tcp_port"] = tcp_port
        result["tcp"] = tcp_matrix(workloads, targets, tcp_port, tcp_timeout, netns_prefix=netns_prefix)

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
