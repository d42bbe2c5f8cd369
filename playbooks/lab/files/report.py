# SPDX-License-Identifier: MIT
"""Render the lab report from the data verify.yml wrote.

    report.py VERIFY_JSON OUTDIR     writes OUTDIR/topology.dot, topology.svg (Graphviz) and index.html

The picture: one cluster per underlay subnet with its hosts (address, blocks, tunnel addresses)
and their workloads; the router between the subnets; BGP sessions with their state; the tunnels
where the router saw encapsulated traffic (IP-in-IP, VXLAN), and VXLAN over IPv6 where the IPv6
routes go through vxlan-v6.calico. The page: the picture, the summary, the ping matrix, the
sessions, the capture and every finding; on a dual-stack lab each family's matrices and sessions.
"""

from __future__ import annotations

import html
import json
import subprocess
import sys
from pathlib import Path

ENCAP_STYLE = {
    "ipip": ("#d9480f", "IP-in-IP (tunl0)"),
    "vxlan": ("#7048e8", "VXLAN (vxlan.calico)"),
    "vxlan6": ("#1971c2", "VXLAN over IPv6 (vxlan-v6.calico)"),
}
POOL_COLOURS = ["#e7f5ff", "#fff4e6", "#ebfbee", "#f8f0fc", "#fff9db"]


def q(text: object) -> str:
    """A Graphviz HTML-label-safe string."""
    return html.escape(str(text), quote=True)


def node_id(text: str) -> str:
    return '"' + str(text).replace('"', "") + '"'


def tunnels(report: dict) -> dict:
    """(node a, node b) -> set of encapsulations seen (capture) or expected by healthy routes."""
    pairs: dict = {}
    if report.get("capture"):
        for row in report["capture"]:
            if row["encap"] != "none" and row["ok"]:
                key = tuple(sorted((row["src_node"], row["dst_node"])))
                pairs.setdefault(key, set()).add(row["encap"])
    else:
        for name, rows in report.get("routes", {}).items():
            for row in rows:
                for encap in ("ipip", "vxlan"):
                    if row["ok"] and f"({encap})" in row["kind"]:
                        other = row["kind"].split(" of ")[1].split(" ")[0]
                        pairs.setdefault(tuple(sorted((name, other))), set()).add(encap)
    # IPv6: VXLAN over IPv6 where the router saw it (else where the IPv6 routes go through vxlan-v6.calico).
    if report.get("capture6"):
        for row in report["capture6"]:
            if row["encap"] == "vxlan" and row["ok"]:
                pairs.setdefault(tuple(sorted((row["src_node"], row["dst_node"]))), set()).add("vxlan6")
    else:
        for name, rows in report.get("routes6", {}).items():
            for row in rows:
                if row["ok"] and "(vxlan)" in row["kind"]:
                    other = row["kind"].split(" of ")[1].split(" ")[0]
                    pairs.setdefault(tuple(sorted((name, other))), set()).add("vxlan6")
    return pairs


