# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""rtnetlink inside a network namespace, in-process: read links/addresses/routes, apply changes.

``ip -n NS ...`` costs a process per namespace (several ms each, far more on a loaded host), and
iproute2 cannot switch namespace inside one ``ip -batch``: converging hundreds of workload
namespaces would spend its time starting ``ip``. Here the calling thread enters the namespace
(setns), opens an rtnetlink socket there (a socket stays in the namespace it was created in),
returns to its own, and talks to the kernel through that socket:

- ``read``: dumps links, IPv4 addresses and main-table IPv4 routes (with ``ipv6``: the IPv6 ones
  too) — the kernel answers ``ip -json addr show`` / ``ip -json route show`` print, returned in
  the same shape (only the fields the planners read);
- ``apply``: the few changes a workload namespace needs (``LinkSet``, ``AddrAdd``/``AddrDel``,
  ``RouteReplace``/``RouteDel``, either family: the address says which), each encoded as the very
  message ``ip`` sends for the equivalent batch line
  (same flags, protocol and scope, so the result reads back identical), all of one namespace
  sent in ONE ``send`` and every acknowledgement checked; a refusal is a ``NetlinkError`` naming
  the change, the errno and the kernel's own explanation (extended ACK).

``entered`` lets a thread run code (or start a process) inside a namespace.
Standard library only (socket, struct, ctypes): nothing to install on the hosts.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as errno_names
import os
import socket
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Optional, Union

from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError

CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200  # flags of an NLMSG_ERROR answer
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLMSGERR_ATTR_MSG = 1
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU = 1, 3, 4
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
IFF_UP, IFF_LOOPBACK = 0x1, 0x8
RTNH_F_ONLINK = 0x4
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RTPROT_BOOT = 3  # what `ip route add/replace` sets when no protocol is given
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 0, 253, 255
RTA_PRIORITY = 6
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


