#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Ansible module l3.calico.ipam: a thin adapter over the IPAM planner in module_utils."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ipam
short_description: Plan and record Calico-style IPAM (pools, blocks, affinities, addresses) for plain hosts
version_added: "1.0.0"
description:
  - Reconciles the inventory (pools, IPAM config, reservations, nodes and their workloads) with the IPAM
    state, with Calico's semantics, and returns for every node its workloads with address and block, its
    affine blocks, its borrowed addresses and its tunnel addresses.
  - A node claims a block of a pool the first time it needs an address there and none of its affine blocks
    has room; the search for an unclaimed block starts at a position derived from FNV-32 of the node name
    and walks the pool with wrap-around. Inside a block addresses come from the C(unallocated) FIFO;
    released ones go to its tail; reserved ones are skipped. When no unclaimed block is left, or the node
    holds C(max_blocks_per_host) blocks (of O(config)), a node borrows single addresses from other nodes' blocks,
    unless C(strict_affinity) is set in O(config).
  - Stable. A workload keeps its address across runs whatever the inventory order; a workload removed
    from the inventory releases its address; a node removed releases its addresses, its affinities and
    its emptied blocks. Changing the C(cidr) or C(block_size) of a pool that has addresses in use is refused.
  - The state is one JSON file of Calico-shaped objects (AllocationBlocks, block affinities, handles,
    IPAMConfig, pools) with a format version, written atomically with mode C(0600) under an exclusive lock
    held for the whole read-plan-write. A corrupt or unknown-format file is refused, never overwritten.
  - Every bad input is refused before anything is written, with a message naming the host, the field and
    the value. Run it once (C(run_once)); the role C(l3.calico.calico_ipam) does that from the inventory.
  - An action plugin of the same name runs the planner in-process on the controller - nothing is shipped
    to a host or to localhost - reading the nodes from the hostvars of O(group) in Python when O(nodes) is
    not given. Only with O(node) (per-host use, the etcd datastore) is the module run on the host itself.
