# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""bird_service: read -> plan -> apply for BIRD's files and process, with a fake command runner."""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat

import pytest

from ansible_collections.l3.calico.plugins.module_utils import bird_service


class Runner:
    """Records argv; birdc answers when `up`. `bird -p` reads the config and the files it includes, as
    BIRD does, and refuses 'BAD', a missing include or a `password NAME` with no `define NAME`."""

    def __init__(self, up: bool = True, configure_ok: bool = True):
        self.calls: list[list[str]] = []
        self.up = up
        self.configure_ok = configure_ok

    def __call__(self, argv):
        self.calls.append(list(argv))
        if argv[0].endswith("/bird") and argv[1] == "-p":
            with open(argv[3]) as fh:
                text = fh.read()
            for included in re.findall(r'include "([^"]+)";', text):
                if not os.path.exists(included):
                    return 1, "", f"{argv[3]}:1:1 Unable to open included file {included}: No such file or directory\n"
                with open(included) as fh:
                    text += fh.read()
            undefined = [n for n in re.findall(r"password (\w+);", text) if f"define {n} " not in text]
            if undefined:
                return 1, "", f"{argv[3]}:2:1 Unknown symbol {undefined[0]}\n"
            return (1, "", f"{argv[3]}:3:9 Hold time must be in range 3-65535 or zero\n") if "BAD" in text else (0, "", "")
        if argv[-1] == "configure":
            if not self.configure_ok:
                return 0, "Reading configuration from x\nbird.conf:7:1 syntax error\n", ""
            return 0, "Reading configuration from x\nReconfigured\n", ""
        if argv[-3:-1] == ["reload", "out"]:
            return 0, f"BIRD 2.0.12 ready.\n{argv[-1]}: reloading\n", ""
        if argv[-2:] == ["show", "status"]:
            return (0, "BIRD 2.0.12\nDaemon is up and running\n", "") if self.up else (1, "", "Unable to connect")
        if argv[0].endswith("systemctl"):
            return self.systemctl(argv[1:])
        if argv[1] == "start":
            self.up = True
            return 0, "started\n", ""
        if argv[1] == "stop":
            self.up = False
            return 0, "", ""
        raise AssertionError(f"unexpected command {argv}")

    # systemd, as far as the module asks it: one unit's ActiveState, UnitFileState, NeedDaemonReload
    unit = {"ActiveState": "inactive", "UnitFileState": "disabled", "NeedDaemonReload": "no"}

    def systemctl(self, args):
        self.unit = dict(self.unit)
        if args[0] == "show":
            assert args[-2:] == ["--", "bird.service"], args
            return 0, "".join(f"{k}={v}\n" for k, v in self.unit.items()), ""
        if args == ["daemon-reload"]:
            self.unit["NeedDaemonReload"] = "no"
            return 0, "", ""
        verb = args[: args.index("--")]
        if verb in (["start"], ["restart"]):
            self.unit["ActiveState"], self.up = "active", True
        elif verb == ["enable"]:
            self.unit["UnitFileState"] = "enabled"
        elif verb in (["stop"], ["disable", "--now"]):
            self.unit["ActiveState"], self.up = "inactive", False
            if verb[0] == "disable":
                self.unit["UnitFileState"] = "disabled"
        else:
            raise AssertionError(f"unexpected systemctl {args}")
        return 0, "", ""

    def kinds(self) -> list[str]:
        return [" ".join(c[1:2] + c[-1:]) if c[0].endswith("/bird") else c[-1] for c in self.calls]


@pytest.fixture
def params(tmp_path):
    return {
        "config": "router id 192.168.100.100;\n",
        "config_file": str(tmp_path / "etc" / "bird.conf"),
        "secrets": None,
        "secrets_file": str(tmp_path / "etc" / "bird-secrets.conf"),
        "user": "",
        "group": "",
        "bird": "/usr/sbin/bird",
        "birdc": "/usr/sbin/birdc",
        "control_socket": str(tmp_path / "run" / "bird.ctl"),
        "pid_file": str(tmp_path / "run" / "bird.pid"),
        "manager": "supervisor",
        "supervisor": str(tmp_path / "sbin-calico-bird-service"),
        "supervisor_script": "#!/bin/sh\necho supervisor\n",
        "supervisor_pid_file": str(tmp_path / "run" / "bird-supervisor.pid"),
        "bird_argv": ["/usr/sbin/bird", "-f"],
        "socket_timeout": 1,
        "state": "present",
        "service_name": "bird",
        "unit": "[Service]\nExecStart=/usr/sbin/bird -f\n",
        "systemctl": "/usr/bin/systemctl",
        "reload_out": [],
    }


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def converge(params, runner, running: bool, monkeypatch):
    monkeypatch.setattr(bird_service, "supervisor_running", lambda _pid_file: running)
    the_plan = bird_service.plan(params, runner)
    if the_plan.changed:
        bird_service.apply(the_plan, params, runner)
    return the_plan


