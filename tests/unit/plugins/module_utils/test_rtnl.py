# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The rtnetlink writer without a kernel: what it encodes parses back, batching, error reporting."""

from __future__ import annotations

import contextlib
import errno
import socket
import struct

import pytest

from ansible_collections.l3.calico.plugins.module_utils import rtnl
from ansible_collections.l3.calico.plugins.module_utils import workloads as wl

INDEX = {"lo": 1, "eth0": 7}


def decode(data: bytes):
    """Split a buffer into (type, flags, seq, payload) with the reader's own header layout."""
    out, offset = [], 0
    while offset < len(data):
        length, kind, flags, seq, _pid = rtnl.NLMSGHDR.unpack_from(data, offset)
        out.append((kind, flags, seq, data[offset + rtnl.NLMSGHDR.size : offset + length]))
        offset += (length + 3) & ~3
    return out


def one(change):
    [message] = decode(rtnl.encode(change, 42, INDEX))
    assert message[2] == 42
    return message


def test_link_set_is_newlink_with_up_in_flags_and_change_and_the_mtu():
    kind, flags, _seq, payload = one(rtnl.LinkSet("eth0", 1450))
    assert kind == rtnl.RTM_NEWLINK and flags == rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK
    family, _type, index, ifi_flags, change = rtnl.IFINFOMSG.unpack_from(payload)
    assert (family, index, ifi_flags, change) == (socket.AF_UNSPEC, 7, rtnl.IFF_UP, rtnl.IFF_UP)
    assert rtnl._attrs(payload, rtnl.IFINFOMSG.size) == {rtnl.IFLA_MTU: struct.pack("=I", 1450)}
    _kind, _flags, _seq, payload = one(rtnl.LinkSet("lo"))
    assert rtnl.IFINFOMSG.unpack_from(payload)[2] == 1 and rtnl._attrs(payload, rtnl.IFINFOMSG.size) == {}


@pytest.mark.parametrize(
    "change, msg_type, extra",
    [
        (rtnl.AddrAdd("172.17.72.1", 32, "eth0"), rtnl.RTM_NEWADDR, rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL),
        (rtnl.AddrDel("172.17.72.1", 32, "eth0"), rtnl.RTM_DELADDR, 0),
    ],
)
def test_addresses_carry_local_and_address_like_ip(change, msg_type, extra):
    kind, flags, _seq, payload = one(change)
    assert kind == msg_type and flags == rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK | extra
    family, prefixlen, ifa_flags, scope, index = rtnl.IFADDRMSG.unpack_from(payload)
    assert (family, prefixlen, ifa_flags, scope, index) == (socket.AF_INET, 32, 0, 0, 7)
    address = socket.inet_aton("172.17.72.1")
    assert rtnl._attrs(payload, rtnl.IFADDRMSG.size) == {rtnl.IFA_LOCAL: address, rtnl.IFA_ADDRESS: address}


def test_routes_are_replace_in_main_proto_boot_with_scope_dst_gateway_oif():
    kind, flags, _seq, payload = one(rtnl.RouteReplace("169.254.1.1", "eth0", scope_link=True))
    assert kind == rtnl.RTM_NEWROUTE
    assert flags == rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK | rtnl.NLM_F_CREATE | rtnl.NLM_F_REPLACE
    family, dst_len, src_len, tos, table, proto, scope, rtype, rflags = rtnl.RTMSG.unpack_from(payload)
    assert (family, dst_len, src_len, tos, table) == (socket.AF_INET, 32, 0, 0, rtnl.RT_TABLE_MAIN)
    assert (proto, scope, rtype, rflags) == (rtnl.RTPROT_BOOT, rtnl.RT_SCOPE_LINK, rtnl.RTN_UNICAST, 0)
    assert rtnl._attrs(payload, rtnl.RTMSG.size) == {rtnl.RTA_DST: socket.inet_aton("169.254.1.1"), rtnl.RTA_OIF: struct.pack("=i", 7)}

    _kind, _flags, _seq, payload = one(rtnl.RouteReplace("default", "eth0", gateway="169.254.1.1"))
    _family, dst_len, _src, _tos, _table, _proto, scope, _type, _flags = rtnl.RTMSG.unpack_from(payload)
    assert (dst_len, scope) == (0, rtnl.RT_SCOPE_UNIVERSE)
    assert rtnl._attrs(payload, rtnl.RTMSG.size) == {rtnl.RTA_GATEWAY: socket.inet_aton("169.254.1.1"), rtnl.RTA_OIF: struct.pack("=i", 7)}

    _kind, _flags, _seq, payload = one(rtnl.RouteReplace("10.5.0.0/16", "eth0", gateway="10.6.6.6"))
    assert rtnl.RTMSG.unpack_from(payload)[1] == 16


