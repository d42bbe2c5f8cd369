# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""bird.conf of dual-stack nodes (module_utils/bird_conf.render_ipv6): accepted by the real ``bird -p``; the
IPv4 part the same bytes as without IPv6; the IPv6 part Calico's bird6 (sessions between IPv6 addresses)."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.l3.calico.plugins.module_utils import bird_conf

BIRD = shutil.which("bird") or "/usr/sbin/bird"
NODES = {
    "a": {
        "ip": "192.168.100.10",
        "network": "192.168.100.0/24",
        "ipv6": "fd00:100::10",
        "network_ipv6": "fd00:100::/64",
        "blocks": [{"cidr": "172.17.0.0/26"}],
        "blocks_ipv6": [{"cidr": "fd00:10::/122", "pool": "v6"}, {"cidr": "fd00:11::/122", "pool": "vx6"}, {"cidr": "fd00:10::1:5/128", "pool": "v6"}],
        "borrowed_ipv6": ["fd00:10::2:7"],
    },
    "b": {"ip": "192.168.100.11", "network": "192.168.100.0/24", "ipv6": "fd00:100::11", "network_ipv6": "fd00:100::/64"},
    "c": {"ip": "192.168.200.12", "network": "192.168.200.0/24", "blocks": [{"cidr": "172.17.1.0/26"}]},
}
POOLS = {"default": {"cidr": "172.17.0.0/16", "ipip_mode": "CrossSubnet"}}
POOLS6 = {
    "v6": {"cidr": "fd00:10::/48"},
    "vx6": {"cidr": "fd00:11::/48", "vxlan_mode": "Always"},
    "priv6": {"cidr": "fd00:12::/48", "disable_bgp_export": True},
}
SETTINGS = {
    "route_reflectors": {"b": "1.1.1.1"},
    "mesh_password": "mesh-key",
    "import_default_route": True,
    "peers": [{"address": "2001:db8::1", "as": 65000, "password": "tor6-key", "ttl_security": True, "multihop": 2}, {"address": "10.0.0.1", "as": 65000}],
    "node_peers": [{"address": "2001:db8::2", "as": 65002, "keep_next_hop": True, "port": 1179, "import_default_route": True}],
}


def printed(node: str, nodes=None, pools6=None, settings=None, layout=None) -> tuple:
    nodes = NODES if nodes is None else nodes
    pools6 = POOLS6 if pools6 is None else pools6
    if settings is None:  # the node peers are host variables: c (IPv4 only) has none of IPv6
        settings = SETTINGS if node != "c" else {**SETTINGS, "node_peers": []}
    bgp = {"node": node, "nodes": nodes, "pools": POOLS, "pools_ipv6": pools6, "settings": settings, "layout": layout or {}}
    return bird_conf.from_bgp(bgp, "/etc/bird/bird.conf", "/etc/bird/bird-secrets.conf")


def ipv4_only(nodes: dict) -> dict:
    nodes = copy.deepcopy(nodes)
    for node in nodes.values():
        for key in ("ipv6", "network_ipv6", "blocks_ipv6", "borrowed_ipv6"):
            node.pop(key, None)
    return nodes