def test_first_run_writes_validates_and_starts(params, monkeypatch):
    runner = Runner(up=False)
    the_plan = converge(params, runner, running=False, monkeypatch=monkeypatch)
    assert the_plan.start and not the_plan.reconfigure and the_plan.config.write
    assert open(params["config_file"]).read() == params["config"]
    assert mode(params["config_file"]) == 0o640 and mode(params["supervisor"]) == 0o755
    assert mode(os.path.dirname(params["config_file"])) == 0o750
    assert mode(os.path.dirname(params["control_socket"])) == 0o750
    assert not os.path.exists(params["secrets_file"])
    # validated before it was written, started, then asked whether it answers; never reconfigured
    assert runner.kinds() == ["-p " + runner.calls[0][-1], params["bird_argv"][-1], "status"]
    assert runner.calls[1][:4] == [params["supervisor"], "start", params["supervisor_pid_file"], "--"]


def test_second_run_changes_nothing(params, monkeypatch):
    converge(params, Runner(up=False), running=False, monkeypatch=monkeypatch)
    runner = Runner()
    the_plan = converge(params, runner, running=True, monkeypatch=monkeypatch)
    assert not the_plan.changed and the_plan.changes == []
    assert runner.calls == []  # the plan reads files only; the module asks `show status` once


def test_changed_config_is_validated_then_reconfigured(params, monkeypatch):
    converge(params, Runner(up=False), running=False, monkeypatch=monkeypatch)
    params["config"] = "router id 192.168.100.101;\n"
    runner = Runner()
    the_plan = converge(params, runner, running=True, monkeypatch=monkeypatch)
    assert the_plan.reconfigure and not the_plan.start
    assert the_plan.config.before == b"router id 192.168.100.100;\n"
    assert runner.kinds()[0].startswith("-p ") and runner.kinds()[-1] == "configure"
    assert open(params["config_file"]).read() == params["config"]


def test_refused_config_changes_nothing(params, monkeypatch):
    converge(params, Runner(up=False), running=False, monkeypatch=monkeypatch)
    params["config"] = "BAD hold time 1;\n"
    runner = Runner()
    with pytest.raises(bird_service.BirdServiceError, match="Hold time must be in range") as err:
        converge(params, runner, running=True, monkeypatch=monkeypatch)
    assert "<new bird.conf>" in str(err.value) and "unchanged" in str(err.value)
    assert open(params["config_file"]).read() == "router id 192.168.100.100;\n"
    assert "configure" not in runner.kinds()
    assert [n for n in os.listdir(os.path.dirname(params["config_file"])) if n.startswith(".")] == []


def test_check_mode_plans_without_writing(params, monkeypatch):
    monkeypatch.setattr(bird_service, "supervisor_running", lambda _pid_file: False)
    runner = Runner(up=False)
    the_plan = bird_service.plan(params, runner)
    assert the_plan.changed and the_plan.start
    assert any(c.endswith("bird.conf created") for c in the_plan.changes)
    assert not os.path.exists(os.path.dirname(params["config_file"])) and runner.calls == []


def test_secrets_written_private_then_removed(params, monkeypatch):
    params["secrets"] = 'define PASSWORD_X = "s3cret";\n'
    converge(params, Runner(up=False), running=False, monkeypatch=monkeypatch)
    assert mode(params["secrets_file"]) == 0o640
    params["secrets"] = None
    runner = Runner()
    the_plan = converge(params, runner, running=True, monkeypatch=monkeypatch)
    assert not os.path.exists(params["secrets_file"]) and the_plan.reconfigure
    assert runner.kinds()[0].startswith("-p ") and runner.kinds()[1:] == ["status", "configure"]