def open_socket(netns: Optional[str] = None, netns_dir: str = "/run/netns") -> socket.socket:
    """An rtnetlink socket living in namespace ``netns`` (this thread returns to its own), or
    without ``netns`` in the namespace this thread is in now."""
    with entered(netns, netns_dir) if netns is not None else contextlib.nullcontext():
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
    try:
        sock.bind((0, 0))
        # Errors carry the kernel's explanation ("Nexthop device is not up"), not the request.
        for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
            with contextlib.suppress(OSError):  # older kernels: plain errno only
                sock.setsockopt(SOL_NETLINK, option, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def _attrs(data: bytes, offset: int) -> dict[int, bytes]:
    out = {}
    while offset + RTATTR.size <= len(data):
        length, kind = RTATTR.unpack_from(data, offset)
        if length < RTATTR.size:
            break
        out[kind & 0x3FFF] = data[offset + RTATTR.size : offset + length]
        offset += (length + 3) & ~3
    return out


def _dump(sock: socket.socket, msg_type: int, body: bytes, seq: int) -> list[tuple[int, bytes]]:
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
            payload = data[offset + NLMSGHDR.size : offset + length]
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


def read(sock: socket.socket, ipv6: bool = False) -> tuple[dict[str, dict], list[dict]]:
    """(links by name with IPv4 ``addr_info``, main-table IPv4 routes) as ``ip -json`` shows them;
    with ``ipv6`` also the IPv6 addresses (``family`` ``inet6``, with their ``scope``) and the
    main table's IPv6 unicast routes (``ip -6 -json route show``: a /128 printed without its length)."""
    links: dict[str, dict] = {}
    by_index: dict[int, dict] = {}
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
            by_index[index]["addr_info"].append({"family": "inet", "local": socket.inet_ntoa(local), "prefixlen": prefixlen})
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
    if ipv6:
        _read6(sock, by_index, routes)
    return links, routes


def _read6(sock: socket.socket, by_index: Mapping[int, dict], routes: list) -> None:
    """The IPv6 side of :func:`read`: addresses into the links' ``addr_info``, main-table unicast routes."""
    for kind, payload in _dump(sock, RTM_GETADDR, IFADDRMSG.pack(socket.AF_INET6, 0, 0, 0, 0), 4):
        family, prefixlen, _flags, scope, index = IFADDRMSG.unpack_from(payload)
        if kind != RTM_NEWADDR or family != socket.AF_INET6 or index not in by_index:
            continue
        attrs = _attrs(payload, IFADDRMSG.size)
        local = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
        if local:
            address = socket.inet_ntop(socket.AF_INET6, local)
            by_index[index]["addr_info"].append({"family": "inet6", "local": address, "prefixlen": prefixlen, "scope": SCOPES.get(scope) or "global"})
    for kind, payload in _dump(sock, RTM_GETROUTE, RTMSG.pack(socket.AF_INET6, 0, 0, 0, 0, 0, 0, 0, 0), 5):
        family, dst_len, _src, _tos, table, protocol, _scope, rtype, flags = RTMSG.unpack_from(payload)
        attrs = _attrs(payload, RTMSG.size)
        if table == 252 and RTA_TABLE in attrs:
            table = struct.unpack("=I", attrs[RTA_TABLE])[0]
        if kind != RTM_NEWROUTE or family != socket.AF_INET6 or table != RT_TABLE_MAIN or rtype != RTN_UNICAST:
            continue
        dst = socket.inet_ntop(socket.AF_INET6, attrs[RTA_DST]) if RTA_DST in attrs else "::"
        route = {"dst": "default" if dst_len == 0 else (dst if dst_len == 128 else f"{dst}/{dst_len}")}
        if RTA_GATEWAY in attrs:
            route["gateway"] = socket.inet_ntop(socket.AF_INET6, attrs[RTA_GATEWAY])
        if RTA_OIF in attrs:
            oif = struct.unpack("=i", attrs[RTA_OIF])[0]
            route["dev"] = by_index.get(oif, {}).get("ifname", f"if{oif}")
        route["flags"] = ["onlink"] if flags & RTNH_F_ONLINK else []
        route["protocol"] = protocol
        if RTA_PRIORITY in attrs:
            route["metric"] = struct.unpack("=I", attrs[RTA_PRIORITY])[0]
        routes.append(route)


def read_netns(netns: str, netns_dir: str = "/run/netns", ipv6: bool = False) -> tuple[dict[str, dict], list[dict]]:
    sock = open_socket(netns, netns_dir)
    try:
        return read(sock, ipv6)
    finally:
        sock.close()


# ----------------------------------------------------------------------------------------------
# Writing: a namespace's changes as one rtnetlink batch
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkSet:
    """``link set dev DEV [mtu MTU] up``."""

    dev: str
    mtu: Optional[int] = None

    def __str__(self) -> str:
        return f"link set dev {self.dev}" + (f" mtu {self.mtu}" if self.mtu is not None else "") + " up"


@dataclass(frozen=True)
class AddrAdd:
    """``addr add LOCAL/PREFIXLEN dev DEV`` (fails if the address is there: NLM_F_EXCL, like ip);
    with ``replace``, ``addr replace`` (NLM_F_REPLACE: there already is no error)."""

    local: str
    prefixlen: int
    dev: str
    replace: bool = False

    def __str__(self) -> str:
        return f"addr {'replace' if self.replace else 'add'} {self.local}/{self.prefixlen} dev {self.dev}"


@dataclass(frozen=True)
class AddrDel:
    """``addr del LOCAL/PREFIXLEN dev DEV``."""

    local: str
    prefixlen: int
    dev: str

    def __str__(self) -> str:
        return f"addr del {self.local}/{self.prefixlen} dev {self.dev}"


@dataclass(frozen=True)
class RouteReplace:
    """``route replace DST [via GATEWAY] dev DEV [scope link]`` in the main table, proto boot.

    ``dst`` as ip writes it: ``default``, an address (a /32, IPv6: a /128) or ``address/prefixlen``;
    the family is the address's (``default``: the gateway's). For IPv6 ``ip`` writes ``-6`` for a
    ``default`` route; the line here is the rtnetlink request, the same either way.
    """

    dst: str
    dev: str
    gateway: Optional[str] = None
    scope_link: bool = False

    def __str__(self) -> str:
        via = f" via {self.gateway}" if self.gateway else ""
        return f"route replace {self.dst}{via} dev {self.dev}" + (" scope link" if self.scope_link else "")


@dataclass(frozen=True)
class RouteDel:
    """``route del DST [via GATEWAY] dev DEV`` in the main table (``dst`` as for :class:`RouteReplace`)."""

    dst: str
    dev: str
    gateway: Optional[str] = None

    def __str__(self) -> str:
        via = f" via {self.gateway}" if self.gateway else ""
        return f"route del {self.dst}{via} dev {self.dev}"


Change = Union[LinkSet, AddrAdd, AddrDel, RouteReplace, RouteDel]


class NetlinkError(L3CalicoError, OSError):
    """The kernel refused changes; ``failures`` lists (change, errno, kernel message)."""

    def __init__(self, failures: Sequence[tuple[Change, int, str]]):
        self.failures = list(failures)
        first_errno = self.failures[0][1] if self.failures else 0
        self.message = "; ".join(describe_failure(*f) for f in self.failures)
        super().__init__(first_errno, self.message)

    def __str__(self) -> str:
        return self.message


def describe_failure(change: Change, err: int, message: str = "") -> str:
    """For example: `addr add 10.0.0.1/32 dev eth0`: EEXIST (File exists: ipv4: Address already assigned)."""
    name = errno_names.errorcode.get(err, f"errno {err}")
    return f"`{change}`: {name} ({os.strerror(err)}" + (f": {message}" if message else "") + ")"


def _attr(kind: int, data: bytes) -> bytes:
    length = RTATTR.size + len(data)
    return RTATTR.pack(length, kind) + data + b"\0" * (-length % 4)


def _message(msg_type: int, flags: int, seq: int, body: bytes) -> bytes:
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), msg_type, flags, seq, 0) + body


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _packed(address: str) -> bytes:
    return socket.inet_pton(_family(address), address)


