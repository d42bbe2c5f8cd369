"""playbooks/policy-explain.yml end to end with ansible-playbook, on an inventory written to tmp_path: it
names the policy and rule that decide a flow, for both directions, and contacts no host (everything runs
on the controller: the IPAM in check mode, the explanation in the action plugin l3.calico.policy_plan)."""

import pytest

from tests.support.ansible_run import ROOT, run_ansible

HOSTS = """\
calico_nodes:
  hosts:
    l3tpol-a:
      calico_node_ip: 192.168.100.100/24
      calico_workloads:
        - {name: web-1, namespace: blue, labels: {app: web}}
        - {name: db-1, namespace: blue, labels: {app: db}}
    l3tpol-b:
      calico_node_ip: 192.168.100.101/24
      calico_workloads:
        - {name: web-1, namespace: red, labels: {app: web}}
        - {name: probe, namespace: ops, labels: {app: probe}}
  vars:
    # never used: a host contacted would fail (no such host)
    ansible_host: 192.0.2.254
    ansible_connection: ssh
"""

GROUP_VARS = """\
calico_pools:
  - {name: default-ipv4-ippool, cidr: 172.17.0.0/16, block_size: 26}
calico_namespaces:
  red: {labels: {team: b}}
  ops: {labels: {team: ops}}
calico_policies:
  - name: db-from-web
    namespace: blue
    selector: app == 'db'
    ingress:
      - action: Allow
        protocol: TCP
        source: {selector: app == 'web'}
        destination: {ports: [5432]}
      - action: Allow
        protocol: ICMP
        source: {namespaceSelector: team == 'ops'}
        icmp: {type: 8}
  - name: no-egress-to-docs
    order: 10
    namespace_selector: team == 'b'
    egress:
      - action: Deny
        destination: {nets: [192.0.2.0/24]}
      - action: Pass
"""


def explain(inventory, *extra, ok=True):
    args = [a for pair in extra for a in ("-e", pair)]
    proc = run_ansible("ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "policy-explain.yml"), *args, state=inventory)
    assert (proc.returncode == 0) is ok, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    inv = tmp_path_factory.mktemp("policy-explain")
    (inv / "group_vars").mkdir()
    (inv / "hosts.yml").write_text(HOSTS)
    (inv / "group_vars" / "calico_nodes.yml").write_text(GROUP_VARS)
    return inv


def test_an_allowed_flow_names_the_policy_and_rule(inventory):
    out = explain(inventory, "src=blue.web-1", "dst=blue.db-1", "port=5432")
    assert "'verdict: ALLOW'" in out
    assert "egress of blue.web-1: allow (no policy selects it: profile allow)" in out
    assert "ingress of blue.db-1: allow by blue/db-from-web ingress[0]" in out
    assert '"destination": {"ports": [5432]}' in out  # the rule as the inventory wrote it
    assert not (inventory / "calico_ipam.json").exists()  # the IPAM ran in check mode


def test_a_denied_flow_names_the_end_of_the_tier(inventory):
    out = explain(inventory, "src=red.web-1", "dst=blue.db-1", "port=5432")
    assert "'verdict: DENY'" in out
    assert "egress of red.web-1: allow by global/no-egress-to-docs egress[1] (pass -> profile)" in out
    assert "ingress of blue.db-1: deny (end of tier: default deny)" in out
    assert "denied by: ingress of blue.db-1: deny (end of tier: default deny)" in out


def test_icmp_and_namespace_selector(inventory):
    out = explain(inventory, "src=ops.probe", "dst=blue.db-1", "protocol=ICMP")
    assert "'verdict: ALLOW'" in out and "ingress of blue.db-1: allow by blue/db-from-web ingress[1]" in out
    out = explain(inventory, "src=ops.probe", "dst=blue.db-1", "protocol=ICMP", "icmp_type=13")
    assert "'verdict: DENY'" in out


def test_an_address_as_destination_and_an_egress_deny(inventory):
    out = explain(inventory, "src=red.web-1", "dst=192.0.2.10", "protocol=UDP", "port=53")
    assert "'verdict: DENY'" in out
    assert "egress of red.web-1: deny by global/no-egress-to-docs egress[0]" in out
    assert "ingress: allow (not a workload: no policy of its own)" in out


def test_a_bad_flow_is_refused_with_its_value(inventory):
    out = explain(inventory, "src=blue.nope", "dst=blue.db-1", "port=80", ok=False)
    assert "'blue.nope': no such workload" in out
    out = explain(inventory, "dst=blue.db-1", ok=False)
    assert "usage: -e src=" in out


PLAN = """\
- name: Compile the policies once and compare with a previous policy set
  hosts: calico_nodes
  gather_facts: false
  tasks:
    - name: The IPAM result
      ansible.builtin.include_role:
        name: l3.calico.calico_ipam
        apply:
          check_mode: true
      vars:
        calico_ipam_show_summary: false
    - name: Compile
      l3.calico.policy_plan:
        ipam_result: "{{ calico_ipam_result }}"
        policies: "{{ calico_policies }}"
        namespaces: "{{ calico_namespaces }}"
        previous:
          policies: "{{ calico_policies[:1] }}"
          namespaces: "{{ calico_namespaces }}"
      run_once: true
      register: plan
    - name: Check the programs and the flips
      ansible.builtin.assert:
        that:
          - plan['hosts'] | length == 2
          - plan['summary']['policies'] == 2
          - plan['summary']['endpoints'] == 4
          - plan['hosts']['l3tpol-b']['endpoints'] | map(attribute='workload') | sort == ['ops.probe', 'red.web-1']
          - (plan['hosts']['l3tpol-b']['endpoints'] | selectattr('workload', 'eq', 'red.web-1') | first)['egress'] | length == 1
          - plan['hosts']['l3tpol-a']['chains'] | length == 1
          - plan['flips'] | select('search', 'red.web-1 -> 192.0.2.0 .*allow -> deny') | list | length > 0
          - plan['changed'] == false
          - plan['record_current'] == false
      run_once: true
    - name: Compile again, the previous policy set being this one
      l3.calico.policy_plan:
        ipam_result: "{{ calico_ipam_result }}"
        policies: "{{ calico_policies }}"
        namespaces: "{{ calico_namespaces }}"
        previous:
          policies: "{{ calico_policies }}"
          namespaces: "{{ calico_namespaces }}"
      run_once: true
      register: same
    - name: Nothing flips and the record is current
      ansible.builtin.assert:
        that:
          - same['record_current'] == true
          - same['flips'] == []
          - same['hosts'] == plan['hosts']
      run_once: true
    - name: Show the flips
      ansible.builtin.debug:
        msg: "{{ plan['flips'] }}"
      run_once: true
"""


def test_the_plan_and_the_flips_of_a_change(inventory, tmp_path):
    play = tmp_path / "plan.yml"
    play.write_text(PLAN)
    proc = run_ansible("ansible-playbook", "-i", str(inventory), str(play), "--diff", state=inventory)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "red.web-1 -> 192.0.2.0 TCP 0-65535: allow -> deny (now egress of red.web-1" in proc.stdout
    assert "red.web-1 -> 192.0.2.0 ICMP types other than 8: allow -> deny" in proc.stdout