def test_mode_drift_is_fixed_without_reconfigure(params, monkeypatch):
    converge(params, Runner(up=False), running=False, monkeypatch=monkeypatch)
    os.chmod(params["config_file"], 0o644)
    runner = Runner()
    the_plan = converge(params, runner, running=True, monkeypatch=monkeypatch)
    assert the_plan.changes == [f"{params['config_file']} mode/owner fixed"] and not the_plan.reconfigure
    assert mode(params["config_file"]) == 0o640 and runner.calls == [[params["birdc"], "-s", params["control_socket"], "show", "status"]]


def test_socket_that_never_answers_fails_clearly(params, monkeypatch):
    runner = Runner(up=False)
    with pytest.raises(bird_service.BirdServiceError, match="did not answer on its control socket"):
        bird_service.wait_answers(runner, params["birdc"], params["control_socket"], 0.3, sleep=lambda _s: None)


def test_unknown_group_is_named(params):
    params["group"] = "no-such-group-l3calico"
    with pytest.raises(bird_service.BirdServiceError, match="group: no group 'no-such-group-l3calico'"):
        bird_service.plan(params, Runner())


def test_supervisor_running_reads_the_pid_file(tmp_path):
    pid_file = tmp_path / "sup.pid"
    assert not bird_service.supervisor_running(str(pid_file))
    pid_file.write_text(f"{os.getpid()}\n")  # a live process, but not a supervisor
    assert not bird_service.supervisor_running(str(pid_file))
    pid_file.write_text("garbage\n")
    assert not bird_service.supervisor_running(str(pid_file))


def with_secrets(params, peer: str, password: str = "s3cret") -> None:
    """bird.conf including the passwords file, one peer using its constant (as role calico_bgp renders)."""
    params["config"] = f'router id 192.168.100.100;\ninclude "{params["secrets_file"]}";\nprotocol bgp {peer} {{ password CALICO_PW_{peer}; }}\n'
    params["secrets"] = f'define CALICO_PW_{peer} = "{password}";\n'


def read_bytes(path):
    with open(path, "rb") as fh:
        return fh.read()


def test_new_config_is_validated_with_the_new_secrets(params, monkeypatch):
    with_secrets(params, "A")
    converge(params, Runner(up=False), running=False, monkeypatch=monkeypatch)
    with_secrets(params, "B")  # a renamed peer: the old passwords file has no CALICO_PW_B
    runner = Runner()
    the_plan = converge(params, runner, running=True, monkeypatch=monkeypatch)
    assert the_plan.reconfigure and runner.kinds()[-1] == "configure"
    assert read_bytes(params["secrets_file"]) == params["secrets"].encode()
    assert not [n for n in os.listdir(os.path.dirname(params["config_file"])) if n.startswith(".")]


@pytest.mark.parametrize("bad", ["config", "secrets", "secrets removed"])
def test_refused_pair_keeps_old_config_and_secrets(params, monkeypatch, bad):
    with_secrets(params, "A")
    converge(params, Runner(up=False), running=False, monkeypatch=monkeypatch)
    old_config, old_secrets = read_bytes(params["config_file"]), read_bytes(params["secrets_file"])
    record = read_bytes(bird_service.applied_file(params))
    with_secrets(params, "B", password="n3w")
    if bad == "config":
        params["config"] += "BAD hold time 1;\n"
    elif bad == "secrets":
        params["secrets"] = "define CALICO_PW_OTHER = 1;\n"  # CALICO_PW_B undefined
    else:
        params["secrets"] = None  # bird.conf still includes it
    runner = Runner()
    with pytest.raises(bird_service.BirdServiceError, match="nothing was written") as err:
        converge(params, runner, running=True, monkeypatch=monkeypatch)
    assert read_bytes(params["config_file"]) == old_config and read_bytes(params["secrets_file"]) == old_secrets
    assert read_bytes(bird_service.applied_file(params)) == record
    assert "configure" not in runner.kinds() and "n3w" not in str(err.value)
    assert not [n for n in os.listdir(os.path.dirname(params["config_file"])) if n.startswith(".")]


def test_failed_configure_is_retried_by_the_next_run(params, monkeypatch):
    converge(params, Runner(up=False), running=False, monkeypatch=monkeypatch)
    params["config"] = "router id 192.168.100.101;\n"
    with pytest.raises(bird_service.BirdServiceError, match="birdc configure failed"):
        converge(params, Runner(configure_ok=False), running=True, monkeypatch=monkeypatch)
    assert open(params["config_file"]).read() == params["config"]  # written, but BIRD still runs the old one
    runner = Runner()
    the_plan = bird_service.plan(params, runner)  # check mode: reports the configure, runs and writes nothing
    assert the_plan.changes == ["BIRD reconfigured (birdc configure)"] and runner.calls == []
    the_plan = converge(params, runner, running=True, monkeypatch=monkeypatch)
    assert the_plan.changed and the_plan.reconfigure and runner.kinds() == ["status", "configure"]
    runner = Runner()
    the_plan = converge(params, runner, running=True, monkeypatch=monkeypatch)
    assert not the_plan.changed and runner.calls == []