def test_changes_print_as_the_ip_batch_lines_they_replace():
    w = wl.Workload(wid="default.web-1", ip="172.17.72.1", netns="calico-default.web-1", veth="cali0", mtu=1450)
    assert [str(c) for c in wl._create_inside_ops(w)] == [
        "link set dev lo up",
        "link set dev eth0 up",
        "addr add 172.17.72.1/32 dev eth0",
        "route replace 169.254.1.1 dev eth0 scope link",
        "route replace default via 169.254.1.1 dev eth0",
    ]
    assert str(rtnl.LinkSet("eth0", 1450)) == "link set dev eth0 mtu 1450 up"
    assert str(rtnl.AddrDel("10.9.9.9", 24, "eth0")) == "addr del 10.9.9.9/24 dev eth0"


class FakeNetlink:
    """A socket answering like the kernel: GETLINK by name, an ACK or a refusal per change."""

    def __init__(self, links, refuse=None):
        self.links = links  # name -> ifindex
        self.refuse = refuse or {}  # str(change) -> (errno, extack message)
        self.sent, self.queue = [], []

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        for kind, _flags, seq, payload in decode(data):
            if kind == rtnl.RTM_GETLINK:
                name = rtnl._attrs(payload, rtnl.IFINFOMSG.size)[rtnl.IFLA_IFNAME].rstrip(b"\0").decode()
                if name in self.links:
                    body = rtnl.IFINFOMSG.pack(0, 0, self.links[name], 0, 0)
                    self.queue.append(rtnl._message(rtnl.RTM_NEWLINK, 0, seq, body))
                else:
                    self.queue.append(self.error(seq, errno.ENODEV, ""))
            else:
                change = self.decoded[seq - 1000]
                err, message = self.refuse.get(str(change), (0, ""))
                self.queue.append(self.error(seq, err, message))
        return len(data)

    @staticmethod
    def error(seq, err, message):
        header = rtnl.NLMSGHDR.pack(16, 0, 0, seq, 0)  # the request's header (capped ACK)
        tlv = rtnl._attr(rtnl.NLMSGERR_ATTR_MSG, message.encode() + b"\0") if message else b""
        flags = rtnl.NLM_F_CAPPED | (rtnl.NLM_F_ACK_TLVS if message else 0)
        return rtnl._message(rtnl.NLMSG_ERROR, flags, seq, struct.pack("=i", -err) + header + tlv)

    def recv(self, _size):
        data, self.queue = b"".join(self.queue), []
        return data


def test_one_send_for_all_changes_of_a_namespace_and_every_ack_read():
    w = wl.Workload(wid="default.web-1", ip="172.17.72.1", netns="calico-default.web-1", veth="cali0", mtu=1450)
    changes = wl._create_inside_ops(w)
    sock = FakeNetlink({"lo": 1, "eth0": 2})
    sock.decoded = changes
    rtnl.apply(sock, changes)
    assert len(sock.sent) == 2  # the names resolved in one send, then the whole batch in one send
    batch = decode(sock.sent[1])
    assert [m[0] for m in batch] == [rtnl.RTM_NEWLINK, rtnl.RTM_NEWLINK, rtnl.RTM_NEWADDR, rtnl.RTM_NEWROUTE, rtnl.RTM_NEWROUTE]
    assert all(m[1] & rtnl.NLM_F_ACK for m in batch)


def test_refusals_are_all_reported_in_order_with_errno_name_and_kernel_message():
    changes = [
        rtnl.AddrAdd("10.1.1.1", 32, "eth0"),
        rtnl.RouteReplace("10.9.0.0/16", "eth1", gateway="1.2.3.4"),
        rtnl.RouteReplace("default", "eth0", gateway="169.254.1.1"),
    ]
    sock = FakeNetlink(
        {"eth0": 2},
        refuse={
            "addr add 10.1.1.1/32 dev eth0": (errno.EEXIST, "ipv4: Address already assigned"),
            "route replace default via 169.254.1.1 dev eth0": (errno.ENETUNREACH, "Nexthop has invalid gateway"),
        },
    )
    sock.decoded = changes
    with pytest.raises(rtnl.NetlinkError) as info:
        rtnl.apply(sock, changes)
    assert [(str(c), e) for c, e, _m in info.value.failures] == [
        ("addr add 10.1.1.1/32 dev eth0", errno.EEXIST),
        ("route replace 10.9.0.0/16 via 1.2.3.4 dev eth1", errno.ENODEV),
        ("route replace default via 169.254.1.1 dev eth0", errno.ENETUNREACH),
    ]
    text = str(info.value)
    assert "`addr add 10.1.1.1/32 dev eth0`: EEXIST (File exists: ipv4: Address already assigned)" in text
    assert "ENODEV" in text and "eth1" in text and "ENETUNREACH" in text and "invalid gateway" in text
    assert len(decode(sock.sent[1])) == 2  # the change on the missing device was not sent