def dot(report: dict) -> str:
    nodes = report["nodes"]
    pools = sorted({w["pool"] for n in nodes.values() for w in n["workloads"] if w.get("pool")})
    colour = {p: POOL_COLOURS[i % len(POOL_COLOURS)] for i, p in enumerate(pools)}
    subnets: dict = {}
    for name, node in sorted(nodes.items()):
        subnets.setdefault(node.get("network") or "underlay", []).append(name)
    # A dual-stack underlay: each subnet's IPv6 side beside it.
    nets6 = {node.get("network") or "underlay": node["network6"] for node in nodes.values() if node.get("network6")}
    out = [
        "graph lab {",
        '  graph [rankdir=TB, fontname="Helvetica", fontsize=11, newrank=true, nodesep=0.35, ranksep=0.6, forcelabels=true];',
        '  node [fontname="Helvetica", fontsize=10, shape=plaintext];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    lab = report.get("capture") is not None
    if lab:
        gws = "<br/>".join(q(s) + (f" {q(nets6[s])}" if s in nets6 else "") for s in sorted(subnets))
        out.append(
            f'  router [shape=box, style="rounded,filled", fillcolor="#f1f3f5", '
            f'label=<<b>router</b><br/><font point-size="8">l3lab-router, forwarding<br/>{gws}</font>>];'
        )
    for idx, (subnet, members) in enumerate(sorted(subnets.items())):
        out.append(f"  subgraph cluster_{idx} {{")
        six = f" · {q(nets6[subnet])}" if subnet in nets6 else ""
        out.append(f'    label=<<b>subnet {q(subnet)}{six}</b>>; style="rounded,dashed"; color="#868e96";')
        for name in members:
            node = nodes[name]
            blocks = "".join(f'<tr><td align="left" bgcolor="{colour.get(b.get("pool"), "#ffffff")}">block {q(b["cidr"])}</td></tr>' for b in node["blocks"])
            tun = "".join(f'<tr><td align="left"><font point-size="8">{q(k)} {q(v)}</font></td></tr>' for k, v in sorted(node["tunnels"].items()) if v)
            out.append(
                f'    {node_id(name)} [label=<<table border="1" cellborder="0" cellspacing="0" cellpadding="3" '
                f'bgcolor="#ffffff"><tr><td bgcolor="#343a40"><font color="white"><b>{q(name)}</b></font></td></tr>'
                f'<tr><td align="left">{q(node["ip"])} dev {q(node["underlay_device"] or "?")}</td></tr>'
                f"{ip6_rows(node, colour)}{blocks}{tun}</table>>];"
            )
            ip6 = {w["id"]: w.get("ip6") for w in node.get("workloads6", [])}
            for wl in node["workloads"]:
                wid = f"{name}/{wl['id']}"
                tag = " (borrowed)" if wl.get("borrowed") else ""
                six = f'<br/><font point-size="8">{q(ip6[wl["id"]])}/128</font>' if ip6.get(wl["id"]) else ""
                out.append(
                    f'    {node_id(wid)} [shape=box, style="rounded,filled", fillcolor="{colour.get(wl.get("pool"), "#ffffff")}", '
                    f'label=<{q(wl["id"])}<br/><font point-size="8">{q(wl["ip"])}/32{q(tag)}</font>{six}>];'
                )
                out.append(f'    {node_id(name)} -- {node_id(wid)} [color="#adb5bd", label=<<font point-size="7">veth</font>>];')
        out.append("  }")
        if lab:
            for name in members:
                out.append(f'  {node_id(name)} -- router [color="#868e96", style=dotted, minlen=2];')
    # One edge per pair of hosts: its BGP session (state of both ends) and the tunnels seen.
    seen: dict = {}
    for s in report.get("sessions", []) + report.get("sessions6", []):
        seen.setdefault(tuple(sorted((s["node"], s["peer"]))), {})[s["node"]] = s["state"]
    encaps = tunnels(report)
    for a, b in sorted(set(seen) | set(encaps)):
        states = seen.get((a, b), {})
        lines = []
        if states:
            up = len(states) == 2 and all(v == "Established" for v in states.values())
            text = "BGP Established" if up else "BGP " + ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
            lines.append(f'<font color="{"#2b8a3e" if up else "#c92a2a"}">{q(text)}</font>')
        for encap in sorted(encaps.get((a, b), ())):
            col, text = ENCAP_STYLE[encap]
            lines.append(f'<font color="{col}"><b>{q(text)}</b></font>')
        tunnel = sorted(encaps.get((a, b), ()))
        # One colour per edge (multi-colour edges scatter between clusters): IP-in-IP's where
        # traffic is tunnelled both ways, the label names every encapsulation seen.
        edge_colour = ENCAP_STYLE[tunnel[0]][0] if tunnel else "#2b8a3e"
        style = "solid" if tunnel else "dashed"
        out.append(
            f'  {node_id(a)} -- {node_id(b)} [constraint=false, color="{edge_colour}", style={style}, '
            f"penwidth={2.5 if tunnel else 1}, xlabel=<{'<br/>'.join(lines)}>];"
        )
    legend = "".join(f'<tr><td bgcolor="{colour[p]}">pool {q(p)}</td></tr>' for p in pools)
    out.append(f'  legend [label=<<table border="0" cellborder="1" cellspacing="0" cellpadding="3">{legend}</table>>];')
    out.append("}")
    return "\n".join(out) + "\n"


def ip6_rows(node: dict, colour: dict) -> str:
    """A dual-stack host's IPv6 side in its box: address and device, blocks."""
    if not node.get("ip6"):
        return ""
    rows = f'<tr><td align="left">{q(node["ip6"])} dev {q(node.get("underlay_device6") or "?")}</td></tr>'
    return rows + "".join(
        f'<tr><td align="left" bgcolor="{colour.get(b.get("pool"), "#ffffff")}">block {q(b["cidr"])}</td></tr>' for b in node.get("blocks6", [])
    )


def cell(c: dict | None, reached: str, missed: str) -> str:
    """One pair: what was found (reached or not) against what the policy says (``expected``; a report
    from before the TCP matrix has no such key: everything was expected to reach; None: not judged)."""
    if c is None:
        return '<td class="na">–</td>'
    ok, expected = c.get("ok"), c.get("expected", True)
    if expected is None:
        return f'<td class="unjudged" title="not judged">{"&#10003;" if ok else missed}</td>'

    if ok and expected:
        return f'<td class="ok" title="{reached}, allowed">&#10003;</td>'
    if not ok and not expected:
        return f'<td class="denied" title="{missed}, denied by policy as expected">denied</td>'
    if ok:
        return f'<td class="bad" title="{reached}, but the policy denies it">{reached}<br/><small>expected denied</small></td>'
    return f'<td class="bad" title="{missed}, but the policy allows it">{missed}<br/><small>expected allowed</small></td>'


def matrix(report: dict, key: str, reached: str, missed: str, version: int = 4) -> str:
    """A workload-by-workload table of ``report[key]`` (rows are the sources)."""
    order = report["workload_order6" if version == 6 else "workload_order"]
    owner = {w["id"]: n for n, node in report["nodes"].items() for w in node["workloads"]}
    if version == 6:
        ip = {w["id"]: w.get("ip6") or "" for node in report["nodes"].values() for w in node.get("workloads6", [])}
    else:
        ip = {w["id"]: w["ip"] for node in report["nodes"].values() for w in node["workloads"]}
    head = "".join(f"<th>{html.escape(d)}<br/><small>{html.escape(owner.get(d, ''))} {html.escape(ip.get(d, ''))}</small></th>" for d in order)
    rows = "".join(
        f"<tr><th>{html.escape(src)}<br/><small>{html.escape(owner.get(src, ''))}</small></th>"
        + "".join('<td class="na">·</td>' if dst == src else cell(report[key].get(src, {}).get(dst), reached, missed) for dst in order)
        + "</tr>"
        for src in order
    )
    return f"<table><tr><th></th>{head}</tr>{rows}</table>"


def page(report: dict, svg: str) -> str:
    s = report["summary"]
    tcp = ""
    if report.get("tcp"):
        tcp = f"<h2>TCP matrix (rows connect to port {html.escape(str(report.get('tcp_port', '?')))} of columns)</h2>" + matrix(
            report, "tcp", "connected", "no connection"
        )
    sessions = "".join(
        f"<tr><td>{html.escape(x['node'])}</td><td>{html.escape(x['peer'])} ({html.escape(x['neighbor'])})</td>"
        f'<td class="{"ok" if x["state"] == "Established" else "bad"}">{html.escape(x["state"])}</td></tr>'
        for x in report["sessions"] + report.get("sessions6", [])
    )
    ipv6, ipv6_summary = "", ""
    if "pings6" in report:
        judged = report.get("ipv6_judged", True)
        note = "" if judged else " <small>(reported, not judged: the network policy gave no IPv6 verdicts)</small>"
        ipv6 = f"<h2>Ping matrix, IPv6 (rows ping columns){note}</h2>" + matrix(report, "pings6", "reply", "no reply", 6)
        if report.get("tcp6"):
            ipv6 += f"<h2>TCP matrix, IPv6 (rows connect to port {html.escape(str(report.get('tcp_port', '?')))} of columns){note}</h2>" + matrix(
                report, "tcp6", "connected", "no connection", 6
            )
        ipv6_summary = "<br/>" + html.escape(summary6(s))
    capture = ""
    for key, title in (("capture", "What the router saw (echo requests between hosts)"), ("capture6", "What the router saw over IPv6")):
        if report.get(key) is None:
            continue
        capture += (
            f"<h2>{title}</h2><table><tr><th>from</th><th>to</th><th>expected</th><th>found</th></tr>"
            + "".join(
                f"<tr><td>{html.escape(r['src'])} <small>{html.escape(r['src_node'])}</small></td>"
                f"<td>{html.escape(r['dst'])} <small>{html.escape(r['dst_node'])}</small></td>"
                f'<td>{html.escape(r["expected"])}</td><td class="{"unjudged" if r["ok"] is None else "ok" if r["ok"] else "bad"}">'
                f"{html.escape(r['found'])}</td></tr>"
                for r in report[key]
            )
            + "</table>"
        )
    findings = (
        "".join(
            f"<li><b>{html.escape(f['host'])}</b>: {html.escape(f['check'])}: expected <code>{html.escape(f['expected'])}</code>, "
            f"found <code>{html.escape(f['found'])}</code></li>"
            for f in report["findings"]
        )
        or "<li>none</li>"
    )
    verdict = "verified" if not report["findings"] else f"{s['failed']} of {s['checks']} checks failed"
    tcp_summary = f" · TCP {s['tcp']}/{s['tcp_total']} connected" if s.get("tcp_total") else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>l3.calico lab report</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 2em; color: #212529; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }}
th, td {{ border: 1px solid #dee2e6; padding: 0.3em 0.5em; text-align: center; }}
td.ok {{ background: #ebfbee; }} td.denied {{ background: #f1f3f5; }}
td.bad {{ background: #ffe3e3; font-weight: bold; }} td.na {{ color: #adb5bd; }} td.unjudged {{ background: #fff9db; }}
small {{ color: #868e96; font-weight: normal; }} .svg svg {{ max-width: 100%; height: auto; }}
</style></head><body>
<h1>l3.calico lab: {html.escape(verdict)}</h1>
<p>{s["checks"]} checks, {s["failed"]} failed · BGP sessions {s["sessions_established"]}/{s["sessions_total"]} Established ·
pings {s["pings"]}/{s["pings_total"]} answered{tcp_summary}{ipv6_summary}<br/>cells: &#10003; allowed and reached · <i>denied</i>: denied by
policy and not reached · red: not what the policy says</p>
<div class="svg">{svg}</div>
<h2>Ping matrix (rows ping columns)</h2>
{matrix(report, "pings", "reply", "no reply")}
{tcp}
{ipv6}
<h2>BGP sessions</h2><table><tr><th>node</th><th>peer</th><th>state</th></tr>{sessions}</table>
{capture}
<h2>Findings</h2><ul>{findings}</ul>
</body></html>
"""


def summary6(s: dict) -> str:
    """The IPv6 line of a dual-stack lab's summary."""
    tcp = f"; TCP {s['tcp6']}/{s['tcp6_total']}" if s.get("tcp6_total") else ""
    judged = "" if s.get("ipv6_judged", True) else " (reported, not judged: no IPv6 policy verdicts)"
    return (
        f"IPv6: {s['checks6']} of the checks, {s['failed6']} failed; BGP sessions {s['sessions6_established']}/{s['sessions6_total']} "
        f"Established; pings {s['pings6']}/{s['pings6_total']}{tcp}{judged}"
    )


def main(argv: list) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    report = json.loads(Path(argv[0]).read_text())
    outdir = Path(argv[1])
    outdir.mkdir(parents=True, exist_ok=True)
    source = dot(report)
    (outdir / "topology.dot").write_text(source)
    svg = subprocess.run(["dot", "-Tsvg"], input=source, capture_output=True, text=True, check=True).stdout
    (outdir / "topology.svg").write_text(svg)
    inline = svg[svg.find("<svg") :]
    (outdir / "index.html").write_text(page(report, inline))
    s = report["summary"]
    verdict = "verified" if not report["findings"] else f"NOT verified ({s['failed']} findings)"
    print(
        f"lab {verdict}: {s['checks']} checks; BGP sessions {s['sessions_established']}/{s['sessions_total']} "
        f"Established; pings {s['pings']}/{s['pings_total']}" + (f"; TCP {s['tcp']}/{s['tcp_total']}" if s.get("tcp_total") else "")
    )
    if "checks6" in s:
        print(summary6(s))
    print(f"report: file://{(outdir / 'index.html').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
