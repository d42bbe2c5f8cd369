# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""probe: parsing BIRD and iproute2 output, waiting for sessions, the ping matrix."""

from __future__ import annotations

import json

from ansible_collections.l3.calico.plugins.module_utils import naming, probe

BIRDC = """BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     16:40:01.123
direct1    Direct     ---        up     16:40:01.123
kernel1    Kernel     master4    up     16:40:01.123
Mesh_192_168_100_101 BGP        ---        up     16:40:03.456  Established
  BGP state:          Established
    Neighbor address: 192.168.100.101
    Neighbor AS:      64512
  Channel ipv4
    State:          UP
Mesh_192_168_200_101 BGP        ---        start  16:40:01.123  Active        Socket: Connection refused
  BGP state:          Active
    Neighbor address: 192.168.200.101%vec0
    Neighbor AS:      64512
"""


def test_bird_protocols_give_state_and_neighbour_of_each_bgp_session():
    assert probe.parse_bird_protocols(BIRDC) == [
        {"name": "Mesh_192_168_100_101", "state": "up", "bgp_state": "Established", "neighbor": "192.168.100.101", "info": "Established", "channels": ["ipv4"]},
        {
            "name": "Mesh_192_168_200_101",
            "state": "start",
            "bgp_state": "Active",
            "neighbor": "192.168.200.101",
            "info": "Active Socket: Connection refused",
            "channels": [],
        },
    ]


def test_json_stream_of_ip_batch():
    assert probe.parse_json_stream('[{"a":1}]\n[]\n[{"b":2}]\n') == [[{"a": 1}], [], [{"b": 2}]]


def test_routes_are_simplified_with_defaults():
    route = probe.simplify_route({"dst": "172.17.128.0/26", "gateway": "192.168.200.101", "dev": "tunl0", "protocol": "bird", "flags": ["onlink"]})
    assert route == {"dst": "172.17.128.0/26", "type": "unicast", "gateway": "192.168.200.101", "dev": "tunl0", "protocol": "bird", "scope": "", "onlink": True}
    assert probe.simplify_route({"type": "blackhole", "dst": "172.17.0.0/26"})["type"] == "blackhole"


def test_workload_view_and_underlay_device():
    addrs = [
        {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
        {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "172.17.0.1", "prefixlen": 32}, {"family": "inet6", "local": "fe80::1", "prefixlen": 64}]},
    ]
    neigh = [{"dst": "169.254.1.1", "dev": "eth0", "lladdr": "ee:ee:ee:ee:ee:ee", "state": ["REACHABLE"]}]
    view = probe.workload_view([addrs, [{"dst": "default", "gateway": "169.254.1.1", "dev": "eth0"}], neigh])
    assert view["addresses"] == ["172.17.0.1/32"] and view["interfaces"] == ["eth0"]
    assert view["neighbours"] == [{"dst": "169.254.1.1", "lladdr": "ee:ee:ee:ee:ee:ee", "dev": "eth0", "state": "REACHABLE"}]
    assert probe.underlay_device(addrs, "172.17.0.1") == "eth0"
    assert probe.underlay_device(addrs, "10.0.0.1") == ""


def test_wait_bgp_polls_until_every_neighbour_is_established():
    answers = [BIRDC, BIRDC.replace("Active", "Established")]
    calls = []

    def run(argv, stdin):
        calls.append(argv)
        return 0, answers[min(len(calls), len(answers)) - 1], ""

    protocols, error = probe.wait_bgp("/run/bird/bird.ctl", ["192.168.100.101", "192.168.200.101"], 10, run, sleep=lambda s: None)
    assert error == "" and len(calls) == 2
    assert {p["bgp_state"] for p in protocols} == {"Established"}


def test_wait_bgp_gives_up_at_the_timeout_and_reports_birds_error():
    now = [0.0]

    def clock():
        now[0] += 1
        return now[0]

    protocols, error = probe.wait_bgp("/x", ["10.0.0.1"], 3, lambda a, s: (1, "", "Unable to connect"), sleep=lambda s: None, clock=clock)
    assert (protocols, error) == ([], "Unable to connect")


