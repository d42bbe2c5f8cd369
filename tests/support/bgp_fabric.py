# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Network namespaces, real BIRD and the calico_bgp role for the integration tests.

Every namespace is named <prefix><fabric>-<node> (the prefix l3tbgp- unless a suite gives its own); a router namespace holds one bridge per
subnet (no dummy/ipip driver needed); a node namespace has eth0 on a subnet and a stand-in
``tunl0`` (one end of a veth pair). The role runs once for all nodes of a fabric: each
host's Python interpreter is a wrapper that enters the node's namespace
(``ip netns exec``), so modules, birdc and the BIRD they start live there.
Everything is removed at the end; BIRD processes are stopped by PID.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import yaml

PREFIX = "l3tbgp-"
ROOT = Path(__file__).resolve().parents[2]
BGP_TESTS = ROOT / "tests" / "integration" / "roles" / "calico_bgp"
PLAYBOOK = BGP_TESTS / "converge.yml"
CALLBACKS = BGP_TESTS / "callback_plugins"  # test_json: one JSON document per run
BIRD = shutil.which("bird") or "/usr/sbin/bird"
BIRDC = shutil.which("birdc") or "/usr/sbin/birdc"

# Short timers keep the suite fast.
FAST = {
    "calico_bgp_connect_delay_time": 1,
    "calico_bgp_connect_retry_time": 2,
    "calico_bgp_error_wait_time": [1, 5],
    "calico_bgp_kernel_scan_time": 1,
    "calico_bgp_socket_timeout": 10,
}


def missing() -> str | None:
    if os.geteuid() != 0:
        return "root (network namespaces)"
    for tool in (BIRD, BIRDC, "/usr/sbin/ip", "/usr/bin/setsid"):
        if not os.path.exists(tool):
            return tool
    try:
        import pwd

        pwd.getpwnam("bird")
    except KeyError:
        return "the user bird (Debian package bird2)"
    if not (ROOT / ".venv" / "bin" / "ansible-playbook").exists() and not shutil.which("ansible-playbook"):
        return "ansible-playbook"
    return None


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Poll predicate() until it returns a truthy value; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Watch:
    """Poll predicate() in a thread from now on; ``when`` is the wall-clock time it first held."""

    def __init__(self, predicate, interval: float = 0.05, timeout: float = 120):
        import threading

        self.when: datetime.datetime | None = None
        self._stop = threading.Event()

        def run():
            deadline = time.monotonic() + timeout
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    if predicate():
                        self.when = datetime.datetime.now()
                        return
                except AssertionError:
                    pass  # BIRD not up yet
                time.sleep(interval)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def wait(self, timeout: float) -> datetime.datetime:
        self._thread.join(timeout)
        self._stop.set()
        if self.when is None:
            raise AssertionError(f"the watched condition did not hold within {timeout} s")
        return self.when


def task_time(result: dict, host: str, name: str, key: str = "end") -> datetime.datetime:
    """The start/end time a command task reported for host."""
    return datetime.datetime.strptime(task_results(result, name)[host][key], "%Y-%m-%d %H:%M:%S.%f")


