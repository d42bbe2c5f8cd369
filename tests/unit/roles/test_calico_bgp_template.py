# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""bird.conf printed for every feature at once (module_utils/bird_conf.py, what the module l3.calico.bird
writes) is accepted by ``bird -p`` (BIRD's own parser); the role's systemd unit is valid."""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.l3.calico.plugins.module_utils import bird_conf, bird_service
from ansible_collections.l3.calico.plugins.module_utils.bgp import node_config

ROLE = Path(__file__).resolve().parents[3] / "roles" / "calico_bgp"
BIRD = shutil.which("bird") or "/usr/sbin/bird"

IPAM = {
    "nodes": {
        "a": {
            "ip": "192.168.100.10",
            "network": "192.168.100.0/24",
            "blocks": [{"cidr": "172.17.0.0/26"}, {"cidr": "172.18.0.0/26"}, {"cidr": "172.17.9.1/32"}],
        },
        "b": {"ip": "192.168.100.11", "network": "192.168.100.0/24", "blocks": []},
        "c": {"ip": "192.168.200.12", "network": "192.168.200.0/24", "blocks": []},
    },
    "pools": {
        "default": {"cidr": "172.17.0.0/16", "ipip_mode": "CrossSubnet", "vxlan_mode": "Never"},
        "blue": {"cidr": "172.18.0.0/16", "ipip_mode": "Never", "vxlan_mode": "Always"},
        "always": {"cidr": "172.20.0.0/16", "ipip_mode": "Always", "vxlan_mode": "Never"},
        "private": {"cidr": "172.19.0.0/16", "ipip_mode": "Never", "vxlan_mode": "Never", "disable_bgp_export": True},
    },
}
SETTINGS = {
    "route_reflectors": {"a": "1.1.1.1"},
    "node_as": {"c": 65001},
    "mesh_password": "mesh-key",
    "peers": [{"address": "10.0.0.1", "as": 65000, "password": "tor-key", "ttl_security": True, "multihop": 2}],
    "node_peers": [{"address": "10.0.0.2", "as": 65002, "keep_next_hop": True, "port": 1179, "import_default_route": True}],
}


def layout(tmp_path: Path, **overrides) -> bird_conf.Layout:
    """The layout the role passes (its defaults, as vars/main.yml maps them) with ``overrides`` (calico_bgp_* names)."""
    variables = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    variables.update(overrides)
    return bird_conf.Layout(
        secrets_file=str(tmp_path / "bird-secrets.conf"),
        **{
            field.name: tuple(value) if isinstance(value, list) else value
            for field in dataclasses.fields(bird_conf.Layout)
            if field.name != "secrets_file" and (value := variables.get(f"calico_bgp_{field.name}")) is not None
        },
    )


def render(tmp_path: Path, settings: dict | None = None, **overrides) -> Path:
    """bird.conf of node "a": the role's defaults with ``overrides``, SETTINGS with ``settings``."""
    data = node_config(IPAM, "a", {**SETTINGS, **(settings or {})})
    (tmp_path / "bird-secrets.conf").write_text("".join(f'define {symbol} = "x";\n' for symbol in data["secrets"]))
    conf = tmp_path / "bird.conf"
    conf.write_text(bird_conf.render(data, layout(tmp_path, **overrides)))
    return conf


def test_the_layout_covers_every_variable_of_the_role(tmp_path):
    """Each calico_bgp_* variable bird.conf reads is a field of the layout, passed by the role (vars/main.yml)."""
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__calico_bgp_layout"]
    fields = {field.name for field in dataclasses.fields(bird_conf.Layout)} - {"secrets_file"}
    assert set(role_vars) == fields
    assert set(bird_conf.LAYOUT_SPEC) == fields
    assert layout(tmp_path) == bird_conf.Layout(secrets_file=str(tmp_path / "bird-secrets.conf"))  # the same defaults


def test_the_module_input_prints_what_the_filter_data_prints(tmp_path):
    """from_bgp (the module's bgp option, Ansible's unset suboptions None) = node_config + render, passwords
    only in the passwords file."""
    given = {key: None for key in bird_conf.SETTINGS_SPEC}
    given.update(SETTINGS)
    given["peers"] = [{**{key: None for key in bird_conf.PEER_SPEC}, **peer} for peer in SETTINGS["peers"]]
    bgp = {"node": "a", "nodes": IPAM["nodes"], "pools": IPAM["pools"], "settings": given, "layout": {}}
    config, secrets = bird_conf.from_bgp(bgp, "/etc/bird/bird.conf", "/s.conf")
    data = node_config(IPAM, "a", SETTINGS)
    assert config == bird_conf.render(data, bird_conf.Layout(secrets_file="/s.conf"))
    assert "mesh-key" not in config and "tor-key" not in config
    assert 'define CALICO_PW_GLOBAL_10_0_0_1 = "tor-key";' in secrets and 'define CALICO_PW_RR_192_168_100_11 = "mesh-key";' in secrets
    assert bird_conf.from_bgp({"node": "a", "nodes": IPAM["nodes"], "pools": IPAM["pools"], "settings": {}, "layout": {}}, "/c", "/s")[1] is None


@pytest.mark.bird
def test_every_feature_parses(tmp_path):
    if not Path(BIRD).exists():
        pytest.skip(f"needs {BIRD} (Debian package bird2)")
    conf = render(tmp_path)
    proc = subprocess.run([BIRD, "-p", "-c", str(conf)], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr + conf.read_text()
    text = conf.read_text()
    for snippet in (
        "rr client;",
        "rr cluster id 1.1.1.1;",
        "ttl security on;",
        "multihop 2;",
        "next hop keep;",
        "neighbor 10.0.0.2 port 1179 as 65002;",
        "password CALICO_PW_GLOBAL_10_0_0_1;",
        "import filter calico_import_with_default;",
        'ifname = "tunl0";',
        "onlink = true;",
        "route 172.17.0.0/26 blackhole;",
        "if net ~ [ 172.19.0.0/16+ ] then reject;",
        "if !(bgp_next_hop ~ 192.168.100.0/24) then {",
    ):
        assert snippet in text, snippet
    assert "route 172.17.9.1/32" not in text
    assert "tor-key" not in text and "mesh-key" not in text


@pytest.mark.bird
def test_bird_refuses_a_bad_value(tmp_path):
    if not Path(BIRD).exists():
        pytest.skip(f"needs {BIRD} (Debian package bird2)")
    conf = render(tmp_path, calico_bgp_hold_time=1)
    proc = subprocess.run([BIRD, "-p", "-c", str(conf)], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1 and "Hold time must be in range" in proc.stderr


@pytest.mark.bird
@pytest.mark.parametrize(
    ("overrides", "expected", "absent"),
    [
        ({}, ["graceful restart on;", "graceful restart time 120;"], ["graceful restart off;"]),
        ({"graceful_restart_time": 3}, ["graceful restart on;", "graceful restart time 3;"], []),
        ({"graceful_restart": False}, ["graceful restart off;"], ["graceful restart time", "graceful restart on;"]),
    ],
)
def test_graceful_restart_settings_render_and_parse(tmp_path, overrides, expected, absent):
    if not Path(BIRD).exists():
        pytest.skip(f"needs {BIRD} (Debian package bird2)")
    conf = render(tmp_path, settings=overrides)
    proc = subprocess.run([BIRD, "-p", "-c", str(conf)], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    bgp_template = conf.read_text().split("template bgp calico_peer {", 1)[1].split("\n}\n", 1)[0]
    for snippet in expected:
        assert snippet in bgp_template, snippet
    for snippet in absent:
        assert snippet not in bgp_template, snippet


def test_systemd_unit_is_valid(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("needs systemd-analyze (Debian package systemd)")
    unit = tmp_path / "l3tbgp-bird.service"
    unit.write_text(service_unit())
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    text = unit.read_text()
    assert "ExecStart=/usr/sbin/bird -f -c /etc/bird/bird.conf -s /run/bird/bird.ctl -P /run/bird/bird.pid -u bird -g bird" in text
    assert "ExecReload=/usr/sbin/birdc -s /run/bird/bird.ctl configure" in text
    assert "ExecStartPre=/usr/sbin/bird -p -c /etc/bird/bird.conf" in text


def service_unit(**overrides) -> str:
    """bird.service of the role's defaults with ``overrides``, as the module writes it from the options the
    role passes (bird_argv as the role's vars build it)."""
    variables = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    variables.update(overrides)
    v = {name: variables[f"calico_bgp_{name}"] for name in ("bird", "birdc", "config_file", "control_socket", "pid_file", "user", "group")}
    v["bird_argv"] = [v["bird"], "-f", "-c", v["config_file"], "-s", v["control_socket"], "-P", v["pid_file"]]
    v["bird_argv"] += (["-u", v["user"]] if v["user"] else []) + (["-g", v["group"]] if v["group"] else [])
    return bird_service.default_unit(v)


def run_exec_start_pre(unit: str) -> None:
    """Run the unit's directory steps as systemd would ("$$" is a literal "$"; the BIRD check is left out)."""
    for line in unit.splitlines():
        if line.startswith("ExecStartPre=") and " -p -c " not in line:
            argv = shlex.split(line[len("ExecStartPre=") :].replace("$$", "$"))
            subprocess.run(argv, check=True, timeout=30)


def test_the_unit_sets_mode_and_owner_only_on_directories_it_creates(tmp_path):
    """calico_bgp_pid_file: <dir>/bird.pid must leave <dir> (think /run) as it is; a new directory is 0750."""
    existing = tmp_path / "run"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    unit = service_unit(
        calico_bgp_pid_file=str(existing / "bird.pid"), calico_bgp_control_socket=str(tmp_path / "new" / "bird.ctl"), calico_bgp_user="", calico_bgp_group=""
    )
    run_exec_start_pre(unit)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o750
    run_exec_start_pre(unit)  # a restart: nothing changes either
    assert stat.S_IMODE(existing.stat().st_mode) == 0o755
