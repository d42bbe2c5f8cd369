# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""l3.calico.workloads against real namespaces: the data plane works, is exact, idempotent, safe."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from ansible_collections.l3.calico.plugins.module_utils import naming

from .conftest import HOSTS, PYTHONPATH, ROOT, ping, start_server, tcp_peer

pytestmark = pytest.mark.netns

W1 = {"name": "web-1", "ip": "172.17.72.1"}
W2 = {"name": "web-2", "ip": "172.17.72.2"}
DB = {"name": "db-1", "namespace": "blue", "ip": "172.18.9.1", "pool": "blue-vxlan", "borrowed": False}


def ns_of(topo, key, item):
    return topo.netns_prefix(key) + naming.workload_id(item.get("namespace", "default"), item["name"])


def veth_of(item):
    return naming.veth_name(naming.workload_id(item.get("namespace", "default"), item["name"]))


def test_workloads_reach_each_other_and_the_host(topo, tmp_path):
    result = topo.workloads("a", [W1, W2, DB], tmp_path, mtu=1450)
    assert result["ok"], result
    assert sorted(result["create"]) == ["blue.db-1", "default.web-1", "default.web-2"]
    n1, n2, n3 = (ns_of(topo, "a", w) for w in (W1, W2, DB))

    # ping and TCP, workload <-> workload on the same host, and workload -> host
    assert ping(topo, n1, W2["ip"], count=2)
    assert ping(topo, n3, W1["ip"])
    assert ping(topo, n1, HOSTS["a"][0])
    start_server(topo, n2, "tcp", 8080)
    assert tcp_peer(topo, n1, W2["ip"], 8080) == W1["ip"]  # routed, not NATed
    start_server(topo, topo.host("a"), "tcp", 8081)
    assert tcp_peer(topo, n1, HOSTS["a"][0], 8081) == W1["ip"]
    assert ping(topo, topo.host("a"), W1["ip"])  # host -> workload

    # the gateway is answered by proxy ARP with the host veth's MAC
    neigh = topo.ip_json(n1, "neigh", "show", naming.GATEWAY)
    assert neigh and neigh[0]["lladdr"] == naming.HOST_VETH_MAC and neigh[0]["dev"] == "eth0"

    # exactly Calico's layout, inside and on the host
    links = {link["ifname"]: link for link in topo.ip_json(n1, "addr", "show")}
    assert [f"{a['local']}/{a['prefixlen']}" for a in links["eth0"]["addr_info"] if a["family"] == "inet"] == ["172.17.72.1/32"]
    assert links["eth0"]["mtu"] == 1450 and "UP" in links["lo"]["flags"]
    routes = topo.ip_json(n1, "route", "show")
    assert {"dst": "default", "gateway": naming.GATEWAY, "dev": "eth0", "flags": []} in routes
    assert {"dst": naming.GATEWAY, "dev": "eth0", "scope": "link", "flags": []} in routes
    host_links = {link["ifname"]: link for link in topo.ip_json(topo.host("a"), "addr", "show")}
    veth = host_links[veth_of(W1)]
    assert veth["address"] == naming.HOST_VETH_MAC and veth["mtu"] == 1450 and "UP" in veth["flags"]
    assert not [a for a in veth["addr_info"] if a["family"] == "inet"]
    host_routes = topo.ip_json(topo.host("a"), "route", "show", W1["ip"])
    assert host_routes == [{"dst": W1["ip"], "dev": veth_of(W1), "scope": "link", "flags": []}]
    sysctl = topo.nsexec(
        topo.host("a"),
        "sh",
        "-c",
        f"cd /proc/sys/net/ipv4; cat conf/{veth_of(W1)}/proxy_arp neigh/{veth_of(W1)}/proxy_delay "
        f"conf/{veth_of(W1)}/forwarding conf/{veth_of(W1)}/route_localnet conf/{veth_of(W1)}/rp_filter",
    ).stdout.split()
    assert sysctl == ["1", "0", "1", "1", "1"]
    assert topo.nsexec(host_ns := topo.host("a"), "cat", f"/proc/sys/net/ipv6/conf/{veth_of(W1)}/accept_ra").stdout == "0\n"
    assert topo.nsexec(n1, "cat", "/proc/sys/net/ipv4/ip_forward").stdout == "0\n"  # the workload is no router
    # one tx and one rx queue on each end, as Calico's CNI plugin makes them
    for ns, dev in ((host_ns, veth_of(W1)), (n1, "eth0")):
        detail = topo.ip_json(ns, "-d", "link", "show", "dev", dev)[0]
        assert (detail["num_tx_queues"], detail["num_rx_queues"]) == (1, 1)


