#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bird
short_description: Configure, run (systemd or a supervisor), reconfigure or remove BIRD 2 in one step
version_added: "1.0.0"
description:
  - One module run does what a BIRD service needs on a host, so that a run where nothing changed costs a few
    C(stat) calls and one C(birdc show status).
  - Creates the configuration directory (V(0750), C(root:)O(group)) and the run directories of the control
    socket and pid files (V(0750), O(user):O(group)) when they are missing. Only a directory it creates gets
    that mode and owner; an existing one (C(/etc) for C(/etc/bird.conf), C(/run) for C(/run/bird.pid)) is
    never changed. The systemd unit's C(ExecStartPre) does the same.
  - Writes the passwords file O(secrets_file) (V(0640), C(root:)O(group), never shown in a diff), or removes it
    when O(secrets) is not given.
  - When O(config) or O(secrets) changed, validates both together with C(bird -p -c) on temporary copies
    (the copy of bird.conf includes the copy of the new passwords), then writes them atomically
    (V(0640), C(root:)O(group)); a configuration BIRD refuses writes nothing and fails with BIRD's message.
  - With the supervisor (V(manager=supervisor)), installs the supervisor script O(supervisor) (V(0755),
    C(root:root)) and starts BIRD under it only when the supervisor does not run.
  - Under systemd (V(manager=systemd)), installs BIRD's unit O(unit) as C(/etc/systemd/system/<service_name>.service)
    (V(0644), C(root:root)), runs C(systemctl daemon-reload) when the unit changed (or systemd says it needs
    one), enables the unit when it is not enabled, starts it when it is not active, and restarts it when its
    unit changed while BIRD ran. One C(systemctl show) reads all that.
  - Waits until BIRD answers on its control socket; runs C(birdc configure) when BIRD runs and bird.conf or
    the passwords differ from what BIRD last loaded successfully, as recorded in O(applied_file) (so a run that
    failed or stopped between writing and C(configure) is caught up by the next one; a missing record means
    one C(configure)).
  - O(state=absent) is the way back. BIRD stopped (the supervisor stopped, or the unit stopped and
    disabled), bird.conf, the passwords file, the record and the unit (systemd) or BIRD's pid file
    (supervisor) removed. The peers see the session close and withdraw the node's routes at once.