def test_ping_matrix_pings_every_other_target_from_every_source_inside_its_namespace():
    sources = [{"id": "default.web-1", "ip": "172.17.0.1"}, {"id": "blue.db-9", "ip": "172.18.0.9"}]
    targets = sources + [{"id": "default.web-5", "ip": "172.17.128.1"}]
    started = {}

    def start(path, func, addrs, count, timeout):
        started[path] = addrs
        return (path,)

    def finish(path):
        if path.endswith("blue.db-9"):
            return {"error": "FileNotFoundError: no such namespace"}
        return {"result": {"172.18.0.9": 0.25, "172.17.128.1": None}}

    matrix = probe.ping_matrix(sources, targets, 2, 2, start=start, finish=finish)
    web1 = f"/run/netns/{naming.netns_name('default.web-1')}"
    assert started[web1] == ["172.17.128.1", "172.18.0.9"]  # never itself
    assert matrix["default.web-1"] == {"blue.db-9": {"ok": True, "rtt_ms": 0.25}, "default.web-5": {"ok": False, "rtt_ms": None}}
    assert matrix["blue.db-9"]["default.web-5"] == {"ok": False, "rtt_ms": None, "error": "FileNotFoundError: no such namespace"}


def test_echo_request_checksum_is_valid():
    packet = probe.echo_request(0x1234, 7)
    assert probe.checksum(packet) == 0


# ------------------------------------------------------------------ dual stack

BIRDC6 = (
    BIRDC
    + """Mesh_fd00_100__101 BGP        ---        up     16:40:03.456  Established
  BGP state:          Established
    Neighbor address: fd00:100::101
    Neighbor AS:      64512
  Channel ipv6
    State:          UP
  Channel ipv4
    State:          UP
"""
)


def test_bird_protocols_say_which_families_each_session_carries():
    protocols = {p["neighbor"]: p for p in probe.parse_bird_protocols(BIRDC6)}
    assert protocols["fd00:100::101"]["channels"] == ["ipv6", "ipv4"]
    assert protocols["192.168.100.101"]["channels"] == ["ipv4"]


