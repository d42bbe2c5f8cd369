# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""iproute's one command runner: Result, subprocess_runner, module_runner."""

from __future__ import annotations

from ansible_collections.l3.calico.plugins.module_utils import iproute


def test_result_unpacks_as_run_command_answers_and_names_its_fields():
    result = iproute.Result(3, "out", "err")
    rc, out, err = result
    assert (rc, out, err) == (result.rc, result.stdout, result.stderr) == (3, "out", "err")


def test_subprocess_runner_feeds_stdin_and_returns_what_the_command_did():
    assert iproute.subprocess_runner(["cat"], "a\nb\n") == iproute.Result(0, "a\nb\n", "")
    rc, _out, err = iproute.subprocess_runner(["sh", "-c", "echo no >&2; exit 4"])
    assert (rc, err) == (4, "no\n")


class FakeModule:
    def __init__(self):
        self.calls = []

    def run_command(self, args, check_rc=False, data=None, binary_data=False, **kwargs):
        self.calls.append((args, check_rc, data, binary_data))
        return 1, "o", "e"


def test_module_runner_passes_argv_and_stdin_unchanged_to_run_command():
    module = FakeModule()
    run = iproute.module_runner(module)
    assert run(("dpkg-query", "-W")) == iproute.Result(1, "o", "e")
    assert isinstance(run(["ip", "-batch", "-"], "link show\n"), iproute.Result)
    # no check_rc (the caller reads rc), stdin as given: binary_data, so no newline is appended
    assert module.calls == [(["dpkg-query", "-W"], False, None, True), (["ip", "-batch", "-"], False, "link show\n", True)]