def test_run_interrupted_before_configure_is_caught_up(params, monkeypatch):
    converge(params, Runner(up=False), running=False, monkeypatch=monkeypatch)
    params["config"] = "router id 192.168.100.101;\n"

    def interrupted(*args):
        raise KeyboardInterrupt()

    monkeypatch.setattr(bird_service, "reconfigure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        converge(params, Runner(), running=True, monkeypatch=monkeypatch)
    monkeypatch.undo()
    runner = Runner()
    assert converge(params, runner, running=True, monkeypatch=monkeypatch).reconfigure
    assert runner.kinds()[-1] == "configure"


def test_missing_record_while_running_reconfigures_once(params, monkeypatch):
    converge(params, Runner(up=False), running=False, monkeypatch=monkeypatch)
    os.unlink(bird_service.applied_file(params))
    runner = Runner()
    assert converge(params, runner, running=True, monkeypatch=monkeypatch).changes == ["BIRD reconfigured (birdc configure)"]
    assert converge(params, Runner(), running=True, monkeypatch=monkeypatch).changes == []


def test_record_is_sha256sum_of_both_files(params, monkeypatch):
    import hashlib

    with_secrets(params, "A")
    converge(params, Runner(up=False), running=False, monkeypatch=monkeypatch)
    assert read_bytes(bird_service.applied_file(params)).decode() == (
        f"{hashlib.sha256(params['config'].encode()).hexdigest()}  {params['config_file']}\n"
        f"{hashlib.sha256(params['secrets'].encode()).hexdigest()}  {params['secrets_file']}\n"
    )
    assert os.path.dirname(bird_service.applied_file(params)) == os.path.dirname(params["pid_file"])


def test_existing_directories_keep_their_mode_and_owner(params, monkeypatch):
    """``calico_bgp_config_file: /etc/bird.conf`` must not make /etc 0750 root:bird, nor a pid file in /run
    make /run bird's: only a directory the module creates gets its mode and owner."""
    etc, run = os.path.dirname(params["config_file"]), os.path.dirname(params["pid_file"])
    for d in (etc, run):
        os.makedirs(d)
        os.chmod(d, 0o755)
    owners = {d: (os.stat(d).st_uid, os.stat(d).st_gid) for d in (etc, run)}
    params.update(user="nobody", group="nogroup")
    the_plan = converge(params, Runner(up=False), running=False, monkeypatch=monkeypatch)
    assert not [c for c in the_plan.changes if c.startswith((etc + " ", run + " "))], the_plan.changes
    for d in (etc, run):
        assert mode(d) == 0o755 and (os.stat(d).st_uid, os.stat(d).st_gid) == owners[d]
    assert os.stat(params["config_file"]).st_gid == grp.getgrnam("nogroup").gr_gid  # the files are ours
    assert not converge(params, Runner(), running=True, monkeypatch=monkeypatch).changed
    # a directory it creates does get them (the socket moved to a new directory)
    params["control_socket"] = os.path.join(os.path.dirname(run), "sock", "bird.ctl")
    converge(params, Runner(), running=True, monkeypatch=monkeypatch)
    new = os.path.dirname(params["control_socket"])
    assert mode(new) == 0o750 and os.stat(new).st_uid == pwd.getpwnam("nobody").pw_uid


# -- systemd: the unit, enable, start, restart on a changed unit; state=absent -----------------


@pytest.fixture
def systemd(params, tmp_path, monkeypatch):
    monkeypatch.setattr(bird_service, "UNIT_DIR", str(tmp_path / "systemd"))
    os.makedirs(tmp_path / "systemd")
    params["manager"] = "systemd"
    return params


def run_module(params, runner):
    """As the module does: plan, apply when something changes, else wait for the socket."""
    the_plan = bird_service.plan(params, runner)
    if the_plan.changed or the_plan.record_stale:
        bird_service.apply(the_plan, params, runner)
    elif the_plan.state == "present":
        bird_service.wait_answers(runner, params["birdc"], params["control_socket"], params["socket_timeout"])
    return the_plan


def verbs(runner) -> list[str]:
    return [
        " ".join(a for a in (c[1 : c.index("--")] if "--" in c else c[1:]) if not a.startswith("--property")) if c[0].endswith("systemctl") else c[-1]
        for c in runner.calls
        if not c[0].endswith("/bird")
    ]


def test_systemd_first_run_installs_enables_and_starts_the_unit(systemd):
    runner = Runner(up=False)
    the_plan = run_module(systemd, runner)
    unit = bird_service.unit_file(systemd)
    assert open(unit).read() == systemd["unit"] and mode(unit) == 0o644
    assert not os.path.exists(systemd["supervisor"])  # no supervisor under systemd
    assert verbs(runner) == ["show", "daemon-reload", "enable", "start", "status"]
    assert the_plan.changes[-3:] == ["systemd reloaded (systemctl daemon-reload)", "BIRD's unit enabled", "BIRD started (systemd)"]
    assert not the_plan.reconfigure and open(bird_service.applied_file(systemd)).read() == the_plan.applied


def test_systemd_second_run_is_one_show_and_one_status(systemd):
    runner = Runner(up=False)
    run_module(systemd, runner)
    runner.calls.clear()
    the_plan = run_module(systemd, runner)
    assert not the_plan.changed and verbs(runner) == ["show", "status"]


def test_systemd_changed_config_reconfigures_a_running_bird(systemd):
    runner = Runner(up=False)
    run_module(systemd, runner)
    runner.calls.clear()
    systemd["config"] = "router id 192.168.100.101;\n"
    the_plan = run_module(systemd, runner)
    assert the_plan.reconfigure and not the_plan.start and not the_plan.restart
    assert verbs(runner) == ["show", "status", "configure"]


def test_systemd_changed_unit_restarts_bird_and_needs_no_configure(systemd):
    runner = Runner(up=False)
    run_module(systemd, runner)
    runner.calls.clear()
    systemd["unit"] += "Restart=on-failure\n"
    systemd["config"] = "router id 192.168.100.101;\n"  # read by the restarted BIRD
    the_plan = run_module(systemd, runner)
    assert the_plan.restart and not the_plan.reconfigure
    assert verbs(runner) == ["show", "daemon-reload", "restart", "status"]
    assert "BIRD restarted (its unit changed)" in the_plan.changes


def test_systemd_stopped_or_disabled_unit_is_started_and_enabled(systemd):
    runner = Runner(up=False)
    run_module(systemd, runner)
    runner.unit = {**runner.unit, "ActiveState": "failed", "UnitFileState": "disabled"}
    runner.up = False
    runner.calls.clear()
    the_plan = run_module(systemd, runner)
    assert the_plan.start and the_plan.enable and not the_plan.daemon_reload
    assert verbs(runner) == ["show", "enable", "start", "status"]


def test_systemd_check_mode_plans_only(systemd):
    runner = Runner(up=False)
    the_plan = bird_service.plan(systemd, runner)
    assert the_plan.changed and the_plan.start and the_plan.enable and the_plan.unit.write
    assert verbs(runner) == ["show"] and not os.path.exists(bird_service.unit_file(systemd))


def test_systemd_writes_its_own_unit_unless_given_one_and_needs_a_valid_name(systemd):
    the_plan = bird_service.plan({**systemd, "unit": None}, Runner(up=False))
    assert the_plan.unit.content == bird_service.default_unit(systemd).encode()
    assert f"ExecStart={' '.join(systemd['bird_argv'])}\n" in the_plan.unit.content.decode()
    assert bird_service.plan(systemd, Runner(up=False)).unit.content == systemd["unit"].encode()
    for bad in ("bird.service", "../bird", "bird name", "", "bird;reboot"):
        with pytest.raises(bird_service.BirdServiceError, match=f"^service_name: {re.escape(repr(bad))} "):
            bird_service.plan({**systemd, "service_name": bad}, Runner())


def test_reload_out_reexports_only_from_a_bird_that_was_already_running(systemd):
    """BIRD started at boot before the tunnel device existed: the next run that changes the tunnels
    makes it run the kernel's export filter again; a BIRD started by this run needs no reload."""
    runner = Runner(up=False)
    first = run_module({**systemd, "reload_out": ["kernel1"]}, runner)
    assert first.start and first.reload_out == [] and not any("out" in c for c in runner.calls)
    runner.calls.clear()
    again = run_module({**systemd, "reload_out": ["kernel1"]}, runner)
    assert again.changed and again.changes == ["BIRD re-exported its routes to kernel1 (birdc reload out)"]
    assert verbs(runner) == ["show", "status", "kernel1"] and runner.calls[-1][-3:] == ["reload", "out", "kernel1"]
    runner.calls.clear()
    assert not run_module(systemd, runner).changed  # not asked: nothing


def test_reload_out_in_check_mode_is_reported_not_run(systemd):
    runner = Runner(up=False)
    run_module(systemd, runner)
    runner.calls.clear()
    the_plan = bird_service.plan({**systemd, "reload_out": ["kernel1"]}, runner)
    assert the_plan.changed and the_plan.reload_out == ["kernel1"] and verbs(runner) == ["show"]


def test_reload_out_names_are_bird_symbols(systemd):
    for bad in ("kernel 1", "1kernel", "kernel1;", "", "all\nshow"):
        with pytest.raises(bird_service.BirdServiceError, match=f"^reload_out: {re.escape(repr(bad))} "):
            bird_service.plan({**systemd, "reload_out": [bad]}, Runner())


def test_reload_out_refused_by_bird_fails_clearly(systemd):
    runner = Runner(up=False)
    run_module(systemd, runner)
    with pytest.raises(bird_service.BirdServiceError, match="birdc reload out nosuch failed"):
        run_module({**systemd, "reload_out": ["nosuch"]}, lambda argv: (0, "nosuch: There is no such protocol\n", "") if "reload" in argv else runner(argv))


@pytest.mark.parametrize("manager", ["systemd", "supervisor"])
def test_absent_stops_bird_and_removes_its_files_once(systemd, manager, monkeypatch):
    systemd["manager"] = manager
    runner = Runner(up=False)
    running = {"now": False}
    monkeypatch.setattr(bird_service, "supervisor_running", lambda _pid_file: running["now"])
    with_secrets(systemd, "192.168.100.101")
    run_module(systemd, runner)
    running["now"] = True
    files = [systemd["config_file"], systemd["secrets_file"], bird_service.applied_file(systemd)]
    if manager == "systemd":
        files.append(bird_service.unit_file(systemd))
    else:
        open(systemd["pid_file"], "w").close()
        files.append(systemd["pid_file"])
    assert all(os.path.exists(f) for f in files)
    runner.calls.clear()
    absent = {**systemd, "state": "absent", "config": None}
    check = bird_service.plan(absent, runner)  # check mode: the plan alone
    assert check.changed and check.stop and all(os.path.exists(f) for f in files)
    assert check.config.before == systemd["config"].encode()
    the_plan = run_module(absent, runner)
    running["now"] = False
    assert not any(os.path.exists(f) for f in files)
    if manager == "systemd":
        assert the_plan.changes[:2] == ["BIRD stopped", "BIRD's unit disabled"]
        assert verbs(runner) == ["show", "show", "disable --now", "daemon-reload"]
    else:
        assert the_plan.changes[0] == "BIRD stopped" and verbs(runner)[-1] == systemd["supervisor_pid_file"]
        assert [c[1] for c in runner.calls] == ["stop"]
    runner.calls.clear()
    again = run_module(absent, runner)
    assert not again.changed and again.changes == []
    assert verbs(runner) == (["show"] if manager == "systemd" else [])


def test_present_needs_a_config(systemd):
    with pytest.raises(bird_service.BirdServiceError, match="^config: "):
        bird_service.plan({**systemd, "config": None}, Runner())


@pytest.mark.parametrize(
    "field, value",
    [("user", "bird;reboot"), ("group", "a b"), ("control_socket", "run/bird.ctl"), ("pid_file", "/run/$(x).pid"), ("config_file", "/etc/bird conf")],
)
def test_the_unit_it_writes_refuses_names_and_paths_a_shell_would_read(systemd, field, value):
    with pytest.raises(bird_service.BirdServiceError, match=field):
        bird_service.plan({**systemd, "unit": None, field: value}, Runner(up=False))


def test_the_unit_it_writes_refuses_an_argument_a_shell_would_read(systemd):
    with pytest.raises(bird_service.BirdServiceError, match=r"bird_argv\[1\]"):
        bird_service.plan({**systemd, "unit": None, "bird_argv": ["/usr/sbin/bird", "-c;reboot"]}, Runner(up=False))
