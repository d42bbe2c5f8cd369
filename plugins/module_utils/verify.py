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

Dual stack (a node with ``ipv6``, probed with ``node_ip6``): the same per family, judged apart and
reported apart (``sessions6``, ``routes6``, ``pings6``, ``tcp6``; the IPv4 keys and figures are what
they always were). IPv6: each workload's ``IP/128``, a default route via the host veth's link-local
address (``naming.GATEWAY6``, Calico's CNI) and that neighbour at ee:ee:ee:ee:ee:ee, IPv6 forwarding
as IPv4's; the routes ``expected_routes(version=6)`` says - those BIRD programs (own-block
blackholes, unencapsulated remote blocks) only on nodes whose BIRD carries IPv6 (an IPv6 neighbour
expected, or a BGP protocol with an ``ipv6`` channel), VXLAN's (``vxlan-v6.calico``) always; the
IPv6 sessions are the probe's ``bgp_expected6`` (or ``peers6``). The IPv6 matrices are judged by
their own verdicts (``expect6``); without any (None: the network policy has no IPv6 verdicts yet)
they are reported, each pair tried, but not judged.
"""

from __future__ import annotations

import ipaddress
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
    if dst == "default":
        return dst
    if ":" in dst:  # IPv6: one spelling of each prefix (the IPAM result's and ip's may differ)
        return ipaddress.ip_network(dst if "/" in dst else f"{dst}/128", strict=False).compressed
    return dst if "/" in dst else f"{dst}/32"


def normalise_route(route: dict) -> dict:
    """A route as ``ip -json`` showed it, its destination (and an IPv6 gateway) in one spelling."""
    route = dict(route, dst=normalise_dst(route["dst"]))
    if ":" in route.get("gateway", ""):
        route["gateway"] = ipaddress.ip_address(route["gateway"]).compressed
    return route


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


def expected_routes(name: str, ipam, underlay: str, veth_prefix: str = naming.VETH_PREFIX, version: int = 4, bgp_nodes=None) -> list:
    """(kind, expected route) for every route of the family ``version`` the node ``name`` must have, as
    ``ip -json route`` would show it (``IpamResult.expected_routes``; ``ipam``: the result's dict or its
    model; ``bgp_nodes``: the nodes whose BIRD programs routes of that family, default all). Keys left
    None are not compared: the device of a route via a router, the protocol of the data plane's routes."""
    out = []
    for want in IpamResult.of(ipam).expected_routes(name, bgp_nodes=bgp_nodes, veth_prefix=veth_prefix, version=version):
        dst = normalise_dst(str(want.dst)) if version == 6 else str(want.dst)
        if want.kind == OWN_BLOCK:
            out.append(("own block", {"dst": dst, "type": "blackhole"}))
        elif want.kind == WORKLOAD:
            out.append(("workload", {"dst": dst, "type": "unicast", "dev": want.dev, "gateway": "", "scope": "link"}))
        else:
            gateway = ipaddress.ip_address(want.gateway).compressed if version == 6 and want.gateway else want.gateway
            route = {"gateway": gateway, "dev": want.dev or (underlay or None if want.gateway else None)}
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