class Sock:
    def __init__(self, ns):
        self.ns = ns

    def close(self):
        pass


def fake_namespaces(monkeypatch, missing=(), no_socket=False):
    """Entering a namespace succeeds (except ``missing`` ones); sockets record where they were opened."""
    where = []

    @contextlib.contextmanager
    def entered(ns, netns_dir="/run/netns"):
        if ns in missing:
            raise FileNotFoundError(errno.ENOENT, "no such namespace")
        where.append(ns)
        try:
            yield
        finally:
            where.pop()

    def open_socket(netns=None, netns_dir="/run/netns"):
        if no_socket:
            raise PermissionError(errno.EPERM, "socket")
        return Sock(netns or where[-1])

    monkeypatch.setattr(rtnl, "entered", entered)
    monkeypatch.setattr(rtnl, "open_socket", open_socket)


def test_a_namespace_without_usable_rtnetlink_falls_back_to_ip_n_batch(monkeypatch, tmp_path):
    """Like the reads: when the socket cannot be opened there, the same changes go to `ip -n NS -batch`."""
    calls = []

    def runner(argv, stdin=None):
        calls.append((list(argv), stdin))
        from ansible_collections.l3.calico.plugins.module_utils import iproute

        return iproute.Result(0, "", "")

    fake_namespaces(monkeypatch, no_socket=True)
    w = wl.Workload(wid="default.web-1", ip="172.17.72.1", netns="calico-default.web-1", veth="cali0", mtu=1450)
    the_plan = wl.Plan(ns_ops={w.netns: wl._create_inside_ops(w)}, workloads=[w])
    wl.apply(runner, the_plan, state_file=str(tmp_path / "s.json"), proc_sys=str(tmp_path))
    assert calls == [(["ip", "-n", w.netns, "-batch", "-"], "".join(line + "\n" for line in the_plan.ns_lines[w.netns]))]


def test_kernel_refusals_name_workload_and_namespace_and_the_rest_is_applied(monkeypatch, tmp_path):
    applied = []

    def fake_apply(sock, changes):
        applied.append(sock.ns)
        if sock.ns == "calico-default.a":
            raise rtnl.NetlinkError([(changes[2], errno.EEXIST, "ipv4: Address already assigned")])

    fake_namespaces(monkeypatch)
    monkeypatch.setattr(rtnl, "apply", fake_apply)
    ws = [wl.Workload(wid=f"default.{x}", ip=f"10.0.0.{i}", netns=f"calico-default.{x}", veth=f"cali{x}", mtu=1500) for i, x in enumerate("abc")]
    the_plan = wl.Plan(ns_ops={w.netns: wl._create_inside_ops(w) for w in ws}, workloads=ws)
    with pytest.raises(wl.ApplyError) as info:
        wl.apply(None, the_plan, state_file=str(tmp_path / "s.json"), proc_sys=str(tmp_path))
    assert applied == ["calico-default.a", "calico-default.b", "calico-default.c"]
    assert ("workload default.a (namespace calico-default.a): `addr add 10.0.0.0/32 dev eth0`: EEXIST (File exists: ipv4: Address already assigned)") in str(
        info.value
    )
    assert isinstance(info.value, OSError)  # the module reports it as a failure with this message


def test_a_failing_ip_fallback_is_reported_and_the_other_namespaces_are_applied(monkeypatch, tmp_path):
    """A namespace gone between the read and the apply: its `ip -n NS -batch` fails, the others still go."""
    from ansible_collections.l3.calico.plugins.module_utils import iproute

    applied = []

    def runner(argv, stdin=None):
        return iproute.Result(1, "", 'Cannot open network namespace "calico-default.a": No such file or directory\n')

    fake_namespaces(monkeypatch, missing=["calico-default.a"])
    monkeypatch.setattr(rtnl, "apply", lambda sock, changes: applied.append(sock.ns))
    ws = [wl.Workload(wid=f"default.{x}", ip=f"10.0.0.{i}", netns=f"calico-default.{x}", veth=f"cali{x}", mtu=1500) for i, x in enumerate("abc")]
    (tmp_path / "net/ipv4").mkdir(parents=True)
    (tmp_path / "net/ipv4/ip_forward").write_text("1\n")  # what "inside" b and c reads here
    the_plan = wl.Plan(ns_ops={w.netns: wl._create_inside_ops(w) for w in ws}, ns_sysctls={w.netns: wl.inside_sysctls(w) for w in ws}, workloads=ws)
    with pytest.raises(wl.ApplyError) as info:
        wl.apply(runner, the_plan, state_file=str(tmp_path / "s.json"), proc_sys=str(tmp_path))
    assert applied == ["calico-default.b", "calico-default.c"]
    assert (tmp_path / "net/ipv4/ip_forward").read_text() == "0"  # written from "inside" b and c
    assert str(info.value).count("workload default.a (namespace calico-default.a)") == 2  # its sysctl and its batch
    assert "Cannot open network namespace" in str(info.value) and "refused 2 change(s)" in str(info.value)


