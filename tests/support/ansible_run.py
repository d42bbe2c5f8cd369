# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""One way for a test to run this project's Ansible commands: its ansible.cfg, the venv's tools, the run's
temporary files in a directory of the test's, no colours; the result returned, never checked here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def ansible_env(state: Path, **extra: str) -> dict:
    """The environment of an Ansible command of this project, its temporary files under ``state``."""
    return dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_LOCAL_TEMP=str(state / ".tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        **extra,
    )


def run_ansible(tool: str, *args: str, state: Path, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
    """``tool`` (ansible-playbook, ansible-doc, ...) of the venv with ``args``, from the project's root."""
    return subprocess.run([str(BIN / tool), *args], cwd=ROOT, env=ansible_env(state, **extra), capture_output=True, text=True, timeout=timeout, check=False)