def judge(
    ipam: dict,
    probes: dict,
    capture: list | None = None,
    peers: dict | None = None,
    expect: Verdicts = allow_all,
    expect6: Verdicts | None = allow_all,
    peers6: dict | None = None,
    ipv6: bool = True,
) -> dict:
    """The verify report: findings, counts, and what the lab report draws. ``ipam``: the result's dict
    (its model is built once here, for the routes and the capture). ``expect(src id, dst id, kind)``
    says whether the network policy lets ``kind`` (``icmp``: an echo request, ``tcp``: a connection to
    the probe's port) from one workload reach the other and be answered; ``expect6`` the same over
    IPv6 (None: no IPv6 verdicts known - the IPv6 matrices are reported, not judged). ``peers6``: per
    node, the IPv6 addresses of its IPv6 sessions (default: the probe's ``bgp_expected6``). ``ipv6`` False:
    the IPv4 side only, as if the result had no IPv6 (the probes were not asked for theirs)."""
    result = IpamResult.of(ipam)
    nodes = ipam["nodes"]
    judge_ = Judge()
    order = [wl["id"] for name in sorted(nodes) for wl in nodes[name].get("workloads", [])]
    where = {wl["id"]: (name, wl) for name in nodes for wl in nodes[name].get("workloads", [])}
    report: dict = {"nodes": {}, "sessions": [], "routes": {}, "pings": {}, "tcp": {}, "workload_order": order, "capture": None}
    dual = ipv6 and (bool(result.pools6) or any(n.get("ipv6") is not None for n in nodes.values()))
    checks6 = 0
    if dual:
        order6 = [w for w in order if where[w][1].get("ipv6") is not None]
        report.update({"sessions6": [], "routes6": {}, "pings6": {}, "tcp6": {}, "workload_order6": order6, "ipv6_judged": expect6 is not None})
        speakers6 = [name for name in nodes if bird_carries_ipv6(probes.get(name))]
        report["bgp_ipv6"] = sorted(speakers6)

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
        bird_ok = judge_.check(not probe.get("bird_error"), name, "BIRD answers", "birdc show protocols", probe.get("bird_error", ""))
        if not bird_ok:
            want = []
        by_neighbor = {p["neighbor"]: p for p in probe.get("bgp", [])}
        for addr in want or []:
            proto = by_neighbor.get(addr)
            state = proto["bgp_state"] if proto else "no BGP protocol for this neighbour"
            judge_.check(state == "Established", name, f"BGP session with {addr}", "Established", state)
            peer_name = next((o for o in nodes if nodes[o]["ip"] == addr), addr)
            report["sessions"].append({"node": name, "peer": peer_name, "neighbor": addr, "state": state, "protocol": proto["name"] if proto else ""})

        # Routes on the host.
        report["routes"][name] = judge_routes(judge_, name, result, probe.get("routes", []), underlay, probe.get("veth_prefix", naming.VETH_PREFIX))

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
            judge_plumbing(judge_, where_, 4, f"{wl['ip']}/32" in view["addresses"], f"{wl['ip']}/32", view["addresses"], view["routes"], view["neighbours"])
            if "ip_forward" in view:  # probes before this check had no such field
                judge_forwarding(judge_, where_, 4, view["ip_forward"], probe.get("ip_forward_expected", "0"))

        if probe.get("tcp_port"):
            report["tcp_port"] = probe["tcp_port"]
        # Pings and TCP connections from this node's workloads, each as the policy says.
        judge_matrices(judge_, report, name, node.get("workloads", []), probe, order, where, expect, 4)

        if dual:
            before = judge_.checks
            if judge_node6(judge_, report, name, node, probe, result, speakers6, peers6, nodes):
                judge_matrices(judge_, report, name, node.get("workloads", []), probe, report["workload_order6"], where, expect6, 6)
            checks6 += judge_.checks - before

    if capture is not None:
        report["capture"] = judge_capture(judge_, result, capture, order, where, expect)
        if dual:
            first = len(judge_.findings)
            before = judge_.checks
            report["capture6"] = judge_capture(judge_, result, capture, report["workload_order6"], where, expect6, version=6)
            checks6 += judge_.checks - before
            _mark6(judge_, first)

    report["findings"] = judge_.findings
    report["summary"] = {
        "checks": judge_.checks,
        "failed": len(judge_.findings),
        **matrix_summary(report, "pings", "tcp", ""),
        "sessions_established": sum(1 for s in report["sessions"] if s["state"] == "Established"),
        "sessions_total": len(report["sessions"]),
    }
    if dual:
        report["summary"].update(
            {
                "checks6": checks6,
                "failed6": sum(1 for f in judge_.findings if f.get("family") == 6),
                **matrix_summary(report, "pings6", "tcp6", "6"),
                "sessions6_established": sum(1 for s in report["sessions6"] if s["state"] == "Established"),
                "sessions6_total": len(report["sessions6"]),
                "ipv6_judged": expect6 is not None,
            }
        )
    return report


