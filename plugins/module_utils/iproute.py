# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Small, injectable access to iproute2: run a command (the one :class:`Runner`), read ``ip -json``, apply ``ip -batch``.

Plain Python (no Ansible imports) so the data-plane planners can be unit-tested with a fake
runner and used by the modules, the tests and the benchmark alike.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from typing import NamedTuple, Optional, Protocol

from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError

IP = "ip"


class Result(NamedTuple):
    """What a command did; unpacks as ``rc, stdout, stderr``, as ``AnsibleModule.run_command``'s answer."""

    rc: int
    stdout: str
    stderr: str


class Runner(Protocol):
    """The one command runner of the collection: argv and optional stdin text in, a :class:`Result` out.

    :func:`subprocess_runner` is the default, :func:`module_runner` adapts an ``AnsibleModule``;
    unit tests inject fakes (those of callers that only unpack ``rc, stdout, stderr`` may return a tuple).
    """

    def __call__(self, argv: Sequence[str], stdin: Optional[str] = None) -> Result: ...


def subprocess_runner(argv: Sequence[str], stdin: Optional[str] = None) -> Result:
    proc = subprocess.run(
        list(argv),
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LC_ALL": "C"},
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def module_runner(module) -> Runner:
    """``module.run_command`` (an ``AnsibleModule``'s) as a :class:`Runner`: stdin passed as it is."""

    def run(argv: Sequence[str], stdin: Optional[str] = None) -> Result:
        return Result(*module.run_command(list(argv), data=stdin, binary_data=True))

    return run


class CommandError(L3CalicoError, RuntimeError):
    """A command failed; the message names the command, its exit code and its error output."""

    def __init__(self, argv: Sequence[str], result: Result, stdin: Optional[str] = None):
        self.argv = list(argv)
        self.result = result
        self.stdin = stdin
        detail = (result.stderr or result.stdout).strip()
        super().__init__(f"`{' '.join(self.argv)}` failed (rc={result.rc}): {detail}")


def check(runner: Runner, argv: Sequence[str], stdin: Optional[str] = None) -> str:
    result = runner(argv, stdin)
    if result.rc != 0:
        raise CommandError(argv, result, stdin)
    return result.stdout


def ip_json(runner: Runner, args: Sequence[str], netns: Optional[str] = None) -> list:
    """``ip -json ARGS`` (in ``netns`` if given) parsed; an empty output is an empty list."""
    argv = [IP] + (["-n", netns] if netns else []) + ["-json"] + list(args)
    out = check(runner, argv).strip()
    return json.loads(out) if out else []


def ip_json_batch(runner: Runner, commands: Sequence[str], netns: Optional[str] = None, details: bool = False) -> list:
    """Several ``ip -json`` reads in ONE process: ``ip -json -batch -``, one JSON array per command.

    iproute2 prints each command's array (``[]`` when empty) on its own line, so the output is
    split into top-level JSON values, one per command. ``details`` adds ``-details`` (needed to
    see an interface's alias in ``addr show``).
    """
    argv = [IP] + (["-n", netns] if netns else []) + ["-json"] + (["-details"] if details else []) + ["-batch", "-"]
    out = check(runner, argv, "".join(c + "\n" for c in commands))
    values = _json_values(out)
    if len(values) == len(commands) - 1 and commands[-1] == "netns list":
        values.append([])  # without /run/netns (no namespace ever made) it prints nothing at all
    if len(values) != len(commands):
        raise CommandError(argv, Result(1, out, f"expected {len(commands)} JSON arrays, got {len(values)}"))
    return values


def _json_values(text: str) -> list:
    decoder = json.JSONDecoder()
    values, pos, end = [], 0, len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            return values
        value, pos = decoder.raw_decode(text, pos)
        values.append(value)


def batch(runner: Runner, lines: Sequence[str], netns: Optional[str] = None) -> None:
    """Apply ``lines`` with one ``ip -batch -`` (in ``netns`` if given); stops at the first error."""
    if not lines:
        return
    argv = [IP] + (["-n", netns] if netns else []) + ["-batch", "-"]
    check(runner, argv, "".join(line + "\n" for line in lines))