def test_second_run_is_a_noop_and_check_mode_changes_nothing(topo, tmp_path):
    assert topo.workloads("a", [W1, W2], tmp_path)["changed"]
    again = topo.workloads("a", [W1, W2], tmp_path)
    assert again["ok"] and again["changed"] is False and not again["host_lines"] and not again["ns_ops"]

    before = topo.snapshot("a")
    # check mode with a creation, a removal and a change pending
    check = topo.workloads("a", [dict(W1, ip="172.17.72.9"), DB], tmp_path, mtu=1400, check_mode=True)
    assert check["ok"] and check["changed"]
    assert check["create"] == ["blue.db-1"] and check["remove"] == ["default.web-2"]
    assert "default.web-1" in check["update"]
    assert topo.snapshot("a") == before


def test_removal_takes_only_what_the_module_made(topo, tmp_path):
    assert topo.workloads("a", [W1, W2], tmp_path)["ok"]
    host = topo.host("a")
    foreign_ns = topo.netns_prefix("a") + "default.foreign"  # even with our prefix
    subprocess.run(["ip", "netns", "add", foreign_ns], check=True)
    topo.ip(host, "link add cali0000000000f type veth peer name foreign0", "link set foreign0 up", "route add 10.250.0.1/32 dev foreign0 scope link")

    result = topo.workloads("a", [W1], tmp_path)
    assert result["ok"] and result["remove"] == ["default.web-2"] and not result["create"]
    names = os.listdir("/run/netns")
    assert ns_of(topo, "a", W2) not in names and ns_of(topo, "a", W1) in names and foreign_ns in names
    links = {link["ifname"] for link in topo.ip_json(host, "link", "show")}
    assert veth_of(W2) not in links and {veth_of(W1), "cali0000000000f", "foreign0"} <= links
    assert topo.ip_json(host, "route", "show", W2["ip"]) == []
    assert topo.ip_json(host, "route", "show", "10.250.0.1")

    # A wanted name held by a foreign object is an error before anything changes.
    before = topo.snapshot("a")
    clash = topo.workloads("a", [W1, {"name": "foreign", "ip": "172.17.72.7"}], tmp_path)
    assert not clash["ok"] and "not created by l3.calico" in clash["error"] and foreign_ns in clash["error"]
    assert topo.snapshot("a") == before

    gone = topo.workloads("a", [], tmp_path)
    assert gone["remove"] == ["default.web-1"]
    assert foreign_ns in os.listdir("/run/netns")


