# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The verify entry point alone: a BIRD that cannot be read fails with birdc's own words."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.ansible_run import run_ansible

pytestmark = [pytest.mark.bird]


def test_verify_fails_clearly_without_bird(tmp_path):
    if not shutil.which("birdc") and not Path("/usr/sbin/birdc").exists():
        pytest.skip("needs birdc (Debian package bird2)")
    socket = tmp_path / "no-bird.ctl"
    proc = run_ansible(
        "ansible-playbook",
        *("-i", "localhost,", "-c", "local", str(Path(__file__).with_name("verify.yml"))),
        *("-e", f"calico_bgp_control_socket={socket}", "-e", "calico_bgp_verify_timeout=1"),
        state=tmp_path,
        timeout=120,
        ANSIBLE_HOME=str(tmp_path / "home"),
    )
    assert proc.returncode == 2, proc.stdout
    assert f"birdc on {socket} failed" in proc.stdout and "Unable to connect to server control socket" in proc.stdout
    assert "Fail when BIRD cannot be read" in proc.stdout


def test_a_negative_wait_is_refused_before_anything_changes(tmp_path):
    """The bird module's own wait (wait_established, what calico_bgp_verify uses): a negative number of seconds
    fails naming the option and the value, and nothing is written."""
    config = tmp_path / "bird.conf"
    args = f"config='router id 192.0.2.1;' config_file={config} secrets_file={tmp_path / 'secrets.conf'} wait_established=-1"
    proc = run_ansible(
        # check mode: were the check gone, the module would only plan (and this test fail), not start BIRD here
        *("ansible", "localhost", "-i", "localhost,", "-c", "local", "--check", "-m", "l3.calico.bird", "-a", args),
        state=tmp_path,
        timeout=120,
        ANSIBLE_HOME=str(tmp_path / "home"),
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "wait_established=-1: seconds to wait, 0 or more" in proc.stdout, proc.stdout
    assert not config.exists() and not (tmp_path / "secrets.conf").exists()
