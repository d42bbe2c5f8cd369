# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Unit tests of plugins/module_utils/bird_status.py on output captured from BIRD 2.0.12."""

from __future__ import annotations

import pytest

from ansible_collections.l3.calico.plugins.module_utils.bird_status import (
    BirdStatusError,
    parse_netstat,
    parse_protocols,
    problems,
    wait_established,
)

SHOW_PROTOCOLS_ALL = """BIRD 2.0.12 ready.
Access restricted
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     2026-11-25 16:28:32

calico_blocks Static     master4    up     2026-11-25 16:28:32
  Channel ipv4
    State:          UP
    Table:          master4
    Preference:     200
    Input filter:   ACCEPT
    Output filter:  REJECT
    Routes:         1 imported, 0 exported, 1 preferred
    Route change stats:     received   rejected   filtered    ignored   accepted
      Import updates:              1          0          0          0          1
      Import withdraws:            0          0        ---          0          0
      Export updates:              0          0          0        ---          0
      Export withdraws:            0        ---        ---        ---          0

Mesh_192_168_100_12 BGP        ---        up     2026-11-25 16:28:34  Established
  BGP state:          Established
    Neighbor address: 192.168.100.12
    Neighbor AS:      64512
    Local AS:         64512
    Neighbor ID:      192.168.100.12
  Channel ipv4
    State:          UP
    Table:          master4
    Preference:     100
    Input filter:   calico_import_from_peers
    Output filter:  calico_export_to_peers
    Routes:         2 imported, 2 filtered, 1 exported, 2 preferred
    Route change stats:     received   rejected   filtered    ignored   accepted
      Import updates:              4          0          2          0          2
      Import withdraws:            0          0        ---          0          0
      Export updates:              5          2          0        ---          3
      Export withdraws:            0        ---        ---        ---          0

Node_192_168_100_51 BGP        ---        start  2026-11-25 16:28:32  Connect
  BGP state:          Connect
    Neighbor address: 192.168.100.51
    Neighbor AS:      65098
    Local AS:         64512
  Channel ipv4
    State:          DOWN
    Table:          master4
    Preference:     100
    Input filter:   calico_import_from_peers
    Output filter:  calico_export_to_peers

Global_10_0_0_1 BGP        ---        start  2026-11-25 16:28:32  Active        Socket: Connection refused
  BGP state:          Active
    Neighbor address: 10.0.0.1
    Neighbor AS:      65000
    Local AS:         64512
    Last error:       Socket: Connection refused
"""

NETSTAT = """TcpExt: SyncookiesSent TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure
TcpExt: 0 0 0 7
IpExt: InNoRoutes
IpExt: 0
"""


def test_parse_protocols():
    protocols = {p["name"]: p for p in parse_protocols(SHOW_PROTOCOLS_ALL)}
    assert list(protocols) == [
        "device1",
        "calico_blocks",
        "Mesh_192_168_100_12",
        "Node_192_168_100_51",
        "Global_10_0_0_1",
    ]
    mesh = protocols["Mesh_192_168_100_12"]
    assert mesh["established"] and mesh["since"] == "2026-11-25 16:28:34" and mesh["info"] == "Established"
    assert mesh["neighbor_address"] == "192.168.100.12" and mesh["neighbor_as"] == "64512"
    channel = mesh["channels"]["ipv4"]
    assert channel["routes"] == {"imported": 2, "filtered": 2, "exported": 1, "preferred": 2}
    assert channel["import_updates"] == {"received": 4, "rejected": 0, "filtered": 2, "ignored": 0, "accepted": 2}
    assert channel["input_filter"] == "calico_import_from_peers"
    assert protocols["Node_192_168_100_51"]["bgp_state"] == "Connect"
    assert not protocols["Node_192_168_100_51"]["established"]
    assert protocols["Global_10_0_0_1"]["last_error"] == "Socket: Connection refused"
    assert protocols["device1"]["since"] == "2026-11-25 16:28:32" and "established" not in protocols["device1"]