def test_ipv6_underlay_device_and_workload_view():
    addrs = [
        {"ifname": "lo", "addr_info": [{"family": "inet6", "local": "::1", "prefixlen": 128, "scope": "host"}]},
        {
            "ifname": "eth0",
            "addr_info": [
                {"family": "inet", "local": "172.17.0.1", "prefixlen": 32},
                {"family": "inet6", "local": "fd00:17::1", "prefixlen": 128, "scope": "global"},
                {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"},
            ],
        },
    ]
    assert probe.underlay_device(addrs, "fd00:17:0::1") == "eth0"  # any spelling of the address
    assert probe.underlay_device(addrs, "fd00:17::2") == ""
    routes6 = [{"dst": "default", "gateway": naming.GATEWAY6, "dev": "eth0", "protocol": "boot", "metric": 1024, "flags": [], "pref": "medium"}]
    view = probe.workload_view([addrs, [], []], routes6)
    assert view["addresses6"] == ["fd00:17::1/128"] and view["addresses"] == ["172.17.0.1/32"]
    assert view["routes6"] == [
        {"dst": "default", "type": "unicast", "gateway": naming.GATEWAY6, "dev": "eth0", "protocol": "boot", "scope": "", "onlink": False}
    ]
    assert "addresses6" not in probe.workload_view([addrs, [], []])  # an IPv4-only probe: as before


def test_the_ipv6_matrices_use_the_ipv6_addresses_and_leave_ipv4_only_workloads_out():
    sources = [{"id": "default.web-1", "ip": "172.17.0.1", "ipv6": "fd00:17::1"}, {"id": "default.old-1", "ip": "172.17.0.2", "ipv6": None}]
    targets = sources + [{"id": "default.web-5", "ip": "172.17.128.1", "ipv6": "fd00:17::81"}]
    started = {}

    def start(path, func, addrs, *args):
        started[path] = (func, addrs)
        return (path,)

    def finish(path):
        return {"result": {"fd00:17::81": 0.5}} if started[path][0] is probe.ping_all else {"result": {"fd00:17::81": probe.TCP_REFUSED}}

    pings = probe.ping_matrix(sources, targets, 2, 2, start=start, finish=finish, version=6)
    assert list(started.values()) == [(probe.ping_all, ["fd00:17::81"])]  # only web-1, only to web-5
    assert pings == {"default.web-1": {"default.web-5": {"ok": True, "rtt_ms": 0.5}}}
    started.clear()
    tcp = probe.tcp_matrix(sources, targets, 7946, 3, start=start, finish=finish, version=6)
    assert tcp == {"default.web-1": {"default.web-5": {"ok": False, "outcome": "refused"}}}
    four = probe.ping_matrix(sources, targets, 2, 2, start=start, finish=lambda path: {"result": {}})
    assert sorted(four) == ["default.old-1", "default.web-1"]  # IPv4: every workload, as before


def test_icmpv6_echo_request_leaves_the_checksum_to_the_kernel():
    packet = probe.echo_request(0x1234, 7, probe.ECHO_REQUEST6)
    assert packet[:8] == bytes([128, 0, 0, 0, 0x12, 0x34, 0, 7])


def test_a_dual_stack_probe_reads_the_ipv6_routes_and_each_workloads_ipv6_side(monkeypatch):
    monkeypatch.setattr(probe, "read_ip_forward", lambda netns, key=None: "0")
    calls = []
    addrs = '[{"ifname":"vec0","addr_info":[{"family":"inet","local":"192.168.100.100","prefixlen":24},'
    addrs += '{"family":"inet6","local":"fd00:100::100","prefixlen":64,"scope":"global"}]}]'

    def run(argv, stdin):
        calls.append(argv)
        if argv[0] == "birdc":
            return 0, BIRDC6, ""
        if argv[:3] == ["ip", "-6", "-json"]:
            return 0, '[{"dst":"fd00:17::40/122","gateway":"fd00:100::101","dev":"vec0","protocol":"80","flags":[]}]', ""
        if argv[:3] == ["ip", "-json", "-batch"]:
            return 0, addrs + "\n[]\n", ""
        if "-6" in argv:
            return 0, json.dumps([{"dst": "default", "gateway": naming.GATEWAY6, "dev": "eth0", "flags": []}]), ""
        return 0, '[{"ifname":"eth0","addr_info":[{"family":"inet6","local":"fd00:17::1","prefixlen":128,"scope":"global"}]}]\n[]\n[]\n', ""

    workloads = [{"id": "default.web-1", "ip": "172.17.0.1", "ipv6": "fd00:17::1"}, {"id": "default.old-1", "ip": "172.17.0.2", "ipv6": None}]
    result = probe.probe(
        "192.168.100.100", workloads, [], "/run/bird/bird.ctl", ping=False, run=run, node_ip6="fd00:100::100", bgp_neighbors6=["fd00:100::101"]
    )
    assert (result["underlay_device6"], result["bgp_expected6"], result["pings6"]) == ("vec0", ["fd00:100::101"], {})
    assert result["routes6"][0]["gateway"] == "fd00:100::101"
    assert result["workloads"]["default.web-1"]["addresses6"] == ["fd00:17::1/128"]
    assert result["workloads"]["default.web-1"]["ip6_forward"] == "0"
    assert "routes6" not in result["workloads"]["default.old-1"]  # no IPv6 address: no IPv6 reads
    assert sum("-6" in argv for argv in calls) == 2  # the host's IPv6 routes, web-1's
    four = probe.probe("192.168.100.100", workloads, [], "/run/bird/bird.ctl", ping=False, run=run)
    assert not {"routes6", "pings6", "node_ip6"} & set(four)


def test_replies_queued_when_a_starved_pinger_wakes_after_its_deadline_still_count(monkeypatch):
    """A pinger given no CPU until after its deadline (a loaded one-CPU guest) finds the replies that
    arrived meanwhile queued on its socket: each counts, not only the one read before the loop ends.
    Sockets: UDP on loopback standing in for the raw ICMP socket (replies from 127.0.0.1 and .2)."""
    import socket
    import struct

    ident = 0x4242
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    senders = []
    clock = iter([0.0, 0.0, 0.0] + [10.0] * 50)  # start, loop test, round; then asleep past the deadline
    monkeypatch.setattr(probe.time, "monotonic", lambda: next(clock))
    targets = ["127.0.0.1", "127.0.0.2"]
    try:
        for n, source in enumerate(targets):
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sender.bind((source, 0))
            header = bytes([0x45]) + bytes(19)  # what a raw IPv4 socket reads first
            sender.sendto(header + struct.pack("!BBHHH", probe.ECHO_REPLY, 0, 0, ident, n), receiver.getsockname())
            senders.append(sender)
        socks = {receiver: (probe.ECHO_REQUEST, probe.ECHO_REPLY, True)}
        found = probe._ping_rounds(targets, 1, 0.05, ident, socks, {socket.AF_INET: receiver})
    finally:
        for sock in [receiver, *senders]:
            sock.close()
    assert all(rtt is not None for rtt in found.values()), found