def test_ipv6_changes_are_encoded_as_ip_sends_them():
    """The family comes from the address: AF_INET6, 16-byte addresses, link scope for fe80::/10 (ip's default_scope)."""
    _kind, _flags, _seq, payload = one(rtnl.AddrAdd("fd00:65::1", 128, "eth0"))
    assert rtnl.IFADDRMSG.unpack_from(payload) == (socket.AF_INET6, 128, 0, rtnl.RT_SCOPE_UNIVERSE, 7)
    packed = socket.inet_pton(socket.AF_INET6, "fd00:65::1")
    assert rtnl._attrs(payload, rtnl.IFADDRMSG.size) == {rtnl.IFA_LOCAL: packed, rtnl.IFA_ADDRESS: packed}
    _kind, flags, _seq, payload = one(rtnl.AddrAdd("fe80::ecee:eeff:feee:eeee", 64, "eth0", replace=True))
    assert rtnl.IFADDRMSG.unpack_from(payload)[:4] == (socket.AF_INET6, 64, 0, rtnl.RT_SCOPE_LINK)
    assert flags == rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK | rtnl.NLM_F_CREATE | rtnl.NLM_F_REPLACE  # `addr replace`

    _kind, _flags, _seq, payload = one(rtnl.RouteReplace("default", "eth0", gateway="fe80::ecee:eeff:feee:eeee"))
    family, dst_len, *_rest, rtype, _rflags = rtnl.RTMSG.unpack_from(payload)
    assert (family, dst_len, rtype) == (socket.AF_INET6, 0, rtnl.RTN_UNICAST)
    assert rtnl._attrs(payload, rtnl.RTMSG.size) == {
        rtnl.RTA_GATEWAY: socket.inet_pton(socket.AF_INET6, "fe80::ecee:eeff:feee:eeee"),
        rtnl.RTA_OIF: struct.pack("=i", 7),
    }
    _kind, _flags, _seq, payload = one(rtnl.RouteReplace("fd00:65::1", "eth0", scope_link=True))
    assert rtnl.RTMSG.unpack_from(payload)[:2] == (socket.AF_INET6, 128)  # an address alone is a /128

    kind, flags, _seq, payload = one(rtnl.RouteDel("default", "eth0", gateway="fe80::ecee:eeff:feee:eeee"))
    assert kind == rtnl.RTM_DELROUTE and flags == rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK
    family, _dst_len, _src, _tos, table, proto, scope, rtype, _rflags = rtnl.RTMSG.unpack_from(payload)
    assert (family, table, proto, scope, rtype) == (socket.AF_INET6, rtnl.RT_TABLE_MAIN, 0, rtnl.RT_SCOPE_NOWHERE, 0)  # as `ip route del`
    assert str(rtnl.RouteDel("default", "eth0", gateway="fe80::1")) == "route del default via fe80::1 dev eth0"


def test_a_dual_stack_workload_gets_its_ipv6_address_and_default_route_inside():
    w = wl.Workload(wid="default.web-1", ip="172.17.72.1", netns="n", veth="cali0", mtu=1450, ipv6="fd00:65::1")
    assert [str(c) for c in wl._create_inside_ops(w)][-2:] == [
        "addr add fd00:65::1/128 dev eth0",
        "route replace default via fe80::ecee:eeff:feee:eeee dev eth0",
    ]
    only6 = wl.Workload(wid="default.web-1", ip=None, netns="n", veth="cali0", mtu=1450, ipv6="fd00:65::1")
    assert [str(c) for c in wl._create_inside_ops(only6)] == [
        "link set dev lo up",
        "link set dev eth0 up",
        "addr add fd00:65::1/128 dev eth0",
        "route replace default via fe80::ecee:eeff:feee:eeee dev eth0",
    ]


def test_many_changes_go_in_sends_whose_answers_fit_the_receive_buffer():
    """The host's IPv6 side names one veth per workload: 250 workloads would resolve 250 links in one
    send, 250 answers of 1-2 KiB - more than the socket's receive buffer (the kernel drops them: ENOBUFS)."""
    names = {f"cali{i:011d}": 10 + i for i in range(150)}
    changes = [rtnl.RouteReplace(f"fd00::{i:x}", name, scope_link=True) for i, name in enumerate(names)] * 2
    sock = FakeNetlink(names)
    sock.decoded = changes
    rtnl.apply(sock, changes)
    resolving, applying = sock.sent[:3], sock.sent[3:]
    assert [len(decode(d)) for d in resolving] == [64, 64, 22] and [len(decode(d)) for d in applying] == [256, 44]
