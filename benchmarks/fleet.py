# SPDX-License-Identifier: MIT
"""Fleet benchmark: what Ansible costs around the IPAM and the roles as the inventory grows.

Every run uses a generated inventory of its own (connection local, one pool 10.0.0.0/8 with /26
blocks, N hosts x W workloads), in a temporary directory.

1. ``ipam``: the floor - a one-task play (``debug``, ``run_once``) over the same inventory: Ansible's
   own cost of loading it - against ``playbooks/ipam.yml`` from an empty state (first run) and again
   (no-op), and the ratios. Goals: first run <= 3x the floor, no-op <= 2x.
2. ``site``: ``playbooks/site.yml --check`` inside a network namespace of its own (``l3bench-site``,
   created empty and deleted afterwards: the modules read it, nothing is written in check mode) at
   several fleet sizes. Every module runs through a wrapper interpreter that records its CPU time,
   so the controller's share is the run's CPU minus the modules'; per host it is
   (controller share - the floor's CPU) / hosts. Goal: the same per host at 100 and at 1,000 hosts.
   Beside each size, the task floor: ansible-core's own controller CPU per task and host, from
   ``TASK_FLOOR_T`` ``debug`` tasks (an action, no module) and one ``ping`` (a module run through the
   same wrapper) on every host of the same inventory (each task's CPU by the callback below, / hosts);
   twice: on the bare inventory, and with the fleet's IPAM result held as site.yml holds it (the IPAM
   role once first). If it grows with the fleet, so does every per-host task of site.yml.
   ``--task-floor 100x10,1000x10`` measures it alone (cheap: seconds of CPU per host).
3. ``gc``: site.yml's controller share at one fleet size without and with the callback
   ``l3.calico.gc_freeze`` (the project's ansible.cfg enables it; every other figure is with it), and the ratio.
4. ``day2``: the controller's share (same way, check mode) of ``audit.yml``, ``node-remove.yml`` and
   ``pool-migrate.yml`` at one fleet size.

CPU seconds (this process's children: ansible-playbook, its workers, the modules) are what the
figures are judged on; the machine may be shared. Wall seconds are printed beside them.

With ``--tasks``, every site and day-2 run also prints each task's controller CPU per host (its CPU
minus its modules', a callback timing each task: benchmarks/callback_plugins/task_cpu.py), to find what
grows with the fleet.

Usage: python benchmarks/fleet.py [--ipam 1000x50,10000x100] [--site 100x10,1000x10] [--gc 300x10] [--day2 1000x10] [--tasks]
                                 [--task-floor 100x10,300x10,1000x10]
       (an empty value skips that part)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NETNS = os.environ.get("L3BENCH_NETNS", "l3bench-site")  # another name: two runs side by side
TASKS = {"on": False, "floor": True}  # --tasks: per-task CPU (callback task_cpu); the task floor beside site

FLOOR = """\
- name: Floor - one task, once
  hosts: calico_nodes
  gather_facts: false
  tasks:
    - name: Say hello once
      ansible.builtin.debug:
        msg: floor
      run_once: true
"""

TASK_FLOOR_T = 2  # debug tasks per play of the task floor (and one ping)


def _floor_tasks(prefix: str) -> str:
    return "".join(f"    - name: {prefix} debug {i}\n      ansible.builtin.debug:\n        msg: floor\n" for i in range(TASK_FLOOR_T)) + (
        f"    - name: {prefix} ping\n      ansible.builtin.ping:\n"
    )


# Ansible's own per-task cost, twice: on the bare inventory ("bare"), and with the fleet's IPAM result held
# by the controller as site.yml holds it ("held": the IPAM role once first, as site.yml applies it).
# T debug tasks (an action, no module) and one ping (a module, through the wrapper) on every host.
TASK_FLOOR = f"""\
- name: Task floor - trivial tasks on every host
  hosts: calico_nodes
  gather_facts: false
  tasks:
{_floor_tasks("Bare")}
- name: Task floor - the same with the IPAM result held
  hosts: calico_nodes
  gather_facts: false
  roles:
    - role: l3.calico.calico_ipam
      run_once: true
      calico_ipam_show_summary: false
  tasks:
{_floor_tasks("Held")}"""

# The wrapper interpreter: runs the module with the real one and appends the CPU seconds both took.
WRAPPER = """\
#!{python}
import fcntl, os, resource, subprocess, sys
rc = subprocess.call(["/usr/bin/python3", *sys.argv[1:]])
own = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
with open(os.environ["L3BENCH_MODULE_LOG"], "a") as log:
    fcntl.flock(log, fcntl.LOCK_EX)
    log.write("%f\\n" % cpu)