def matrix_summary(report: dict, pings: str, tcp: str, suffix: str) -> dict:
    """The counts of one family's matrices: reached, tried, as expected (a pair not judged - expected
    None - is never as expected)."""
    out = {}
    for key, label in ((pings, "pings"), (tcp, "tcp")):
        cells = [c for row in report[key].values() for c in row.values()]
        out[f"{label}{suffix}"] = sum(1 for c in cells if c["ok"])
        out[f"{label}{suffix}_total"] = len(cells)
        out[f"{label}{suffix}_expected"] = sum(1 for c in cells if c["ok"] == c["expected"])
    return out


def bird_carries_ipv6(probe: dict | None) -> bool:
    """Whether this node's BIRD is to carry IPv6 routes: IPv6 sessions are expected of it, or one of its
    BGP protocols has an ``ipv6`` channel (one session carrying both families)."""
    if not probe:
        return False
    return bool(probe.get("bgp_expected6")) or any("ipv6" in p.get("channels", []) for p in probe.get("bgp", []))


def judge_routes(judge_: Judge, name: str, result: IpamResult, routes: list, underlay: str, veth_prefix: str, version: int = 4, bgp_nodes=None) -> list:
    """Every route ``expected_routes`` says of the family, found in the node's table or a finding; the rows the report shows."""
    table: dict = {}
    for route in routes:
        route = normalise_route(route) if version == 6 else dict(route, dst=normalise_dst(route["dst"]))
        table.setdefault(route["dst"], []).append(route)
    rows = []
    six = " (IPv6)" if version == 6 else ""
    for kind, exp in expected_routes(name, result, underlay, veth_prefix, version=version, bgp_nodes=bgp_nodes):
        found = table.get(exp["dst"], [])
        ok = any(route_matches(exp, f) for f in found)
        found_text = "; ".join(describe(f) for f in found) or "no route"
        judge_.check(ok, name, f"route to {kind} {exp['dst']}{six}", describe(exp), found_text)
        rows.append({"kind": kind, "expected": describe(exp), "found": found_text, "ok": ok})
    return rows


def judge_node6(judge_: Judge, report: dict, name: str, node: dict, probe: dict, result: IpamResult, speakers6: list, peers6: dict | None, nodes: dict) -> bool:
    """A dual-stack node's IPv6 side: underlay, IPv6 sessions, IPv6 routes, each workload's IPv6 plumbing.
    False when there is none to judge (a node without an IPv6 address; one not probed over IPv6: one finding)."""
    first = len(judge_.findings)
    ip6 = node.get("ipv6")
    report["nodes"][name].update(
        {
            "ip6": ip6,
            "network6": node.get("network_ipv6"),
            "underlay_device6": probe.get("underlay_device6", ""),
            "blocks6": node.get("blocks_ipv6", []),
            "workloads6": [{"id": w["id"], "ip6": w.get("ipv6"), "pool6": w.get("pool_ipv6")} for w in node.get("workloads", [])],
        }
    )
    if ip6 is None:
        return False  # a node without calico_node_ipv6: nothing IPv6 is due (no routes, no tunnel, no workload address)
    if not judge_.check("node_ip6" in probe, name, "IPv6 probed", f"the node's IPv6 side (node_ip6 {ip6})", "not probed"):
        _mark6(judge_, first)
        return False
    underlay6 = probe.get("underlay_device6", "")
    judge_.check(bool(underlay6), name, "underlay device (IPv6)", f"an interface holding {ip6}", "none")

    want6 = peers6[name] if peers6 and name in peers6 else probe.get("bgp_expected6", [])
    if probe.get("bird_error"):
        want6 = []  # one finding already: BIRD does not answer
    by_neighbor = {normalise_dst(p["neighbor"]): p for p in probe.get("bgp", []) if ":" in p.get("neighbor", "")}
    for addr in want6 or []:
        proto = by_neighbor.get(normalise_dst(addr))
        state = proto["bgp_state"] if proto else "no BGP protocol for this neighbour"
        judge_.check(state == "Established", name, f"BGP session with {addr}", "Established", state)
        peer_name = next((o for o in nodes if nodes[o].get("ipv6") and normalise_dst(nodes[o]["ipv6"]) == normalise_dst(addr)), addr)
        report["sessions6"].append({"node": name, "peer": peer_name, "neighbor": addr, "state": state, "protocol": proto["name"] if proto else ""})

    report["routes6"][name] = judge_routes(
        judge_, name, result, probe.get("routes6", []), underlay6, probe.get("veth_prefix", naming.VETH_PREFIX), version=6, bgp_nodes=speakers6
    )

    for wl in node.get("workloads", []):
        view = probe.get("workloads", {}).get(wl["id"])
        if wl.get("ipv6") is None or not (view and view.get("exists")):
            continue  # no IPv6 address; a missing namespace is one finding already
        where_ = f"{name} workload {wl['id']}"
        addresses6 = [normalise_dst(a) for a in view.get("addresses6", [])]
        has = normalise_dst(wl["ipv6"]) in addresses6
        judge_plumbing(judge_, where_, 6, has, f"{wl['ipv6']}/128", view.get("addresses6", []), view.get("routes6", []), view.get("neighbours", []))
        judge_forwarding(judge_, where_, 6, view.get("ip6_forward"), probe.get("ip_forward_expected", "0"))
    _mark6(judge_, first)
    return True


