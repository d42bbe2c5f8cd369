# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The lab router's capture for real: stopped right after the last packet, it has every packet."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest
from l3lab import capture

pytestmark = pytest.mark.netns



@pytest.fixture
def netns():
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tcpdump"):
        pytest.skip("needs root, iproute2 (ip) and tcpdump")
    name = f"l3tcap-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


def test_a_capture_stopped_right_after_the_last_ping_has_every_packet(netns, tmp_path):
    pcap, err = tmp_path / "capture.pcap", tmp_path / "capture.err"
    with open(err, "wb") as errf:
        proc = subprocess.Popen(capture.capture_argv(netns, pcap), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=errf)
    try:
        deadline = time.monotonic() + 10
        while b"listening on" not in err.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
            time.sleep(0.02)
        subprocess.run(["ip", "netns", "exec", netns, "ping", "-c", "3", "-i", "0.2", "-q", "127.0.0.1"],
                       check=True, capture_output=True)
        proc.send_signal(signal.SIGINT)  # as labctl's capture stop does, at once
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    flows = capture.read_pcap(pcap)
    assert {f["icmp"]: f["packets"] for f in flows} == {"echo-request": 3, "echo-reply": 3}, flows