sys.exit(rc)
"""


def write_inventory(path: Path, hosts: int, workloads: int, extra: dict | None = None) -> Path:
    """hosts.yml (JSON, which YAML reads fastest) and group_vars; returns the inventory directory."""
    path.mkdir(parents=True, exist_ok=True)
    nodes = {
        f"n{n:05d}": {
            "calico_node_ip": f"192.168.{n // 250}.{n % 250 + 1}/16",
            "calico_workloads": [{"name": f"w{n:05d}-{w:03d}"} for w in range(workloads)],
        }
        for n in range(hosts)
    }
    group = {
        "ansible_connection": "local",
        "calico_pools": [{"name": "bench", "cidr": "10.0.0.0/8", "block_size": 26}],
        **(extra or {}),
    }
    (path / "hosts.yml").write_text(json.dumps({"calico_nodes": {"hosts": nodes, "vars": group}}))
    return path


def env_for(work: Path, module_log: Path | None = None, tasks: bool = False, gc_freeze: bool = True) -> dict:
    """The project's ansible.cfg (callback l3.calico.gc_freeze on); ``gc_freeze=False``: the same without it."""
    env = dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_LOCAL_TEMP=str(work / ".tmp"),
        ANSIBLE_HOME=str(work / ".ansible"),
        ANSIBLE_NOCOLOR="1",
    )
    if module_log is not None:
        env["L3BENCH_MODULE_LOG"] = str(module_log)
    # ansible-core refuses an empty callbacks_enabled: without gc_freeze, task_cpu (cheap) stands alone.
    if (tasks or not gc_freeze) and module_log is not None:
        env["ANSIBLE_CALLBACK_PLUGINS"] = str(ROOT / "benchmarks" / "callback_plugins")
        env["ANSIBLE_CALLBACKS_ENABLED"] = "l3.calico.gc_freeze,task_cpu" if gc_freeze else "task_cpu"
        env["L3BENCH_TASK_LOG"] = str(module_log.with_suffix(".tasks"))
    return env


def playbook(
    inventory: Path,
    play: Path,
    *args: str,
    netns: bool = False,
    module_log: Path | None = None,
    ok_rc: tuple = (0,),
    tasks: bool | None = None,
    gc_freeze: bool = True,
) -> tuple[float, float, float]:
    """Run one ansible-playbook; return (wall s, CPU s of everything it ran, CPU s of the modules)."""
    cmd = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(play), *args]
    if netns:
        cmd = ["ip", "netns", "exec", NETNS, *cmd]
    if module_log is not None:
        module_log.write_text("")
        module_log.with_suffix(".tasks").write_text("")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    env = env_for(inventory.parent, module_log, TASKS["on"] if tasks is None else tasks, gc_freeze)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in ok_rc:
        sys.stdout.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"{play.name} failed (exit {proc.returncode})")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    modules = sum(float(x) for x in module_log.read_text().split()) if module_log is not None else 0.0
    return wall, cpu, modules


def sizes(text: str) -> list[tuple[int, int]]:
    return [tuple(int(x) for x in item.split("x")) for item in text.split(",") if item]


def line(label: str, wall: float, cpu: float, note: str = "") -> None:
    print(f"  {label:<44} {cpu:8.1f} s CPU {wall:8.1f} s wall  {note}", flush=True)


def bench_ipam(work: Path, hosts: int, workloads: int) -> None:
    print(f"playbooks/ipam.yml, {hosts} hosts x {workloads} workloads", flush=True)
    inv = write_inventory(work / f"ipam-{hosts}x{workloads}", hosts, workloads)
    floor = work / "floor.yml"
    fw, fc, _modules = playbook(inv, floor)
    line("floor (one debug task, run_once)", fw, fc)
    first_w, first_c, _modules = playbook(inv, ROOT / "playbooks" / "ipam.yml", "-e", "calico_ipam_show_summary=false")
    line("ipam.yml, first run", first_w, first_c, f"{first_w / fw:.2f}x the floor (wall), {first_c / fc:.2f}x (CPU)")
    noop_w, noop_c, _modules = playbook(inv, ROOT / "playbooks" / "ipam.yml", "-e", "calico_ipam_show_summary=false")
    line("ipam.yml, no-op", noop_w, noop_c, f"{noop_w / fw:.2f}x the floor (wall), {noop_c / fc:.2f}x (CPU)")
    print(
        f"  goals: first run <= 3x the floor: {'met' if first_c <= 3 * fc else 'NOT met'} (CPU); no-op <= 2x: {'met' if noop_c <= 2 * fc else 'NOT met'} (CPU)",
        flush=True,
    )
    shutil.rmtree(inv, ignore_errors=True)


SITE_VARS = {
    "calico_node_install_packages": False,
    "calico_node_firewall_backend": "iptables",
    "calico_bgp_service_manager": "supervisor",
}