def judge_plumbing(judge_: Judge, where_: str, version: int, has_address: bool, address: str, addresses: list, routes: list, neighbours: list) -> None:
    """One workload's plumbing in one family, as Calico's CNI leaves it: its address, the default route via
    the gateway that exists nowhere (169.254.1.1, or the host veth's link-local fe80::ecee:eeff:feee:eeee),
    and that gateway's neighbour entry with the host veth's MAC (proxy ARP / the veth's own address)."""
    label, gateway = ("IPv6 ", naming.GATEWAY6) if version == 6 else ("", naming.GATEWAY)
    judge_.check(has_address, where_, f"{label}address", address, ", ".join(addresses) or "none")
    default = [r for r in routes if r["dst"] == "default"]
    judge_.check(
        any(r["gateway"] == gateway for r in default),
        where_,
        f"{label}default route",
        f"default via {gateway}",
        "; ".join(describe(r) for r in default) or "none",
    )
    neigh = [n for n in neighbours if n["dst"] == gateway]
    judge_.check(
        any(n["lladdr"] == naming.HOST_VETH_MAC and n["state"] not in BAD_NEIGH_STATES for n in neigh),
        where_,
        f"{label}gateway neighbour",
        f"{gateway} lladdr {naming.HOST_VETH_MAC}",
        "; ".join(f"{n['dst']} lladdr {n['lladdr'] or '-'} {n['state']}" for n in neigh) or "none",
    )


def judge_forwarding(judge_: Judge, where_: str, version: int, found, want: str) -> None:
    """Forwarding inside a workload (off unless workloads may forward: Calico's allow_ip_forwarding)."""
    what, key = ("IPv6 forwarding inside", "net.ipv6.conf.all.forwarding") if version == 6 else ("IP forwarding inside", "net.ipv4.ip_forward")
    judge_.check(found == want, where_, what, f"{key} = {want}", f"{found or 'unreadable'}")


def _mark6(judge_: Judge, first: int) -> None:
    for finding in judge_.findings[first:]:
        finding["family"] = 6