options:
  state:
    description: V(present) configures and runs BIRD; V(absent) stops it and removes its files.
    type: str
    choices: [present, absent]
    default: present
  config:
    description:
      - The whole content of bird.conf.
      - With O(state=present), this or O(bgp) is required.
    type: str
  bgp:
    description:
      - The node's BGP data to print bird.conf and the passwords file from, on the host (instead of O(config)
        and O(secrets)), as role P(l3.calico.calico_bgp#role) passes it. The peers and filters are computed by
        the same code as the filter P(l3.calico.bird_config#filter) (C(module_utils/bgp.py)), then printed by
        C(module_utils/bird_conf.py); bad input fails naming host, field and value before anything changes.
      - In a full mesh bird.conf holds a session per other node; computed here, on each host, that work is not
        the controller's (which would do it once per host over the whole fleet).
    type: dict
    suboptions:
      node:
        description: This node (inventory host name).
        type: str
        required: true
      nodes:
        description:
          - Every node's address, subnet and blocks (C(calico_ipam_result.routing), or its C(nodes)).
          - Left out, the action plugin reads it on the controller from the host's C(calico_ipam_result) (its
            C(routing), else its C(nodes)), so the task's own arguments, which Ansible keeps for every host until
            the task ends, do not hold the whole fleet (P(l3.calico.calico_bgp#role) does that).
        type: dict
      pools:
        description: The pools (C(calico_ipam_result.pools)).
        type: dict
        required: true
      pools_ipv6:
        description:
          - The IPv6 pools (C(calico_ipam_result.pools_ipv6)). A node with an IPv6 address (C(calico_node_ipv6))
            gets, as Calico's bird6, IPv6 sessions with the other nodes' IPv6 addresses (an C(ipv6) channel each)
            and its IPv6 blocks announced, in the same BIRD daemon, when there is at least one IPv6 pool.
        type: dict
        default: {}
      settings:
        description:
          - The BGP settings, as for the filter P(l3.calico.bird_config#filter) (its option C(settings)), checked there.
          - The passwords (C(mesh_password), each peer's C(password)) are never logged or returned; the passwords
            file holds them, bird.conf names them only.
        type: dict
        default: {}
        suboptions:
          as: {description: This node's AS., type: raw}
          default_as: {description: The AS of the nodes absent from O(bgp.settings.node_as)., type: raw}
          node_as: {description: Node -> AS of the nodes that set one., type: raw}
          router_id: {description: "C(address), C(hash) or an IPv4 address.", type: raw}
          node_mesh: {description: Full mesh between the nodes that are not route reflectors., type: raw}
          mesh_password: {description: TCP-MD5 password of the node-to-node sessions., type: raw}
          route_reflectors: {description: Node -> cluster id of the route reflectors., type: raw}
          import_default_route: {description: Accept a default route from every peer., type: raw}
          graceful_restart: {description: Announce graceful restart., type: raw}
          graceful_restart_time: {description: Seconds the peers keep this node's routes stale., type: raw}
          peers:
            description: External peers of every node.
            type: list
            elements: dict
            suboptions: &peer_options
              name: {description: BIRD protocol name., type: raw}
              address: {description: "Neighbor address: IPv4 (an IPv4 session) or IPv6 (an IPv6 session, the node needs an IPv6 address).", type: raw}
              as: {description: Neighbor AS., type: raw}
              password: {description: TCP-MD5 password., type: raw}
              ttl_security: {description: GTSM (RFC 5082)., type: raw}
              multihop: {description: eBGP multihop TTL., type: raw}
              keep_next_hop: {description: Keep the next hop., type: raw}
              port: {description: Neighbor port., type: raw}
              passive: {description: Wait for the peer to connect., type: raw}
              import_default_route: {description: Accept a default route from this peer., type: raw}
          node_peers:
            description: External peers of this node only.
            type: list
            elements: dict
            suboptions: *peer_options
      layout:
        description: What bird.conf holds beside the BGP data (the role's C(calico_bgp_*) variables of the same names).
        type: dict
        default: {}
        suboptions:
          header:
            description: The first comment line (C(ansible_managed)).
            type: str
            default: Ansible managed
          log_file:
            description: BIRD's log file; empty for syslog.
            type: str
            default: ""
          device_scan_time:
            description: Device protocol scan time (s).
            type: int
            default: 10
          direct_exclude:
            description: Interfaces whose connected routes BIRD ignores.
            type: list
            elements: str
            default: [cali*, kube-ipvs*, tunl0, vxlan.calico]
          kernel_persist:
            description: Keep the kernel routes when BIRD stops.
            type: bool
            default: true
          kernel_scan_time:
            description: Kernel protocol scan time (s).
            type: int
            default: 2
          kernel_metric:
            description: Metric of the kernel routes.
            type: int
            default: 0
          connect_delay_time:
            description: BGP connect delay time (s).
            type: int
            default: 2
          connect_retry_time:
            description: BGP connect retry time (s).
            type: int
            default: 5
          error_wait_time:
            description: BGP error wait time, minimum and maximum (s).
            type: list
            elements: int
            default: [5, 30]
          hold_time:
            description: BGP hold time (s).
            type: int
            default: 240
  config_file:
    description: Where bird.conf lives.
    type: path
    default: /etc/bird/bird.conf
  secrets:
    description:
      - The content of the passwords file that bird.conf includes. Not logged.
      - Omitted or null, the file is removed (with O(bgp), it is printed from O(bgp.settings)).
    type: str
  secrets_file:
    description: Where the passwords file lives.
    type: path
    default: /etc/bird/bird-secrets.conf
  user:
    description: Owner of the run directories (BIRD's C(-u)); empty for root.
    type: str
    default: bird
  group:
    description: Group of the files and directories (BIRD's C(-g)); empty for root.
    type: str
    default: bird
  bird:
    description: The BIRD daemon, used to validate the configuration.
    type: path
    default: /usr/sbin/bird
  birdc:
    description: The BIRD client.
    type: path
    default: /usr/sbin/birdc
  control_socket:
    description: BIRD's control socket.
    type: path
    default: /run/bird/bird.ctl
  pid_file:
    description: BIRD's own pid file (its directory is ensured).
    type: path
    default: /run/bird/bird.pid
  applied_file:
    description:
      - Where the SHA-256 of bird.conf and the passwords file BIRD last loaded is recorded (C(sha256sum)
        format), written after a successful start or C(birdc configure). Its directory is ensured.
      - Default C(bird-applied.sha256) beside O(pid_file).
    type: path
  manager:
    description:
      - Who keeps BIRD running. V(auto) is V(systemd) when C(/run/systemd/system) is a directory,
        else V(supervisor).
      - V(supervisor) is the shell supervisor O(supervisor_script) installed at O(supervisor).
    type: str
    choices: [auto, supervisor, systemd]
    default: auto
  service_name:
    description: The name of BIRD's systemd unit, without C(.service) (systemd).
    type: str
    default: bird
  unit:
    description:
      - The content of BIRD's systemd unit (systemd, O(state=present)).
      - Default, the module's own unit, written from O(bird), O(birdc), O(config_file), O(control_socket),
        O(pid_file), O(user), O(group) and O(bird_argv) (role P(l3.calico.calico_bgp#role) uses it) - C(Type=simple),
        C(ExecStartPre) creating the control socket's and pid file's directories (V(0750), O(user):O(group)) when
        missing and checking the configuration with C(bird -p), C(ExecStart) O(bird_argv),
        C(ExecReload) C(birdc configure), C(Restart=on-failure).
    type: str
  systemctl:
    description: The systemd client.
    type: path
    default: /usr/bin/systemctl
  supervisor:
    description: Where the supervisor script is installed.
    type: path
    default: /usr/local/sbin/calico-bird-service
  supervisor_script:
    description: The supervisor script's content; required when the manager is the supervisor.
    type: str
  supervisor_pid_file:
    description: The supervisor's pid file.
    type: path
    default: /run/bird/bird-supervisor.pid
  bird_argv:
    description: The command the supervisor runs (BIRD in the foreground, C(-f)).
    type: list
    elements: str
    default: []
  socket_timeout:
    description: Seconds to wait for BIRD to answer on its control socket (supervisor).
    type: int
    default: 30
  reload_out:
    description:
      - BIRD protocols whose exports a BIRD that was already running re-runs (C(birdc reload out NAME)); ignored
        when this run starts or restarts BIRD. Each name is checked in full (a letter or C(_), then letters,
        digits, C(_)).
      - The BGP role passes the kernel protocol (C(kernel1)) when the tunnel devices changed in the same run.
        A BIRD started before its tunnel device exists (systemd at boot) cannot install the routes through it
        and does not try again when the device appears.
    type: list
    elements: str
    default: []
  wait_established:
    description:
      - Seconds to wait, once BIRD runs the new configuration, until every BGP session is Established (read
        every second with C(birdc -r show protocols all)); V(0) does not look at the sessions.
      - The sessions are returned as RV(bgp_sessions); each one still not Established after the wait is named with
        its likely cause (a TCP-MD5 mismatch is read from the kernel's counters, as P(l3.calico.bird_facts#module)
        does).
      - In check mode the sessions are waited for only when nothing would change (else they are not read).
    type: int
    default: 0
  fail_not_established:
    description:
      - With O(wait_established), fail when a session is not Established after the wait (what the run changed
        stays done and is reported); V(false) returns a warning per session instead.
    type: bool
    default: true
extends_documentation_fragment:
  - l3.calico.attributes
notes:
  - In check mode a changed configuration is reported (and shown with C(--diff)) but not validated.
author:
  - l3.calico maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Configure and run BIRD (under systemd where it is PID 1, else under the supervisor)
  l3.calico.bird:
    config: "{{ lookup('ansible.builtin.file', 'bird.conf') }}"
    supervisor_script: "{{ lookup('ansible.builtin.file', 'calico-bird-service') }}"
    bird_argv: [/usr/sbin/bird, -f, -c, /etc/bird/bird.conf, -s, /run/bird/bird.ctl, -u, bird, -g, bird]

- name: Print this node's bird.conf from the IPAM result on the host, and run BIRD
  l3.calico.bird:
    bgp:
      node: "{{ inventory_hostname }}"
      nodes: "{{ calico_ipam_result.routing }}"
      pools: "{{ calico_ipam_result.pools }}"
      pools_ipv6: "{{ calico_ipam_result.pools_ipv6 | default({}) }}"
      settings: {as: 64512, mesh_password: "{{ vault_mesh_password }}"}
    supervisor_script: "{{ lookup('ansible.builtin.file', 'calico-bird-service') }}"
    bird_argv: [/usr/sbin/bird, -f, -c, /etc/bird/bird.conf, -s, /run/bird/bird.ctl]
    wait_established: 30

- name: Stop BIRD and remove its configuration
  l3.calico.bird:
    state: absent
"""

RETURN = r"""
manager:
  description: The service manager chosen (V(supervisor) or V(systemd)).
  returned: always
  type: str
  sample: supervisor
changes:
  description: What changed (or would change in check mode).
  returned: always
  type: list
  elements: str
  sample: ["/etc/bird/bird.conf updated", "BIRD reconfigured (birdc configure)"]
config_changed:
  description: Whether bird.conf was (or would be) replaced.
  returned: always
  type: bool
started:
  description: Whether BIRD was (or would be) started (under its supervisor, or its unit by systemd).
  returned: always
  type: bool
restarted:
  description: Whether BIRD's unit was (or would be) restarted because the unit changed (systemd).
  returned: always
  type: bool
stopped:
  description: Whether BIRD was (or would be) stopped (O(state=absent)).
  returned: always
  type: bool
reconfigured:
  description: Whether C(birdc configure) ran (or would run).
  returned: always
  type: bool
reloaded_out:
  description: The protocols whose exports BIRD re-ran (C(birdc reload out)), or would in check mode.
  returned: always
  type: list
  elements: str
  sample: [kernel1]
birdc:
  description: What BIRD, its supervisor or systemd answered to C(start) / C(enable) / C(stop) / C(configure) / C(reload out) when they ran.
  returned: when something ran
  type: dict
  sample: {configure: "Reading configuration from /etc/bird/bird.conf\nReconfigured"}
bgp_sessions:
  description:
    - The BGP sessions after the wait (O(wait_established)), as P(l3.calico.bird_facts#module) names them. C(sessions)
      maps each to its state; C(problems) has a sentence per session not Established, with its likely cause;
      C(waited) is the seconds it took.
  returned: when O(wait_established) is not V(0) and BIRD was read
  type: dict
  sample:
    sessions: {Mesh_192_168_100_12: Established, Node_192_168_100_51: Active}
    established: [Mesh_192_168_100_12]
    not_established: [Node_192_168_100_51]
    problems:
      - "BGP session Node_192_168_100_51 to 192.168.100.51 (AS 65098) is Active, not Established; TCP-MD5 signatures
        failed 4 times on this host (TcpExtTCPMD5Failure): the passwords of the two ends differ"
    waited: 30.0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l3.calico.plugins.module_utils import bird_conf, bird_service, bird_status, fleet_args, iproute
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            config=dict(type="str"),
            config_file=dict(type="path", default="/etc/bird/bird.conf"),
            secrets=dict(type="str", no_log=True),
            secrets_file=dict(type="path", default="/etc/bird/bird-secrets.conf"),
            user=dict(type="str", default="bird"),
            group=dict(type="str", default="bird"),
            bird=dict(type="path", default="/usr/sbin/bird"),
            birdc=dict(type="path", default="/usr/sbin/birdc"),
            control_socket=dict(type="path", default="/run/bird/bird.ctl"),
            pid_file=dict(type="path", default="/run/bird/bird.pid"),
            applied_file=dict(type="path"),
            manager=dict(type="str", choices=["auto", "supervisor", "systemd"], default="auto"),
            service_name=dict(type="str", default="bird"),
            unit=dict(type="str"),
            systemctl=dict(type="path", default="/usr/bin/systemctl"),
            supervisor=dict(type="path", default="/usr/local/sbin/calico-bird-service"),
            supervisor_script=dict(type="str"),
            supervisor_pid_file=dict(type="path", default="/run/bird/bird-supervisor.pid"),
            bird_argv=dict(type="list", elements="str", default=[]),
            socket_timeout=dict(type="int", default=30),
            reload_out=dict(type="list", elements="str", default=[]),
            wait_established=dict(type="int", default=0),
            fail_not_established=dict(type="bool", default=True),
            **bird_conf.ARGUMENT_SPEC,
        ),
        required_if=[("state", "present", ["config", "bgp"], True)],
        mutually_exclusive=[("config", "bgp"), ("secrets", "bgp")],
        supports_check_mode=True,
    )
    params = module.params

    # Every node's routing data (bgp.nodes) summarised in the arguments returned (module_utils/fleet_args.py);
    # the computed bird.conf and passwords are not arguments the task gave, so they are not returned either.
    invocation = fleet_args.invocation(params, ("bgp", "nodes"))
    if params["wait_established"] < 0:
        module.fail_json(msg=f"wait_established={params['wait_established']}: seconds to wait, 0 or more", invocation=invocation)
    run = iproute.module_runner(module)
    said = {}
    try:
        if params["bgp"] is not None and params["state"] == "present":
            params["config"], params["secrets"] = bird_conf.from_bgp(params["bgp"], params["config_file"], params["secrets_file"])
        the_plan = bird_service.plan(params, run)
        if not module.check_mode and (the_plan.changed or the_plan.record_stale):
            said = bird_service.apply(the_plan, params, run)
        elif not module.check_mode and the_plan.state == "present":
            bird_service.wait_answers(run, params["birdc"], params["control_socket"], params["socket_timeout"])
    except L3CalicoError as exc:
        module.fail_json(msg=str(exc), **exc.details, invocation=invocation)
    except OSError as exc:
        module.fail_json(msg=f"{exc.filename or ''}: {exc.strerror or exc}", invocation=invocation)
    config = the_plan.config
    result = dict(
        changed=the_plan.changed,
        changes=the_plan.changes,
        manager=the_plan.manager,
        config_changed=config.write,
        started=the_plan.start,
        restarted=the_plan.restart,
        stopped=the_plan.stop,
        reconfigured=the_plan.reconfigure,
        reloaded_out=the_plan.reload_out,
    )
    if said:
        result["birdc"] = said
    if module._diff:  # bird.conf (the passwords are never shown)
        result["diff"] = [
            dict(
                before=(config.before or b"").decode(errors="replace"),
                after=(config.content or b"").decode(errors="replace"),
                before_header=params["config_file"],
                after_header=params["config_file"],
            )
        ]
        unit = the_plan.unit
        if unit is not None and unit.changed:
            result["diff"].append(
                dict(
                    before=(unit.before or b"").decode(errors="replace"),
                    after=(unit.content or b"").decode(errors="replace"),
                    before_header=unit.path,
                    after_header=unit.path,
                )
            )
    # The sessions, after what changed is in the result: a failure from here on still reports it.
    if params["wait_established"] and the_plan.state == "present" and not (module.check_mode and the_plan.changed):
        try:
            sessions = bird_status.wait_established(run, params["birdc"], params["control_socket"], params["wait_established"])
        except L3CalicoError as exc:
            module.fail_json(msg=f"{exc} (reading the BGP sessions)", **{**result, **exc.details}, invocation=invocation)
        result["bgp_sessions"] = sessions
        if sessions["problems"] and params["fail_not_established"]:
            count = len(sessions["problems"])
            module.fail_json(
                msg=f"{count} BGP session(s) not Established after {sessions['waited']:g} s: " + "; ".join(sessions["problems"]),
                **result,
                invocation=invocation,
            )
        for problem in sessions["problems"]:
            module.warn(problem)
    module.exit_json(**result, invocation=invocation)


if __name__ == "__main__":
    main()