def ipam_result(nodes: dict, pools: dict) -> dict:
    """A calico_ipam_result of the documented shape (docs/architecture.md).

    nodes: {name: {"ip": "a.b.c.d/len", "blocks": [(cidr, pool)], "borrowed": [(ip, block, pool)]}}
    pools: {name: {"cidr", "ipip_mode", "vxlan_mode", "disable_bgp_export"}}
    """
    import ipaddress

    result = {"changed": False, "nodes": {}, "pools": {}, "problems": []}
    for name, node in nodes.items():
        iface = ipaddress.IPv4Interface(node["ip"])
        workloads = [
            {
                "id": f"default.w{i}",
                "name": f"w{i}",
                "namespace": "default",
                "pool": pool,
                "ip": ip,
                "block": block,
                "borrowed": True,
            }
            for i, (ip, block, pool) in enumerate(node.get("borrowed", []))
        ]
        result["nodes"][name] = {
            "ip": str(iface.ip),
            "network": str(iface.network),
            "blocks": [{"cidr": cidr, "pool": pool} for cidr, pool in node.get("blocks", [])],
            "workloads": workloads,
            "borrowed": [w["ip"] for w in workloads],
            "tunnels": {"ipip": None, "vxlan": None},
        }
    for name, pool in pools.items():
        result["pools"][name] = {
            "cidr": pool["cidr"],
            "block_size": 26,
            "ipip_mode": pool.get("ipip_mode", "Never"),
            "vxlan_mode": pool.get("vxlan_mode", "Never"),
            "nat_outgoing": False,
            "disabled": False,
            "disable_bgp_export": pool.get("disable_bgp_export", False),
            "namespaces": [],
            "blocks": 0,
            "allocated": 0,
            "capacity": 65536,
        }
    return result