def _prefix(dst: str) -> tuple[bytes, int]:
    if dst == "default":
        return b"", 0
    address, _sep, length = dst.partition("/")
    return _packed(address), int(length) if length else (128 if ":" in address else 32)


def _address_scope(address: str) -> int:
    # What `ip addr add` sets when no scope is given (iproute2 default_scope): link for IPv6 link-local.
    return RT_SCOPE_LINK if address.lower().startswith("fe80:") else RT_SCOPE_UNIVERSE


def encode(change: Change, seq: int, index: Mapping[str, int]) -> bytes:
    """The rtnetlink request ``ip`` sends for ``str(change)``; ``index``: device name -> ifindex."""
    ifindex = index[change.dev]
    ack = NLM_F_REQUEST | NLM_F_ACK
    if isinstance(change, LinkSet):
        attrs = _attr(IFLA_MTU, struct.pack("=I", change.mtu)) if change.mtu is not None else b""
        return _message(RTM_NEWLINK, ack, seq, IFINFOMSG.pack(socket.AF_UNSPEC, 0, ifindex, IFF_UP, IFF_UP) + attrs)
    if isinstance(change, (AddrAdd, AddrDel)):
        local = _packed(change.local)
        body = IFADDRMSG.pack(_family(change.local), change.prefixlen, 0, _address_scope(change.local), ifindex)
        body += _attr(IFA_LOCAL, local) + _attr(IFA_ADDRESS, local)
        if isinstance(change, AddrAdd):
            return _message(RTM_NEWADDR, ack | NLM_F_CREATE | (NLM_F_REPLACE if change.replace else NLM_F_EXCL), seq, body)
        return _message(RTM_DELADDR, ack, seq, body)
    if isinstance(change, (RouteReplace, RouteDel)):
        dst, dst_len = _prefix(change.dst)
        family = _family(change.gateway if change.dst == "default" and change.gateway else change.dst)
        if isinstance(change, RouteReplace):
            scope = RT_SCOPE_LINK if change.scope_link else RT_SCOPE_UNIVERSE
            body = RTMSG.pack(family, dst_len, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, scope, RTN_UNICAST, 0)
        else:  # what `ip route del` sends: scope nowhere, no protocol or type (any)
            body = RTMSG.pack(family, dst_len, 0, 0, RT_TABLE_MAIN, 0, RT_SCOPE_NOWHERE, 0, 0)
        if dst_len:
            body += _attr(RTA_DST, dst)
        if change.gateway:
            body += _attr(RTA_GATEWAY, _packed(change.gateway))
        body += _attr(RTA_OIF, struct.pack("=i", ifindex))
        if isinstance(change, RouteDel):
            return _message(RTM_DELROUTE, ack, seq, body)
        return _message(RTM_NEWROUTE, ack | NLM_F_CREATE | NLM_F_REPLACE, seq, body)
    raise TypeError(f"not an rtnetlink change: {change!r}")


def _answers(sock: socket.socket, pending: Iterable[int]) -> dict[int, tuple[int, bytes, int]]:
    """Read until every sequence number in ``pending`` is answered: seq -> (type, payload, flags)."""
    waiting = set(pending)
    out: dict[int, tuple[int, bytes, int]] = {}
    while waiting:
        data = sock.recv(1 << 16)
        offset = 0
        while offset + NLMSGHDR.size <= len(data):
            length, kind, flags, seq, _pid = NLMSGHDR.unpack_from(data, offset)
            if length < NLMSGHDR.size:
                raise OSError("rtnetlink: malformed message")
            if seq in waiting:
                out[seq] = (kind, data[offset + NLMSGHDR.size : offset + length], flags)
                waiting.discard(seq)
            offset += (length + 3) & ~3
    return out


