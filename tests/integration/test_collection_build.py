# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The collection as users get it: ``ansible-galaxy collection build`` ships the collection and
none of a working checkout's caches, lab state, virtualenv or leftovers (galaxy.yml's
build_ignore), and the tarball, installed into an empty collections path, runs the collection's
``l3.calico.ipam`` playbook from another directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# What a working checkout holds besides the collection, one file of each kind; they are planted in
# the copy that is built.
JUNK = [
    ".git",  # a worktree's .git is a file
    ".venv/bin/python3",
    ".cache/ansible/tmp/ansible-local-1/AnsiballZ_ipam.py",
    ".cache/lab/image/root.img",
    ".ansible/collections/ansible_collections/x",
    ".pytest_cache/v/cache/lastfailed",
    "tests/unit/.pytest_cache/v/cache/nodeids",
    ".hypothesis/examples/0a/1b",
    "tests/.hypothesis/examples/0a/1b",
    ".ruff_cache/0.17.6/1",
    ".mypy_cache/3.11/naming.data.json",
    ".lab/l3lab-n1/disk.img",
    ".lab-molecule/state.json",
    "report/verify.json",
    "inventories/lab/calico_ipam.json",
    "inventories/lab/calico_ipam.json.lock",
    "benchmarks/results.txt",
    "tests/output/junit/python3.11-sanity.xml",
    "plugins/module_utils/__pycache__/naming.cpython-311.pyc",
    "plugins/modules/ipam.py.orig",
    "plugins/modules/.ipam.py.swp",
    "README.md~",
    "l3-calico-0.9.0.tar.gz",
]

# Tracked, but not part of the collection as shipped.
LEFT_OUT = ["playbooks/lab/", "inventories/", "molecule/", "benchmarks/", ".collections/"]

SHIPPED = [
    "meta/runtime.yml",
    "plugins/action/ipam.py",
    "plugins/modules/ipam.py",
    "plugins/module_utils/ipam_planner.py",
    "plugins/filter/veth_name.py",
    "roles/calico_ipam/tasks/main.yml",
    "roles/calico_ipam/meta/argument_specs.yml",
    "playbooks/ipam.yml",
    "README.md",
    "LICENSE",
]

INVENTORY = """\
calico_nodes:
  hosts:
    l3tbuild-a:
      calico_node_ip: 192.168.100.100/24
      calico_workloads: [{name: web-1}, {name: db-1, namespace: blue}]
    l3tbuild-b:
      calico_node_ip: 192.168.200.101/24
      calico_workloads: [{name: web-2}]
  vars:
    ansible_connection: local
    calico_pools:
      - {name: default-ipv4-ippool, cidr: 172.17.0.0/16, block_size: 26, ipip_mode: CrossSubnet}
      - {name: blue-vxlan, cidr: 172.18.0.0/16, vxlan_mode: Always, namespaces: [blue]}
"""


def git_files() -> list[str]:
    """The files of the checkout: tracked, and new ones that .gitignore does not exclude."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip(f"{ROOT} is not a git checkout (the files to build are the ones git knows)")
    out = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"], capture_output=True, check=True
    ).stdout.decode()
    return [p for p in out.split("\0") if p and os.path.lexists(ROOT / p)]


def clean_env(tmp: Path) -> dict:
    """Ansible on its own: no ansible.cfg, collections path or ANSIBLE_HOME of the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    (tmp / "ansible.cfg").write_text("[defaults]\nretry_files_enabled = false\n")
    env.update(
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        ANSIBLE_CONFIG=str(tmp / "ansible.cfg"),
        ANSIBLE_HOME=str(tmp / "home"),
        ANSIBLE_LOCAL_TEMP=str(tmp / "home" / "tmp"),
        ANSIBLE_COLLECTIONS_PATH=str(tmp / "collections"),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    return env


def run(argv: list, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)}: rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The checkout copied with JUNK planted, built; (tarball, its members, the checkout's files, env)."""
    tmp = tmp_path_factory.mktemp("l3tbuild")
    src = tmp / "src"
    files = git_files()
    for rel in files:
        dest = src / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if os.path.islink(ROOT / rel):
            os.symlink(os.readlink(ROOT / rel), dest)
        else:
            shutil.copy2(ROOT / rel, dest)
    for rel in JUNK:
        assert rel not in files
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("junk\n")
    env = clean_env(tmp)
    run(["ansible-galaxy", "collection", "build", "--output-path", str(tmp / "dist"), str(src)], tmp, env)
    (tarball,) = (tmp / "dist").glob("l3-calico-*.tar.gz")
    with tarfile.open(tarball) as tar:
        members = {m.name: m for m in tar.getmembers()}
    return tarball, members, set(files), env, tmp


def test_the_tarball_holds_the_collection_and_nothing_of_the_checkout(built):
    _tarball, members, files, _env, _tmp = built
    shipped_files = {name for name, m in members.items() if not m.isdir()} - {"MANIFEST.json", "FILES.json"}
    assert sorted(shipped_files - files) == [], "shipped, but not a file of the checkout"
    for rel in JUNK:
        assert not [name for name in members if name == rel or name.startswith(rel + "/")], rel
    for prefix in LEFT_OUT:
        assert not [name for name in members if name == prefix.rstrip("/") or name.startswith(prefix)], prefix
    assert [rel for rel in SHIPPED if rel not in shipped_files] == []


def test_installed_tarball_runs_the_ipam_playbook_from_elsewhere(built):
    tarball, _members, _files, env, tmp = built
    run(["ansible-galaxy", "collection", "install", "--offline", "-p", str(tmp / "collections"), str(tarball)], tmp, env)
    installed = tmp / "collections" / "ansible_collections" / "l3" / "calico"
    manifest = json.loads((installed / "MANIFEST.json").read_text())["collection_info"]
    assert (manifest["namespace"], manifest["name"]) == ("l3", "calico")
    listing = json.loads(run(["ansible-galaxy", "collection", "list", "l3.calico", "--format", "json"], tmp, env).stdout)
    assert list(listing) == [str(tmp / "collections" / "ansible_collections")], listing

    project = tmp / "project"
    project.mkdir()
    (project / "hosts.yml").write_text(INVENTORY)
    play = ["ansible-playbook", "-i", "hosts.yml", "l3.calico.ipam"]

    first = run(play, project, env).stdout
    assert re.search(r"l3tbuild-a\s+: ok=\d+\s+changed=1 ", first), first
    state = json.loads((project / "calico_ipam.json").read_text())
    assert state["format"] == "l3.calico/ipam"
    secondary = [a.get("secondary") or {} for b in state["blocks"] for a in b["attributes"]]
    owners = {s["workload"] for s in secondary if "workload" in s}
    assert owners == {"web-1", "db-1", "web-2"}
    assert "node l3tbuild-a: " in first

    again = run(play, project, env).stdout
    assert re.search(r"l3tbuild-a\s+: ok=\d+\s+changed=0 ", again), again
