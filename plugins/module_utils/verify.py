# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Judge what ``probe`` observed on every node against what the IPAM result promises.

Input: the registered ``calico_ipam_result`` (docs/architecture.md), the probe of every node,
optionally the flows captured on the lab router. Output: one report — every finding names the
host, the check, what was expected and what was found — plus the data the lab report draws
(sessions, routes, ping matrix, encapsulation per workload pair).

Expectations follow Calico:
- BGP: a full iBGP mesh unless ``peers`` (node -> peer addresses) says otherwise.
- The routes: every one ``IpamResult.expected_routes`` (module_utils/ipam_result.py) says the node
  must have, the same answer the tunnels module programs and the host audit checks. A node's own
  blocks are blackholes (not /32 blocks); a remote block (and a remote node's borrowed /32) is
  reached the way its pool says: VXLAN (Always, or CrossSubnet towards a node whose address is
  outside this node's subnet) via the remote VTEP on ``vxlan.calico`` onlink (programmed by the
  data plane), CrossSubnet VXLAN in the subnet via the remote node on the underlay; IPIP likewise
  via the remote node on ``tunl0`` onlink ``proto bird``; otherwise via the remote node on the
  underlay device ``proto bird`` in the subnet, via a router across subnets; nothing for a pool
  with ``disable_bgp_export``.
- Each local workload has a ``/32`` route on its host veth; inside, its ``IP/32``, a default
  route via 169.254.1.1 and that gateway's neighbour at ee:ee:ee:ee:ee:ee.
- Every workload answers a ping from every other workload.
- On the router, an echo request between workloads on different hosts travels as its
  destination's pool says, between the two hosts' addresses.
"""

from __future__ import annotations

from collections.abc import Callable

from ansible_collections.l3.calico.plugins.module_utils import naming
from ansible_collections.l3.calico.plugins.module_utils.ipam_result import (
    BY_BIRD,
    NONE,
    OWN_BLOCK,
    WORKLOAD,
    IpamResult,
)

ENCAP_DEVICE = {"ipip": naming.IPIP_DEVICE, "vxlan": naming.VXLAN_DEVICE}
BAD_NEIGH_STATES = ("FAILED", "INCOMPLETE", "")
# expect(src workload id, dst workload id, "icmp" | "tcp") -> whether the policy lets it through.
Verdicts = Callable[[str, str, str], bool]


def describe(route: dict | None) -> str:
    """A route the way ``ip route`` prints it."""
    if not route:
        return "no route"
    if route.get("type", "unicast") != "unicast":
        words = [route["type"], route["dst"]]
    else:
        words = [route["dst"]]
        if route.get("gateway"):
            words += ["via", route["gateway"]]
        if route.get("dev"):
            words += ["dev", route["dev"]]
    if route.get("protocol"):
        words += ["proto", route["protocol"]]
    if route.get("scope") and route.get("scope") != "global" and not route.get("gateway"):
        words += ["scope", route["scope"]]
    if route.get("onlink"):
        words.append("onlink")
    return " ".join(words)


def normalise_dst(dst: str) -> str:
    return dst if dst == "default" or "/" in dst else f"{dst}/32"


def route_matches(expected: dict, found: dict) -> bool:
    return all(found.get(key) == value for key, value in expected.items() if value is not None and key not in ("dst", "scope"))


class Judge:
    """Collects checks and findings."""

    def __init__(self) -> None:
        self.checks = 0
        self.findings: list = []

    def check(self, ok: bool, host: str, what: str, expected: str, found: str) -> bool:
        self.checks += 1
        if not ok:
            self.findings.append({"host": host, "check": what, "expected": expected, "found": found})
        return ok


def expected_routes(name: str, ipam, underlay: str, veth_prefix: str = naming.VETH_PREFIX) -> list:
    """(kind, expected route) for every route the node ``name`` must have, as ``ip -json route`` would
    show it (``IpamResult.expected_routes``; ``ipam``: the result's dict or its model). Keys left None
    are not compared: the device of a route via a router, the protocol of the data plane's routes."""
    out = []
    for want in IpamResult.of(ipam).expected_routes(name, veth_prefix=veth_prefix):
        dst = str(want.dst)
        if want.kind == OWN_BLOCK:
            out.append(("own block", {"dst": dst, "type": "blackhole"}))
        elif want.kind == WORKLOAD:
            out.append(("workload", {"dst": dst, "type": "unicast", "dev": want.dev, "gateway": "", "scope": "link"}))
        else:
            route = {"gateway": want.gateway, "dev": want.dev or (underlay or None if want.gateway else None)}
            if want.onlink:
                route["onlink"] = True
            route.update({"dst": dst, "type": "unicast", "protocol": "bird" if want.by == BY_BIRD else None})
            out.append((f"{want.kind} of {want.node} ({want.encap})", route))
    return out


def allow_all(src: str, dst: str, kind: str) -> bool:
    """The verdicts without network policy: every workload reaches every other one."""
    return True


def expect_from(expected: dict) -> Verdicts:
    """The verdicts of a matrix ``{src id: {dst id: {"icmp": bool, "tcp": bool}}}`` (what
    ``l3.calico.policy_plan`` returns); a pair or a kind it does not list passes."""

    def expect(src: str, dst: str, kind: str) -> bool:
        verdict = expected.get(src, {}).get(dst, {}).get(kind, True)
        if not isinstance(verdict, bool):
            raise ValueError(f"expected.{src}.{dst}.{kind}={verdict!r}: must be a boolean")
        return verdict

    return expect


def judge(ipam: dict, probes: dict, capture: list | None = None, peers: dict | None = None, expect: Verdicts = allow_all) -> dict:
    """The verify report: findings, counts, and what the lab report draws. ``ipam``: the result's dict
    (its model is built once here, for the routes and the capture). ``expect(src id, dst id, kind)``
    says whether the network policy lets ``kind`` (``icmp``: an echo request, ``tcp``: a connection to
    the probe's port) from one workload reach the other and be answered."""
    result = IpamResult.of(ipam)
    nodes = ipam["nodes"]
    judge_ = Judge()
    order = [wl["id"] for name in sorted(nodes) for wl in nodes[name].get("workloads", [])]
    where = {wl["id"]: (name, wl) for name in nodes for wl in nodes[name].get("workloads", [])}
    report: dict = {"nodes": {}, "sessions": [], "routes": {}, "pings": {}, "tcp": {}, "workload_order": order, "capture": None}

    for name in sorted(nodes):
        node = nodes[name]
        probe = probes.get(name)
        if probe is None:
            judge_.check(False, name, "probe", "the node's observations", "none (host unreachable or skipped)")
            continue
        underlay = probe.get("underlay_device", "")
        report["nodes"][name] = {
            "ip": node["ip"],
            "network": node.get("network"),
            "underlay_device": underlay,
            "blocks": node.get("blocks", []),
            "tunnels": node.get("tunnels") or {},
            "workloads": [{"id": w["id"], "ip": w["ip"], "pool": w.get("pool"), "borrowed": w.get("borrowed", False)} for w in node.get("workloads", [])],
        }
        judge_.check(bool(underlay), name, "underlay device", f"an interface holding {node['ip']}", "none")

        # BGP sessions.
        mesh = [nodes[o]["ip"] for o in sorted(nodes) if o != name]
        want = peers[name] if peers and name in peers else probe.get("bgp_expected", mesh)
        if not judge_.check(not probe.get("bird_error"), name, "BIRD answers", "birdc show protocols", probe.get("bird_error", "")):
            want = []
        by_neighbor = {p["neighbor"]: p for p in probe.get("bgp", [])}
        for addr in want or []:
            proto = by_neighbor.get(addr)
            state = proto["bgp_state"] if proto else "no BGP protocol for this neighbour"
            judge_.check(state == "Established", name, f"BGP session with {addr}", "Established", state)
            peer_name = next((o for o in nodes if nodes[o]["ip"] == addr), addr)
            report["sessions"].append({"node": name, "peer": peer_name, "neighbor": addr, "state": state, "protocol": proto["name"] if proto else ""})

        # Routes on the host.
        table: dict = {}
        for route in probe.get("routes", []):
            route = dict(route, dst=normalise_dst(route["dst"]))
            table.setdefault(route["dst"], []).append(route)
        rows = []
        for kind, exp in expected_routes(name, result, underlay, probe.get("veth_prefix", naming.VETH_PREFIX)):
            found = table.get(exp["dst"], [])
            ok = any(route_matches(exp, f) for f in found)
            found_text = "; ".join(describe(f) for f in found) or "no route"
            judge_.check(ok, name, f"route to {kind} {exp['dst']}", describe(exp), found_text)
            rows.append({"kind": kind, "expected": describe(exp), "found": found_text, "ok": ok})
        report["routes"][name] = rows

        # Workloads, inside their namespaces.
        for wl in node.get("workloads", []):
            view = probe.get("workloads", {}).get(wl["id"])
            where_ = f"{name} workload {wl['id']}"
            if not judge_.check(
                bool(view and view.get("exists")),
                where_,
                "namespace",
                (view or {}).get("netns") or naming.netns_name(wl["id"]),
                (view or {}).get("error") or "missing",
            ):
                continue
            judge_.check(f"{wl['ip']}/32" in view["addresses"], where_, "address", f"{wl['ip']}/32", ", ".join(view["addresses"]) or "none")
            default = [r for r in view["routes"] if r["dst"] == "default"]
            judge_.check(
                any(r["gateway"] == naming.GATEWAY for r in default),
                where_,
                "default route",
                f"default via {naming.GATEWAY}",
                "; ".join(describe(r) for r in default) or "none",
            )
            neigh = [n for n in view["neighbours"] if n["dst"] == naming.GATEWAY]
            judge_.check(
                any(n["lladdr"] == naming.HOST_VETH_MAC and n["state"] not in BAD_NEIGH_STATES for n in neigh),
                where_,
                "gateway neighbour",
                f"{naming.GATEWAY} lladdr {naming.HOST_VETH_MAC}",
                "; ".join(f"{n['dst']} lladdr {n['lladdr'] or '-'} {n['state']}" for n in neigh) or "none",
            )
            if "ip_forward" in view:  # probes before this check had no such field
                want = probe.get("ip_forward_expected", "0")
                judge_.check(
                    view["ip_forward"] == want, where_, "IP forwarding inside", f"net.ipv4.ip_forward = {want}", f"{view['ip_forward'] or 'unreadable'}"
                )

        if probe.get("tcp_port"):
            report["tcp_port"] = probe["tcp_port"]
        # Pings and TCP connections from this node's workloads, each as the policy says.
        for kind, matrix, tried, reached, refused in (
            ("icmp", probe.get("pings", {}), "ping", "a reply", "no reply"),
            ("tcp", probe.get("tcp"), "TCP to", "a connection", "no connection"),
        ):
            if matrix is None:  # no TCP matrix asked of this probe
                continue
            for wl in node.get("workloads", []):
                row = matrix.get(wl["id"], {})
                for dst in order:
                    if dst == wl["id"]:
                        continue
                    cell = row.get(dst)
                    ok = bool(cell and cell.get("ok"))
                    want = expect(wl["id"], dst, kind)
                    wanted = reached if want else f"{refused} (denied by policy)"
                    found = "not tried" if cell is None else reached if ok else f"{refused} ({cell['outcome']})" if cell.get("outcome") else refused
                    judge_.check(ok == want, f"{name} workload {wl['id']}", f"{tried} {dst} ({where[dst][1]['ip']})", wanted, found)
                    # Only the verdicts: the report stays the same from run to run while the network does.
                    report["pings" if kind == "icmp" else "tcp"].setdefault(wl["id"], {})[dst] = {"ok": ok, "expected": want}

    if capture is not None:
        report["capture"] = judge_capture(judge_, result, capture, order, where, expect)

    report["findings"] = judge_.findings
    report["summary"] = {
        "checks": judge_.checks,
        "failed": len(judge_.findings),
        "pings": sum(1 for r in report["pings"].values() for c in r.values() if c["ok"]),
        "pings_total": sum(len(r) for r in report["pings"].values()),
        "pings_expected": sum(1 for r in report["pings"].values() for c in r.values() if c["ok"] == c["expected"]),
        "tcp": sum(1 for r in report["tcp"].values() for c in r.values() if c["ok"]),
        "tcp_total": sum(len(r) for r in report["tcp"].values()),
        "tcp_expected": sum(1 for r in report["tcp"].values() for c in r.values() if c["ok"] == c["expected"]),
        "sessions_established": sum(1 for s in report["sessions"] if s["state"] == "Established"),
        "sessions_total": len(report["sessions"]),
    }
    return report


def judge_capture(judge_: Judge, ipam, flows: list, order: list, where: dict, expect: Verdicts = allow_all) -> list:
    """Echo requests between workloads on different hosts, as seen on the router: encapsulated as the
    destination's pool says (``Pool.encapsulation``), between the two hosts' addresses. A pair whose
    echo the policy denies is not expected on the wire (denied on the way out) or is (denied on the
    way in): neither is judged."""
    result = IpamResult.of(ipam)
    nodes = result.nodes
    seen: dict = {}
    for flow in flows:
        if flow.get("icmp") == "echo-request":
            seen.setdefault((flow["inner_src"], flow["inner_dst"]), []).append(flow)
    rows = []
    for src_id in order:
        src_node, src = where[src_id]
        for dst_id in order:
            dst_node, dst = where[dst_id]
            if src_node == dst_node or not expect(src_id, dst_id, "icmp"):
                continue
            pool = result.pools.get(dst.get("pool"))
            encap = pool.encapsulation(nodes[src_node], nodes[dst_node]) if pool is not None else NONE
            if encap == NONE:
                outer = (src["ip"], dst["ip"])
            else:
                outer = (nodes[src_node].ip, nodes[dst_node].ip)
            got = seen.get((src["ip"], dst["ip"]), [])
            found = sorted({f"{f['encap'].split(':')[0]} {f['outer_src']} > {f['outer_dst']}" for f in got})
            ok = bool(got) and all(f["encap"].split(":")[0] == encap and (f["outer_src"], f["outer_dst"]) == outer for f in got)
            expected = f"{encap} {outer[0]} > {outer[1]}"
            judge_.check(ok, "router", f"capture {src_id} ({src['ip']}) > {dst_id} ({dst['ip']})", expected, ", ".join(found) or "not seen")
            rows.append(
                {
                    "src": src_id,
                    "dst": dst_id,
                    "src_node": src_node,
                    "dst_node": dst_node,
                    "expected": expected,
                    "found": ", ".join(found) or "not seen",
                    "encap": encap,
                    "ok": ok,
                }
            )
    return rows
