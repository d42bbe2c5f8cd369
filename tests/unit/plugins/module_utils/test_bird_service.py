# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""bird_service: read -> plan -> apply for BIRD's files and process, with a fake command runner."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.l3.calico.plugins.module_utils import bird_service


class Runner:
    """Records argv; `bird -p` accepts unless the config contains 'BAD'; birdc answers when `up`."""

    def __init__(self, up: bool = True):
        self.calls: list[list[str]] = []
        self.up = up

    def __call__(self, argv):
        self.calls.append(list(argv))
        if argv[0].endswith("/bird") and argv[1] == "-p":
            with open(argv[3]) as fh:
                text = fh.read()
            return (1, "", f"{argv[3]}:3:9 Hold time must be in range 3-65535 or zero\n") if "BAD" in text else (0, "", "")
        if argv[-1] == "configure":
            return 0, "Reading configuration from x\nReconfigured\n", ""
        if argv[-2:] == ["show", "status"]:
            return (0, "BIRD 2.0.12\nDaemon is up and running\n", "") if self.up else (1, "", "Unable to connect")
        if argv[1] == "start":
            self.up = True
            return 0, "started\n", ""
        raise AssertionError(f"unexpected command {argv}")

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
    assert runner.kinds() == ["status", "configure"]  # not validated: bird.conf did not change


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
