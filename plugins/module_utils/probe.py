# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Observe a node's Calico data plane, read-only, in a handful of processes.

What ``l3.calico.probe`` returns and ``verify.py`` judges: BIRD's protocols, the main routing
table, the underlay device, every local workload's addresses, routes and neighbours, and a ping
from every local workload to every target (all started at once, so a whole matrix row costs
about one ping timeout).

Plain Python: the module passes a ``run`` callable ``(argv, stdin) -> (rc, stdout, stderr)``;
unit tests pass a fake one.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import Callable, Iterable

from ansible_collections.l3.calico.plugins.module_utils import naming

Runner = Callable[[list, str], tuple]

RTT_RE = re.compile(r"= [\d.]+/([\d.]+)/")


def run_command(argv: list, stdin: str = "") -> tuple:
    """Default runner: one process, text in and out."""
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False,
                          env={"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    return proc.returncode, proc.stdout, proc.stderr


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
    """BGP protocols of ``birdc show protocols all``: name, state, BGP state, neighbour address."""
    protocols, current = [], None
    for line in text.splitlines():
        if not line.strip() or line.startswith(("BIRD ", "Name ")):
            continue
        if not line[0].isspace():
            fields = line.split()
            current = None
            if len(fields) >= 4 and fields[1] == "BGP":
                current = {"name": fields[0], "state": fields[3], "bgp_state": "", "neighbor": "",
                           "info": " ".join(fields[5:])}
                protocols.append(current)
            continue
        if current is None:
            continue
        key, _, value = line.strip().partition(":")
        if key == "BGP state":
            current["bgp_state"] = value.strip()
        elif key == "Neighbor address":
            current["neighbor"] = value.strip().split("%")[0]
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


def underlay_device(addrs: list, node_ip: str) -> str:
    """The interface holding the node's underlay address ('' if none)."""
    for link in addrs:
        for info in link.get("addr_info", []):
            if info.get("family") == "inet" and info.get("local") == node_ip:
                return link.get("ifname", "")
    return ""


def workload_view(docs: list) -> dict:
    """A workload namespace from ``ip -json -batch`` output of addr, route, neigh."""
    addrs, routes, neighbours = (docs + [[], [], []])[:3]
    return {
        "addresses": sorted(
            f"{i['local']}/{i['prefixlen']}"
            for link in addrs if link.get("ifname") != "lo"
            for i in link.get("addr_info", []) if i.get("family") == "inet"
        ),
        "interfaces": sorted(link.get("ifname", "") for link in addrs if link.get("ifname") != "lo"),
        "routes": [simplify_route(r) for r in routes],
        "neighbours": [
            {"dst": n.get("dst", ""), "lladdr": n.get("lladdr", ""), "dev": n.get("dev", ""),
             "state": (n.get("state") or [""])[0]}
            for n in neighbours
        ],
    }


def ping_argv(netns: str, target: str, count: int, timeout: int) -> list:
    return ["nsenter", f"--net=/run/netns/{netns}", "ping", "-n", "-q", "-c", str(count), "-i", "0.2",
            "-W", str(timeout), target]


def ping_matrix(sources: Iterable[dict], targets: list, count: int, timeout: int,
                spawn=subprocess.Popen) -> dict:
    """Ping every target from every source at once; {src id: {dst id: {ok, rtt_ms}}}."""
    running = []
    for src in sources:
        netns = naming.netns_name(src["id"])
        for dst in targets:
            if dst["id"] == src["id"]:
                continue
            proc = spawn(ping_argv(netns, dst["ip"], count, timeout), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"})
            running.append((src["id"], dst["id"], proc))
    matrix: dict = {}
    for src_id, dst_id, proc in running:
        out, _ = proc.communicate()
        match = RTT_RE.search(out or "")
        matrix.setdefault(src_id, {})[dst_id] = {
            "ok": proc.returncode == 0,
            "rtt_ms": float(match.group(1)) if match else None,
        }
    return matrix


def read_bgp(bird_socket: str, run: Runner) -> tuple:
    rc, out, err = run(["birdc", "-s", bird_socket, "show", "protocols", "all"], "")
    return (parse_bird_protocols(out), "") if rc == 0 else ([], (err or out).strip())


def wait_bgp(bird_socket: str, neighbors: list, timeout: float, run: Runner, sleep=time.sleep,
             clock=time.monotonic) -> tuple:
    """BIRD's protocols once every neighbour is Established, or as they are at the timeout."""
    deadline = clock() + timeout
    while True:
        protocols, error = read_bgp(bird_socket, run)
        states = {p["neighbor"]: p["bgp_state"] for p in protocols}
        if all(states.get(n) == "Established" for n in neighbors) or clock() >= deadline:
            return protocols, error
        sleep(0.5)


def probe(node_ip: str, workloads: list, targets: list, bird_socket: str, ping: bool = True,
          ping_count: int = 2, ping_timeout: int = 2, bgp_neighbors: list | None = None, bgp_wait: float = 0,
          run: Runner = run_command, spawn=subprocess.Popen) -> dict:
    """Everything verify needs from one node."""
    result: dict = {"node_ip": node_ip}

    # First BGP: right after a converge the sessions may still be coming up (seconds).
    result["bgp_expected"] = list(bgp_neighbors or [])
    result["bgp"], result["bird_error"] = wait_bgp(bird_socket, result["bgp_expected"], bgp_wait, run)

    rc, out, err = run(["ip", "-json", "-batch", "-"], "address show\nroute show table main\n")
    docs = parse_json_stream(out) if rc == 0 else [[], []]
    result["underlay_device"] = underlay_device(docs[0], node_ip)
    result["routes"] = [simplify_route(r) for r in docs[1]]
    if rc != 0:
        result["routes_error"] = err.strip()

    result["pings"] = ping_matrix(workloads, targets, ping_count, ping_timeout, spawn) if ping else {}

    # Read the workloads after the pings, so the gateway neighbour is resolved.
    views = {}
    for wl in workloads:
        netns = naming.netns_name(wl["id"])
        rc, out, err = run(["ip", "-n", netns, "-json", "-batch", "-"],
                           "address show\nroute show table main\nneigh show\n")
        view = workload_view(parse_json_stream(out)) if rc == 0 else workload_view([])
        view.update({"netns": netns, "exists": rc == 0, "error": "" if rc == 0 else err.strip(),
                     "veth": naming.veth_name(wl["id"])})
        views[wl["id"]] = view
    result["workloads"] = views
    return result
