# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The data plane on the lab's kernel: a User-mode Linux guest (6.1, ipip module, iptables-legacy only).

What this machine's kernel cannot show is shown here, in one short-lived guest: tunl0 from
``modprobe ipip``, the firewall backend ``auto`` choosing iptables-legacy (the guest's nftables has
no ip family) and its rules applied, and the workloads module (setns through ctypes on Python
3.11, rtnetlink reads) on another kernel. The guest's root is the machine's filesystem through
hostfs; the kernel runs in a private mount namespace where every mount but the test's directory
is read-only; inside the guest /run and /tmp are tmpfs and modules are found with
``modprobe -d`` (the tunnels module's ``modprobe_dir``). Results come back in a JSON file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest
from l3lab.common import UML
from l3lab.uml import sandboxed_uml

from .conftest import PYTHONPATH, ROOT

pytestmark = [pytest.mark.lab, pytest.mark.netns]

UML_MODULES = "/usr/lib/uml/modules"

INIT = r"""#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
# The machine has no /lib/modules to mount over: the guest's modules are found through
# `modprobe -d /tmp/m` (the kernel's own module requests go through a wrapper doing the same).
mkdir -p /tmp/m/lib/modules
ln -s {modules}/$(uname -r) /tmp/m/lib/modules/$(uname -r)
printf '#!/bin/sh\nexec /sbin/modprobe -d /tmp/m "$@"\n' > /tmp/modprobe
chmod 0755 /tmp/modprobe
echo /tmp/modprobe > /proc/sys/kernel/modprobe
mkdir -p {work} {root}
mount -t hostfs -o {work} work {work}
# The repository (PYTHONPATH) read-only, mounted after the tmpfs mounts: a checkout may live under /tmp.
mount -r -t hostfs -o {root} repo {root}
ip link set lo up
PYTHONPATH={pythonpath} /usr/bin/python3 {work}/guest.py > {work}/guest.log 2>&1
poweroff -f
"""

GUEST = r"""
import json, subprocess, sys, traceback
from ansible_collections.l3.calico.plugins.module_utils import firewall, iproute, tunnels, workloads

WORK = sys.argv[1] if len(sys.argv) > 1 else {work!r}
out = {{}}
def sh(cmd):
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    out.setdefault("stderr", []).extend(line for line in proc.stderr.splitlines() if line)
    return proc.stdout
try:
    sh("ip link add up0 type veth peer name up1; ip addr add 192.168.100.100/24 dev up0;"
       " ip link set up0 up; ip link set up1 up; ip route add default via 192.168.100.1 dev up0 onlink")
    sh("sysctl -qw net.ipv4.ip_forward=1")
    pools = {{"p": {{"cidr": "172.17.0.0/16", "ipip_mode": "Always", "vxlan_mode": "Never", "nat_outgoing": True}}}}
    nodes = {{"node-a": {{"ip": "192.168.100.100", "network": "192.168.100.0/24", "blocks": [], "workloads": [],
                          "borrowed": [], "tunnels": {{"ipip": "172.17.72.0", "vxlan": None}}}}}}
    out["ipip_loaded_before"] = sh("cat /proc/modules | grep -c '^ipip ' || true").strip()
    first = tunnels.converge("node-a", {{"nodes": nodes, "pools": pools}}, modprobe_dir="/tmp/m")
    out["tunnels_first"] = first.changes
    out["tunnels_second_changed"] = tunnels.converge("node-a", {{"nodes": nodes, "pools": pools}}, modprobe_dir="/tmp/m").changed
    out["tunl0"] = json.loads(sh("ip -json addr show tunl0"))
    items = [{{"name": "web-1", "ip": "172.17.72.1"}}, {{"name": "web-2", "ip": "172.17.72.2"}}]
    w = workloads.converge(items, mtu=1480, state_file="/run/w.json")
    out["workloads_created"] = w.create
    out["workloads_second_changed"] = workloads.converge(items, mtu=1480, state_file="/run/w.json").changed
    out["ping"] = subprocess.run(["ip", "netns", "exec", "calico-default.web-1", "ping", "-c", "1", "-W", "2",
                                  "172.17.72.2"], capture_output=True).returncode
    out["backend"] = firewall.detect_backend(iproute.subprocess_runner)
    fw = firewall.converge(pools, items, state_file="/run/fw.json")
    out["firewall_first"] = fw.changes
    out["firewall_second_changed"] = firewall.converge(pools, items, state_file="/run/fw.json").changed
    out["iptables"] = sh("iptables-legacy-save")
except Exception:
    out["error"] = traceback.format_exc()
with open(WORK + "/result.json", "w") as handle:
    json.dump(out, handle)
"""


@pytest.fixture
def guest_result(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    version = sorted(os.listdir(UML_MODULES))[-1] if os.path.isdir(UML_MODULES) else None
    if not os.path.exists(UML) or version is None:
        pytest.skip(f"needs User-mode Linux ({UML} and {UML_MODULES}/<version>: Debian package user-mode-linux)")
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    probe = subprocess.run(
        [sys.executable, str(ROOT / "playbooks" / "lab" / "files" / "labctl.py"), "backend"],
        env=dict(os.environ, L3LAB_BACKEND="uml"),
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:  # e.g. a CPU with AMX: the lab runs QEMU guests there
        pytest.skip(f"User-mode Linux does not run here: {json.loads(probe.stdout)['msg']}")
    work = tmp_path / "work"
    (work / "uml").mkdir(parents=True)
    (work / "init.sh").write_text(INIT.format(modules=UML_MODULES, work=work, root=ROOT, pythonpath=PYTHONPATH))
    (work / "init.sh").chmod(0o755)
    (work / "guest.py").write_text(GUEST.format(work=str(work)))
    umid = "l3tdp-uml-" + uuid.uuid4().hex[:6]
    argv = ["timeout", "180", *sandboxed_uml(work, umid, work / "uml", "256M", f"init={work / 'init.sh'}", shm_size="512m")]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=200)
    result = work / "result.json"
    if not result.exists():
        log = (work / "guest.log").read_text() if (work / "guest.log").exists() else ""
        pytest.fail(f"the guest wrote no result (rc {proc.returncode}).\nguest.log:\n{log}\nconsole:\n{proc.stdout[-3000:]}")
    return json.loads(result.read_text())


def test_ipip_iptables_and_workloads_on_the_lab_kernel(guest_result):
    out = guest_result
    assert "error" not in out, out.get("error")
    # tunl0: the module loaded ipip, set MTU underlay-20 and exactly the tunnel address; no-op after.
    assert any("modprobe ipip" in c for c in out["tunnels_first"])
    tunl0 = out["tunl0"][0]
    assert tunl0["mtu"] == 1480 and "UP" in tunl0["flags"] and tunl0.get("ifalias", "l3.calico:ipip")
    assert [a["local"] for a in tunl0["addr_info"] if a["family"] == "inet"] == ["172.17.72.0"]
    assert out["tunnels_second_changed"] is False
    # auto backend: this kernel's nftables has no ip family -> iptables-legacy
    assert out["backend"] == "iptables"
    assert out["firewall_first"] and out["firewall_second_changed"] is False
    assert "-A L3CALICO-NAT-OUTGOING -s 172.17.0.0/16 -j MASQUERADE --random-fully" in out["iptables"]
    assert "-A L3CALICO-ANTISPOOF -i cali+ -j DROP" in out["iptables"]
    # workloads on the 6.1 kernel (ctypes setns, rtnetlink reads): created, no-op, they talk.
    assert out["workloads_created"] == ["default.web-1", "default.web-2"]
    assert out["workloads_second_changed"] is False
    assert out["ping"] == 0
