# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Read a network namespace's links, IPv4 addresses and main-table IPv4 routes in-process.

``ip -n NS -json`` costs a process per namespace (several ms each, far more on a loaded host);
a no-op run over hundreds of workload namespaces would spend its time starting ``ip``. Here the
calling thread enters the namespace (setns), opens an rtnetlink socket there (a socket stays in
the namespace it was created in), returns, and dumps links, addresses and routes — the same
kernel answers ``ip -json addr show`` / ``ip -json route show`` print, returned in the same
shape (only the fields the planners read). Writes still go through ``ip -batch``; ``entered``
lets a thread start that ``ip -batch`` directly inside a namespace, which is cheaper than
``ip -n NS`` (that also sets up a private mount namespace for every call).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import struct
from typing import Dict, List, Tuple

CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU = 1, 3, 4
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
IFF_UP, IFF_LOOPBACK = 0x1, 0x8
RTNH_F_ONLINK = 0x4
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
SCOPES = {0: None, 200: "site", 253: "link", 254: "host", 255: "nowhere"}

NLMSGHDR = struct.Struct("=IHHII")
IFINFOMSG = struct.Struct("=BxHiII")
IFADDRMSG = struct.Struct("=BBBBI")
RTMSG = struct.Struct("=BBBBBBBBI")
RTATTR = struct.Struct("=HH")

_libc = None


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):  # Python >= 3.12
        os.setns(fd, CLONE_NEWNET)
        return
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def entered(netns: str, netns_dir: str = "/run/netns"):
    """Run the body with THIS thread in namespace ``netns`` (processes it starts are there too)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(os.path.join(netns_dir, netns), os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            try:
                _setns(own)
            except OSError as exc:  # not an OSError: callers fall back on those, this must stop
                raise RuntimeError(f"could not return to the original network namespace: {exc}") from exc
    finally:
        os.close(own)


def open_socket(netns: str, netns_dir: str = "/run/netns") -> socket.socket:
    """An rtnetlink socket living in namespace ``netns`` (this thread returns to its own)."""
    with entered(netns, netns_dir):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
    sock.bind((0, 0))
    return sock


def _attrs(data: bytes, offset: int) -> Dict[int, bytes]:
    out = {}
    while offset + RTATTR.size <= len(data):
        length, kind = RTATTR.unpack_from(data, offset)
        if length < RTATTR.size:
            break
        out[kind & 0x3FFF] = data[offset + RTATTR.size:offset + length]
        offset += (length + 3) & ~3
    return out


def _dump(sock: socket.socket, msg_type: int, body: bytes, seq: int) -> List[Tuple[int, bytes]]:
    header = NLMSGHDR.pack(NLMSGHDR.size + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
    sock.send(header + body)
    messages = []
    while True:
        data = sock.recv(1 << 16)
        offset = 0
        while offset + NLMSGHDR.size <= len(data):
            length, kind, _flags, msg_seq, _pid = NLMSGHDR.unpack_from(data, offset)
            if length < NLMSGHDR.size:
                raise OSError("rtnetlink: malformed message")
            payload = data[offset + NLMSGHDR.size:offset + length]
            offset += (length + 3) & ~3
            if msg_seq != seq:
                continue
            if kind == NLMSG_DONE:
                return messages
            if kind == NLMSG_ERROR:
                errno = -struct.unpack_from("=i", payload)[0]
                if errno:
                    raise OSError(errno, f"rtnetlink dump: {os.strerror(errno)}")
                continue
            messages.append((kind, payload))


def read(sock: socket.socket) -> Tuple[Dict[str, dict], List[dict]]:
    """(links by name with IPv4 ``addr_info``, main-table IPv4 routes) as ``ip -json`` shows them."""
    links: Dict[str, dict] = {}
    by_index: Dict[int, dict] = {}
    for kind, payload in _dump(sock, RTM_GETLINK, IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0), 1):
        if kind != RTM_NEWLINK:
            continue
        _family, _type, index, flags, _change = IFINFOMSG.unpack_from(payload)
        attrs = _attrs(payload, IFINFOMSG.size)
        name = attrs.get(IFLA_IFNAME, b"").split(b"\0", 1)[0].decode()
        link = {
            "ifindex": index,
            "ifname": name,
            "flags": [f for bit, f in ((IFF_LOOPBACK, "LOOPBACK"), (IFF_UP, "UP")) if flags & bit],
            "mtu": struct.unpack("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else None,
            "address": ":".join(f"{b:02x}" for b in attrs.get(IFLA_ADDRESS, b"")),
            "addr_info": [],
        }
        links[name] = by_index[index] = link
    for kind, payload in _dump(sock, RTM_GETADDR, IFADDRMSG.pack(socket.AF_INET, 0, 0, 0, 0), 2):
        family, prefixlen, _flags, _scope, index = IFADDRMSG.unpack_from(payload)
        if kind != RTM_NEWADDR or family != socket.AF_INET or index not in by_index:
            continue
        attrs = _attrs(payload, IFADDRMSG.size)
        local = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
        if local:
            by_index[index]["addr_info"].append(
                {"family": "inet", "local": socket.inet_ntoa(local), "prefixlen": prefixlen}
            )
    routes = []
    for kind, payload in _dump(sock, RTM_GETROUTE, RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0), 3):
        family, dst_len, _src, _tos, table, protocol, scope, rtype, flags = RTMSG.unpack_from(payload)
        attrs = _attrs(payload, RTMSG.size)
        if table == 252 and RTA_TABLE in attrs:  # RT_TABLE_COMPAT: the real id is in RTA_TABLE
            table = struct.unpack("=I", attrs[RTA_TABLE])[0]
        if kind != RTM_NEWROUTE or family != socket.AF_INET or table != RT_TABLE_MAIN or rtype != RTN_UNICAST:
            continue
        dst = socket.inet_ntoa(attrs[RTA_DST]) if RTA_DST in attrs else "0.0.0.0"
        route = {"dst": "default" if dst_len == 0 else (dst if dst_len == 32 else f"{dst}/{dst_len}")}
        if RTA_GATEWAY in attrs:
            route["gateway"] = socket.inet_ntoa(attrs[RTA_GATEWAY])
        if RTA_OIF in attrs:
            oif = struct.unpack("=i", attrs[RTA_OIF])[0]
            route["dev"] = by_index.get(oif, {}).get("ifname", f"if{oif}")
        if SCOPES.get(scope):
            route["scope"] = SCOPES[scope]
        route["flags"] = ["onlink"] if flags & RTNH_F_ONLINK else []
        route["protocol"] = protocol
        routes.append(route)
    return links, routes


def read_netns(netns: str, netns_dir: str = "/run/netns") -> Tuple[Dict[str, dict], List[dict]]:
    sock = open_socket(netns, netns_dir)
    try:
        return read(sock)
    finally:
        sock.close()
