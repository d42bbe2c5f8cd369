# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""IPv6 in the host firewall, in real namespaces: natOutgoing of an IPv6 pool with ip6tables-legacy, and
IPv6 anti-spoofing with both backends (issue 17, firewall slice).

The topology of conftest (hosts a, b, c behind a router) with the IPv6 underlay of test_dualstack_netns:
a fd00:100::100/64, b fd00:100::101/64, the router fd00:100::1 forwarding, "outside" 2001:db8:ffff::1 on the
router's lo. Every name starts with ``l3tfw6-<run>-``.
"""

from __future__ import annotations

import json
import os
import re
import select
import sys
import time

import pytest

from ansible_collections.l3.calico.plugins.module_utils import firewall
from tests.support.firewall_backends import firewall_backends

from .conftest import PYTHONPATH, V6, Topology, _missing, sh

pytestmark = pytest.mark.netns

PREFIX = "l3tfw6-"
OUTSIDE6 = "2001:db8:ffff::1"
HOST_VETH_LL = "fe80::ecee:eeff:feee:eeee"  # the host veth's link-local (MAC ee:ee:ee:ee:ee:ee), the workloads' gateway

POOLS = {"v4": {"cidr": "10.65.0.0/16", "nat_outgoing": False}}
POOLS6 = {"v6": {"cidr": "fd00:65::/48", "nat_outgoing": True}, "other": {"cidr": "fd00:66::/48", "nat_outgoing": False}}
POOLS6_NO_NAT = {name: dict(pool, nat_outgoing=False) for name, pool in POOLS6.items()}


@pytest.fixture
def topo6():
    missing = _missing()
    if missing:
        pytest.skip(missing)
    topology = Topology(PREFIX)
    try:
        topology.build()
        topology.add_ipv6(f"addr add {OUTSIDE6}/128 dev lo")
        yield topology
    finally:
        topology.cleanup()


SERVER6 = r"""
import socket, sys
kind, port = sys.argv[1], int(sys.argv[2])
if kind == "tcp":
    s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port)); s.listen(16); print("ready", flush=True)
    while True:
        c, peer = s.accept(); c.sendall(peer[0].encode()); c.close()
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::", port)); print("ready", flush=True)
while True:
    data, peer = s.recvfrom(2048); print(data.decode(), peer[0], flush=True)