class Fabric:
    """Namespaces of one topology: a router with one bridge per subnet, nodes, external BIRDs."""

    def __init__(self, tag: str, work: Path, prefix: str = PREFIX):
        self.prefix = prefix
        self.tag = tag
        self.work = work
        self.namespaces: list[str] = []
        self.pid_files: list[Path] = []  # supervisors first, then BIRDs
        self.nodes: dict[str, dict] = {}
        self.router = self.ns("r")

    def start(self) -> Fabric:
        self.work.mkdir(parents=True)
        self.work.chmod(0o755)
        self.add_namespace("r")
        self.sh(self.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        return self

    # -- plumbing -------------------------------------------------------------------------
    def ns(self, short: str) -> str:
        return f"{self.prefix}{self.tag}-{short}"

    def sh(self, ns: str, *argv: str, check: bool = True) -> str:
        proc = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=60, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{ns}: {' '.join(argv)}: rc={proc.returncode} {proc.stderr.strip()}")
        return proc.stdout

    def add_namespace(self, short: str) -> str:
        name = self.ns(short)
        subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
        self.namespaces.append(name)
        self.sh(name, "ip", "link", "set", "lo", "up")
        return name

    def add_subnet(self, name: str, gateway: str) -> None:
        """A bridge br-<name> in the router namespace, with the router's address gateway (a.b.c.d/len)."""
        self.sh(self.router, "ip", "link", "add", f"br-{name}", "type", "bridge")
        self.sh(self.router, "ip", "addr", "add", gateway, "dev", f"br-{name}")
        self.sh(self.router, "ip", "link", "set", f"br-{name}", "up")

    def add_host(self, short: str, address: str, subnet: str, gateway: str | None = None, tunl0: bool = True) -> str:
        """A namespace with eth0 (address a.b.c.d/len) on subnet, a default route, a stand-in tunl0."""
        ns = self.add_namespace(short)
        port = f"v-{short}"
        self.sh(self.router, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self.sh(self.router, "ip", "link", "set", port, "master", f"br-{subnet}", "up")
        self.sh(ns, "ip", "addr", "add", address, "dev", "eth0")
        self.sh(ns, "ip", "link", "set", "eth0", "up")
        if gateway:
            self.sh(ns, "ip", "route", "add", "default", "via", gateway)
        if tunl0:
            # The kernel here has no ipip driver: a veth end named tunl0 stands in for the
            # IPIP device (the real tunnel is proven in the lab).
            self.sh(ns, "ip", "link", "add", "tunl0", "type", "veth", "peer", "name", "tunl0-peer")
            self.sh(ns, "ip", "link", "set", "tunl0", "up")
            self.sh(ns, "ip", "link", "set", "tunl0-peer", "up")
        return ns

    def add_node(self, name: str, address: str, subnet: str, gateway: str | None = None) -> dict:
        """A calico node: host namespace, per-node paths, a Python wrapper entering the namespace."""
        ns = self.add_host(name, address, subnet, gateway)
        base = self.work / name
        (base / "etc").mkdir(parents=True)
        python = base / "python"
        python.write_text(f'#!/bin/sh\nexec /usr/bin/ip netns exec {ns} /usr/bin/python3 "$@"\n')
        python.chmod(0o755)
        paths = {
            "calico_bgp_config_file": str(base / "etc" / "bird.conf"),
            "calico_bgp_secrets_file": str(base / "etc" / "bird-secrets.conf"),
            "calico_bgp_control_socket": str(base / "run" / "bird.ctl"),
            "calico_bgp_pid_file": str(base / "run" / "bird.pid"),
            "calico_bgp_supervisor_pid_file": str(base / "run" / "supervisor.pid"),
            "calico_bgp_log_file": str(base / "run" / "bird.log"),
        }
        self.pid_files.insert(0, Path(paths["calico_bgp_supervisor_pid_file"]))
        self.pid_files.append(Path(paths["calico_bgp_pid_file"]))
        node = {"ns": ns, "address": address, "python": str(python), **paths}
        self.nodes[name] = node
        return node

    def add_workload_route(self, node: str, ip: str) -> None:
        """A workload's host side: a cali* veth with <ip>/32 dev cali* scope link (learned by BIRD)."""
        from ansible_collections.l3.calico.plugins.module_utils.naming import veth_name

        veth = veth_name(f"default.{ip}")
        ns = self.nodes[node]["ns"]
        self.sh(ns, "ip", "link", "add", veth, "type", "veth", "peer", "name", "wl-" + veth[-8:])
        self.sh(ns, "ip", "link", "set", veth, "up")
        self.sh(ns, "ip", "link", "set", "wl-" + veth[-8:], "up")
        self.sh(ns, "ip", "route", "add", f"{ip}/32", "dev", veth, "scope", "link")

    def start_bird(self, short: str, config: str) -> dict:
        """An external BIRD (not managed by the role) in namespace short; returns its paths."""
        ns = self.ns(short)
        base = self.work / f"ext-{short}"
        base.mkdir(exist_ok=True)
        conf, sock, pid = base / "bird.conf", base / "bird.ctl", base / "bird.pid"
        conf.write_text(config)
        self.pid_files.append(pid)
        self.sh(ns, BIRD, "-c", str(conf), "-s", str(sock), "-P", str(pid))
        return {"ns": ns, "conf": conf, "sock": str(sock), "pid": pid}

    # -- BIRD and kernel state ------------------------------------------------------------------
    def birdc(self, node: str, *command: str, sock: str | None = None) -> str:
        ns = self.nodes[node]["ns"] if node in self.nodes else self.ns(node)
        return self.sh(ns, BIRDC, "-s", sock or self.nodes[node]["calico_bgp_control_socket"], *command)

    def sessions(self, node: str) -> dict[str, tuple[str, str]]:
        """BGP protocol -> (BGP state, since) from birdc show protocols all (the module's parser)."""
        from ansible_collections.l3.calico.plugins.module_utils.bird_status import parse_protocols

        return {
            p["name"]: (p.get("bgp_state", p["state"]), p["since"])
            for p in parse_protocols(self.birdc(node, "show", "protocols", "all"))
            if p["proto"] == "BGP"
        }

    def established(self, node: str) -> bool:
        sessions = self.sessions(node)
        return bool(sessions) and all(state == "Established" for state, _since in sessions.values())

    def routes(self, node: str, *selector: str) -> list[str]:
        ns = self.nodes[node]["ns"] if node in self.nodes else self.ns(node)
        out = self.sh(ns, "ip", "-4", "route", "show", *selector)
        return [" ".join(line.split()) for line in out.splitlines()]

    # -- Ansible ----------------------------------------------------------------------------------
    def inventory(
        self,
        ipam: dict,
        group_vars: dict | None = None,
        host_vars: dict | None = None,
        route_reflectors: list[str] | None = None,
        raw_group_vars: str = "",
    ) -> Path:
        hosts = {}
        for name, node in self.nodes.items():
            hosts[name] = {
                "ansible_connection": "local",
                "ansible_python_interpreter": node["python"],
                "calico_bgp_supervisor": str(self.work / "calico-bird-service"),
                **{k: v for k, v in node.items() if k.startswith("calico_bgp_")},
                **((host_vars or {}).get(name, {})),
            }
        inventory = {
            "all": {
                "children": {
                    "calico_nodes": {
                        "hosts": hosts,
                        "vars": {"calico_ipam_result": ipam, **FAST, **(group_vars or {})},
                    }
                }
            }
        }
        if route_reflectors:
            inventory["all"]["children"]["calico_route_reflectors"] = {"hosts": {n: {} for n in route_reflectors}}
        path = self.work / "inventory"
        path.mkdir(exist_ok=True)
        (path / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
        group_vars_dir = path / "group_vars"
        group_vars_dir.mkdir(exist_ok=True)
        (group_vars_dir / "calico_nodes.yml").write_text("---\n" + raw_group_vars)
        return path

    def vault_string(self, name: str, secret: str) -> str:
        """YAML `name: !vault ...` encrypted with this fabric's vault password file."""
        self.vault_password_file.write_text("l3tbgp-test-vault\n")
        proc = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "ansible-vault"), "encrypt_string", "--name", name, secret],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env=self._env(),
        )
        return proc.stdout

    @property
    def vault_password_file(self) -> Path:
        return self.work / "vault-password"

    def _env(self) -> dict:
        env = dict(os.environ)
        venv = ROOT / ".venv" / "bin"
        env.update(
            {
                "PATH": f"{venv}:{env.get('PATH', '')}",
                "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
                "ANSIBLE_STDOUT_CALLBACK": "test_json",
                "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
                "ANSIBLE_LOCAL_TEMP": str(self.work / ".ansible-tmp"),
                "ANSIBLE_HOME": str(self.work / ".ansible"),
                "ANSIBLE_FORCE_COLOR": "0",
            }
        )
        if self.vault_password_file.exists():
            env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(self.vault_password_file)
        return env

    def converge(self, inventory: Path, *args: str, check: bool = True) -> dict:
        """Run the role on every node (JSON callback); return the parsed result, stats and rc."""
        env = self._env()
        proc = subprocess.run(
            ["ansible-playbook", "-i", str(inventory / "hosts.yml"), str(PLAYBOOK), *args],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=300,
        )
        result = json_result(proc)
        if check and proc.returncode != 0:
            raise AssertionError(f"ansible-playbook failed rc={proc.returncode}: {failures(result)}\n{proc.stderr[-2000:]}")
        return result

    # -- cleanup ----------------------------------------------------------------------------------
    def close(self) -> None:
        for pid_file in self.pid_files:
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                continue
            cmdline = Path(f"/proc/{pid}/cmdline")
            try:
                command = cmdline.read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "bird" not in command:  # a reused pid: not ours
                continue
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)


def json_result(proc: subprocess.CompletedProcess) -> dict:
    """An ansible-playbook run's JSON callback output, with its rc and stderr (an AssertionError
    showing both streams when the output is not JSON)."""
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"ansible-playbook rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}") from None
    result["rc"] = proc.returncode
    result["stderr"] = proc.stderr
    return result


def failures(result: dict) -> list[str]:
    """Messages of the failed tasks of a JSON callback result."""
    found = []
    for play in result.get("plays", []):
        for task in play["tasks"]:
            for host, res in task["hosts"].items():
                if res.get("failed"):
                    found.append(f"{host}: {task['task']['name']}: {res.get('msg')}")
    return found


def task_results(result: dict, name: str) -> dict:
    """host -> result of the task called name (the last one of that name)."""
    found = {}
    for play in result.get("plays", []):
        for task in play["tasks"]:
            if task["task"]["name"].split(" : ")[-1] == name:
                found.update(task["hosts"])
    return found
