# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Parse ``birdc show protocols all`` and the kernel's TCP-MD5 counters (plain Python), and read them.

Used by the modules ``l3.calico.bird_facts`` (every protocol and route) and ``l3.calico.bird`` (its wait
for the BGP sessions, :func:`wait_established`); the parsers are unit-tested on captured output.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.iproute import Runner

# BIRD 2 protocol header: Name Proto Table State Since Info; Since is one or two words
# ("16:28:32.501" or, with "timeformat protocol iso long", "2026-11-25 16:28:32").
_HEADER_RE = re.compile(
    r"^(?P<name>\S+)\s+(?P<proto>\S+)\s+(?P<table>\S+)\s+(?P<state>\S+)\s+"
    r"(?P<since>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?|\S+)(?:\s+(?P<info>.*?))?\s*$"
)
_KEY_RE = re.compile(r"^\s+(?P<key>[A-Za-z][A-Za-z0-9 /-]*?):\s*(?P<value>.*?)\s*$")
_ROUTES_RE = re.compile(r"(\d+) (imported|filtered|exported|preferred)")
_STATS_COLUMNS = ("received", "rejected", "filtered", "ignored", "accepted")

MD5_COUNTERS = {
    "TCPMD5Failure": "failure",
    "TCPMD5NotFound": "not_found",
    "TCPMD5Unexpected": "unexpected",
}


def parse_protocols(text: str) -> list[dict]:
    """Protocols of ``show protocols all``, in order, as dicts (BGP ones with their BGP state)."""
    protocols: list[dict] = []
    current: dict | None = None
    for line in text.splitlines():
        if not line.strip() or line.startswith(("BIRD ", "Access restricted", "Name ")):
            continue
        if not line[0].isspace():
            match = _HEADER_RE.match(line)
            if not match:
                current = None
                continue
            current = {key: (value or "") for key, value in match.groupdict().items()}
            current["channels"] = {}
            current["_channel"] = None
            protocols.append(current)
            continue
        if current is None:
            continue
        stripped = line.strip()
        if stripped.startswith("Channel "):
            channel = {"routes": {}, "import_updates": {}}
            current["channels"][stripped.split()[1]] = channel
            current["_channel"] = channel
            continue
        if stripped.startswith(("Import updates:", "Import withdraws:", "Export updates:", "Export withdraws:")):
            label, _sep, numbers = stripped.partition(":")
            if current["_channel"] is not None and label == "Import updates":
                values = numbers.split()
                current["_channel"]["import_updates"] = {column: int(value) for column, value in zip(_STATS_COLUMNS, values, strict=False) if value.isdigit()}
            continue
        match = _KEY_RE.match(line)
        if not match:
            continue
        key = match["key"].lower().replace(" ", "_")
        value = match["value"]
        channel = current["_channel"]
        if channel is not None:
            if key == "routes":
                channel["routes"] = {kind: int(number) for number, kind in _ROUTES_RE.findall(value)}
            else:
                channel[key] = value
        else:
            current[key] = value
    for protocol in protocols:
        del protocol["_channel"]
        if protocol["proto"] == "BGP":
            protocol["established"] = protocol.get("bgp_state") == "Established"
    return protocols


# ``show route``: "<net> <type> [<protocol> <since>...] * (<pref>) [...]", the net left out on a second route to the same
# net (add paths, several peers); then one "via <gateway> on <device>" line per next hop (or "dev <device>").
_ROUTE_RE = re.compile(r"^(?P<net>\S+)?\s+(?P<type>unicast|blackhole|unreachable|prohibit)\s+\[(?P<protocol>[^\s\]]+)[^\]]*\](?P<primary>\s+\*)?")
_VIA_RE = re.compile(r"^\s+via\s+(?P<via>\S+)\s+on\s+(?P<dev>\S+)")
_DEV_RE = re.compile(r"^\s+dev\s+(?P<dev>\S+)")


def parse_routes(text: str) -> dict[str, list[dict]]:
    """Routes of ``show route`` (any table, any filter): net -> its routes in BIRD's order, each
    ``{"protocol", "type", "primary", "via" (the next hops' gateways), "dev" (their devices)}``."""
    routes: dict[str, list[dict]] = {}
    net, current = None, None
    for line in text.splitlines():
        if not line.strip() or line.startswith(("BIRD ", "Access restricted", "Table ")):
            continue
        match = _ROUTE_RE.match(line)
        if match:
            net = match["net"] or net
            if net is None:
                continue
            current = {"protocol": match["protocol"], "type": match["type"], "primary": bool(match["primary"]), "via": [], "dev": []}
            routes.setdefault(net, []).append(current)
            continue
        if current is None:
            continue
        via = _VIA_RE.match(line)
        if via:
            current["via"].append(via["via"])
            current["dev"].append(via["dev"])
            continue
        dev = _DEV_RE.match(line)
        if dev:
            current["dev"].append(dev["dev"])
    return routes


