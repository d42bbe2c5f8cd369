# SPDX-License-Identifier: MIT
"""Benchmark the lab: from nothing to a verified lab, then a no-op re-run.

    python benchmarks/lab.py                       (as root, from the repository, after `make setup`)
    L3LAB_BACKEND=qemu python benchmarks/lab.py    the same on QEMU guests (uml: the fast path)

1. From nothing: `labctl.py down`, then create.yml, site.yml, verify.yml, each timed.
2. No-op: the same three playbooks again on the running lab; site.yml must report changed=0.
3. The plain alternative for the boot: the same three guests booted one after another
   (under another prefix, so the running lab is untouched) against the parallel boot of step 1.

The lab is rebuilt from nothing and left running, converged and verified.

Goals (issues 7 and 12): <= 90 s to verified, <= 30 s for the no-op re-run. The guests are
whatever `labctl.py backend` chooses here (printed), or L3LAB_BACKEND's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABCTL = ROOT / "playbooks" / "lab" / "files" / "labctl.py"
INVENTORY = ROOT / "inventories" / "lab"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
HOSTS = {"node-a": "192.168.100.100/24", "node-b": "192.168.100.101/24", "node-c": "192.168.200.101/24"}


def env() -> dict:
    venv = ROOT / ".venv" / "bin"
    return dict(
        os.environ,
        PATH=f"{venv}:{os.environ['PATH']}",
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_HOME=str(ROOT / ".cache" / "ansible"),
        ANSIBLE_LOCAL_TEMP=str(ROOT / ".cache" / "ansible" / "tmp"),
    )


def playbook(path: str) -> tuple[float, dict]:
    t0 = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", str(INVENTORY), path], cwd=ROOT, env=env(), capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - t0
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-4000:])
        raise SystemExit(f"{path} failed (exit {proc.returncode})")
    recap = {m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3))} for m in RECAP.finditer(proc.stdout)}
    return elapsed, recap


def labctl(*args: str, extra_env: dict | None = None) -> dict:
    proc = subprocess.run(["/usr/bin/python3", str(LABCTL), *args], capture_output=True, text=True, check=False, env=dict(os.environ, **(extra_env or {})))
    result = json.loads(proc.stdout)
    if proc.returncode != 0:
        raise SystemExit(result.get("msg"))
    return result


def serial_boot() -> float:
    """The plain alternative: boot the three guests one after another."""
    # Another prefix than the lab's (l3lab- -> l3labb-): the running lab is untouched.
    prefix = os.environ.get("L3LAB_PREFIX", "l3lab-").rstrip("-") + "b-"
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        extra = {"L3LAB_PREFIX": prefix, "L3LAB_DIR": tmp}
        t0 = time.monotonic()
        try:
            hosts: dict = {}
            for name, ip in HOSTS.items():
                hosts[name] = ip
                labctl("up", json.dumps({"hosts": hosts}), extra_env=extra)
            return time.monotonic() - t0
        finally:
            labctl("down", extra_env=extra)


def main() -> int:
    if os.geteuid() != 0:
        print("benchmarks/lab.py: needs root (network namespaces, User-mode Linux guests)")
        return 0
    backend = labctl("backend")
    steps = ("playbooks/lab/create.yml", "playbooks/site.yml", "playbooks/verify.yml")
    labctl("down")
    cold = {}
    for step in steps:
        cold[step] = playbook(step)
    boot = max(labctl("status")["guests"][g]["uptime_ready"] for g in HOSTS)
    warm = {}
    for step in steps:
        warm[step] = playbook(step)
    site_changed = sum(h["changed"] for h in warm["playbooks/site.yml"][1].values())
    serial = serial_boot()
    t_cold = sum(t for t, _recap in cold.values())
    t_warm = sum(t for t, _recap in warm.values())
    create_cold = cold["playbooks/lab/create.yml"][0]

    name = {"uml": "User-mode Linux", "qemu": f"QEMU ({backend['accel']})"}[backend["backend"]]
    print(f"lab benchmark (3 {name} guests, 2 subnets, 9 workloads, 2 pools): {backend['why']}")
    print(f"{'step':28} {'from nothing':>13} {'no-op re-run':>13}")
    for step in steps:
        print(f"{step:28} {cold[step][0]:12.1f}s {warm[step][0]:12.1f}s")
    print(f"{'total':28} {t_cold:12.1f}s {t_warm:12.1f}s   (goals: 90 s, 30 s)")
    print(f"no-op re-run: site.yml changed={site_changed} (must be 0); no-op / from nothing = {t_warm / t_cold:.2f}")
    print(f"guest uptime when sshd listens: {boot:.1f} s (guest clock)")
    print(
        f"boot of 3 guests: parallel (create.yml, incl. router and Ansible start) {create_cold:.1f} s, "
        f"one after another (labctl only) {serial:.1f} s: parallel is {serial / create_cold:.1f}x faster"
    )
    ok = t_cold <= 90 and t_warm <= 30 and site_changed == 0
    print("goals met" if ok else "GOALS MISSED")
    return 0 if site_changed == 0 else 1  # a missed time goal is a figure; a non-idempotent run is a failure


if __name__ == "__main__":
    sys.exit(main())