def controller_share(inv: Path, play: Path, floor_cpu: float, hosts: int, label: str, module_log: Path, *args: str, gc_freeze: bool = True) -> float:
    wall, cpu, modules = playbook(inv, play, "--check", *args, netns=True, module_log=module_log, gc_freeze=gc_freeze)
    ctrl = cpu - modules
    per_host = (ctrl - floor_cpu) / hosts
    line(label, wall, cpu, f"modules {modules:.1f} s, controller {ctrl:.1f} s, beyond the floor {1000 * per_host:.1f} ms CPU per host")
    if TASKS["on"]:
        print_tasks(module_log.with_suffix(".tasks"), hosts)
    return per_host


def print_tasks(log: Path, hosts: int) -> None:
    """Each task's controller CPU (its CPU minus its modules') per host of the fleet, and its modules'."""
    print(f"    {'task':<72} {'ran on':>6} {'ctrl ms/host':>12} {'modules ms/host':>15}", flush=True)
    for entry in (json.loads(text) for text in log.read_text().splitlines()):
        ctrl = entry["cpu"] - entry["modules"]
        print(f"    {entry['task'][:72]:<72} {entry['hosts']:>6} {1000 * ctrl / hosts:12.1f} {1000 * entry['modules'] / hosts:15.1f}", flush=True)


def wrapper_inventory(work: Path, hosts: int, workloads: int, name: str) -> Path:
    wrapper = work / "python-wrapper"
    wrapper.write_text(WRAPPER.format(python="/usr/bin/python3"))
    wrapper.chmod(0o755)
    return write_inventory(work / name, hosts, workloads, {**SITE_VARS, "ansible_python_interpreter": str(wrapper)})


def task_floor(work: Path, inv: Path, hosts: int) -> dict:
    """Ansible's own controller CPU per task and host (s): {"bare debug", "bare ping", "held debug", "held ping"}."""
    log = work / "modules.log"
    wall, cpu, modules = playbook(inv, work / "task-floor.yml", "--check", module_log=log, tasks=True)
    per_task = dict.fromkeys(("bare debug", "bare ping", "held debug", "held ping"), 0.0)
    for entry in (json.loads(text) for text in log.with_suffix(".tasks").read_text().splitlines()):
        kind = " ".join(entry["task"].split()[:2]).lower()
        if kind in per_task:
            per_task[kind] += (entry["cpu"] - entry["modules"]) / ((TASK_FLOOR_T if kind.endswith("debug") else 1) * hosts)
    line(
        f"task floor, {hosts} hosts",
        wall,
        cpu,
        "controller ms per task and host: " + ", ".join(f"{kind} {1000 * value:.1f}" for kind, value in per_task.items()),
    )
    return per_task


def bench_task_floor(work: Path, fleet: list[tuple[int, int]]) -> None:
    print(f"task floor: ansible-core's own controller CPU per task and host ({TASK_FLOOR_T} debug + 1 ping, bare and with the IPAM result held)", flush=True)
    floors = []
    for hosts, workloads in fleet:
        inv = wrapper_inventory(work, hosts, workloads, f"floor-{hosts}x{workloads}")
        if TASKS["floor"]:
            floors.append(task_floor(work, inv, hosts))
        shutil.rmtree(inv, ignore_errors=True)
    floor_ratios(floors)


def floor_ratios(floors: list[dict]) -> None:
    if len(floors) > 1:
        ratios = ", ".join(f"{kind} {floors[-1][kind] / floors[0][kind]:.2f}x" for kind in floors[0] if floors[0][kind])
        print(f"  task floor per task and host, largest fleet / smallest: {ratios}", flush=True)


def bench_site(work: Path, fleet: list[tuple[int, int]]) -> None:
    print("playbooks/site.yml --check: the controller's share per host", flush=True)
    shares, floors = [], []
    for hosts, workloads in fleet:
        inv = wrapper_inventory(work, hosts, workloads, f"site-{hosts}x{workloads}")
        _wall, fc, _modules = playbook(inv, work / "floor.yml")
        if TASKS["floor"]:
            floors.append(task_floor(work, inv, hosts))
        shares.append(controller_share(inv, ROOT / "playbooks" / "site.yml", fc, hosts, f"site.yml --check, {hosts} x {workloads}", work / "modules.log"))
        shutil.rmtree(inv, ignore_errors=True)
    if len(shares) > 1:
        print(f"  per host, largest fleet / smallest: {shares[-1] / shares[0]:.2f}x (1.00 = constant)", flush=True)
    floor_ratios(floors)
    if len(shares) > 1 and len(floors) == len(shares) and all(floor["held debug"] for floor in floors):
        # Ansible's own per-task cost grows with the inventory too: site.yml per host in units of it says whether
        # anything of ours grows beside it (the same number of units at every size = nothing).
        units = [share / floor["held debug"] for share, floor in zip(shares, floors, strict=True)]
        print(
            f"  per host in units of the held debug task: {' -> '.join(f'{unit:.1f}' for unit in units)} ({units[-1] / units[0]:.2f}x)",
            flush=True,
        )