def test_parse_short_time_format():
    text = "Name Proto Table State Since Info\nMesh_x     BGP        ---        up     16:28:34.501  Established\n"
    assert parse_protocols(text)[0]["since"] == "16:28:34.501"


def test_parse_netstat():
    assert parse_netstat(NETSTAT) == {"failure": 7, "not_found": 0, "unexpected": 0}


def test_problems_name_the_md5_mismatch():
    found = problems(parse_protocols(SHOW_PROTOCOLS_ALL), {"failure": 7, "not_found": 0, "unexpected": 0})
    assert len(found) == 2
    assert found[0].startswith("BGP session Node_192_168_100_51 to 192.168.100.51 (AS 65098) is Connect")
    assert "TcpExtTCPMD5Failure" in found[0] and "passwords of the two ends differ" in found[0]
    assert "last error: Socket: Connection refused" in found[1]


def test_problems_without_md5_counters():
    found = problems(parse_protocols(SHOW_PROTOCOLS_ALL), {"failure": 0, "not_found": 3, "unexpected": 0})
    assert "this end has a password, the peer none" in found[0]
    found = problems(parse_protocols(SHOW_PROTOCOLS_ALL), {"failure": 0, "not_found": 0, "unexpected": 0})
    assert "no TCP connection" in found[0]


# Captured from BIRD 2.0.12 in tests/integration/dataplane/test_bgp_ipv6_netns.py (node a; c across the router),
# with a second path to one net added as BIRD prints it (add paths: the net left out) and a multipath next hop.
SHOW_ROUTE_MASTER6 = """BIRD 2.0.12 ready.
Access restricted
Table master6:
::/0                 unicast [kernel6 05:45:46.414] * (10)
\tvia fd00:100::1 on up0
fd00:11::/122        blackhole [calico_blocks6 05:45:46.367] * (200)
fd00:10::40/122      unicast [Mesh_fd00_100__101 05:45:48.100] * (100) [i]
\tvia fd00:100::101 on up0
                     unicast [RR_fd00_100__102 05:45:49.100] (100) [i]
\tvia fd00:100::102 on up0
fd00:10::80/122      unicast [Mesh_fd00_200__101 05:45:48.232 from fd00:200::101] * (100/?) [i]
\tvia fd00:100::1 on up0 weight 1
\tvia fd00:100::2 on up1 weight 1
fd00:100::/64        unicast [direct6 05:45:46.414] * (240)
\tdev up0
"""


def test_routes_of_show_route():
    from ansible_collections.l3.calico.plugins.module_utils.bird_status import parse_routes

    routes = parse_routes(SHOW_ROUTE_MASTER6)
    assert list(routes) == ["::/0", "fd00:11::/122", "fd00:10::40/122", "fd00:10::80/122", "fd00:100::/64"]
    assert routes["fd00:10::40/122"] == [
        {"protocol": "Mesh_fd00_100__101", "type": "unicast", "primary": True, "via": ["fd00:100::101"], "dev": ["up0"]},
        {"protocol": "RR_fd00_100__102", "type": "unicast", "primary": False, "via": ["fd00:100::102"], "dev": ["up0"]},
    ]
    assert routes["fd00:10::80/122"][0]["via"] == ["fd00:100::1", "fd00:100::2"] and routes["fd00:10::80/122"][0]["dev"] == ["up0", "up1"]
    assert routes["fd00:11::/122"] == [{"protocol": "calico_blocks6", "type": "blackhole", "primary": True, "via": [], "dev": []}]
    assert routes["fd00:100::/64"][0]["dev"] == ["up0"] and routes["fd00:100::/64"][0]["via"] == []
    assert parse_routes("BIRD 2.0.12 ready.\nAccess restricted\nTable master4:\n") == {}


