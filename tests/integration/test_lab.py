# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The lab infrastructure for real: two guests on two subnets behind the router, with each backend.

Proves what the playbooks rely on, for QEMU virtual machines (Debian 12's kernel and systemd,
TCG unless KVM's probe boot works) and for the User-mode Linux fast path (skipped, saying why,
where its probe boot fails, e.g. on CPUs with AMX): guests boot in parallel and answer SSH
through the router's namespace with the lab's key and checked host keys; a second `up` is a
no-op; each guest is a host of its own (name, address, default route via the router, a writable
private root that leaves the machine's files alone, the ipip module, a firewall backend); a QEMU
guest runs Debian's kernel under systemd on QEMU's own CPU model (not the host's: the lab does not
depend on the host's CPU features) and keeps its disk across a power cut; the router forwards
between the subnets and its capture tells IP-in-IP from plain traffic; `down` leaves no process,
namespace or file behind. Uses its own prefix, so a running lab is not disturbed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

LABCTL = Path(__file__).resolve().parents[2] / "playbooks" / "lab" / "files" / "labctl.py"
# A prefix per backend: `make test` runs the QEMU guests beside the User-mode Linux ones.
PREFIXES = {"uml": "l3labt-", "qemu": "l3labq-"}
HOSTS = {"guest-a": "10.231.1.10/24", "guest-c": "10.231.2.10/24"}
# A dual-stack underlay, as the lab's inventory has: IPv6 on both subnets, the router forwarding both.
HOSTS6 = {"guest-a": "fd31:1::10/64", "guest-c": "fd31:2::10/64"}
SPEC = {"hosts": HOSTS, "hosts6": HOSTS6}


def missing(backend: str) -> str:
    if os.geteuid() != 0:
        return "needs root (network namespaces, mounts)"
    for tool in ("ip", "unshare", "ssh", "ssh-keygen", "sshd", "tcpdump", "ping"):
        if not (shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists()):
            return f"{tool} is not installed"
    proc = subprocess.run(
        [sys.executable, str(LABCTL), "backend"], env=dict(os.environ, L3LAB_BACKEND=backend), capture_output=True, text=True, timeout=900, check=False
    )
    if proc.returncode != 0:  # this machine cannot run such guests: labctl says what is missing
        return f"no {backend} guests here: {json.loads(proc.stdout)['msg']}"
    return ""


# The User-mode Linux guests need no image: `make test` runs them (`-m "lab and not qemu"`) while the QEMU
# image is built, then beside the QEMU ones (`-m "lab and qemu"`), each backend with a prefix of its own.
@pytest.fixture(scope="module", params=["uml", pytest.param("qemu", marks=pytest.mark.qemu)])
def lab(request, tmp_path_factory):
    backend = request.param
    reason = missing(backend)
    if reason:
        pytest.skip(reason)
    env = dict(os.environ, L3LAB_PREFIX=PREFIXES[backend], L3LAB_DIR=str(tmp_path_factory.mktemp("lab")), L3LAB_BACKEND=backend)

    def ctl(*args: str) -> dict:
        proc = subprocess.run(
            [sys.executable, str(LABCTL), *args], env=env, capture_output=True, text=True, timeout=600, check=False
        )  # a QEMU boot under TCG on a busy machine
        result = json.loads(proc.stdout)
        assert proc.returncode == 0, result
        return result

    try:
        first = ctl("up", json.dumps(SPEC))
        assert first["backend"] == backend
        yield ctl, env, first
    finally:
        ctl("down")


def ssh(env: dict, host: str, command: str) -> str:
    lab = Path(env["L3LAB_DIR"])
    argv = [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(lab / "ssh" / "id_ed25519"),
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={lab / 'ssh' / 'known_hosts'}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"ProxyCommand=ip netns exec {env['L3LAB_PREFIX']}router {sys.executable} {LABCTL} relay %h %p",
        f"root@{host}",
        command,
    ]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{host}: {command}: {proc.stderr}"
    return proc.stdout


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for the machine's init to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_guests_boot_in_parallel_and_a_second_up_is_a_no_op(lab):
    ctl, _env, first = lab
    assert first["changed"] is True
    assert sorted(first["started"]) == sorted(HOSTS)
    # TCG on two busy cores boots systemd in tens of seconds; a UML guest in a few.
    assert max(first["boot_seconds"].values()) < (200 if first["backend"] == "qemu" else 20)
    again = ctl("up", json.dumps(SPEC))
    assert (again["changed"], again["started"]) == (False, [])


def test_each_guest_is_a_host_of_its_own(lab):
    _ctl, env, first = lab
    nic = "eth0" if first["backend"] == "qemu" else "vec0"
    out = ssh(
        env,
        "10.231.2.10",
        f"hostname; ip -4 -o addr show dev {nic}; ip route show default; "
        "echo guest > /etc/l3labt-probe && cat /etc/l3labt-probe; "
        "modprobe ipip && echo ipip; iptables -V; "
        f"ip -6 -o addr show dev {nic} scope global; ip -6 route show default",
    )
    lines = out.splitlines()
    assert "fd31:2::10/64" in lines[6] and lines[7].startswith(f"default via fd31:2::1 dev {nic}")  # the IPv6 underlay
    assert lines[0] == "guest-c"
    assert "10.231.2.10/24" in lines[1]
    assert lines[2].startswith(f"default via 10.231.2.1 dev {nic}")
    assert lines[3:5] == ["guest", "ipip"]
    # UML's kernel has no nftables ip family: iptables-legacy there; Debian's kernel has nftables.
    assert ("nf_tables" if first["backend"] == "qemu" else "legacy") in lines[5]
    assert not Path("/etc/l3labt-probe").exists()  # the machine's /etc is untouched


def test_qemu_guest_is_debian_with_systemd_on_qemus_own_cpu_model(lab):
    """The guests do not depend on the host's CPU: under TCG the CPU is QEMU's model, whatever the
    host has (AMX or not); the kernel is the image's Debian kernel, PID 1 is systemd, nftables'
    inet family works (the firewall role's default backend on Debian)."""
    _ctl, env, first = lab
    if first["backend"] != "qemu":
        pytest.skip("a QEMU guest's properties")
    out = ssh(
        env,
        "10.231.1.10",
        "uname -r; cat /proc/1/comm; systemctl is-system-running --wait; "
        "grep -m1 '^model name' /proc/cpuinfo; grep -c amx_tile /proc/cpuinfo || true; "
        "nft add table inet l3labt && nft list tables inet",
    )
    lines = out.splitlines()
    assert lines[0] == first["image"]["kernel"]
    assert lines[1:3] == ["systemd", "running"]
    if first["accel"] == "tcg":
        assert lines[3].split(":", 1)[1].strip().startswith("QEMU TCG CPU"), lines[3]
        assert lines[4] == "0"  # no AMX in the guest even where the host has it
    assert "table inet l3labt" in lines[5:]


def test_qemu_guest_keeps_its_disk_across_a_power_cut(lab):
    ctl, env, first = lab
    if first["backend"] != "qemu":
        pytest.skip("a QEMU guest's disk (the UML restart is covered by test_lab_failures.py)")
    ssh(env, "10.231.1.10", "echo kept > /etc/l3labt-disk && sync && echo gone > /run/l3labt-mem")
    boot_before = ssh(env, "10.231.1.10", "cat /proc/sys/kernel/random/boot_id").strip()
    assert ctl("restart", "guest-a")["was_running"] is True
    out = ssh(env, "10.231.1.10", "cat /proc/sys/kernel/random/boot_id; cat /etc/l3labt-disk; test -e /run/l3labt-mem && echo still || echo none")
    boot_after, disk, mem = out.splitlines()
    assert boot_after != boot_before and (disk, mem) == ("kept", "none")


BIRD_UNIT = """[Unit]
Description=BIRD (l3labt)
[Service]
Type=simple
ExecStartPre=/usr/bin/install -d -o bird -g bird -m 0750 /run/bird
ExecStartPre=/usr/sbin/bird -p -c /etc/bird/bird.conf
ExecStart=/usr/sbin/bird -f -c /etc/bird/bird.conf -s /run/bird/bird.ctl -u bird -g bird
Restart=on-failure
RestartSec=1
[Install]
WantedBy=multi-user.target
"""


def bird_module(env: dict, tmp: Path, args: dict) -> dict:
    """l3.calico.bird run by Ansible on guest-a, through the router as the lab's inventory does."""
    lab = Path(env["L3LAB_DIR"])
    inventory = tmp / "inventory.json"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {
                        "guest-a": {
                            "ansible_host": "10.231.1.10",
                            "ansible_user": "root",
                            "ansible_ssh_private_key_file": str(lab / "ssh" / "id_ed25519"),
                            "ansible_ssh_common_args": (
                                f"-F /dev/null -o UserKnownHostsFile={lab / 'ssh' / 'known_hosts'} "
                                f"-o StrictHostKeyChecking=yes -o 'ProxyCommand=ip netns exec "
                                f"{env['L3LAB_PREFIX']}router {sys.executable} {LABCTL} relay %h %p'"
                            ),
                        }
                    }
                }
            }
        )
    )
    root = LABCTL.parents[3]
    proc = subprocess.run(
        [
            shutil.which("ansible") or str(Path(sys.executable).parent / "ansible"),
            "guest-a",
            "-i",
            str(inventory),
            "-m",
            "l3.calico.bird",
            "-a",
            json.dumps(args),
        ],
        env=dict(env, ANSIBLE_CONFIG=str(root / "ansible.cfg"), ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_HOME=str(tmp / "ansible")),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=root,
    )
    # ad hoc output: "guest-a | CHANGED => {...}"
    assert proc.returncode == 0 and " => " in proc.stdout, f"{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.split(" => ", 1)[1])