def bench_gc(work: Path, hosts: int, workloads: int) -> None:
    """site.yml --check with the callback l3.calico.gc_freeze (the project's ansible.cfg) and without it."""
    print(f"callback l3.calico.gc_freeze: site.yml --check, {hosts} hosts x {workloads} workloads, without and with it", flush=True)
    inv = wrapper_inventory(work, hosts, workloads, f"gc-{hosts}x{workloads}")
    shares = {}
    for gc_freeze in (False, True):
        _wall, fc, _modules = playbook(inv, work / "floor.yml", gc_freeze=gc_freeze, module_log=work / "floor.log")
        label = f"site.yml --check, {'with' if gc_freeze else 'without'} gc_freeze"
        shares[gc_freeze] = controller_share(inv, ROOT / "playbooks" / "site.yml", fc, hosts, label, work / "modules.log", gc_freeze=gc_freeze)
    shutil.rmtree(inv, ignore_errors=True)
    print(f"  controller per host, without / with: {shares[False] / shares[True]:.2f}x", flush=True)


def bench_day2(work: Path, hosts: int, workloads: int) -> None:
    print(f"day-2 playbooks --check, {hosts} hosts x {workloads} workloads: the controller's share", flush=True)
    inv = wrapper_inventory(work, hosts, workloads, f"day2-{hosts}x{workloads}")
    # A recorded state to audit, remove a node from and migrate out of.
    playbook(inv, ROOT / "playbooks" / "ipam.yml", "-e", "calico_ipam_show_summary=false")
    _wall, fc, _modules = playbook(inv, work / "floor.yml")
    log = work / "modules.log"
    controller_share(inv, ROOT / "playbooks" / "audit.yml", fc, hosts, "audit.yml", log, "-e", "calico_audit_fail=false")
    controller_share(inv, ROOT / "playbooks" / "node-remove.yml", fc, hosts, "node-remove.yml", log, "-e", "calico_remove_node=n00000")
    migrate = {
        "calico_migrate_pool": "bench",
        "calico_pools": [
            {"name": "bench", "cidr": "10.0.0.0/8", "block_size": 26, "disabled": True},
            {"name": "next", "cidr": "100.64.0.0/10", "block_size": 26},
        ],
    }
    controller_share(inv, ROOT / "playbooks" / "pool-migrate.yml", fc, hosts, "pool-migrate.yml", log, "-e", json.dumps(migrate))
    shutil.rmtree(inv, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ipam", default="1000x50,10000x100", help="HOSTSxWORKLOADS,... for ipam.yml")
    parser.add_argument("--site", default="100x10,1000x10", help="HOSTSxWORKLOADS,... for site.yml --check")
    parser.add_argument("--day2", default="1000x10", help="HOSTSxWORKLOADS for the day-2 playbooks")
    parser.add_argument("--gc", default="300x10", help="HOSTSxWORKLOADS for site.yml --check without and with l3.calico.gc_freeze")
    parser.add_argument("--task-floor", default="", help="HOSTSxWORKLOADS,... for the task floor alone")
    parser.add_argument("--no-floor-beside", action="store_true", help="no task floor beside each site.yml size (--task-floor alone)")
    parser.add_argument("--tasks", action="store_true", help="print each task's controller CPU per host (site, day-2)")
    args = parser.parse_args()
    TASKS["on"] = args.tasks
    TASKS["floor"] = not args.no_floor_beside
    work = Path(tempfile.mkdtemp(prefix="l3bench-fleet-"))
    (work / "floor.yml").write_text(FLOOR)
    (work / "task-floor.yml").write_text(TASK_FLOOR)
    netns = bool(args.site or args.day2 or args.gc)
    try:
        if netns:
            subprocess.run(["ip", "netns", "add", NETNS], check=True)
            subprocess.run(["ip", "-n", NETNS, "link", "set", "lo", "up"], check=True)
        for hosts, workloads in sizes(args.ipam):
            bench_ipam(work, hosts, workloads)
        if args.task_floor:
            bench_task_floor(work, sizes(args.task_floor))
        if args.site:
            bench_site(work, sizes(args.site))
        for hosts, workloads in sizes(args.gc):
            bench_gc(work, hosts, workloads)
        for hosts, workloads in sizes(args.day2):
            bench_day2(work, hosts, workloads)
    finally:
        if netns:
            subprocess.run(["ip", "netns", "delete", NETNS], check=False)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