options:
  pools:
    description:
      - The IP pools (the inventory's C(calico_pools)), in order of preference. Each is a dict with
        C(name) (required), C(cidr) (required, IPv4, no host bits), C(block_size) (default V(26), 20 to 32),
        C(ipip_mode) and C(vxlan_mode) (V(Never), V(Always) or V(CrossSubnet), not both on),
        C(nat_outgoing), C(disabled) (a disabled pool keeps its addresses but hands out no new one),
        C(disable_bgp_export) (booleans, default V(false)),
        C(node_selector) (Calico selector, default V(all())) and C(namespaces) (a pool that lists namespaces
        serves only them; a workload whose namespace some pool lists takes only from such pools).
    type: list
    elements: dict
    default: []
  config:
    description:
      - The IPAM config (the inventory's C(calico_ipam_config)), with C(strict_affinity) (default V(false)),
        C(auto_allocate_blocks) (default V(true)) and C(max_blocks_per_host) (default V(0), meaning 20).
    type: dict
    default: {}
  reservations:
    description:
      - Addresses and CIDRs never handed out (the inventory's C(calico_reservations)).
    type: list
    elements: str
    default: []
  nodes:
    description:
      - The nodes, each a dict with C(name) (the inventory host name), C(ip) (C(calico_node_ip), the underlay
        address WITH its prefix length), optionally C(ipv6) (C(calico_node_ipv6), the node's IPv6 address WITH its
        prefix length), C(labels) (C(calico_node_labels)) and C(workloads)
        (C(calico_workloads), a list of C(name), C(namespace) (default V(default)), C(ip) (an optional
        request), C(pool) (an optional pool name), C(labels) (optional; checked as Calico checks labels,
        otherwise ignored by the IPAM - they are for policy, P(l3.calico.policy_plan#module)), and for dual stack
        C(ipv6) and C(ipv6_pool) (their IPv6 twins), C(assign_ipv4) and C(assign_ipv6) (Calico's CNI flags;
        defaults from the families of O(pools))).
      - An IPv6 pool in O(pools) (its C(cidr) IPv6) has C(block_size) 116..128 (default 122) and no IPIP.
    type: list
    elements: dict
  group:
    description:
      - Instead of O(nodes) - the inventory group whose hosts are the nodes; the action plugin reads each host's
        C(calico_node_ip), C(calico_node_ipv6), C(calico_node_labels) and C(calico_workloads) from C(hostvars), once,
        in Python.
      - One of O(nodes) and O(group) is required; O(nodes) wins when both are given.
    type: str
  node:
    description:
      - Plan only this node's addresses (its workloads and tunnels), leaving every other node untouched.
        Without it the whole inventory is reconciled, and nodes absent from O(nodes) are removed.
      - With O(datastore=etcd) every host can run the module for itself at the same time, as a CNI
        plugin would (C(node={{ inventory_hostname }}), no C(run_once)).
    type: str
  audit:
    description:
      - Audit the recorded state against the inventory instead of planning (C(playbooks/audit.yml)). Nothing is
        planned or written. Returns the recorded addresses in the usual shape, RV(problems), and RV(audit), each
        problem with the command that fixes it.
      - Beyond C(calicoctl ipam check)'s consistency checks (blocks, affinities, handles, ordinals, owners not in the
        inventory), every allocation must belong to a workload the inventory lists on that node or to the tunnel of
        a node of the inventory, and every workload of the inventory must hold exactly one address.
    type: bool
    default: false
  remove_nodes:
    description:
      - Nodes of O(nodes) that are leaving the cluster (see C(playbooks/node-remove.yml)). They are dropped
        before anything is checked, so their addresses (workloads and tunnels), their block affinities and
        their emptied blocks are released in this run, and blocks still holding other nodes' borrowed
        addresses lose their affinity, exactly as for a node deleted from the inventory. The result and the
        audit no longer know them.
      - Each must be one of O(nodes), at least one node must stay, and it cannot be combined with O(node).
    type: list
    elements: str
    default: []
  evacuate:
    description:
      - One step of a pool migration (C(playbooks/pool-migrate.yml)), Calico's way - the new pool is added to
        O(pools), the old one marked C(disabled), then the workloads are re-addressed host by host and the old
        pool removed once empty.
      - The addresses that the nodes of O(evacuate.nodes) hold in O(evacuate.pool) (their workloads' and their
        tunnel addresses) are released and new ones allocated from the enabled pools in the same transaction;
        their emptied blocks in the old pool are released. Every other node keeps its addresses there (a
        disabled pool keeps the addresses it has, tunnel addresses included). A tunnel address for which
        no enabled pool of that encapsulation exists (IPIP -> VXLAN) stays while other nodes' workloads are
        still in the old pool (their blocks are routed through that tunnel).
      - When the old pool holds no block any more, it is removed from the state (and not recorded again by a
        later evacuation); drop it from the inventory then. RV(evacuation) reports what moved.
      - Refused before anything changes (naming host, field and value) when the pool is not one of O(pools) or
        not disabled, a node is not one of O(nodes), no enabled pool could serve a moved workload (or the new
        pool cannot hold them all - capacity, C(max_blocks_per_host) under C(strict_affinity) in O(config)),
        a moved workload is pinned to the old pool, or combined with O(node) or O(remove_nodes). Changing the
        C(cidr) or C(block_size) of a pool in use stays refused - that is what a migration is for.
    type: dict
    suboptions:
      pool:
        description: The name of the (disabled) pool to move the addresses out of. Required.
        type: str
      nodes:
        description:
          - The nodes whose addresses in that pool move now (one host per migration step).
          - Empty - nothing moves, the pools are recorded (the old one not again once it was removed). Required.
        type: list
        elements: str
      run_nodes:
        description:
          - When the whole migration is planned (O(evacuate.nodes) = every node, check mode) - the nodes this run of
            C(playbooks/pool-migrate.yml) moves (its C(calico_migrate_hosts)), each one of O(evacuate.nodes).
            Only C(rounds) and C(plan) of RV(evacuation) depend on it. Default every node of O(evacuate.nodes).
        type: list
        elements: str
      batch:
        description:
          - When the whole migration is planned - how many of the nodes to move (O(evacuate.run_nodes) with an
            address moving into an enabled pool, in name order) each round of C(playbooks/pool-migrate.yml)
            moves (its C(calico_migrate_batch)); an integer of at least 1, a boolean is refused.
          - Only C(rounds) and C(plan) of RV(evacuation) depend on it. Default 1 (host by host). N hosts to move in
            batches of B take ceil(N/B) + 2 rounds.
        type: int
  datastore:
    description:
      - Where the IPAM objects live.
      - V(file) is O(state_file) on the machine running the module, under an exclusive lock.
      - V(etcd) is etcd v3 under Calico's own keys (C(/calico/ipam/v2/...), pools under
        C(/calico/resources/v3/projectcalico.org/ippools/)), every write a transaction conditioned on
        what was read (create if absent, update or delete if the ModRevision is unchanged); on a
        conflict the state is read again and the plan made again, at most O(etcd_retries) times.
    type: str
    choices: [file, etcd]
    default: file
  state_file:
    description:
      - The JSON file holding the IPAM state. Its directory must exist; the file is created on first use.
      - A lock file C(<state_file>.lock) beside it serialises concurrent runs.
      - Required when O(datastore=file).
    type: path
  lock_timeout:
    description:
      - Seconds to wait for another run holding the lock before failing.
    type: float
    default: 600
extends_documentation_fragment:
  - l3.calico.etcd
attributes:
  action:
    support: full
    description: Runs in-process on the controller; with O(node), the module runs on the host.
  check_mode:
    support: full
    description: Plans and returns the result, writes nothing.
  diff_mode:
    support: full
    description: Shows the addresses and blocks added and released.
  platform:
    support: full
    platforms: posix
    description: The controller (the action plugin); with O(node), any host that reaches the datastore.
notes:
  - IPv4 only.
  - Addresses are assigned in one transaction, so affinities are written C(confirmed) directly (Calico's
    two-phase C(pending) claim protects concurrent writers that the file lock, or etcd's transaction
    holding the block and its affinity together, already serialises).
seealso:
  - name: Calico IPAM
    description: Calico's IP address management, whose semantics this module follows.
    link: https://docs.tigera.io/calico/latest/networking/ipam/
author:
  - l3.calico maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Plan the IPAM of every host of the group calico_nodes (read from the inventory, in-process)
  l3.calico.ipam:
    state_file: "{{ inventory_dir }}/calico_ipam.json"
    pools: "{{ calico_pools }}"
    group: calico_nodes
  run_once: true
  register: calico_ipam_result

- name: Plan the IPAM of nodes given explicitly
  l3.calico.ipam:
    state_file: "{{ inventory_dir }}/calico_ipam.json"
    pools:
      - name: default-ipv4-ippool
        cidr: 172.17.0.0/16
        block_size: 26
        ipip_mode: CrossSubnet
        nat_outgoing: true
    nodes:
      - name: node-a
        ip: 192.168.100.100/24
        labels: {rack: r1}
        workloads:
          - name: web-1
          - name: db-1
            namespace: blue
            ip: 172.17.3.7
  run_once: true
  delegate_to: localhost
  register: calico_ipam_result

- name: Every host allocates its own addresses in etcd, all at the same time
  l3.calico.ipam:
    datastore: etcd
    etcd_endpoints: [https://10.0.0.10:2379, https://10.0.0.11:2379]
    etcd_ca_cert: /etc/calico/etcd-ca.pem
    etcd_cert: /etc/calico/etcd-cert.pem
    etcd_key: /etc/calico/etcd-key.pem
    node: "{{ inventory_hostname }}"
    pools: "{{ calico_pools }}"
    nodes: "{{ ipam_nodes }}"

- name: Node node-c leaves - its addresses, affinities and emptied blocks are released
  l3.calico.ipam:
    state_file: "{{ inventory_dir }}/calico_ipam.json"
    pools: "{{ calico_pools }}"
    nodes: "{{ ipam_nodes }}"
    remove_nodes: [node-c]
  run_once: true
  delegate_to: localhost

- name: Pool migration step - move node-a's addresses out of the disabled pool old-pool into the enabled ones
  l3.calico.ipam:
    state_file: "{{ inventory_dir }}/calico_ipam.json"
    pools:
      - {name: old-pool, cidr: 172.17.0.0/16, block_size: 26, disabled: true}
      - {name: new-pool, cidr: 172.18.0.0/16, block_size: 28, vxlan_mode: Always}
    nodes: "{{ ipam_nodes }}"
    evacuate: {pool: old-pool, nodes: [node-a]}
  run_once: true
  delegate_to: localhost

- name: Allocate only node-b's addresses (per-host use), leaving the others untouched
  l3.calico.ipam:
    state_file: /var/lib/l3-calico/ipam.json
    node: node-b
    pools: "{{ calico_pools }}"
    nodes: "{{ ipam_nodes }}"
"""

RETURN = r"""
nodes:
  description:
    - Per node (inventory host name) its underlay address and subnet, its affine blocks in claim order,
      its workloads sorted by id with address and block, the addresses it borrowed from other nodes' blocks,
      and its tunnel addresses (null when no pool of that encapsulation selects the node).
    - Dual stack (docs/ipam.md) - its IPv6 address and subnet (C(ipv6), C(network_ipv6), null without
      C(calico_node_ipv6)), C(blocks_ipv6), C(borrowed_ipv6), C(tunnels.vxlan_v6); with an IPv6 pool each
      workload also has C(ipv6), C(pool_ipv6), C(block_ipv6), C(borrowed_ipv6). The IPv4 keys keep their meaning.
  returned: success
  type: dict
  sample:
    node-a:
      ip: 192.168.100.100
      network: 192.168.100.0/24
      blocks: [{cidr: 172.17.72.0/26, pool: default-ipv4-ippool}]
      workloads:
        - {id: default.web-1, name: web-1, namespace: default, pool: default-ipv4-ippool,
           ip: 172.17.72.1, block: 172.17.72.0/26, borrowed: false}
      borrowed: []
      tunnels: {ipip: 172.17.72.0, vxlan: null, vxlan_v6: null}
      ipv6: null
      network_ipv6: null
      blocks_ipv6: []
      borrowed_ipv6: []
routing:
  description:
    - Every node without its workloads (only its borrowed ones, with their pool) - address, subnet, blocks, borrowed
      addresses, tunnel addresses - what a node needs of the others (VXLAN routes, BGP peers). Roles C(calico_node)
      and C(calico_bgp) pass this instead of RV(nodes), so that no host is sent every workload of the fleet.
  returned: by the action plugin, without O(node)
  type: dict
routing_json:
  description:
    - RV(routing) as one compact JSON text, serialised once for the fleet. The action plugins of M(l3.calico.node),
      M(l3.calico.tunnels) and M(l3.calico.bird) send it to every host as it is, instead of serialising the routing view
      once per host and module (10 ms per host at 1,000 nodes); each module still checks what it reads.
  returned: by the action plugin, without O(node)
  type: str
summary:
  description: The lines role C(l3.calico.calico_ipam) prints - per node, per pool, the problems.
  returned: by the action plugin, without O(node)
  type: list
  elements: str
pools:
  description: Per pool its settings and utilisation (blocks claimed, addresses allocated, capacity).
  returned: success
  type: dict
  sample:
    default-ipv4-ippool: {cidr: 172.17.0.0/16, block_size: 26, ipip_mode: CrossSubnet, vxlan_mode: Never,
                          nat_outgoing: true, disabled: false, disable_bgp_export: false, namespaces: [],
                          blocks: 3, allocated: 9, capacity: 65536}
pools_ipv6:
  description: The IPv6 pools, as RV(pools) (which holds the IPv4 ones only); empty without an IPv6 pool.
  returned: success
  type: dict
  sample:
    default-ipv6-ippool: {cidr: "fd00:10:244::/48", block_size: 122, ipip_mode: Never, vxlan_mode: CrossSubnet,
                          nat_outgoing: false, disabled: false, disable_bgp_export: false, namespaces: [],
                          blocks: 3, allocated: 9, capacity: 1208925819614629174706176}
problems:
  description: Inconsistencies found in the state after planning, as C(calicoctl ipam check) reports them.
  returned: success
  type: list
  elements: str
  sample: []
evacuation:
  description:
    - With O(evacuate), per evacuated node the addresses moved out of the old pool (owner, old address, new address
      and block; C(to) is null for a tunnel address released without replacement) and its blocks released there;
      the addresses and blocks the old pool still holds, and whether it was removed from the state.
    - C(rounds) - the rounds of C(playbooks/pool-migrate.yml) when this is the plan of the whole migration, each
      C({name, nodes, workloads}) - C(prepare) (nothing moves), one per O(evacuate.batch) nodes of O(evacuate.run_nodes)
      with an address moving into an enabled pool (in name order; named by its node, or C(FIRST .. LAST (N hosts))
      for a batch of several), and C(finish) (every node) while the plan changes something and no
      such node is left for a later run; C(nodes) are the nodes whose addresses the round moves, C(workloads) the
      hosts whose workloads it converges (its node; every node in C(prepare) and C(finish)).
    - C(plan) - the plan as lines (the pools, per node every address that moves and every block released, what
      becomes of the old pool); C(summary) - what this step moved as lines, and what the old pool still holds.
  returned: when O(evacuate) is given
  type: dict
  sample:
    pool: old-pool
    cidr: 172.17.0.0/16
    nodes:
      node-a:
        moved:
          - {owner: default.web-1, from: 172.17.29.1, to: 172.18.4.1, block: 172.18.4.0/28}
          - {owner: vxlan-tunnel-addr-node-a, from: 172.17.29.0, to: 172.18.4.0, block: 172.18.4.0/28}
        released_blocks: [172.17.29.0/26]
    remaining: 4
    blocks_left: 2
    removed: false
    rounds: [{name: prepare, nodes: [], workloads: [node-a, node-b]}, {name: node-a, nodes: [node-a], workloads: [node-a]}]
    plan: ["pool migration out of old-pool (172.17.0.0/16) into new-pool, host by host: node-a, node-b", "..."]
    summary: ["node-a: default.web-1 172.17.29.1 -> 172.18.4.1", "...", "pool old-pool: 4 address(es) left"]
audit:
  description: With O(audit), every problem found and the command that fixes it.
  returned: when O(audit=true)
  type: list
  elements: dict
  sample:
    - problem: address 172.17.72.9 (l3-workload.default.old) belongs to workload default.old on node-a, which the
        inventory no longer lists (a leak)
      fix: ansible-playbook -i INVENTORY playbooks/ipam.yml   (releases it)
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.ipam_run import ARGUMENT_SPEC, REQUIRED_IF, REQUIRED_ONE_OF, run


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF, required_one_of=REQUIRED_ONE_OF, supports_check_mode=True)
    try:
        result, diff = run(module.params, module.check_mode)
    except L3CalicoError as exc:
        module.fail_json(msg=str(exc))
    if module._diff and diff:
        result["diff"] = {"prepared": diff}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