def test_qemu_guest_runs_bird_as_a_systemd_unit_and_removes_it(lab, tmp_path):
    """The BGP role's systemd path, for real (a UML guest has no systemd): one module run installs
    BIRD's unit, enables and starts it; again, nothing; systemd restarts a killed BIRD; a changed
    bird.conf is a reconfigure; state=absent stops and disables it and removes its files, once."""
    _ctl, env, first = lab
    if first["backend"] != "qemu":
        pytest.skip("BIRD under systemd needs systemd as PID 1: a QEMU guest")
    args = {"config": "router id 10.231.1.10;\nprotocol device {}\n", "unit": BIRD_UNIT, "manager": "systemd"}
    started = bird_module(env, tmp_path, args)
    # The image, like a Debian host with bird2 installed, runs the package's bird.service: our unit
    # replaces it, so BIRD is restarted on it (started, where nothing ran).
    assert started["changed"] and started["manager"] == "systemd", started
    assert started["started"] or started["restarted"], started
    assert "/etc/systemd/system/bird.service created" in started["changes"], started
    state = "systemctl show -p ActiveState,UnitFileState,NRestarts,MainPID bird; birdc -s /run/bird/bird.ctl show status"
    shown = ssh(env, "10.231.1.10", state)
    assert "ActiveState=active" in shown and "UnitFileState=enabled" in shown and "Daemon is up and running" in shown
    assert bird_module(env, tmp_path, args)["changed"] is False
    # killed: systemd (Restart=on-failure) brings it back, not the next Ansible run
    ssh(env, "10.231.1.10", "kill -9 $(systemctl show -p MainPID --value bird)")
    back = ssh(
        env,
        "10.231.1.10",
        "for i in $(seq 100); do birdc -s /run/bird/bird.ctl show status >/dev/null 2>&1 "
        "&& [ $(systemctl show -p NRestarts --value bird) -ge 1 ] && break; sleep 0.2; done; " + state,
    )
    assert "NRestarts=1" in back and "Daemon is up and running" in back, back
    changed = bird_module(env, tmp_path, {**args, "config": args["config"] + "protocol kernel { ipv4; }\n"})
    assert changed["reconfigured"] and not changed["started"] and not changed["restarted"], changed
    removed = bird_module(env, tmp_path, {"state": "absent", "manager": "systemd"})
    assert removed["changed"] and removed["stopped"], removed
    gone = ssh(env, "10.231.1.10", "systemctl show -p ActiveState,UnitFileState bird; ls /etc/bird/bird.conf /etc/systemd/system/bird.service 2>&1 || true")
    # the package's own unit is what "bird" names now: stopped and disabled, so no BIRD at the next boot
    assert "ActiveState=inactive" in gone and "UnitFileState=disabled" in gone, gone
    assert gone.count("No such file or directory") == 2, gone
    assert bird_module(env, tmp_path, {"state": "absent", "manager": "systemd"})["changed"] is False