def test_the_family_of_a_session_is_its_channel():
    from ansible_collections.l3.calico.plugins.module_utils.bird_status import family

    by_name = {p["name"]: p for p in parse_protocols(SHOW_PROTOCOLS_ALL)}
    assert family(by_name["Mesh_192_168_100_12"]) == 4
    assert family({"name": "Mesh_fd00__2", "channels": {"ipv6": {}}, "neighbor_address": "fd00::2"}) == 6
    assert family({"name": "Global_2001_db8__1", "channels": {}, "neighbor_address": "2001:db8::1"}) == 6  # no channel shown


# The same BIRD a little later: both sessions up.
ALL_UP = (
    SHOW_PROTOCOLS_ALL.replace("start  2026-11-25 16:28:32  Connect", "up     2026-11-25 16:29:00  Established")
    .replace("BGP state:          Connect", "BGP state:          Established")
    .replace("start  2026-11-25 16:28:32  Active        Socket: Connection refused", "up     2026-11-25 16:29:00  Established")
    .replace("BGP state:          Active", "BGP state:          Established")
)


class FakeBird:
    """birdc answers in turn (the last one again and again), on a clock that only sleeping moves."""

    def __init__(self, *answers, rc=0):
        self.answers, self.rc, self.now, self.calls, self.slept = list(answers), rc, 100.0, [], []

    def run(self, argv, stdin=None):
        self.calls.append(list(argv))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return (self.rc, answer, "" if self.rc == 0 else "Unable to connect to server control socket (/x.ctl): No such file or directory")

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds

    def wait(self, tmp_path, timeout):
        netstat = tmp_path / "netstat"
        netstat.write_text(NETSTAT)
        return wait_established(self.run, "/usr/sbin/birdc", "/x.ctl", timeout, str(netstat), sleep=self.sleep, clock=lambda: self.now)


def test_wait_established_until_every_session_is_up(tmp_path):
    bird = FakeBird(SHOW_PROTOCOLS_ALL, SHOW_PROTOCOLS_ALL, ALL_UP)
    found = bird.wait(tmp_path, 30)
    assert found["not_established"] == [] and found["problems"] == []
    assert found["established"] == ["Mesh_192_168_100_12", "Node_192_168_100_51", "Global_10_0_0_1"]
    assert found["waited"] == 2.0 and bird.slept == [1.0, 1.0]
    assert bird.calls[0] == ["/usr/sbin/birdc", "-r", "-s", "/x.ctl", "show", "protocols", "all"]  # restricted: read-only


def test_wait_established_gives_up_after_the_timeout_naming_the_cause(tmp_path):
    bird = FakeBird(SHOW_PROTOCOLS_ALL)
    found = bird.wait(tmp_path, 2.5)
    assert found["not_established"] == ["Node_192_168_100_51", "Global_10_0_0_1"]
    assert found["sessions"]["Node_192_168_100_51"] == "Connect"
    assert "TcpExtTCPMD5Failure" in found["problems"][0]
    assert found["waited"] == 2.5 and bird.slept == [1.0, 1.0, 0.5]  # never past the timeout


def test_wait_established_reads_once_with_no_timeout(tmp_path):
    bird = FakeBird(SHOW_PROTOCOLS_ALL)
    assert bird.wait(tmp_path, 0)["waited"] == 0 and bird.slept == [] and len(bird.calls) == 1


def test_wait_established_fails_with_birdc_s_words(tmp_path):
    with pytest.raises(BirdStatusError, match=r"birdc on /x.ctl failed: Unable to connect to server control socket") as failed:
        FakeBird("", rc=1).wait(tmp_path, 5)
    assert failed.value.details["rc"] == 1
    with pytest.raises(BirdStatusError, match=r"cannot read .*/nothing"):
        wait_established(FakeBird(ALL_UP).run, "birdc", "/x.ctl", 1, str(tmp_path / "nothing"))
