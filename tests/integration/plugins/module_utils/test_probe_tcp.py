# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""probe's TCP matrix for real: a detached listener in one namespace, connects from another.

Two namespaces joined by a veth pair: ``a`` (10.78.0.1) holds the listener and routes
10.78.5.5 into a blackhole (silently dropped: a timeout) and 10.78.6.6 as unreachable (an ICMP
error: unreachable); ``b`` (10.78.0.2) connects, also to itself where nothing listens (refused).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid

import pytest

from ansible_collections.l3.calico.plugins.module_utils import probe

pytestmark = pytest.mark.netns

PORT = 7946


def ip(*args):
    subprocess.run(["ip", *args], check=True)


@pytest.fixture
def pair():
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 (ip) for network namespaces")
    tag = uuid.uuid4().hex[:6]
    a, b = f"l3tprb-{tag}-a", f"l3tprb-{tag}-b"
    ip("netns", "add", a)
    try:
        ip("netns", "add", b)
        try:
            ip("-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b)
            for ns, addr in ((a, "10.78.0.1/24"), (b, "10.78.0.2/24")):
                ip("-n", ns, "link", "set", "lo", "up")
                ip("-n", ns, "addr", "add", addr, "dev", "eth0")
                ip("-n", ns, "link", "set", "eth0", "up")
            subprocess.run(["ip", "netns", "exec", a, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
            ip("-n", a, "route", "add", "blackhole", "10.78.5.5")
            ip("-n", a, "route", "add", "unreachable", "10.78.6.6")
            ip("-n", b, "route", "add", "default", "via", "10.78.0.1")
            yield a, b
        finally:
            ip("netns", "delete", b)
    finally:
        ip("netns", "delete", a)


def listening_in(netns: str) -> bool:
    out = subprocess.run(["ip", "netns", "exec", netns, "ss", "-Hltn", f"sport = :{PORT}"], capture_output=True, text=True, check=True).stdout
    return bool(out.strip())


def test_listener_then_every_outcome_of_a_connect_then_stop(pair, tmp_path):
    a, b = pair
    record = str(tmp_path / "run" / "listener.json")
    started = probe.start_listener([a], PORT, 60, record)
    try:
        assert started["changed"] and started["errors"] == {}
        assert listening_in(a) and not listening_in(b)
        # The same listener again: kept, nothing started.
        assert probe.start_listener([a], PORT, 60, record) == {"changed": False, "pid": started["pid"], "errors": {}}

        answer = probe.collect(*probe.in_netns(f"/run/netns/{b}", probe.connect_all, ["10.78.0.1", "10.78.0.2", "10.78.5.5", "10.78.6.6"], PORT, 2))
        assert answer["result"] == {"10.78.0.1": "open", "10.78.0.2": "refused", "10.78.5.5": "timeout", "10.78.6.6": "unreachable"}

        matrix = probe.tcp_matrix(
            [{"id": "x.b", "ip": "10.78.0.2"}],
            [{"id": "x.a", "ip": "10.78.0.1"}, {"id": "x.b", "ip": "10.78.0.2"}, {"id": "x.gone", "ip": "10.78.5.5"}],
            PORT,
            1,
            start=lambda _path, func, *args: probe.in_netns(f"/run/netns/{b}", func, *args),
        )
        assert matrix == {"x.b": {"x.a": {"ok": True, "outcome": "open"}, "x.gone": {"ok": False, "outcome": "timeout"}}}
    finally:
        stopped = probe.stop_listener(record)
    assert stopped == {"changed": True, "pid": started["pid"]}
    assert not os.path.exists(record)
    deadline = time.monotonic() + 5
    while probe._start_time(started["pid"]) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert probe._start_time(started["pid"]) is None, "the listener still runs after its stop"
    assert not listening_in(a)
    assert probe.stop_listener(record) == {"changed": False, "pid": None}


def test_check_mode_starts_and_stops_nothing(pair, tmp_path):
    a, _b = pair
    record = str(tmp_path / "listener.json")
    assert probe.start_listener([a], PORT, 60, record, check_mode=True) == {"changed": True, "pid": None, "errors": {}}
    assert not os.path.exists(record) and not listening_in(a)
    started = probe.start_listener([a], PORT, 60, record)
    try:
        assert probe.stop_listener(record, check_mode=True) == {"changed": True, "pid": started["pid"]}
        assert listening_in(a) and os.path.exists(record)
    finally:
        probe.stop_listener(record)


def test_the_listener_ends_by_itself_after_its_lifetime(pair, tmp_path):
    a, _b = pair
    record = str(tmp_path / "listener.json")
    started = probe.start_listener([a], PORT, 1, record)
    deadline = time.monotonic() + 10
    while probe._start_time(started["pid"]) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert probe._start_time(started["pid"]) is None and not listening_in(a)
    assert probe.listener_running(record) is None
    probe.stop_listener(record)


def test_a_namespace_that_cannot_listen_is_named_and_the_others_listen(pair, tmp_path):
    a, _b = pair
    record = str(tmp_path / "listener.json")
    started = probe.start_listener([a, "l3tprb-absent"], PORT, 60, record)
    try:
        assert list(started["errors"]) == ["l3tprb-absent"] and listening_in(a)
    finally:
        probe.stop_listener(record)


def test_stop_kills_only_the_process_it_started(tmp_path):
    """A record whose PID now belongs to another process (another start time) kills nothing."""
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        record = tmp_path / "listener.json"
        record.write_text(json.dumps({"pid": sleeper.pid, "start": "1", "port": PORT, "netns": []}))
        assert probe.stop_listener(str(record)) == {"changed": True, "pid": sleeper.pid}
        assert sleeper.poll() is None, "stop_listener killed a process it did not start"
        assert not record.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_record_that_is_not_one_is_an_error(tmp_path):
    record = tmp_path / "listener.json"
    record.write_text('{"pid": "1; rm -rf /"}')
    with pytest.raises(probe.ProbeError, match="not a listener record"):
        probe.stop_listener(str(record))


def test_over_ipv6_a_listener_of_its_own_beside_ipv4_and_connects_to_ipv6_addresses(pair, tmp_path):
    """Dual stack: the listener holds an IPv6 socket (V6ONLY) beside the IPv4 one where asked, and
    connect_all / tcp_matrix connect to IPv6 addresses (the workloads' ``ipv6``)."""
    a, b = pair
    for ns, addr in ((a, "fd78::1/64"), (b, "fd78::2/64")):
        ip("-n", ns, "addr", "add", addr, "dev", "eth0", "nodad")
    record = str(tmp_path / "listener.json")
    started = probe.start_listener([a], PORT, 60, record, netns6=[a])
    try:
        assert started["errors"] == {}
        out = subprocess.run(["ip", "netns", "exec", a, "ss", "-Hltn", f"sport = :{PORT}"], capture_output=True, text=True, check=True).stdout
        assert sorted(line.split()[3] for line in out.splitlines()) == [f"0.0.0.0:{PORT}", f"[::]:{PORT}"]
        # Asked again the same: kept.
        assert probe.start_listener([a], PORT, 60, record, netns6=[a])["changed"] is False
        answer = probe.collect(*probe.in_netns(f"/run/netns/{b}", probe.connect_all, ["fd78::1", "fd78::2", "10.78.0.1"], PORT, 2))
        assert answer["result"] == {"fd78::1": "open", "fd78::2": "refused", "10.78.0.1": "open"}
        matrix = probe.tcp_matrix(
            [{"id": "x.b", "ip": "10.78.0.2", "ipv6": "fd78::2"}],
            [{"id": "x.a", "ip": "10.78.0.1", "ipv6": "fd78::1"}, {"id": "x.v4", "ip": "10.78.5.5", "ipv6": None}],
            PORT,
            1,
            start=lambda _path, func, *args: probe.in_netns(f"/run/netns/{b}", func, *args),
            version=6,
        )
        assert matrix == {"x.b": {"x.a": {"ok": True, "outcome": "open"}}}
    finally:
        probe.stop_listener(record)
    # Without netns6 no IPv6 socket: an IPv6 connect is refused.
    started = probe.start_listener([a], PORT, 60, record)
    try:
        answer = probe.collect(*probe.in_netns(f"/run/netns/{b}", probe.connect_all, ["fd78::1"], PORT, 2))
        assert answer["result"] == {"fd78::1": "refused"}
    finally:
        probe.stop_listener(record)