def bird_parse(tmp_path: Path, config: str, secrets) -> subprocess.CompletedProcess:
    if not Path(BIRD).exists():
        pytest.skip(f"needs {BIRD} (Debian package bird2)")
    (tmp_path / "bird-secrets.conf").write_text(secrets or "")
    conf = tmp_path / "bird.conf"
    conf.write_text(config.replace('include "/etc/bird/bird-secrets.conf";', f'include "{tmp_path / "bird-secrets.conf"}";'))
    return subprocess.run([BIRD, "-p", "-c", str(conf)], capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.bird
@pytest.mark.parametrize("node", ["a", "b", "c"])
def test_dual_stack_bird_conf_parses(tmp_path, node):
    config, secrets = printed(node)
    proc = bird_parse(tmp_path, config, secrets)
    assert proc.returncode == 0, proc.stderr + config


@pytest.mark.parametrize("node", ["a", "b", "c"])
def test_the_ipv4_part_is_the_bytes_of_the_ipv4_only_node(node):
    """The IPv4 part of a dual-stack node's bird.conf is its IPv4-only bird.conf; an IPv4-only node's is the
    same as in a fleet without IPv6 (the other nodes' IPv6 addresses change nothing for it)."""
    config, secrets = printed(node)
    settings = {key: [p for p in value if ":" not in p["address"]] if key.endswith("peers") else value for key, value in SETTINGS.items()}
    alone, alone_secrets = printed(node, ipv4_only(NODES), {}, settings)
    if node == "c":
        assert config == alone
    else:
        assert config.startswith(alone) and "\n# ---------------- IPv6 (" in config[len(alone) :]
        assert secrets.startswith(alone_secrets)


def test_the_ipv6_part_as_calico_bird6():
    config, secrets = printed("a")
    six = config.split("# ---------------- IPv6 (fd00:100::10, subnet fd00:100::/64)", 1)[1]
    for snippet in (
        'interface -"cali*", -"kube-ipvs*", -"tunl0", -"vxlan.calico", -"vxlan-v6.calico", "*";',
        "protocol static calico_blocks6 {\n  ipv6;\n  route fd00:10::/122 blackhole;\n  route fd00:11::/122 blackhole;\n}",
        "  if net ~ [ fd00:11::/48+ ] then reject;",  # VXLAN: the data plane's routes
        '    if net.len = 128 && ifname ~ "cali*" then accept;',
        "  if net ~ [ fd00:12::/48+ ] then reject;",  # disable_bgp_export
        "  if net ~ [ fd00:10::/122, fd00:10::1:5/128, fd00:11::/122 ] then accept;",
        "  if net ~ [ fd00:10::/48+, fd00:11::/48+ ] then accept;",
        "filter calico_import6_from_peers {\n  if net ~ [ fd00:12::/48+, fd00:10::/48+, fd00:11::/48+ ] then accept;\n  if net = ::/0 then accept;",
        "template bgp calico_peer6 {\n  local fd00:100::10 as 64512;",
        "protocol bgp RR_fd00_100__11 from calico_peer6 {\n  neighbor fd00:100::11 as 64512;\n  passive on;\n  password CALICO_PW_RR_FD00_100__11;\n}",
        "protocol bgp Global_2001_db8__1 from calico_peer6 {\n  neighbor 2001:db8::1 as 65000;\n  ttl security on;\n  multihop 2;",
        "  neighbor 2001:db8::2 port 1179 as 65002;\n  ipv6 {\n    next hop keep;\n    import filter calico_import6_with_default;\n  };",
        "protocol kernel kernel6 {",
    ):
        assert snippet in six, snippet
    assert "route fd00:10::1:5/128" not in config and "tor6-key" not in config and "mesh-key" not in config
    assert 'define CALICO_PW_GLOBAL_2001_DB8__1 = "tor6-key";' in secrets
    # The reflector b: its IPv6 client a, not c (no IPv6 address).
    b = printed("b")[0].split("# ---------------- IPv6", 1)[1]
    assert "protocol bgp RR_fd00_100__10 from calico_peer6 {\n  neighbor fd00:100::10 as 64512;\n  rr client;\n  rr cluster id 1.1.1.1;" in b
    assert "192.168.200.12" not in b


@pytest.mark.bird
def test_bird_checks_the_ipv6_part_too(tmp_path):
    """A bad IPv6 value reaching bird.conf fails `bird -p` (so the module writes nothing)."""
    config, secrets = printed("a")
    proc = bird_parse(tmp_path, config.replace("local fd00:100::10 as", "local fd00:100::zz as"), secrets)
    assert proc.returncode == 1 and "bird.conf" in proc.stderr, proc.stderr