"""


def serve(topo: Topology, ns: str, kind: str, port: int):
    child = topo.spawn(ns, f"import sys; sys.argv[1:] = [{kind!r}, {str(port)!r}]\n" + SERVER6)
    assert child.stdout.readline().strip() == "ready"
    return child


def tcp(topo: Topology, ns: str, address: str, port: int, timeout: float = 3) -> str | None:
    """The peer address the server saw, or None when the connection failed."""
    code = f"import socket\ns=socket.socket(socket.AF_INET6); s.settimeout({timeout})\ns.connect(({address!r},{port})); print(s.recv(64).decode())"
    proc = topo.nsexec(ns, sys.executable, "-c", code, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def udp6(topo: Topology, ns: str, address: str, port: int, payload: str, source: str | None = None) -> None:
    """One datagram; ``source`` any address (IPV6_TRANSPARENT, 75: bind to an address that is not ours)."""
    code = (
        "import socket\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\n"
        + (f"s.setsockopt(socket.IPPROTO_IPV6, 75, 1); s.bind(({source!r},0))\n" if source else "")
        + f"s.sendto({payload!r}.encode(),({address!r},{port}))"
    )
    topo.nsexec(ns, sys.executable, "-c", code)


def received(child, timeout: float = 1.0) -> dict:
    """Datagrams the UDP server printed since the last call: {payload: source seen}."""
    fd, data = child.stdout.fileno(), b""
    while select.select([fd], [], [], timeout)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
        timeout = 0.3
    return dict(line.split() for line in data.decode().splitlines())


def ping6(topo: Topology, ns: str, address: str) -> bool:
    return topo.nsexec(ns, "ping", "-6", "-c", "1", "-W", "2", address, check=False).returncode == 0


def listing6(topo: Topology, key: str, backend: str) -> str:
    """Our IPv6 objects as the kernel lists them (no counters)."""
    host = topo.host(key)
    if backend == "nftables":
        return topo.nsexec(host, "nft", "-s", "list", "ruleset", "ip6").stdout
    saved = topo.nsexec(host, "ip6tables-legacy-save").stdout
    return "\n".join(re.sub(r" \[\d+:\d+\]$", "", line) for line in saved.splitlines() if not line.startswith("#"))


def counters6(topo: Topology, key: str, backend: str) -> dict:
    """Packets of the IPv6 anti-spoofing rules: ``drop`` (every backend) and ``unspecified`` (iptables: the :: RETURN)."""
    host = topo.host(key)
    if backend == "nftables":
        chain = topo.nsexec(host, "nft", "list", "chain", "ip6", "l3calico", "antispoof").stdout
        (drop,) = re.findall(r"ip6 saddr != \{ ::, fe80::/10 \}.* counter packets (\d+) bytes \d+ drop", chain)
        return {"drop": int(drop)}
    saved = topo.nsexec(host, "ip6tables-legacy-save", "-c", "-t", "mangle").stdout
    (drop,) = re.findall(r"^\[(\d+):\d+\] -A L3CALICO-ANTISPOOF -i cali\+ -j DROP$", saved, re.M)
    (unspecified,) = re.findall(r"^\[(\d+):\d+\] -A L3CALICO-ANTISPOOF -s ::/128 -i cali\+ -j RETURN$", saved, re.M)
    return {"drop": int(drop), "unspecified": int(unspecified)}


REMOVE_CODE = r"""
import json, sys
from ansible_collections.l3.calico.plugins.module_utils import firewall
plan = firewall.remove(state_file=sys.argv[1], check_mode=sys.argv[2] == "check")
print(json.dumps({"changed": plan.changed, "changes": plan.changes, "backend": plan.backend}))
"""


def remove(topo: Topology, key: str, state: str, check_mode: bool = False) -> dict:
    proc = topo.nsexec(topo.host(key), "env", f"PYTHONPATH={PYTHONPATH}", sys.executable, "-c", REMOVE_CODE, state, "check" if check_mode else "apply")
    return json.loads(proc.stdout)


def wait_no_tentative(topo: Topology, ns: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sh("ip", "-n", ns, "-6", "addr", "show", "tentative").stdout.strip():
        time.sleep(0.1)


def needs_ip6tables():
    ok, why = firewall.ip6tables_usable()
    if not ok or not firewall.iptables_usable()[0]:
        pytest.skip(f"needs ip6tables-legacy and iptables-legacy (Debian package iptables): {why or firewall.iptables_usable()[1]}")


def test_ipv6_nat_outgoing_with_ip6tables_legacy(topo6, tmp_path):
    """ip6tables-legacy: an IPv6 nat pool's workload reaches the outside from the host's IPv6 address, another
    pool keeps its source; no-op, check mode, the pool's natOutgoing off (the nat chain goes), removal."""
    needs_ip6tables()
    topo = topo6
    a_items = [{"name": "web-1", "ip": "10.65.0.1", "ipv6": "fd00:65::1"}]
    b_items = [{"name": "db-1", "ip": "10.65.0.65", "ipv6": "fd00:66::41"}]
    assert topo.workloads("a", a_items, tmp_path)["ok"] and topo.workloads("b", b_items, tmp_path)["ok"]
    topo.ip(topo.host("a"), "route add fd00:66::40/122 via fd00:100::101")
    topo.ip(topo.host("b"), "route add fd00:65::/122 via fd00:100::100")
    web1, db1 = topo.netns_prefix("a") + "default.web-1", topo.netns_prefix("b") + "default.db-1"
    serve(topo, topo.router, "tcp", 7010)
    serve(topo, db1, "tcp", 7011)
    # Without the rules the router cannot answer (no route back to the pool): the test can fail.
    assert tcp(topo, web1, OUTSIDE6, 7010, timeout=2) is None

    state = str(tmp_path / "fw-a.json")
    kwargs = dict(pools=POOLS, workloads=a_items, pools6=POOLS6, node_addresses6=[V6["a"], V6["b"]], state_file=state, backend="iptables")
    done = topo.converge("a", "firewall", **kwargs)
    assert done["ok"] and "ip6tables-legacy nat chain L3CALICO-NAT-OUTGOING created" in done["changes"], done
    assert tcp(topo, web1, OUTSIDE6, 7010) == V6["a"]  # masqueraded to the host's IPv6 address
    assert tcp(topo, web1, "fd00:66::41", 7011) == "fd00:65::1"  # another pool: the source kept
    assert tcp(topo, topo.host("a"), OUTSIDE6, 7010) == V6["a"]  # the host's own traffic as it was
    listing = listing6(topo, "a", "iptables")
    assert "-A POSTROUTING -j L3CALICO-NAT-OUTGOING" in listing and "-A L3CALICO-NAT-OUTGOING -s fd00:65::/48 -j MASQUERADE --random-fully" in listing

    again = topo.converge("a", "firewall", **kwargs)
    assert again["ok"] and not again["changed"] and again["ip6tables_script"] == "", again
    assert listing6(topo, "a", "iptables") == listing

    off = dict(kwargs, pools6=POOLS6_NO_NAT)
    check = topo.converge("a", "firewall", check_mode=True, **off)
    assert check["ok"] and check["changes"] == ["ip6tables-legacy nat chain L3CALICO-NAT-OUTGOING removed (no IPv6 pool with natOutgoing)"], check
    assert listing6(topo, "a", "iptables") == listing
    assert topo.converge("a", "firewall", **off)["changed"]
    now = listing6(topo, "a", "iptables")
    assert "L3CALICO-NAT-OUTGOING" not in now and "-A PREROUTING -j L3CALICO-ANTISPOOF" in now  # anti-spoofing stays
    assert tcp(topo, web1, OUTSIDE6, 7010, timeout=2) is None  # not NATed any more
    assert not topo.converge("a", "firewall", **off)["changed"]

    assert remove(topo, "a", state, check_mode=True)["changed"] and listing6(topo, "a", "iptables") == now
    gone = remove(topo, "a", state)
    assert gone["changed"] and "ip6tables-legacy mangle chain L3CALICO-ANTISPOOF removed (and its jump from PREROUTING)" in gone["changes"], gone
    assert "L3CALICO" not in listing6(topo, "a", "iptables") and "L3CALICO" not in topo.nsexec(topo.host("a"), "iptables-legacy-save").stdout
    assert not remove(topo, "a", state)["changed"]


