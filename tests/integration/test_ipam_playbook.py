"""playbooks/ipam.yml end to end with ansible-playbook, on an inventory written to tmp_path."""

import json
import os
import re

import pytest

from tests.support.ansible_run import ROOT, run_ansible

HOSTS = """\
calico_nodes:
  hosts:
    l3tipam-a:
      calico_node_ip: 192.168.100.100/24
      calico_node_labels: {rack: r1}
      calico_workloads:
        - {name: web-1}
        - {name: db-1, namespace: blue}
    l3tipam-b:
      calico_node_ip: 192.168.200.101/24
      calico_node_labels: {rack: r2}
      calico_workloads: %s
  vars:
    ansible_connection: local
"""

GROUP_VARS = """\
calico_pools:
  - {name: default-ipv4-ippool, cidr: 172.17.0.0/16, block_size: 26, ipip_mode: CrossSubnet, nat_outgoing: true}
  - {name: blue-vxlan, cidr: 172.18.0.0/16, vxlan_mode: Always, namespaces: [blue]}
calico_ipam_config: {strict_affinity: false, auto_allocate_blocks: true, max_blocks_per_host: 0}
calico_reservations: [172.17.0.0/24]
"""


def write_inventory(path, b_workloads="[{name: web-2}]"):
    (path / "group_vars").mkdir(exist_ok=True)
    (path / "hosts.yml").write_text(HOSTS % b_workloads)
    (path / "group_vars" / "calico_nodes.yml").write_text(GROUP_VARS)


def playbook(inventory, *args):
    proc = run_ansible("ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "ipam.yml"), *args, state=inventory)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", proc.stdout))
    return proc.stdout, changed


@pytest.fixture
def inventory(tmp_path):
    inv = tmp_path / "inventory"
    inv.mkdir()
    write_inventory(inv)
    return inv


def test_plan_then_idempotent_then_check_and_diff(inventory):
    state = inventory / "calico_ipam.json"
    out, changed = playbook(inventory)
    assert changed == 1
    assert "node l3tipam-a: 2 block(s)" in out and "problems: none" in out
    assert oct(os.stat(state).st_mode & 0o777) == "0o600"
    doc = json.loads(state.read_text())
    assert doc["format"] == "l3.calico/ipam"
    assert all(not b["cidr"].startswith("172.17.0.") for b in doc["blocks"])  # reserved /24 never claimed

    before = state.read_bytes()
    out, changed = playbook(inventory)
    assert changed == 0 and state.read_bytes() == before

    write_inventory(inventory, "[{name: web-2}, {name: web-3}]")
    out, changed = playbook(inventory, "--check", "--diff")
    assert changed == 1
    assert re.search(r"\+ 172\.17\.\d+\.\d+ default\.web-3 on l3tipam-b", out), out
    assert state.read_bytes() == before  # check mode wrote nothing

    out, changed = playbook(inventory, "--diff")
    assert changed == 1 and "default.web-3" in out
    write_inventory(inventory, "[{name: web-3}]")
    out, changed = playbook(inventory, "--diff")
    assert re.search(r"- 172\.17\.\d+\.\d+ default\.web-2 on l3tipam-b", out), out


def test_result_is_registered_for_every_node(inventory, tmp_path):
    play = tmp_path / "show.yml"
    play.write_text("""\
- name: Plan, then read the result from every node
  hosts: calico_nodes
  gather_facts: false
  roles:
    - role: l3.calico.calico_ipam
      calico_ipam_show_summary: false
  tasks:
    - name: Check the result each node sees
      ansible.builtin.assert:
        that:
          - calico_ipam_result['nodes'][inventory_hostname]['workloads'] | length > 0
          - calico_ipam_result['nodes']['l3tipam-a']['tunnels']['ipip'] is not none
          - calico_ipam_result['pools']['blue-vxlan']['allocated'] == 3  # 2 VTEPs + db-1
""")
    proc = run_ansible("ansible-playbook", "-i", str(inventory), str(play), state=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "l3tipam-b                  : ok=" in proc.stdout


def test_bad_input_fails_the_play_and_writes_nothing(inventory):
    write_inventory(inventory, "[{name: web-2, ip: 10.0.0.1}]")
    proc = run_ansible("ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "ipam.yml"), state=inventory)
    assert proc.returncode != 0
    assert "l3tipam-b: calico_workloads[0].ip='10.0.0.1': outside every pool" in proc.stdout
    assert not (inventory / "calico_ipam.json").exists()


@pytest.mark.parametrize(
    "kind, name", [("module", "ipam"), ("filter", "pool_blocks"), ("filter", "address_block"), ("filter", "veth_name"), ("filter", "same_subnet")]
)
def test_ansible_doc(kind, name, tmp_path):
    proc = run_ansible("ansible-doc", "-t", kind, f"l3.calico.{name}", state=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"l3.calico.{name}" in proc.stdout and "EXAMPLES" in proc.stdout
    assert "WARNING" not in proc.stderr, proc.stderr


def test_dual_stack_through_the_playbook(inventory):
    """calico_node_ipv6 read from hostvars by the action plugin; an IPv6 pool beside the IPv4 ones; every
    workload gets one address of each family; the IPv4 side is what an IPv4-only run gives."""
    state = inventory / "calico_ipam.json"
    playbook(inventory)
    ipv4_only = json.loads(state.read_text())
    hosts = (inventory / "hosts.yml").read_text()
    hosts = hosts.replace("calico_node_ip: 192.168.100.100/24\n", 'calico_node_ip: 192.168.100.100/24\n      calico_node_ipv6: "fd00:100::100/64"\n')
    (inventory / "hosts.yml").write_text(hosts)
    group_vars = inventory / "group_vars" / "calico_nodes.yml"
    group_vars.write_text(
        group_vars.read_text().replace(
            "calico_ipam_config:",
            '  - {name: default-ipv6-ippool, cidr: "fd00:10:244::/48", vxlan_mode: CrossSubnet}\ncalico_ipam_config:',
        )
    )
    out, changed = playbook(inventory, "--diff")
    assert changed == 1 and "IPv6: 1 block(s) fd00:10:244:" in out, out
    assert re.search(r"\+ fd00:10:244:[0-9a-f:]+ default\.web-1 on l3tipam-a", out), out
    doc = json.loads(state.read_text())
    assert [b for b in doc["blocks"] if ":" not in b["cidr"]] == ipv4_only["blocks"]  # the IPv4 side untouched
    six = [b for b in doc["blocks"] if ":" in b["cidr"]]
    assert {b["cidr"].rsplit("/", 1)[1] for b in six} == {"122"} and len(six) == 2
    # both nodes have an IPv6 VTEP address (as Calico's allocateip: whether or not the node has an IPv6 address)
    assert "vxlan-v6-tunnel-addr-l3tipam-a" in doc["handles"] and "vxlan-v6-tunnel-addr-l3tipam-b" in doc["handles"]
    assert doc["handles"]["vxlan-v6-tunnel-addr-l3tipam-a"]["block"] != {}
    out, changed = playbook(inventory)
    assert changed == 0
