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
      - The whole content of bird.conf (usually C(lookup('ansible.builtin.template', ...))).
      - Required with O(state=present).
    type: str
  config_file:
    description: Where bird.conf lives.
    type: path
    default: /etc/bird/bird.conf
  secrets:
    description:
      - The content of the passwords file that bird.conf includes. Not logged.
      - Omitted or null, the file is removed.
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
    description: The content of BIRD's systemd unit; required when the manager is systemd and O(state=present).
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
    config: "{{ lookup('ansible.builtin.template', 'bird.conf.j2') }}"
    unit: "{{ lookup('ansible.builtin.template', 'bird.service.j2') }}"
    supervisor_script: "{{ lookup('ansible.builtin.file', 'calico-bird-service') }}"
    bird_argv: [/usr/sbin/bird, -f, -c, /etc/bird/bird.conf, -s, /run/bird/bird.ctl, -u, bird, -g, bird]

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
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l3.calico.plugins.module_utils import bird_service, iproute
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
        ),
        required_if=[("state", "present", ["config"])],
        supports_check_mode=True,
    )
    params = module.params

    run = iproute.module_runner(module)
    said = {}
    try:
        the_plan = bird_service.plan(params, run)
        if not module.check_mode and (the_plan.changed or the_plan.record_stale):
            said = bird_service.apply(the_plan, params, run)
        elif not module.check_mode and the_plan.state == "present":
            bird_service.wait_answers(run, params["birdc"], params["control_socket"], params["socket_timeout"])
    except L3CalicoError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    except OSError as exc:
        module.fail_json(msg=f"{exc.filename or ''}: {exc.strerror or exc}")
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
    module.exit_json(**result)


if __name__ == "__main__":
    main()
