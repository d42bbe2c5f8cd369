# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""BIRD on a host as one step: files, validation, the service (systemd or a supervisor), reconfiguration.

Plain Python (no Ansible import): the module ``l3.calico.bird`` is its thin adapter. It follows
*read -> plan -> apply unless check mode*: the directories, the passwords file, the supervisor
script or the systemd unit, and ``bird.conf`` are compared with what they should be; a changed
``bird.conf`` or passwords file is validated by BIRD itself (``bird -p -c`` on temporary copies of
both) before either is written; BIRD is started only when it does not run (its supervisor, or its
unit not active; a changed unit restarts it), and reconfigured (``birdc configure``) while the files
differ from what it last loaded successfully (recorded in the applied-state file); asked to, a BIRD
that was already running re-exports its routes to named protocols (``birdc reload out``: the kernel,
once the tunnel devices it routes through changed). ``state=absent`` is the way back: BIRD stopped
(and its unit disabled), its files removed. A no-op costs a few ``stat`` calls, one ``systemctl
show`` under systemd and one ``birdc show status``.

Commands run through ``run(argv) -> (rc, stdout, stderr)``, an ``iproute.Runner`` (the module's is
``iproute.module_runner``: ``AnsibleModule.run_command``).
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import re
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass, field

from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.fileutil import atomic_write
from ansible_collections.l3.calico.plugins.module_utils.iproute import Runner

# systemd's unit name characters (systemd.unit(5)), without the type suffix the module adds.
SERVICE_NAME_RE = re.compile(r"[A-Za-z0-9:_.-]+(@[A-Za-z0-9:_.-]*)?")
# A BIRD protocol name (a BIRD symbol), as `birdc reload out` takes it.
PROTOCOL_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What default_unit writes into the unit's command lines: a user or group name as Debian's adduser allows
# it, and absolute paths and arguments without spaces, quotes or shell characters.
UNIT_NAME_RE = re.compile(r"[a-z_][a-z0-9_-]*\$?")
UNIT_PATH_RE = re.compile(r"/[A-Za-z0-9._/+@:=-]*")
UNIT_ARG_RE = re.compile(r"[A-Za-z0-9._/+@:=-]+")
UNIT_DIR = "/etc/systemd/system"


class BirdServiceError(L3CalicoError):
    """A problem that stops the run before (or while) anything changes; the message says what, ``details``
    (rc, stdout, stderr of a refusal) go into the failed result."""


def uid_of(user: str) -> int:
    if not user:
        return -1
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise BirdServiceError(f"user: no user {user!r} on this host (the bird2 package creates 'bird')") from None


def gid_of(group: str) -> int:
    if not group:
        return -1
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise BirdServiceError(f"group: no group {group!r} on this host (the bird2 package creates 'bird')") from None


@dataclass
class FileSpec:
    """What a path should be: a directory, a file with content, or absent (content None, not dir).

    A directory gets its mode and owner only when this module creates it: an existing one is never
    changed (``calico_bgp_config_file: /etc/bird.conf`` must not make ``/etc`` 0750 root:bird, nor
    ``calico_bgp_pid_file: /run/bird.pid`` make ``/run`` bird's).
    """

    path: str
    mode: int
    uid: int = -1  # -1: leave as is (a new path gets the running user's)
    gid: int = -1
    content: bytes | None = None
    directory: bool = False
    absent: bool = False
    sensitive: bool = False  # never shown in a diff
    # planned
    before: bytes | None = None
    exists: bool = False
    write: bool = False  # create or replace
    attrs: bool = False  # mode/owner only
    remove: bool = False

    @property
    def changed(self) -> bool:
        return self.write or self.attrs or self.remove


