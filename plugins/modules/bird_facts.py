#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Module l3.calico.bird_facts: BIRD protocols, BGP sessions and TCP-MD5 counters of a host."""

from __future__ import annotations

DOCUMENTATION = r"""
module: bird_facts
short_description: Read the state of BIRD's protocols and BGP sessions
version_added: 1.0.0
description:
  - Runs C(birdc -r -s SOCKET show protocols all) (restricted, read-only) and parses every protocol,
    with the BGP state, neighbor, last error and route counters of each channel.
  - Reads the TCP-MD5 counters of the host's network namespace from C(/proc/net/netstat)
    (C(TcpExtTCPMD5Failure), C(TcpExtTCPMD5NotFound), C(TcpExtTCPMD5Unexpected)). With a password
    mismatch BGP sessions stay in Connect or Active and BIRD logs nothing, only these counters move.
  - Returns one sentence per BGP session that is not Established, naming the likely cause.
  - Per family (C(ipv4), C(ipv6)), the sessions and the routes BIRD learned by BGP, read with
    C(birdc -r show route table master4 where source = RTS_BGP) and C(master6). A session's family is its
    channel's (bird.conf gives an IPv6 session between IPv6 addresses its own C(ipv6) channel).
  - Changes nothing.
options:
  socket:
    description: BIRD's control socket.
    type: path
    default: /run/bird/bird.ctl
  birdc:
    description: The birdc program.
    type: path
    default: /usr/sbin/birdc
  netstat:
    description: The kernel's TCP extended counters.
    type: path
    default: /proc/net/netstat
extends_documentation_fragment:
  - l3.calico.attributes.read_only
attributes:
  facts:
    support: full
    description: Returns the facts C(calico_bird).
author: l3.calico maintainers (!UNKNOWN)
seealso:
  - name: BIRD 2 user's guide, command line interface
    description: What C(show protocols all) prints.
    link: https://bird.network.cz/?get_doc&v=20&f=bird-4.html
"""

EXAMPLES = r"""
- name: Read the BGP sessions
  l3.calico.bird_facts:
    socket: /run/bird/bird.ctl
  register: bird

- name: Fail when a session is not Established
  ansible.builtin.fail:
    msg: "{{ bird['ansible_facts']['calico_bird']['problems'] }}"
  when: bird['ansible_facts']['calico_bird']['problems'] | length > 0
"""

RETURN = r"""
ansible_facts:
  description: Facts under the key C(calico_bird).
  returned: always
  type: complex
  contains:
    calico_bird:
      description: BIRD's state.
      returned: always
      type: dict
      contains:
        protocols:
          description:
            - Every protocol - C(name), C(proto), C(table), C(state), C(since), C(info), C(channels) (per
              channel C(state), C(routes) with imported/filtered/exported/preferred counts, C(import_updates)
              with received/rejected/filtered/ignored/accepted). BGP ones add C(bgp_state), C(established),
              C(neighbor_address), C(neighbor_as), C(local_as) and C(last_error) when BIRD shows them.
          type: list
          elements: dict
          sample:
            - name: Mesh_192_168_100_12
              proto: BGP
              state: up
              since: "2026-11-25 16:28:32"
              info: Established
              bgp_state: Established
              established: true
              neighbor_address: 192.168.100.12
              neighbor_as: "64512"
        sessions:
          description: BGP protocol name -> BGP state, of both families.
          type: dict
          sample: {Mesh_192_168_100_12: Established, Global_10_0_0_1: Active}
        established:
          description: Names of the Established BGP sessions.
          type: list
          elements: str
        not_established:
          description: Names of the BGP sessions that are not Established.
          type: list
          elements: str
        tcp_md5:
          description: TCP-MD5 counters of the network namespace (failure, not_found, unexpected).
          type: dict
          sample: {failure: 4, not_found: 0, unexpected: 0}
        problems:
          description: One sentence per BGP session not Established, with the likely cause.
          type: list
          elements: str
        ipv4:
          description:
            - The IPv4 side. C(sessions), C(established), C(not_established) as above, of the sessions with an
              C(ipv4) channel only; C(routes) the routes learned by BGP in BIRD's IPv4 table (C(master4)), net ->
              list of C(protocol), C(type), C(primary) (BIRD's best route), C(via) (gateways) and C(dev) (devices).
          type: dict
          sample:
            sessions: {Mesh_192_168_100_12: Established}
            established: [Mesh_192_168_100_12]
            not_established: []
            routes:
              172.17.0.64/26: [{protocol: Mesh_192_168_100_12, type: unicast, primary: true, via: [192.168.100.12], dev: [eth0]}]
        ipv6:
          description:
            - The IPv6 side, the same keys - the IPv6 sessions (between the nodes' IPv6 addresses, C(ipv6) channel)
              and the routes learned by BGP in BIRD's IPv6 table (C(master6)). Empty lists and mapping on a node
              without IPv6 BGP.
          type: dict
          sample:
            sessions: {Mesh_fd00_100__12: Established}
            established: [Mesh_fd00_100__12]
            not_established: []
            routes:
              fd00:10::40/122: [{protocol: Mesh_fd00_100__12, type: unicast, primary: true, via: [fd00:100::12], dev: [eth0]}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l3.calico.plugins.module_utils import bird_status, iproute
from ansible_collections.l3.calico.plugins.module_utils.bird_status import family, parse_protocols, parse_routes


def main():
    module = AnsibleModule(
        argument_spec={
            "socket": {"type": "path", "default": "/run/bird/bird.ctl"},
            "birdc": {"type": "path", "default": "/usr/sbin/birdc"},
            "netstat": {"type": "path", "default": "/proc/net/netstat"},
        },
        supports_check_mode=True,
    )
    module.run_command_environ_update = {"LANG": "C", "LC_ALL": "C"}
    params = module.params
    run = iproute.module_runner(module)
    try:
        protocols = parse_protocols(bird_status.birdc_show(run, params["birdc"], params["socket"], "protocols", "all"))
        md5 = bird_status.read_md5(params["netstat"])
        bgp = bird_status.sessions(protocols, md5)
        families = {}
        for version, table in ((4, "master4"), (6, "master6")):
            try:
                routes = bird_status.birdc_show(run, params["birdc"], params["socket"], "route", "table", table, "where", "source", "=", "RTS_BGP")
            except bird_status.BirdStatusError as exc:
                raise bird_status.BirdStatusError(f"{exc} (showing the routes of {table})", **exc.details) from exc
            mine = {p["name"]: bgp["sessions"][p["name"]] for p in protocols if p["proto"] == "BGP" and family(p) == version}
            families[f"ipv{version}"] = {
                "sessions": mine,
                "established": [name for name, state in mine.items() if state == "Established"],
                "not_established": [name for name, state in mine.items() if state != "Established"],
                "routes": parse_routes(routes),
            }
    except bird_status.BirdStatusError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    facts = {"protocols": protocols, "tcp_md5": md5, **bgp, **families}
    module.exit_json(changed=False, ansible_facts={"calico_bird": facts})


if __name__ == "__main__":
    main()