def _error_of(payload: bytes, flags: int) -> tuple[int, str]:
    """(errno, kernel message) of an NLMSG_ERROR payload; errno 0 is an acknowledgement."""
    err = -struct.unpack_from("=i", payload)[0]
    message = ""
    if err and flags & NLM_F_ACK_TLVS:
        # struct nlmsgerr: error, then the request's header (and body unless capped), then TLVs.
        request_length = NLMSGHDR.unpack_from(payload, 4)[0]
        offset = 4 + (NLMSGHDR.size if flags & NLM_F_CAPPED else request_length)
        raw = _attrs(payload, (offset + 3) & ~3).get(NLMSGERR_ATTR_MSG, b"")
        message = raw.split(b"\0", 1)[0].decode(errors="replace")
    return err, message


def link_indexes(sock: socket.socket, names: Iterable[str]) -> dict[str, int]:
    """ifindex of each named link (absent ones left out): one request each, all in one send."""
    return _resolve(sock, names)[0]


# The answers to one send must fit the socket's receive buffer (about 200 KiB by default) or the
# kernel drops them (ENOBUFS): a link's RTM_NEWLINK answer is 1-2 KiB, so names are resolved 64 to
# a send (a namespace has two; the host's IPv6 side one per veth); changes, acknowledged in a few
# dozen bytes each, go 256 to a send.
RESOLVE_CHUNK, APPLY_CHUNK = 64, 256


def _resolve(sock: socket.socket, names: Iterable[str]) -> tuple[dict[str, int], dict[str, tuple[int, str]]]:
    names = sorted(set(names))
    if not names:
        return {}, {}
    answers: dict[int, tuple[int, bytes, int]] = {}
    for first in range(0, len(names), RESOLVE_CHUNK):
        chunk = range(first, min(first + RESOLVE_CHUNK, len(names)))
        sock.send(
            b"".join(
                _message(RTM_GETLINK, NLM_F_REQUEST, 1 + i, IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, names[i].encode() + b"\0"))
                for i in chunk
            )
        )
        answers.update(_answers(sock, [1 + i for i in chunk]))
    found, refused = {}, {}
    for i, name in enumerate(names):
        kind, payload, flags = answers[1 + i]
        if kind == RTM_NEWLINK:
            found[name] = IFINFOMSG.unpack_from(payload)[2]
        elif kind == NLMSG_ERROR:
            err, message = _error_of(payload, flags)
            refused[name] = (err, message or f"no device {name} in this namespace")
    return found, refused


def apply(sock: socket.socket, changes: Sequence[Change]) -> None:
    """Apply ``changes`` in order, as ONE batch, on the namespace of ``sock``.

    Device names are resolved first (one request per device, one send); then every change is
    encoded and all are sent together (:data:`RESOLVE_CHUNK` / :data:`APPLY_CHUNK` at a time when
    there are more: the answers must fit the socket's receive buffer). The kernel handles the messages of a batch in order and
    answers each; unlike ``ip -batch`` it does not stop at the first refusal, so every refusal is
    collected and raised together as a NetlinkError (what succeeded stays; a next run repairs).
    """
    if not changes:
        return
    index, refused = _resolve(sock, (c.dev for c in changes))
    failures: dict[int, tuple[Change, int, str]] = {}  # by position in ``changes``
    batch, sent = [], {}
    for position, change in enumerate(changes):
        if change.dev not in index:
            failures[position] = (change, *refused.get(change.dev, (errno_names.ENODEV, f"no device {change.dev}")))
            continue
        seq = 1000 + position
        batch.append(encode(change, seq, index))
        sent[seq] = change
    seqs = list(sent)
    for first in range(0, len(batch), APPLY_CHUNK):
        sock.send(b"".join(batch[first : first + APPLY_CHUNK]))
        for seq, (kind, payload, flags) in _answers(sock, seqs[first : first + APPLY_CHUNK]).items():
            err, message = _error_of(payload, flags) if kind == NLMSG_ERROR else (0, "")
            if err:
                failures[seq - 1000] = (sent[seq], err, message)
    if failures:
        raise NetlinkError([failures[p] for p in sorted(failures)])


def apply_netns(netns: str, changes: Sequence[Change], netns_dir: str = "/run/netns") -> None:
    """``apply`` in namespace ``netns`` (OSError from opening the socket: namespace unusable)."""
    sock = open_socket(netns, netns_dir)
    try:
        apply(sock, changes)
    finally:
        sock.close()