def plan_path(spec: FileSpec) -> FileSpec:
    try:
        # a directory may be reached through a link (/var/run -> /run); a file is never followed
        st = os.stat(spec.path) if spec.directory else os.lstat(spec.path)
    except FileNotFoundError:
        st = None
    spec.exists = st is not None
    if spec.absent:
        spec.remove = st is not None
        return spec
    if st is not None and spec.directory != stat.S_ISDIR(st.st_mode):
        kind = "a directory" if spec.directory else "a file"
        raise BirdServiceError(f"{spec.path}: expected {kind}, found something else; not replacing it")
    if st is None:
        spec.write = True
        return spec
    if spec.directory:
        return spec  # it exists: not ours to change (see FileSpec)
    with open(spec.path, "rb") as fh:
        spec.before = fh.read()
    spec.write = spec.before != spec.content
    spec.attrs = not spec.write and (
        stat.S_IMODE(st.st_mode) != spec.mode or (spec.uid != -1 and st.st_uid != spec.uid) or (spec.gid != -1 and st.st_gid != spec.gid)
    )
    return spec


def describe(spec: FileSpec) -> str | None:
    if spec.remove:
        return f"{spec.path} removed"
    if spec.write:
        return f"{spec.path} {'updated' if spec.exists else 'created'}"
    if spec.attrs:
        return f"{spec.path} mode/owner fixed"
    return None


def apply_path(spec: FileSpec) -> None:
    if spec.remove:
        try:
            os.unlink(spec.path)
        except FileNotFoundError:  # gone meanwhile (BIRD removes its pid file as it stops)
            pass
    elif spec.directory:
        if spec.write:  # only a directory this run creates gets our mode and owner
            parent = os.path.dirname(spec.path)
            if parent:
                os.makedirs(parent, exist_ok=True)  # missing parents: the system's defaults
            try:
                os.mkdir(spec.path, spec.mode)
            except FileExistsError:
                return  # created meanwhile by someone else: not ours either
            os.chown(spec.path, spec.uid, spec.gid)
            os.chmod(spec.path, spec.mode)
    elif spec.write:
        atomic_write(spec.path, spec.content or b"", spec.mode, spec.uid, spec.gid)
    elif spec.attrs:
        os.chown(spec.path, spec.uid, spec.gid)
        os.chmod(spec.path, spec.mode)


def validate(run: Runner, bird: str, config: bytes, directory: str | None, secrets_file: str | None = None, secrets: bytes | None = None) -> None:
    """``bird -p -c`` on temporary copies of the NEW bird.conf and passwords file, together.

    The copy of bird.conf lives in ``directory`` (the config's own, so relative includes resolve as
    they will; the temp dir when None) and includes a copy of the new passwords, in a private
    temporary directory, instead of the real ``secrets_file``: nothing real is read or written.
    ``secrets`` None: the passwords file will be absent (an include of it must fail).
    """
    tmp_dir = tempfile.mkdtemp(dir=directory, prefix=".bird.validate.")  # mode 0700
    try:
        config_copy = config
        if secrets_file:
            secrets_copy = os.path.join(tmp_dir, os.path.basename(secrets_file))
            if secrets is not None:
                with open(secrets_copy, "wb") as fh:
                    fh.write(secrets)
            config_copy = config.replace(f'"{secrets_file}"'.encode(), f'"{secrets_copy}"'.encode())
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".bird.conf.validate.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(config_copy)
            rc, out, err = run([bird, "-p", "-c", tmp])
        finally:
            os.unlink(tmp)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    if rc != 0:
        text = (err or out).strip().replace(tmp, "<new bird.conf>")
        if secrets_file:
            text = text.replace(secrets_copy, f"<new {os.path.basename(secrets_file)}>")
        raise BirdServiceError(
            f"BIRD refused the new configuration (bird -p -c, rc {rc}): {text}; nothing was written, the running configuration is unchanged",
            rc=rc,
            stdout=out,
            stderr=err,
        )


