# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""probe: parsing BIRD and iproute2 output, waiting for sessions, the ping matrix."""

from __future__ import annotations

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
