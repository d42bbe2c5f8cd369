# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Parse ``birdc show protocols all`` and the kernel's TCP-MD5 counters (plain Python).

Used by the module ``l3.calico.bird_facts`` and unit-tested on captured output.
"""

from __future__ import annotations

import re

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
