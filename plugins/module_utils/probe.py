# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Observe a node's Calico data plane, read-only, in a handful of processes.

What ``l3.calico.probe`` returns and ``verify.py`` judges: BIRD's protocols, the main routing
table, the underlay device, every local workload's addresses, routes and neighbours, and a ping
from every local workload to every target: one forked child per workload joins its namespace
and pings all targets at once with one raw ICMP socket (no process per pair: on a small or
emulated host, process creation is what costs).

Dual stack: each family has its own matrices (``pings``/``tcp`` IPv4, ``pings6``/``tcp6`` IPv6, a
workload's ``ip`` / ``ipv6``), routes (``routes`` / ``routes6``) and underlay device; the children of
both families run at once (one per source workload and family), so IPv6 adds no waiting.

Plain Python: commands run through a ``run`` callable ``(argv, stdin) -> (rc, stdout, stderr)``, an
``iproute.Runner`` (``iproute.subprocess_runner`` by default, ``module_runner`` in the module); unit tests pass a fake one.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
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
    """BGP protocols of ``birdc show protocols all``: name, state, BGP state, neighbour address, and the
    channels it carries (``ipv4``, ``ipv6``: one session may carry both families)."""
    protocols, current = [], None
    for line in text.splitlines():
        if not line.strip() or line.startswith(("BIRD ", "Name ")):
            continue
        if not line[0].isspace():
            fields = line.split()
            current = None
            if len(fields) >= 4 and fields[1] == "BGP":
                current = {"name": fields[0], "state": fields[3], "bgp_state": "", "neighbor": "", "info": " ".join(fields[5:]), "channels": []}
                protocols.append(current)
            continue
        if current is None:
            continue
        key, _sep, value = line.strip().partition(":")
        if key == "BGP state":
            current["bgp_state"] = value.strip()
        elif key == "Neighbor address":
            current["neighbor"] = value.strip().split("%")[0]
        elif key.startswith("Channel ") and not _sep:
            current["channels"].append(key.split()[1])
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


def same_address(a: str, b: str) -> bool:
    """Whether two spellings name one address (IPv6 has several: fd00:0::1, fd00::1)."""
    if a == b:
        return True
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def underlay_device(addrs: list, node_ip: str) -> str:
    """The interface holding the node's underlay address of either family ('' if none)."""
    family = "inet6" if ":" in node_ip else "inet"
    for link in addrs:
        for info in link.get("addr_info", []):
            if info.get("family") == family and same_address(info.get("local", ""), node_ip):
                return link.get("ifname", "")
    return ""


def workload_view(docs: list, routes6: list | None = None) -> dict:
    """A workload namespace from ``ip -json -batch`` output of addr, route, neigh; given its IPv6 routes
    (``ip -6 -json route show``), also ``addresses6`` (global IPv6 addresses, no link-local) and ``routes6``."""
    addrs, routes, neighbours = (docs + [[], [], []])[:3]
    extra = {}
    if routes6 is not None:
        extra = {
            "addresses6": sorted(
                f"{i['local']}/{i['prefixlen']}"
                for link in addrs
                if link.get("ifname") != "lo"
                for i in link.get("addr_info", [])
                if i.get("family") == "inet6" and i.get("scope") != "link"
            ),
            "routes6": [simplify_route(r) for r in routes6],
        }
    return {
        **extra,
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


def read_ip_forward(netns: str, key: str = dataplane.IP_FORWARD):
    """``net.ipv4.ip_forward`` (or ``key``: ``dataplane.IP6_FORWARD``) of namespace ``netns``, or None (unreadable)."""
    try:
        return dataplane.netns_sysctl(netns, key)
    except OSError:
        return None


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


ECHO_REQUEST, ECHO_REPLY = 8, 0
ECHO_REQUEST6, ECHO_REPLY6 = 128, 129  # ICMPv6 (RFC 4443)


def echo_request(ident: int, seq: int, kind: int = ECHO_REQUEST) -> bytes:
    """An ICMP echo request (``kind`` ECHO_REQUEST6: ICMPv6, whose checksum the kernel fills in on a
    raw IPPROTO_ICMPV6 socket - it covers a pseudo-header only the kernel knows the source of)."""
    payload = struct.pack("!d", time.monotonic()) + b"l3.calico probe!"
    if kind == ECHO_REQUEST6:
        return struct.pack("!BBHHH", kind, 0, 0, ident, seq) + payload
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    return struct.pack("!BBHHH", kind, 0, checksum(header + payload), ident, seq) + payload


def ping_all(targets: list, count: int, timeout: float) -> dict:
    """Ping every address from the current network namespace with one raw ICMP socket per family
    (IPv4 addresses over ICMP, IPv6 ones over ICMPv6).

    Sends ``count`` rounds of echo requests to every target, 0.2 s apart, waits up to ``timeout``
    after the last round, and returns {address: the lowest RTT in ms, or None without a reply}
    (the lowest: the first round also pays for neighbour resolution).
    """
    ident = os.getpid() & 0xFFFF
    socks: dict = {}  # socket -> (echo request kind, echo reply kind, IPv4 header in what it reads)
    by_family: dict = {}
    try:
        for family, proto, kinds in (
            (socket.AF_INET, socket.IPPROTO_ICMP, (ECHO_REQUEST, ECHO_REPLY, True)),
            (socket.AF_INET6, socket.IPPROTO_ICMPV6, (ECHO_REQUEST6, ECHO_REPLY6, False)),
        ):
            if any((":" in t) == (family == socket.AF_INET6) for t in targets):
                sock = socket.socket(family, socket.SOCK_RAW, proto)
                socks[sock] = kinds
                by_family[family] = sock
        return _ping_rounds(targets, count, timeout, ident, socks, by_family)
    finally:
        for sock in socks:
            sock.close()


def _ping_rounds(targets: list, count: int, timeout: float, ident: int, socks: dict, by_family: dict) -> dict:
    rtts: dict = {t: [] for t in targets}
    sent: dict = {}
    start = time.monotonic()
    deadline = start + timeout + 0.2 * (count - 1)
    next_round, seq = start, 0
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_round and seq < count:
            for n, target in enumerate(targets):
                wire_seq = seq * 4096 + n
                sent[wire_seq] = (target, time.monotonic())
                sock = by_family[socket.AF_INET6 if ":" in target else socket.AF_INET]
                try:
                    sock.sendto(echo_request(ident, wire_seq, socks[sock][0]), (target, 0))
                except OSError:
                    pass  # no route: stays unanswered
            seq += 1
            next_round = now + 0.2
        if seq >= count and all(len(v) >= count for v in rtts.values()):
            break
        wait = max(0.0, min(deadline, next_round if seq < count else deadline) - time.monotonic())
        ready, _writable, _errored = select.select(list(socks), [], [], wait)
        for sock in ready:
            _read_reply(sock, socks[sock], ident, sent, rtts)
    # What arrived before the deadline but was not read yet counts: a process given no CPU for a while
    # (a loaded guest) wakes after its deadline with the replies queued on its sockets.
    for _packet in range(4 * len(sent) + 16):  # bounded: the raw sockets also see the others' ICMP
        ready, _writable, _errored = select.select(list(socks), [], [], 0)
        if not ready:
            break
        for sock in ready:
            _read_reply(sock, socks[sock], ident, sent, rtts)
    return {t: (round(min(v), 3) if v else None) for t, v in rtts.items()}


def _read_reply(sock, kinds: tuple, ident: int, sent: dict, rtts: dict) -> None:
    """Read one ICMP packet; an echo reply of ours (identifier, sequence, source) adds its RTT."""
    packet, address = sock.recvfrom(2048)
    _request, reply, has_header = kinds
    ihl = (packet[0] & 0x0F) * 4 if has_header else 0
    if len(packet) < ihl + 8:
        return
    kind, _code, _checksum, rid, rseq = struct.unpack("!BBHHH", packet[ihl : ihl + 8])
    if kind == reply and rid == ident and rseq in sent and same_address(sent[rseq][0], address[0]):
        rtts[sent[rseq][0]].append((time.monotonic() - sent[rseq][1]) * 1000.0)


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


def family_address(item: dict, version: int = 4):
    """A workload's address of the family ``version`` (its ``ip`` or ``ipv6``; None: it has none)."""
    return item.get("ipv6") if version == 6 else item.get("ip")


def start_rows(sources: Iterable[dict], targets: list, version: int, func, args: tuple, start=in_netns, netns_prefix: str = naming.NETNS_PREFIX) -> list:
    """Start ``func(addresses, *args)`` in every source workload holding an address of the family
    ``version``, towards every other target holding one: [(source, targets, child)], not waited for."""
    running = []
    for src in sources:
        if family_address(src, version) is None:
            continue
        others = [t for t in targets if t["id"] != src["id"] and family_address(t, version) is not None]
        addrs = sorted({family_address(t, version) for t in others})
        running.append((src, others, start(f"/run/netns/{naming.netns_name(src['id'], netns_prefix)}", func, addrs, *args)))
    return running


def ping_rows(running: list, version: int, finish=collect) -> dict:
    """The ping matrix of children :func:`start_rows` started with :func:`ping_all`."""
    matrix: dict = {}
    for src, others, child in running:
        answer = finish(*child)
        rtts = answer.get("result") or {}
        for dst in others:
            rtt = rtts.get(family_address(dst, version))
            cell = {"ok": rtt is not None, "rtt_ms": rtt}
            if "error" in answer:
                cell["error"] = answer["error"]
            matrix.setdefault(src["id"], {})[dst["id"]] = cell
    return matrix


def ping_matrix(
    sources: Iterable[dict],
    targets: list,
    count: int,
    timeout: int,
    start=in_netns,
    finish=collect,
    netns_prefix: str = naming.NETNS_PREFIX,
    version: int = 4,
) -> dict:
    """Ping every target from every source at once, one child process per source namespace, over the
    family ``version`` (workloads without an address of it are left out, as sources and as targets).

    Returns {src id: {dst id: {ok, rtt_ms}}} (plus ``error`` in a cell when the namespace could
    not be entered).
    """
    return ping_rows(start_rows(sources, targets, version, ping_all, (count, timeout), start, netns_prefix), version, finish)


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


def _listen_in(netns_names: list, port: int, netns_dir: str, netns6: Iterable[str] = ()) -> tuple[list, dict]:
    socks, errors = [], {}
    netns6 = set(netns6)
    for netns in sorted(set(netns_names) | netns6):
        families = ((socket.AF_INET, "0.0.0.0"),) if netns in netns_names else ()
        if netns in netns6:
            families += ((socket.AF_INET6, "::"),)
        try:
            for family, anywhere in families:
                with rtnl.entered(netns, netns_dir):
                    sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:  # its own socket beside the IPv4 one
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((anywhere, port))
                sock.listen(1024)
                socks.append(sock)
        except OSError as exc:
            errors[netns] = str(exc)
    return socks, errors


def start_listener(
    netns_names: list,
    port: int,
    lifetime: int,
    record_file: str = LISTENER_RECORD,
    netns_dir: str = "/run/netns",
    check_mode: bool = False,
    netns6: Iterable[str] = (),
) -> dict:
    """Listen on TCP ``port`` in every namespace named (IPv4), and over IPv6 in every one of ``netns6``,
    from a detached process of its own; returns ``changed``, ``pid`` and ``errors`` (namespace -> why it
    could not listen there). A listener this module started that still runs with the same port and
    namespaces is kept (changed false)."""
    wanted = {"port": port, "netns": sorted(netns_names), "netns6": sorted(netns6)}
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
            socks, errors = _listen_in(wanted["netns"], port, netns_dir, wanted["netns6"])
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
            sock = socket.socket(socket.AF_INET6 if ":" in target else socket.AF_INET, socket.SOCK_STREAM)
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


def tcp_rows(running: list, version: int, finish=collect) -> dict:
    """The TCP matrix of children :func:`start_rows` started with :func:`connect_all`."""
    matrix: dict = {}
    for src, others, child in running:
        answer = finish(*child)
        outcomes = answer.get("result") or {}
        for dst in others:
            outcome = outcomes.get(family_address(dst, version), answer.get("error", "not tried"))
            matrix.setdefault(src["id"], {})[dst["id"]] = {"ok": outcome == TCP_OPEN, "outcome": outcome}
    return matrix


def tcp_matrix(
    sources: Iterable[dict],
    targets: list,
    port: int,
    timeout: float,
    start=in_netns,
    finish=collect,
    netns_prefix: str = naming.NETNS_PREFIX,
    version: int = 4,
) -> dict:
    """A TCP connect from every source to every other target at once, one child per source namespace,
    over the family ``version``: {src id: {dst id: {ok, outcome}}} (``ok``: the handshake completed)."""
    return tcp_rows(start_rows(sources, targets, version, connect_all, (port, timeout), start, netns_prefix), version, finish)


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
    node_ip6: str | None = None,
    bgp_neighbors6: list | None = None,
) -> dict:
    """Everything verify needs from one node. With ``node_ip6`` (the node's IPv6 underlay address: dual
    stack) also the IPv6 side: ``underlay_device6``, ``routes6``, ``pings6`` / ``tcp6`` between the
    workloads' ``ipv6`` addresses, each workload's ``addresses6``, ``routes6``, ``ip6_forward``, and
    the sessions with ``bgp_neighbors6`` (IPv6 neighbour addresses) waited for with the IPv4 ones."""
    six = node_ip6 is not None
    result: dict = {"node_ip": node_ip, "veth_prefix": veth_prefix, "ip_forward_expected": "1" if allow_ip_forwarding else "0"}

    # First BGP: right after a converge the sessions may still be coming up (seconds).
    result["bgp_expected"] = list(bgp_neighbors or [])
    if six:
        result.update({"node_ip6": node_ip6, "bgp_expected6": list(bgp_neighbors6 or [])})
    result["bgp"], result["bird_error"] = wait_bgp(bird_socket, result["bgp_expected"] + result.get("bgp_expected6", []), bgp_wait, run)

    rc, out, err = run(["ip", "-json", "-batch", "-"], "address show\nroute show table main\n")
    docs = parse_json_stream(out) if rc == 0 else [[], []]
    result["underlay_device"] = underlay_device(docs[0], node_ip)
    result["routes"] = [simplify_route(r) for r in docs[1]]
    if rc != 0:
        result["routes_error"] = err.strip()
    if six:
        result["underlay_device6"] = underlay_device(docs[0], node_ip6)
        rc6, out6, err6 = run(["ip", "-6", "-json", "route", "show", "table", "main"], "")
        result["routes6"] = [simplify_route(r) for r in (parse_json_stream(out6) or [[]])[0]] if rc6 == 0 else []
        if rc6 != 0:
            result["routes6_error"] = err6.strip()

    # Each family's children at once - one per source workload - first the pings, then the TCP
    # connections. (All of them at once, tried, lost whole rows of pings in CI on one-CPU UML guests:
    # the forks most likely starved the first children past their deadlines.)
    versions = (4, 6) if six else (4,)
    pinging = {v: start_rows(workloads, targets, v, ping_all, (ping_count, ping_timeout), netns_prefix=netns_prefix) for v in versions} if ping else {}
    pings = {v: ping_rows(pinging[v], v) if ping else {} for v in versions}
    connecting = {v: start_rows(workloads, targets, v, connect_all, (tcp_port, tcp_timeout), netns_prefix=netns_prefix) for v in versions} if tcp_port else {}
    result["pings"] = pings[4]
    if six:
        result["pings6"] = pings[6]
    if tcp_port:
        result["tcp_port"] = tcp_port
        result["tcp"] = tcp_rows(connecting[4], 4)
        if six:
            result["tcp6"] = tcp_rows(connecting[6], 6)

    # Read the workloads after the pings, so the gateway neighbour is resolved.
    views = {}
    for wl in workloads:
        netns = naming.netns_name(wl["id"], netns_prefix)
        rc, out, err = run(["ip", "-n", netns, "-json", "-batch", "-"], "address show\nroute show table main\nneigh show\n")
        routes6 = None
        if six and wl.get("ipv6") is not None and rc == 0:
            rc6, out6, _err6 = run(["ip", "-n", netns, "-6", "-json", "route", "show", "table", "main"], "")
            routes6 = (parse_json_stream(out6) or [[]])[0] if rc6 == 0 else []
        view = workload_view(parse_json_stream(out), routes6) if rc == 0 else workload_view([])
        view.update(
            {
                "netns": netns,
                "exists": rc == 0,
                "error": "" if rc == 0 else err.strip(),
                "veth": naming.veth_name(wl["id"], veth_prefix),
                "ip_forward": read_ip_forward(netns),
            }
        )
        if routes6 is not None:
            view["ip6_forward"] = read_ip_forward(netns, dataplane.IP6_FORWARD)
        views[wl["id"]] = view
    result["workloads"] = views
    return result