def family(protocol: dict) -> int:
    """4 or 6: the family of a BGP session (its channel, else its neighbor's address)."""
    channels = protocol.get("channels") or {}
    if "ipv6" in channels and "ipv4" not in channels:
        return 6
    if "ipv4" in channels:
        return 4
    return 6 if ":" in protocol.get("neighbor_address", "") else 4


def parse_netstat(text: str) -> dict[str, int]:
    """The TCP-MD5 counters of /proc/net/netstat (per network namespace): failure, not_found, unexpected."""
    counters = {name: 0 for name in MD5_COUNTERS.values()}
    lines = text.splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        if not header.startswith("TcpExt:"):
            continue
        for key, value in zip(header.split()[1:], values.split()[1:], strict=False):
            if key in MD5_COUNTERS:
                counters[MD5_COUNTERS[key]] = int(value)
    return counters


def problems(protocols: list[dict], md5: dict[str, int]) -> list[str]:
    """One sentence per BGP session that is not Established, with the likely cause."""
    found = []
    for protocol in protocols:
        if protocol.get("proto") != "BGP" or protocol.get("established"):
            continue
        state = protocol.get("bgp_state") or protocol.get("state") or "unknown"
        text = f"BGP session {protocol['name']} to {protocol.get('neighbor_address', '?')} (AS {protocol.get('neighbor_as', '?')}) is {state}, not Established"
        if protocol.get("last_error"):
            text += f"; last error: {protocol['last_error']}"
        if protocol.get("state") == "down":
            text += "; the protocol is disabled or shut down"
        elif state in ("Connect", "Active", "Idle"):
            if md5["failure"]:
                text += f"; TCP-MD5 signatures failed {md5['failure']} times on this host (TcpExtTCPMD5Failure): the passwords of the two ends differ"
            elif md5["not_found"]:
                text += f"; {md5['not_found']} segments without TCP-MD5 signature were dropped (TcpExtTCPMD5NotFound): this end has a password, the peer none"
            elif md5["unexpected"]:
                text += (
                    f"; {md5['unexpected']} segments with an unexpected TCP-MD5 signature were dropped "
                    "(TcpExtTCPMD5Unexpected): the peer has a password, this end none"
                )
            else:
                text += "; no TCP connection: is the peer up, reachable, configured for this address?"
        found.append(text)
    return found


class BirdStatusError(L3CalicoError):
    """birdc could not be run or gave no answer (``details``: its rc, stdout and stderr)."""


def birdc_show(run: Runner, birdc: str, socket: str, *what: str) -> str:
    """The answer of ``birdc -r -s SOCKET show WHAT`` (restricted: read-only), or :class:`BirdStatusError`."""
    rc, out, err = run([birdc, "-r", "-s", socket, "show", *what])
    if rc != 0:
        raise BirdStatusError(f"birdc on {socket} failed: {(err or out).strip()}", rc=rc, stdout=out, stderr=err)
    return out


def read_md5(netstat: str) -> dict[str, int]:
    """The TCP-MD5 counters of this network namespace (:func:`parse_netstat` of the file ``netstat``)."""
    try:
        with open(netstat, encoding="ascii") as handle:
            return parse_netstat(handle.read())
    except OSError as exc:
        raise BirdStatusError(f"cannot read {netstat}: {exc.strerror or exc}") from exc


def sessions(protocols: list[dict], md5: dict[str, int]) -> dict:
    """The BGP sessions of parsed protocols: ``sessions`` (name -> state), ``established``, ``not_established``
    (names, in BIRD's order) and ``problems`` (:func:`problems`: one sentence per session not Established)."""
    states = {p["name"]: p.get("bgp_state") or p["state"] for p in protocols if p["proto"] == "BGP"}
    return {
        "sessions": states,
        "established": [name for name, state in states.items() if state == "Established"],
        "not_established": [name for name, state in states.items() if state != "Established"],
        "problems": problems(protocols, md5),
    }


def wait_established(
    run: Runner,
    birdc: str,
    socket: str,
    timeout: float,
    netstat: str = "/proc/net/netstat",
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict:
    """Read BIRD's BGP sessions every second until all are Established or ``timeout`` seconds have passed
    (``timeout`` 0: read once); :func:`sessions` of the last reading, plus ``waited`` (seconds)."""
    start = clock()
    while True:
        found = sessions(parse_protocols(birdc_show(run, birdc, socket, "protocols", "all")), read_md5(netstat))
        waited = clock() - start
        if not found["not_established"] or waited >= timeout:
            return {**found, "waited": round(waited, 1)}
        sleep(min(1.0, timeout - waited))