def judge_matrices(
    judge_: Judge, report: dict, name: str, workloads: list, probe: dict, order: list, where: dict, expect: Verdicts | None, version: int
) -> None:
    """One family's ping and TCP matrices from this node's workloads, each pair as ``expect`` says
    (None: not judged, only that the pair was tried)."""
    first = len(judge_.findings)
    six = "6" if version == 6 else ""
    for kind, matrix, tried, reached, refused in (
        ("icmp", probe.get("pings" + six, {}), "ping" + six, "a reply", "no reply"),
        ("tcp", probe.get("tcp" + six), "TCP" + six + " to", "a connection", "no connection"),
    ):
        if matrix is None:  # no TCP matrix asked of this probe
            continue
        for wl in workloads:
            if (wl.get("ipv6") if version == 6 else wl.get("ip")) is None:
                continue
            row = matrix.get(wl["id"], {})
            for dst in order:
                if dst == wl["id"]:
                    continue
                cell = row.get(dst)
                ok = bool(cell and cell.get("ok"))
                found = "not tried" if cell is None else reached if ok else f"{refused} ({cell['outcome']})" if cell.get("outcome") else refused
                address = where[dst][1]["ipv6" if version == 6 else "ip"]
                if expect is None:
                    want = None
                    judge_.check(cell is not None, f"{name} workload {wl['id']}", f"{tried} {dst} ({address})", "tried (verdict not judged)", found)
                else:
                    want = expect(wl["id"], dst, kind)
                    wanted = reached if want else f"{refused} (denied by policy)"
                    judge_.check(ok == want, f"{name} workload {wl['id']}", f"{tried} {dst} ({address})", wanted, found)
                # Only the verdicts: the report stays the same from run to run while the network does.
                report[("pings" if kind == "icmp" else "tcp") + six].setdefault(wl["id"], {})[dst] = {"ok": ok, "expected": want}
    if version == 6:
        _mark6(judge_, first)


def judge_capture(judge_: Judge, ipam, flows: list, order: list, where: dict, expect: Verdicts | None = allow_all, version: int = 4) -> list:
    """Echo requests between workloads on different hosts, as seen on the router: encapsulated as the
    destination's pool says (``Pool.encapsulation``), between the two hosts' addresses. A pair whose
    echo the policy denies is not expected on the wire (denied on the way out) or is (denied on the
    way in): neither is judged. ``version`` 6: the IPv6 echo requests between the workloads' ``ipv6``
    addresses, by their IPv6 pool, between the hosts' IPv6 addresses; with ``expect`` None (no IPv6
    verdicts) a pair seen must be carried right, one not seen is no finding."""
    result = IpamResult.of(ipam)
    nodes = result.nodes
    six = version == 6
    key, pool_key = ("ipv6", "pool_ipv6") if six else ("ip", "pool")
    spell = _spell6 if six else str
    seen: dict = {}
    for flow in flows:
        if flow.get("icmp") == "echo-request" and (":" in flow["inner_src"]) == six:
            seen.setdefault((spell(flow["inner_src"]), spell(flow["inner_dst"])), []).append(flow)
    pools = result.pools6 if six else result.pools
    rows = []
    for src_id in order:
        src_node, src = where[src_id]
        for dst_id in order:
            dst_node, dst = where[dst_id]
            if src_node == dst_node or src.get(key) is None or dst.get(key) is None or (expect is not None and not expect(src_id, dst_id, "icmp")):
                continue
            pool = pools.get(dst.get(pool_key))
            encap = pool.encapsulation(nodes[src_node], nodes[dst_node]) if pool is not None else NONE
            if encap == NONE:
                outer = (spell(src[key]), spell(dst[key]))
            else:
                outer = (nodes[src_node].ipv6, nodes[dst_node].ipv6) if six else (nodes[src_node].ip, nodes[dst_node].ip)
                outer = (spell(outer[0]), spell(outer[1]))
            got = seen.get((spell(src[key]), spell(dst[key])), [])
            found = sorted({f"{f['encap'].split(':')[0]} {f['outer_src']} > {f['outer_dst']}" for f in got})
            ok = bool(got) and all(f["encap"].split(":")[0] == encap and (spell(f["outer_src"]), spell(f["outer_dst"])) == outer for f in got)
            expected = f"{encap} {outer[0]} > {outer[1]}"
            if expect is not None or got:
                judge_.check(ok, "router", f"capture {src_id} ({src[key]}) > {dst_id} ({dst[key]})", expected, ", ".join(found) or "not seen")
            rows.append(
                {
                    "src": src_id,
                    "dst": dst_id,
                    "src_node": src_node,
                    "dst_node": dst_node,
                    "expected": expected,
                    "found": ", ".join(found) or "not seen",
                    "encap": encap,
                    "ok": ok if expect is not None or got else None,
                }
            )
    return rows


def _spell6(address: str) -> str:
    return ipaddress.ip_address(address).compressed
