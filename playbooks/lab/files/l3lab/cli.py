# SPDX-License-Identifier: MIT
"""labctl's command line: argparse subcommands, each printing one JSON object (the relay excepted).

    labctl.py image            build the guests' root image unless it is current
    labctl.py backend          which guests this machine runs (QEMU or the UML fast path), and why
    labctl.py up SPEC_JSON     create what is missing (a no-op on a running lab)
    labctl.py down             remove every trace: guests and relays by PID, namespaces, files
    labctl.py status           what runs
    labctl.py restart HOST     power-cycle one guest: its disk stays, its memory and kernel state go
    labctl.py relay HOST PORT  stdin/stdout <-> TCP HOST:PORT (an ssh ProxyCommand, run in the router)
    labctl.py capture start    tcpdump on the router's ports (tunnelled and plain workload traffic)
    labctl.py capture stop     stop it; prints the flows tcpdump read from the capture

SPEC_JSON: {"hosts": {"node-a": "192.168.100.100/24", ...}, "mem": "256M"}  (host name: address/prefix)

A command that cannot be done prints {"failed": true, "msg": ...} and exits 1; a wrong command
line exits 2 with the usage.
"""

from __future__ import annotations

import argparse
import json
import sys

from .backends import choose_backend
from .capture import capture_start, capture_stop
from .common import LabError
from .image import ensure_image
from .lab import down, restart, status, up
from .relay import relay


def backend() -> dict:
    runtime = choose_backend()
    return {"backend": runtime["backend"], "accel": runtime["accel"], "why": runtime["why"]}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="labctl.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("image", help="build the guests' root image unless it is current").set_defaults(run=lambda args: ensure_image())
    commands.add_parser("backend", help="which guests this machine runs, and why").set_defaults(run=lambda args: backend())
    cmd = commands.add_parser("up", help="create what is missing (a no-op on a running lab)")
    cmd.add_argument("spec", metavar="SPEC_JSON", help='{"hosts": {"node-a": "192.168.100.100/24", ...}, "mem": "256M"}')
    cmd.set_defaults(run=lambda args: up(json.loads(args.spec)))
    commands.add_parser("down", help="remove every trace of the lab").set_defaults(run=lambda args: down())
    commands.add_parser("status", help="what runs").set_defaults(run=lambda args: status())
    cmd = commands.add_parser("restart", help="power-cycle one guest (its disk stays)")
    cmd.add_argument("host", metavar="HOST")
    cmd.set_defaults(run=lambda args: restart(args.host))
    cmd = commands.add_parser("relay", help="stdin/stdout <-> TCP HOST:PORT (an ssh ProxyCommand)")
    cmd.add_argument("host", metavar="HOST")
    cmd.add_argument("port", metavar="PORT", type=int)
    cmd.set_defaults(relay=True)
    cmd = commands.add_parser("capture", help="tcpdump on the router's ports: start, or stop and read the flows")
    cmd.add_argument("action", choices=("start", "stop"))
    cmd.set_defaults(run=lambda args: capture_start() if args.action == "start" else capture_stop())
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "relay", False):
        return relay(args.host, args.port)  # stdout is the SSH connection: no JSON
    try:
        result = args.run(args)
    except (LabError, json.JSONDecodeError) as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
