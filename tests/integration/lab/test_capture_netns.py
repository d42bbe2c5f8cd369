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


def test_a_capture_flushed_then_stopped_right_after_the_last_ping_has_every_packet(netns, tmp_path):
    """As labctl's capture stop does: the flush mark, then SIGINT at once. A busy machine can leave
    tcpdump unscheduled while the last pings arrive, and SIGINT alone then loses them (CI: 2 of 3
    exchanges kept); here tcpdump is stopped (SIGSTOP) during the pings to make that certain."""
    pcap, err = tmp_path / "capture.pcap", tmp_path / "capture.err"
    with open(err, "wb") as errf:
        proc = subprocess.Popen(capture.capture_argv(netns, pcap), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf)
    try:
        deadline = time.monotonic() + 10
        while b"listening on" not in err.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
            time.sleep(0.02)
        proc.send_signal(signal.SIGSTOP)
        subprocess.run(["ip", "netns", "exec", netns, "ping", "-c", "3", "-i", "0.2", "-q", "127.0.0.2"], check=True, capture_output=True)
        proc.send_signal(signal.SIGCONT)
        capture.flush(netns, pcap)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    flows = capture.read_pcap(pcap)
    assert {(f["inner_src"], f["icmp"]): f["packets"] for f in flows} == {("127.0.0.1", "echo-request"): 3, ("127.0.0.2", "echo-reply"): 3}, (
        flows
    )  # the flush marks left out


def test_flush_fails_clearly_when_nothing_captures(netns, tmp_path):
    pcap = tmp_path / "capture.pcap"
    pcap.write_bytes(b"")
    with pytest.raises(capture.LabError, match="did not write the flush mark"):
        capture.flush(netns, pcap, timeout=1)