def test_drift_is_repaired_in_place(topo, tmp_path):
    assert topo.workloads("a", [W1, W2], tmp_path, mtu=1450)["ok"]
    n1, host, veth = ns_of(topo, "a", W1), topo.host("a"), veth_of(W1)
    topo.ip(n1, "link set dev eth0 mtu 1300", "route del default", "addr add 172.17.99.9/32 dev eth0")
    topo.ip(host, f"route del {W1['ip']}/32")
    topo.nsexec(host, "sh", "-c", f"echo 0 > /proc/sys/net/ipv4/conf/{veth}/proxy_arp")
    topo.nsexec(n1, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")

    result = topo.workloads("a", [W1, W2], tmp_path, mtu=1450)
    assert result["ok"] and result["changed"] and list(result["update"]) == ["default.web-1"]
    reasons = " | ".join(result["update"]["default.web-1"])
    for expected in ("eth0 mtu 1300 -> 1450", "172.17.99.9/32 removed", "default via", "host route", "proxy_arp 0 -> 1", "ip_forward 1 -> 0 inside"):
        assert expected in reasons
    assert topo.nsexec(n1, "cat", "/proc/sys/net/ipv4/ip_forward").stdout == "0\n"
    assert ping(topo, n1, W2["ip"])
    assert topo.workloads("a", [W1, W2], tmp_path, mtu=1450)["changed"] is False


def test_bad_input_fails_before_any_change(topo, tmp_path):
    before = topo.snapshot("a")
    result = topo.workloads("a", [W1, dict(W2, ip=W1["ip"])], tmp_path)
    assert not result["ok"] and "172.17.72.1" in result["error"] and "workloads[1]" in result["error"]
    result = topo.workloads("a", [{"name": "Bad_Name", "ip": "172.17.72.5"}], tmp_path)
    assert not result["ok"] and "Bad_Name" in result["error"]
    assert topo.snapshot("a") == before


def test_the_ansible_module_check_diff_and_idempotence(topo, tmp_path):
    """The real module through ansible (check + diff, apply, no-op), inside host a."""
    args = json.dumps(
        {
            "workloads": [W1, DB],
            "mtu": 1450,
            "netns_prefix": topo.netns_prefix("a"),
            "state_file": str(tmp_path / "module.json"),
        }
    )
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOME=str(tmp_path / "ansible"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        PYTHONPATH=PYTHONPATH,
    )
    ansible = str(ROOT / ".venv" / "bin" / "ansible")

    def run(*extra):
        proc = subprocess.run(
            ["nsenter", f"--net=/run/netns/{topo.host('a')}", ansible, "localhost", "-c", "local", "-m", "l3.calico.workloads", "-a", args, *extra],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            check=False,
            timeout=120,
        )
        assert "=>" in proc.stdout, proc.stdout + proc.stderr
        shown, result = proc.stdout.split("=>", 1)
        return json.loads(result), shown

    before = topo.snapshot("a")
    checked, shown = run("--check", "--diff")
    assert checked["changed"] and sorted(checked["created"]) == ["blue.db-1", "default.web-1"]
    assert "+default.web-1: ip=172.17.72.1 mtu=1450" in shown  # the diff the user sees
    assert topo.snapshot("a") == before
    applied, _shown = run()
    assert applied["changed"] and applied["commands"] == 3  # one host batch + two namespace batches
    again, _shown = run()
    assert again["changed"] is False and again["commands"] == 0


def test_in_process_reader_sees_what_ip_json_shows(topo, tmp_path):
    """The rtnetlink reader used for workload namespaces agrees with `ip -json` field by field."""
    from ansible_collections.l3.calico.plugins.module_utils import rtnl

    assert topo.workloads("a", [W1], tmp_path, mtu=1400)["ok"]
    ns = ns_of(topo, "a", W1)
    topo.ip(ns, "addr add 10.9.9.9/24 dev eth0", "route add 10.5.0.0/24 via 10.6.6.6 dev eth0 onlink")
    links, routes = rtnl.read_netns(ns)
    shown = {link["ifname"]: link for link in topo.ip_json(ns, "addr", "show")}
    assert set(links) == set(shown)
    for name, link in links.items():
        assert (link["ifindex"], link["mtu"], link["address"]) == (shown[name]["ifindex"], shown[name]["mtu"], shown[name]["address"])
        assert ("UP" in link["flags"]) == ("UP" in shown[name]["flags"])
        assert link["addr_info"] == [
            {"family": "inet", "local": a["local"], "prefixlen": a["prefixlen"]} for a in shown[name]["addr_info"] if a["family"] == "inet"
        ]
    fields = ("dst", "gateway", "dev", "scope", "flags")
    assert sorted(tuple(r.get(f) for f in fields) for r in routes) == sorted(
        tuple(r.get(f) for f in fields) for r in topo.ip_json(ns, "route", "show", "table", "main")
    )


def test_many_workloads_create_their_namespaces_in_parallel_and_converge_exactly(topo, tmp_path):
    """Enough workloads for the host batch to create the namespaces in parallel `ip -batch` processes."""
    from ansible_collections.l3.calico.plugins.module_utils import workloads as wl

    items = [{"name": f"many-{i}", "ip": f"172.17.80.{i + 1}"} for i in range(wl.NETNS_SPLIT_MIN + 8)]
    created = topo.workloads("a", items, tmp_path, mtu=1450)
    assert created["ok"] and len(created["create"]) == len(items), created
    stages = wl.host_batches(created["host_lines"])
    assert [len(stage) for stage in stages] == ([wl.NETNS_WORKERS, 1] if wl.NETNS_WORKERS > 1 else [1])
    ours = [n for n in os.listdir("/run/netns") if n.startswith(topo.netns_prefix("a"))]
    assert len(ours) == len(items)
    first, last = ns_of(topo, "a", items[0]), ns_of(topo, "a", items[-1])
    assert ping(topo, first, items[-1]["ip"]) and ping(topo, last, items[0]["ip"])
    again = topo.workloads("a", items, tmp_path, mtu=1450)
    assert again["ok"] and again["changed"] is False
    assert topo.workloads("a", [], tmp_path)["ok"]
    assert not [n for n in os.listdir("/run/netns") if n.startswith(topo.netns_prefix("a"))]
