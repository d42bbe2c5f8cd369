# SPDX-License-Identifier: MIT
"""The lab's commands: up, restart, down, status."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

from . import common
from .backends import choose_backend, start_guest
from .capture import stop_capture_process
from .common import PREFIX, ROUTER, LabError, alive, netns_list, read_pid
from .guests import (
    ensure_key,
    guest_marker,
    guest_running,
    ready_uptime,
    stop_guest,
    sweep_guests,
    wait_ready,
    write_known_hosts,
)
from .network import ensure_router, remove_namespaces
from .relay import stop_relays
from .topology import plan


def up(spec: dict) -> dict:
    topo = plan(spec)
    runtime = choose_backend()
    common.LAB.mkdir(parents=True, exist_ok=True)
    spec_file = common.LAB / "topology.json"
    changed = bool(runtime["image"] and runtime["image"]["changed"])
    if spec_file.exists() and json.loads(spec_file.read_text()) != topo:
        down()  # another topology: start from nothing
        common.LAB.mkdir(parents=True, exist_ok=True)
        changed = True
    ensure_key()
    if ROUTER not in netns_list():
        ensure_router(topo)
        changed = True
    spec_file.write_text(json.dumps(topo, indent=1, sort_keys=True) + "\n")
    started = {}
    for guest in topo["guests"]:
        if not guest_running(guest, runtime):
            stop_guest(guest["name"])
            started[guest["name"]] = (time.monotonic(), start_guest(guest, topo["mem"], runtime))
    boot = wait_ready(started) if started else {}
    write_known_hosts(topo)
    image = runtime["image"]
    return {
        "changed": changed or bool(started),
        "started": sorted(boot),
        "boot_seconds": boot,
        "guest_uptime_ready": {name: ready_uptime(name) for name in boot},
        "lab_dir": str(common.LAB),
        "backend": runtime["backend"],
        "accel": runtime["accel"],
        "why": runtime["why"],
        "image": {k: image[k] for k in ("key", "kernel", "build_seconds", "dir")} if image else None,
        **topo,
    }


def restart(name: str) -> dict:
    """Power-cycle one guest (a reboot as a power cut): stop its QEMU by PID (SIGKILL: nothing is
    flushed), drop the SSH relays to it, boot it again on the same network and disk. Its disk
    keeps what reached it; its memory, /run, /tmp, network namespaces, links, routes, sysctls and
    processes are gone."""
    try:
        topo = json.loads((common.LAB / "topology.json").read_text())
    except (OSError, ValueError):
        raise LabError(f"restart {name}: no lab in {common.LAB}") from None
    guest = next((g for g in topo["guests"] if g["name"] == name), None)
    if guest is None:
        raise LabError(f"restart {name}: no such guest; the guests are {[g['name'] for g in topo['guests']]}")
    runtime = choose_backend()
    stop_relays(guest["address"])
    # A power cut: QEMU is killed outright; a UML kernel goes on SIGTERM (its helpers with it).
    was_running = stop_guest(name, sig=signal.SIGTERM if runtime["backend"] == "uml" else signal.SIGKILL)
    t0 = time.monotonic()
    boot = wait_ready({name: (t0, start_guest(guest, topo["mem"], runtime))})
    write_known_hosts(topo)
    return {"changed": True, "was_running": was_running, "started": [name], "boot_seconds": boot}


def down() -> dict:
    changed = False
    if common.LAB.exists():
        stop_capture_process()
        changed |= stop_relays()
        guests = [p.parent.name for p in common.LAB.glob("*/pid")]
        # Signal every guest first, then wait: they go in parallel.
        for name in guests:
            pid = read_pid(common.LAB / name / "pid")
            if pid is not None and alive(pid, guest_marker(name)):
                os.kill(pid, signal.SIGTERM)
                changed = True
        for name in guests:
            stop_guest(name)
    changed |= sweep_guests()
    changed |= remove_namespaces()
    if common.LAB.exists():
        shutil.rmtree(common.LAB)
        changed = True
    return {"changed": changed}


def status() -> dict:
    namespaces = [ns for ns in netns_list() if ns.startswith(PREFIX)]
    guests = {}
    for pidfile in sorted(common.LAB.glob("*/pid")):
        name = pidfile.parent.name
        pid = read_pid(pidfile)
        try:
            record = json.loads((pidfile.parent / "guest.json").read_text())
        except (OSError, ValueError):
            record = {}
        guests[name] = {
            "pid": pid,
            "running": pid is not None and alive(pid, guest_marker(name)),
            "ready": ready_uptime(name) is not None,
            "uptime_ready": ready_uptime(name),
            "backend": record.get("backend"),
            "accel": record.get("accel"),
        }
    return {"router": ROUTER in namespaces, "namespaces": namespaces, "guests": guests, "lab_dir": str(common.LAB)}