@pytest.mark.parametrize("backend", firewall_backends())
def test_ipv6_anti_spoofing(topo6, tmp_path, backend):
    """A forged IPv6 source from a workload is dropped, its own address and link-local ones pass, neighbour
    discovery works, duplicate address detection (source ::) passes; an IPv4-only workload sends no global
    IPv6 source; TCP to a node's IPv6 BGP port is closed; no-op; removal."""
    if backend == "iptables":
        needs_ip6tables()
    topo = topo6
    items = [{"name": "web-1", "ip": "10.65.0.1", "ipv6": "fd00:65::1"}, {"name": "old-1", "ip": "10.65.0.2"}]
    assert topo.workloads("a", items, tmp_path, rp_filter=0)["ok"]
    web1, old1 = (topo.netns_prefix("a") + "default." + name for name in ("web-1", "old-1"))
    # The IPv4-only workload gets an IPv6 route by hand, as a workload that tries to use IPv6 anyway.
    topo.ip(old1, f"route add ::/0 via {HOST_VETH_LL} dev eth0")
    server = serve(topo, topo.router, "udp", 7020)
    serve(topo, topo.host("a"), "tcp", 179)

    def sends(tag):
        udp6(topo, web1, OUTSIDE6, 7020, f"own{tag}")
        udp6(topo, web1, OUTSIDE6, 7020, f"forged{tag}", source="fd00:65::99")  # another address of the pool
        udp6(topo, web1, OUTSIDE6, 7020, f"outside{tag}", source="2001:db8:1::1")  # outside every pool
        udp6(topo, old1, OUTSIDE6, 7020, f"v4only{tag}", source="fd00:65::1")  # web-1's address, from old-1
        return received(server)

    # The underlay's neighbours and link-local addresses settle first, on both workloads' paths (the first
    # datagrams wait for them; a CI run under load lost old-1's first one).
    deadline, warmed = time.monotonic() + 15, set()
    while time.monotonic() < deadline and not {"warm", "warm-old"} <= warmed:
        udp6(topo, web1, OUTSIDE6, 7020, "warm")
        udp6(topo, old1, OUTSIDE6, 7020, "warm-old", source="fd00:65::1")
        warmed |= set(received(server, 0.5))
    received(server)
    # Without the rules every forged source gets through (the test can fail), and BGP is reachable.
    assert sends(0) == {"own0": "fd00:65::1", "forged0": "fd00:65::99", "outside0": "2001:db8:1::1", "v4only0": "fd00:65::1"}
    assert tcp(topo, web1, V6["a"], 179) == "fd00:65::1"

    state = str(tmp_path / "fw-a.json")
    kwargs = dict(pools=POOLS, workloads=items, pools6=POOLS6_NO_NAT, node_addresses6=[V6["a"], V6["b"]], state_file=state, backend=backend)
    done = topo.converge("a", "firewall", **kwargs)
    assert done["ok"] and done["changed"], done
    assert sends(1) == {"own1": "fd00:65::1"}
    assert tcp(topo, web1, V6["a"], 179, timeout=2) is None  # the host's BGP port over IPv6: closed

    # Link-local sources and neighbour discovery: the caches flushed, both sides resolve each other again.
    for ns in (web1, old1, topo.host("a")):
        sh("ip", "-n", ns, "-6", "neigh", "flush", "all")
    assert ping6(topo, web1, f"{HOST_VETH_LL}%eth0")  # from web-1's fe80:: address
    assert ping6(topo, web1, V6["a"])  # from its own address, the gateway resolved by NDP
    assert ping6(topo, old1, f"{HOST_VETH_LL}%eth0")  # an IPv4-only workload keeps link-local IPv6
    # Duplicate address detection: neighbour solicitations from :: pass (not counted as drops).
    before = counters6(topo, "a", backend)
    topo.nsexec(old1, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=1", "net.ipv6.conf.eth0.dad_transmits=2")
    topo.ip(old1, "addr add fd00:99::5/128 dev eth0")
    wait_no_tentative(topo, old1)
    after = counters6(topo, "a", backend)
    assert after["drop"] == before["drop"], (before, after)
    if backend == "iptables":
        assert after["unspecified"] > before["unspecified"], (before, after)  # the DAD probes were seen, and let through
    topo.ip(old1, "addr del fd00:99::5/128 dev eth0")
    assert sends(2) == {"own2": "fd00:65::1"}
    assert counters6(topo, "a", backend)["drop"] >= after["drop"] + 3

    listing = listing6(topo, "a", backend)
    again = topo.converge("a", "firewall", **kwargs)
    assert again["ok"] and not again["changed"], again
    assert listing6(topo, "a", backend) == listing

    gone = remove(topo, "a", state)
    assert gone["changed"], gone
    assert "l3calico" not in listing6(topo, "a", backend).lower()
    assert sends(3) == {"own3": "fd00:65::1", "forged3": "fd00:65::99", "outside3": "2001:db8:1::1", "v4only3": "fd00:65::1"}