def supervisor_running(pid_file: str) -> bool:
    """As `calico-bird-service status`: the pid file names a live supervisor process."""
    try:
        with open(pid_file, encoding="ascii") as fh:
            pid = int(fh.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read().replace(b"\0", b" ")
    except (OSError, ValueError):
        return False
    return b"calico-bird-service run" in cmdline


def answers(run: Runner, birdc: str, socket: str) -> bool:
    return run([birdc, "-s", socket, "show", "status"])[0] == 0


def wait_answers(run: Runner, birdc: str, socket: str, timeout: float, sleep=time.sleep) -> None:
    deadline = time.monotonic() + timeout
    while not answers(run, birdc, socket):
        if time.monotonic() >= deadline:
            raise BirdServiceError(f"BIRD did not answer on its control socket {socket} within {timeout:g} s")
        sleep(0.2)


def reload_out(run: Runner, birdc: str, socket: str, protocol: str) -> str:
    """BIRD runs the export filter of ``protocol`` again over its table (no session restarts)."""
    rc, out, err = run([birdc, "-s", socket, "reload", "out", protocol])
    if rc != 0 or "reloading" not in out:
        raise BirdServiceError(f"birdc reload out {protocol} failed (rc {rc}): {(out + err).strip()}", rc=rc, stdout=out, stderr=err)
    return out.strip()


def reconfigure(run: Runner, birdc: str, socket: str) -> str:
    rc, out, err = run([birdc, "-s", socket, "configure"])
    if rc != 0 or ("Reconfigured" not in out and "Reconfiguration in progress" not in out):
        raise BirdServiceError(f"birdc configure failed (rc {rc}): {(out + err).strip()}", rc=rc, stdout=out, stderr=err)
    return out.strip()


@dataclass(frozen=True)
class UnitState:
    """What systemd says of BIRD's unit (``systemctl show``)."""

    active: str  # ActiveState: active, inactive, failed, activating, ...
    enabled: str  # UnitFileState: enabled, disabled, "" (no such unit), ...
    needs_reload: bool  # NeedDaemonReload: the unit file changed since systemd read it


def default_unit(p: dict) -> str:
    """BIRD's systemd unit from the module's options (the one the role installs; ``unit`` replaces it).
    Written on the host, not templated per host on the controller (a template lookup there copies every
    variable of the host - the whole fleet's IPAM result - once per host). Only a directory the unit
    creates gets BIRD's mode and owner (``/run`` itself, for ``/run/bird.pid``, stays as it is)."""
    for option in ("user", "group"):
        if p[option] and not UNIT_NAME_RE.fullmatch(p[option]):
            raise BirdServiceError(f"{option}: {p[option]!r} is not a user or group name (letters, digits, _ and -)")
    for option in ("control_socket", "pid_file", "bird", "birdc", "config_file"):
        if not UNIT_PATH_RE.fullmatch(p[option]):
            raise BirdServiceError(f"{option}: {p[option]!r} is not an absolute path without spaces or shell characters")
    for index, arg in enumerate(p["bird_argv"]):
        if not UNIT_ARG_RE.fullmatch(arg):
            raise BirdServiceError(f"bird_argv[{index}]: {arg!r} has spaces or shell characters")
    owner = (f" -o {p['user']}" if p["user"] else "") + (f" -g {p['group']}" if p["group"] else "")
    dirs = list(dict.fromkeys(os.path.dirname(path) for path in (p["control_socket"], p["pid_file"])))
    lines = [
        "# Written by the role l3.calico.calico_bgp (module l3.calico.bird); a change here is replaced on its next run.",
        "[Unit]",
        "Description=BIRD routing daemon (l3.calico)",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        *(f'ExecStartPre=/bin/sh -c \'test -d "$$1" || exec /usr/bin/install -d{owner} -m 0750 "$$1"\' calico-bird-dir "{d}"' for d in dirs),
        f"ExecStartPre={p['bird']} -p -c {p['config_file']}",
        f"ExecStart={' '.join(p['bird_argv'])}",
        f"ExecReload={p['birdc']} -s {p['control_socket']} configure",
        "Restart=on-failure",
        "RestartSec=1",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def unit_file(p: dict) -> str:
    return os.path.join(UNIT_DIR, f"{p['service_name']}.service")


def unit_state(run: Runner, systemctl: str, service: str) -> UnitState:
    rc, out, err = run([systemctl, "show", "--property=ActiveState,UnitFileState,NeedDaemonReload", "--", f"{service}.service"])
    if rc != 0:
        raise BirdServiceError(f"systemctl show {service}.service failed (rc {rc}): {(err or out).strip()}", rc=rc, stdout=out, stderr=err)
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return UnitState(props.get("ActiveState", ""), props.get("UnitFileState", ""), props.get("NeedDaemonReload", "no") == "yes")


def systemctl(run: Runner, p: dict, *args: str) -> str:
    argv = [p["systemctl"], *args, "--", f"{p['service_name']}.service"] if args[0] != "daemon-reload" else [p["systemctl"], "daemon-reload"]
    rc, out, err = run(argv)
    if rc != 0:
        raise BirdServiceError(f"{' '.join(argv)} failed (rc {rc}): {(err or out).strip()}", rc=rc, stdout=out, stderr=err)
    return (out + err).strip()


@dataclass
class Plan:
    manager: str
    files: list = field(default_factory=list)  # FileSpec, in apply order
    config: FileSpec | None = None
    running: bool = False  # BIRD's supervisor runs (supervisor) / its unit is active and stays so (systemd)
    start: bool = False
    reconfigure: bool = False
    secrets: FileSpec | None = None
    applied: str = ""  # the record of bird.conf + passwords as they are after this run (sha256sum format)
    recorded: str | None = None  # the applied-state file as read (None: absent)
    state: str = "present"
    unit: FileSpec | None = None  # systemd: BIRD's unit file
    daemon_reload: bool = False
    enable: bool = False
    restart: bool = False  # systemd: the unit changed while BIRD runs
    stop: bool = False  # absent: BIRD (its supervisor, its unit) stopped
    disable: bool = False
    reload_out: list = field(default_factory=list)  # protocols whose exports a running BIRD re-runs

    @property
    def files_change(self) -> bool:
        """A file BIRD reads changes: the new pair is validated together before either is written."""
        return self.state == "present" and (self.config.write or self.secrets.write or self.secrets.remove)

    @property
    def record_stale(self) -> bool:
        return self.state == "present" and self.applied != self.recorded

    @property
    def changes(self) -> list[str]:
        found = [] if self.state == "present" else [f for f, on in (("BIRD stopped", self.stop), ("BIRD's unit disabled", self.disable)) if on]
        found += [d for d in map(describe, self.files) if d]
        if self.daemon_reload:
            found.append("systemd reloaded (systemctl daemon-reload)")
        if self.enable:
            found.append("BIRD's unit enabled")
        if self.start:
            found.append("BIRD started " + ("under its supervisor" if self.manager == "supervisor" else "(systemd)"))
        if self.restart:
            found.append("BIRD restarted (its unit changed)")
        if self.reconfigure:
            found.append("BIRD reconfigured (birdc configure)")
        found += [f"BIRD re-exported its routes to {name} (birdc reload out)" for name in self.reload_out]
        return found

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def choose_manager(manager: str) -> str:
    if manager == "auto":
        return "systemd" if os.path.isdir("/run/systemd/system") else "supervisor"
    return manager


def applied_file(p: dict) -> str:
    """Where the record of the configuration BIRD last loaded lives (default: beside the pid file)."""
    return p.get("applied_file") or os.path.join(os.path.dirname(p["pid_file"]), "bird-applied.sha256")


def applied_record(config: bytes, secrets: bytes | None, p: dict) -> str:
    """``sha256sum`` lines of bird.conf and the passwords file (no line when there is none)."""
    lines = [f"{hashlib.sha256(config).hexdigest()}  {p['config_file']}\n"]
    if secrets is not None:
        lines.append(f"{hashlib.sha256(secrets).hexdigest()}  {p['secrets_file']}\n")
    return "".join(lines)


def read_record(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read()
    except (OSError, ValueError):
        return None


def check(p: dict) -> None:
    """The parameters the module's argument spec cannot check, before anything is read."""
    name = p["service_name"] or ""
    if not SERVICE_NAME_RE.fullmatch(name) or name.endswith(".service"):
        raise BirdServiceError(
            f"service_name: {p['service_name']!r} is not a systemd unit name (letters, digits, ':', '_', '.', '-', one '@'; without '.service')"
        )
    if p["state"] == "present" and p["config"] is None:
        raise BirdServiceError("config: the content of bird.conf is required with state=present")
    for name in p.get("reload_out") or []:
        if not PROTOCOL_NAME_RE.fullmatch(name):
            raise BirdServiceError(f"reload_out: {name!r} is not a BIRD protocol name (a letter or '_', then letters, digits, '_')")


def plan(p: dict, run: Runner) -> Plan:
    """p: the module's parameters. Reads only."""
    check(p)
    manager = choose_manager(p["manager"])
    if p["state"] == "absent":
        return plan_absent(p, run, manager)
    gid = gid_of(p["group"])
    uid = uid_of(p["user"])
    the_plan = Plan(manager=manager)
    conf_dir = os.path.dirname(p["config_file"])
    the_plan.files.append(plan_path(FileSpec(conf_dir, 0o750, 0, gid, directory=True)))
    run_dirs = []
    for path in (p["control_socket"], p["pid_file"], p["supervisor_pid_file"], applied_file(p)):
        d = os.path.dirname(path)
        if d not in run_dirs:
            run_dirs.append(d)
    for d in run_dirs:
        if d != conf_dir:
            the_plan.files.append(plan_path(FileSpec(d, 0o750, uid, gid, directory=True)))
    if p["secrets"] is None:
        secrets = FileSpec(p["secrets_file"], 0o640, absent=True)
    else:
        secrets = FileSpec(p["secrets_file"], 0o640, 0, gid, content=p["secrets"].encode(), sensitive=True)
    the_plan.secrets = plan_path(secrets)
    the_plan.files.append(the_plan.secrets)
    if manager == "supervisor":
        if not p["supervisor_script"]:
            raise BirdServiceError("supervisor_script: the supervisor's content is required with manager=supervisor")
        the_plan.files.append(plan_path(FileSpec(p["supervisor"], 0o755, 0, 0, content=p["supervisor_script"].encode())))
    else:
        unit = p["unit"] if p.get("unit") else default_unit(p)
        the_plan.unit = plan_path(FileSpec(unit_file(p), 0o644, 0, 0, content=unit.encode()))
        the_plan.files.append(the_plan.unit)
    the_plan.config = plan_path(FileSpec(p["config_file"], 0o640, 0, gid, content=p["config"].encode()))
    the_plan.files.append(the_plan.config)
    if manager == "supervisor":
        the_plan.running = supervisor_running(p["supervisor_pid_file"])
        the_plan.start = not the_plan.running
    else:
        unit = unit_state(run, p["systemctl"], p["service_name"])
        active = unit.active == "active"
        the_plan.daemon_reload = the_plan.unit.write or unit.needs_reload
        the_plan.enable = unit.enabled != "enabled"
        the_plan.start = not active
        # a unit that changed under a running BIRD takes effect by a restart (which reads the new files)
        the_plan.restart = active and the_plan.unit.write
        the_plan.running = active and not the_plan.restart
    # From state, not from this run's writes: BIRD is reconfigured while the files differ from what
    # it last loaded successfully (a run that wrote them but failed or stopped before `configure`
    # is caught up by the next one; so is a missing record while BIRD runs).
    the_plan.applied = applied_record(the_plan.config.content or b"", secrets.content, p)
    the_plan.recorded = read_record(applied_file(p))
    the_plan.reconfigure = the_plan.running and (the_plan.files_change or the_plan.record_stale)
    # A BIRD started (or restarted) now exports to the devices as they are; one that ran before may
    # have met a device missing (the kernel refuses a route through it, and BIRD does not retry).
    if the_plan.running:
        the_plan.reload_out = list(p.get("reload_out") or [])
    return the_plan


def plan_absent(p: dict, run: Runner, manager: str) -> Plan:
    """BIRD stopped (its unit disabled), bird.conf, the passwords, the record and the unit (or BIRD's
    pid file) removed. The run directories and the supervisor script stay (they hold nothing)."""
    the_plan = Plan(manager=manager, state="absent")
    if manager == "supervisor":
        the_plan.stop = supervisor_running(p["supervisor_pid_file"])
        last = p["pid_file"]
    else:
        unit = unit_state(run, p["systemctl"], p["service_name"])
        the_plan.stop = unit.active not in ("inactive", "failed", "")
        the_plan.disable = unit.enabled in ("enabled", "enabled-runtime", "linked", "linked-runtime")
        last = unit_file(p)
    paths = (p["config_file"], p["secrets_file"], applied_file(p), last)
    the_plan.files = [plan_path(FileSpec(path, 0o644, absent=True)) for path in paths]
    the_plan.config, the_plan.secrets = the_plan.files[0], the_plan.files[1]
    if the_plan.config.remove and os.path.isfile(the_plan.config.path):  # for the diff
        with open(the_plan.config.path, "rb") as fh:
            the_plan.config.before = fh.read()
    if manager == "systemd":
        the_plan.unit = the_plan.files[-1]
        the_plan.daemon_reload = the_plan.unit.remove
    return the_plan


def apply(the_plan: Plan, p: dict, run: Runner) -> dict:
    """Make it so; returns what BIRD said. bird.conf and the passwords are validated together, before
    anything is written; the record of what BIRD loaded is written once BIRD has it (or, BIRD not
    running, will read it at its start)."""
    if the_plan.state == "absent":
        return apply_absent(the_plan, p, run)
    said = {}
    if the_plan.files_change:
        conf_dir = os.path.dirname(p["config_file"])
        secrets = the_plan.secrets
        validate(
            run,
            p["bird"],
            the_plan.config.content or b"",
            conf_dir if os.path.isdir(conf_dir) else None,
            secrets_file=secrets.path,
            secrets=None if secrets.absent else secrets.content,
        )
    for spec in the_plan.files:
        if spec.changed:
            apply_path(spec)
    if the_plan.manager == "supervisor":
        if the_plan.start:
            rc, out, err = run([p["supervisor"], "start", p["supervisor_pid_file"], "--"] + list(p["bird_argv"]))
            if rc != 0:
                raise BirdServiceError(f"{p['supervisor']} start failed (rc {rc}): {(out + err).strip()}", rc=rc, stdout=out, stderr=err)
            said["start"] = out.strip()
    else:
        if the_plan.daemon_reload:
            systemctl(run, p, "daemon-reload")
        if the_plan.enable:
            said["enable"] = systemctl(run, p, "enable")
        if the_plan.start or the_plan.restart:
            said["start"] = systemctl(run, p, "restart" if the_plan.restart else "start")
    wait_answers(run, p["birdc"], p["control_socket"], p["socket_timeout"])
    if the_plan.reconfigure:
        said["configure"] = reconfigure(run, p["birdc"], p["control_socket"])
    for name in the_plan.reload_out:
        said[f"reload out {name}"] = reload_out(run, p["birdc"], p["control_socket"], name)
    if the_plan.record_stale:
        atomic_write(applied_file(p), the_plan.applied.encode("ascii"), 0o644, -1, -1)
    return said


def apply_absent(the_plan: Plan, p: dict, run: Runner) -> dict:
    said = {}
    if the_plan.manager == "supervisor":
        if the_plan.stop:
            rc, out, err = run([p["supervisor"], "stop", p["supervisor_pid_file"]])
            if rc != 0:
                raise BirdServiceError(f"{p['supervisor']} stop failed (rc {rc}): {(out + err).strip()}", rc=rc, stdout=out, stderr=err)
    elif the_plan.stop or the_plan.disable:
        said["stop"] = systemctl(run, p, "disable", "--now") if the_plan.disable else systemctl(run, p, "stop")
    for spec in the_plan.files:
        if spec.changed:
            apply_path(spec)
    if the_plan.daemon_reload:
        systemctl(run, p, "daemon-reload")
    return said