def test_uml_guest_cannot_write_the_machines_files_through_hostfs(lab):
    _ctl, env, first = lab
    if first["backend"] != "uml":
        pytest.skip("a QEMU guest sees none of the machine's files: it has no hostfs or shared folder")
    out = ssh(env, "10.231.1.10", "mkdir -p /mnt/h && mount -t hostfs none /mnt/h -o /etc && (touch /mnt/h/l3labt-escape 2>&1 || true)")
    assert "Read-only file system" in out
    assert not Path("/etc/l3labt-escape").exists()


def test_nothing_of_the_lab_is_in_the_machines_network_namespace(lab):
    _ctl, env, _first = lab
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert env["L3LAB_PREFIX"] not in links


def test_router_forwards_ipv6_and_its_capture_reads_icmpv6(lab):
    ctl, env, _first = lab
    ctl("capture", "start")
    ssh(env, "10.231.1.10", "ping -6 -c 2 -W 2 -q fd31:2::10")
    flows = ctl("capture", "stop")["flows"]
    requests = {(f["encap"], f["outer_src"], f["outer_dst"]) for f in flows if f["icmp"] == "echo-request"}
    assert ("none", "fd31:1::10", "fd31:2::10") in requests


def test_router_forwards_and_its_capture_tells_ipip_from_plain(lab):
    ctl, env, _first = lab
    tunnel = (
        "modprobe ipip && ip link add t0 type ipip local {me} remote {peer} && ip link set t0 up && "
        "ip addr add {inner}/32 dev t0 && ip route add {peer_inner}/32 dev t0"
    )
    ssh(env, "10.231.1.10", tunnel.format(me="10.231.1.10", peer="10.231.2.10", inner="10.99.0.1", peer_inner="10.99.0.2"))
    ssh(env, "10.231.2.10", tunnel.format(me="10.231.2.10", peer="10.231.1.10", inner="10.99.0.2", peer_inner="10.99.0.1"))
    ctl("capture", "start")
    ssh(env, "10.231.1.10", "ping -c 2 -W 2 -q 10.231.2.10 && ping -c 2 -W 2 -q -I 10.99.0.1 10.99.0.2")
    flows = ctl("capture", "stop")["flows"]
    requests = {(f["encap"], f["outer_src"], f["outer_dst"], f["inner_src"], f["inner_dst"]) for f in flows if f["icmp"] == "echo-request"}
    assert ("none", "10.231.1.10", "10.231.2.10", "10.231.1.10", "10.231.2.10") in requests
    assert ("ipip", "10.231.1.10", "10.231.2.10", "10.99.0.1", "10.99.0.2") in requests


def test_down_leaves_nothing_behind(lab):
    ctl, env, _first = lab
    prefix = env["L3LAB_PREFIX"]
    pids = [int(p.read_text()) for p in Path(env["L3LAB_DIR"]).glob("*/pid")]
    assert ctl("down")["changed"] is True
    assert pids and not [pid for pid in pids if running(pid)]
    # no guest process left, nor a helper process of one
    leftovers = subprocess.run(
        ["pgrep", "-f", f"^(/usr/bin/linux umid=|qemu-system-x86_64 -name ){prefix}"], capture_output=True, text=True, check=False
    ).stdout
    assert leftovers == ""
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert prefix not in namespaces
    assert not Path(env["L3LAB_DIR"]).exists()
    assert ctl("down")["changed"] is False
