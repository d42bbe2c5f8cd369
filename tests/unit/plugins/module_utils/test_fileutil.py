# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""fileutil.atomic_write: content, mode, owner, the old file kept on failure, both fsyncs in order."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from ansible_collections.l3.calico.plugins.module_utils import fileutil


def test_writes_str_as_utf8_and_bytes_as_they_are(tmp_path):
    path = str(tmp_path / "f")
    fileutil.atomic_write(path, "h\u00e9llo\n")
    assert open(path, "rb").read() == "h\u00e9llo\n".encode("utf-8")
    fileutil.atomic_write(path, b"\x00\xffraw")
    assert open(path, "rb").read() == b"\x00\xffraw"
    assert os.listdir(tmp_path) == ["f"]


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o755, 0o640])
def test_mode_is_exactly_the_one_asked_whatever_the_umask(tmp_path, mode):
    path = str(tmp_path / "f")
    old = os.umask(0o077)
    try:
        fileutil.atomic_write(path, "x", mode)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode


def test_default_mode_is_0644_and_owner_the_process(tmp_path):
    path = str(tmp_path / "f")
    fileutil.atomic_write(path, "x")
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o644
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())


def test_owner_is_set_before_the_file_appears(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    path = str(tmp_path / "f")
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        st = os.stat(src)
        seen.append((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    fileutil.atomic_write(path, "secret", 0o640, 4242, 4343)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4242, 4343, 0o640)
    assert seen == [(4242, 4343, 0o640)]  # the temporary file already had them when it was renamed


def test_a_new_file_replaces_the_old_one_whole_and_keeps_no_temporary(tmp_path):
    path = str(tmp_path / "f")
    fileutil.atomic_write(path, "old\n" * 1000)
    fileutil.atomic_write(path, "new\n")
    assert open(path).read() == "new\n"
    assert os.listdir(tmp_path) == ["f"]


class TornWrite:
    """A file object whose write puts the first bytes on disk, then fails (a full disk, an interrupt)."""

    def __init__(self, real, error):
        self.real, self.error = real, error

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()

    def fileno(self):
        return self.real.fileno()

    def flush(self):
        self.real.flush()

    def write(self, data):
        self.real.write(data[:7])
        self.real.flush()
        raise self.error


@pytest.mark.parametrize("failing", ["write", "interrupt", "fsync", "replace"])
def test_a_write_that_fails_midway_leaves_the_old_file_intact_and_no_temporary(tmp_path, monkeypatch, failing):
    path = str(tmp_path / "f")
    fileutil.atomic_write(path, "old\n", 0o600)
    error = KeyboardInterrupt() if failing == "interrupt" else OSError(errno.ENOSPC, "simulated")
    if failing in ("write", "interrupt"):
        real_fdopen = os.fdopen
        monkeypatch.setattr(os, "fdopen", lambda *a, **kw: TornWrite(real_fdopen(*a, **kw), error))
    else:

        def fail(*args):
            raise error

        monkeypatch.setattr(os, failing, fail)
    with pytest.raises(type(error)):
        fileutil.atomic_write(path, "new content that never lands\n" * 100, 0o644)
    monkeypatch.undo()
    assert open(path).read() == "old\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(tmp_path) == ["f"]


def test_file_fsynced_before_the_rename_and_the_directory_after_it(tmp_path, monkeypatch):
    path = str(tmp_path / "f")
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        events.append(("fsync directory", st.st_ino) if stat.S_ISDIR(st.st_mode) else ("fsync file", os.pread(fd, 100, 0)))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.dirname(src) == os.path.dirname(dst) == str(tmp_path)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    fileutil.atomic_write(path, b"content")
    assert events == [("fsync file", b"content"), ("replace", True), ("fsync directory", os.stat(tmp_path).st_ino)]


def test_make_parents_creates_missing_directories_only_when_asked(tmp_path):
    path = str(tmp_path / "a" / "b" / "f")
    with pytest.raises(FileNotFoundError):
        fileutil.atomic_write(path, "x")
    fileutil.atomic_write(path, "x", make_parents=True)
    assert open(path).read() == "x"


def test_stale_temporaries_of_a_killed_writer_are_removed_and_nothing_else(tmp_path):
    path = str(tmp_path / "s.json")
    fileutil.atomic_write(path, "{}")
    stale = tmp_path / (fileutil.temporary_prefix(path) + "abc123" + fileutil.TEMPORARY_SUFFIX)
    stale.write_text("half")
    for other in (".s.json.lock", "s.json.lock", ".other.json.x.tmp", ".s.jsonx.tmp"):
        (tmp_path / other).write_text("")
    fileutil.remove_stale_temporaries(path)
    assert sorted(os.listdir(tmp_path)) == [".other.json.x.tmp", ".s.json.lock", ".s.jsonx.tmp", "s.json", "s.json.lock"]
