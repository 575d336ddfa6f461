"""Start a child process confined as far as this machine allows: no secret, no network, no files but its own.

`start(argv, workspace, limits)` runs `argv` (run Python as `python -I`, so that nothing from the working
directory or PYTHON* variables is imported) with:

- an environment reduced to PATH and the locale (LANG, LC_*): HOME is a fresh scratch folder (no saved Hub token or
  credentials file to find there) and TMPDIR a folder inside it; no token or any other variable of the parent;
- the workspace as working directory;
- resource limits: CPU seconds, address space, size of a written file, processes, no core dumps;
- a session and process group of its own, so that `Confined.kill()` ends everything it started;
- the lowest CPU priority (`yield_cpu`), so that a burst of children never starves the app serving pages;
- a network namespace of its own (no interface up, so nothing to reach) where the kernel allows one: directly
  as root, else inside a new user namespace. `Confined.network_isolated` says whether it held;
- Landlock where the kernel has it (Linux >= 5.13): reads only from the Python installation, system
  libraries and the files named in `readable`, writes only in the workspace and the scratch folder, no
  access to /proc (so not to another process's environment), no ptrace of processes outside; from
  Landlock ABI 4 no TCP connect or bind, from ABI 6 no signals or abstract unix sockets outside.
  `Confined.filesystem_restricted` says whether it held;
- no capabilities: a child of a root parent keeps uid 0 but loses every capability before it starts.

What held is found out on the first start (a refused step makes that start fail and the next attempt
leaves it out) and remembered for the life of this process.
"""

from __future__ import annotations

import ctypes
import os
import re
import resource
import select
import shutil
import signal
import site
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools.settings import Settings

LINUX = sys.platform.startswith("linux")  # elsewhere only the environment, working directory and limits apply
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_NO_NEW_PRIVS = 38
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
SYS_CAPSET = 126 if os.uname().machine == "x86_64" else 91
LANDLOCK_RULE_PATH_BENEATH = 1
# Landlock access rights (linux/landlock.h): filesystem, per ABI version.
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_TRUNCATE, FS_IOCTL_DEV = 1 << 14, 1 << 15
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
READ_RIGHTS = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
NET_BIND_TCP_AND_CONNECT_TCP = 0b11
SCOPE_ABSTRACT_UNIX_SOCKET_AND_SIGNAL = 0b11
# Always readable: system libraries and the files the dynamic loader and the stdlib read.
SYSTEM_READABLE = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/etc/ld.so.cache", "/etc/localtime",
                   "/etc/mime.types", "/dev/urandom")
KEPT_ENV = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_COLLATE", "LC_MESSAGES", "LC_NUMERIC", "LC_TIME",
            "LC_MONETARY")

# A credential's name, and the LLM endpoints: what `credential_free_env` leaves out.
CREDENTIAL_NAME = re.compile(r"(^|_)(TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIALS?|AUTH)(_|$)|OAUTH|^ANTHROPIC_|"
                             r"^OPENAI_|_OPENAI_", re.I)
BACKGROUND_NICE = 19  # what children run at: the app that serves pages comes first
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
# Steps that may be refused (then left out, and reported by Confined's flags), learnt on the first start.
OPTIONAL_STEPS = ("netns", "userns", "landlock")
_refused: set[str] = set() if LINUX else set(OPTIONAL_STEPS)


@dataclass(frozen=True)
class Limits:
    """What one confined child may use: CPU seconds over its life, address space, the size of any file
    it writes, and the number of processes (and threads) its user may have."""

    cpu_s: int = 300
    memory_mb: int = 2048
    file_mb: int = 64
    processes: int = 32

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(cpu_s=settings.sandbox_cpu_s, memory_mb=settings.sandbox_memory_mb,
                   file_mb=settings.sandbox_file_mb, processes=settings.sandbox_processes)

    def rlimits(self) -> list[tuple[int, tuple[int, int]]]:
        """(resource, (soft, hard)) pairs; CPU gets SIGXCPU at the limit and SIGKILL 5 s later."""
        wanted = [(resource.RLIMIT_CPU, self.cpu_s, self.cpu_s + 5),
                  (resource.RLIMIT_AS, self.memory_mb << 20, self.memory_mb << 20),
                  (resource.RLIMIT_FSIZE, self.file_mb << 20, self.file_mb << 20),
                  (resource.RLIMIT_NPROC, self.processes, self.processes),
                  (resource.RLIMIT_CORE, 0, 0)]
        pairs = []
        for which, soft, hard in wanted:
            current = resource.getrlimit(which)[1]
            cap = hard if current == resource.RLIM_INFINITY else min(hard, current)
            pairs.append((which, (min(soft, cap), cap)))
        return pairs


@dataclass
class Confined:
    """A started confined child: its process, its scratch folder (HOME), and what confinement held."""

    process: subprocess.Popen
    scratch: Path
    network_isolated: bool
    filesystem_restricted: bool

    def kill(self) -> None:
        """End the child and everything in its process group; remove its scratch folder."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)


def child_env(scratch: Path) -> dict[str, str]:
    """The whole environment of a confined child: PATH, the locale, a scratch HOME and TMPDIR inside it."""
    env = {k: v for k, v in os.environ.items() if k in KEPT_ENV}
    tmp = scratch / "tmp"
    tmp.mkdir(exist_ok=True)
    # python-dotenv (imported by smolagents) would otherwise load a .env file found above its install.
    return env | {"HOME": str(scratch), "TMPDIR": str(tmp), "PYTHON_DOTENV_DISABLED": "1"}


def credential_free_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without a credential or an LLM endpoint, plus `extra`: what our own jobs, smoke
    runs and evaluations run with (their scripts run untrusted code and read untrusted data). On a Space the
    environment holds the owner's secrets; a child that needs the user's token is handed it in `extra`."""
    return {k: v for k, v in os.environ.items() if not CREDENTIAL_NAME.search(k)} | (extra or {})


def python_readable() -> list[str]:
    """The folders of this Python installation: interpreter, stdlib and site-packages (venv included)."""
    folders = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
               os.path.dirname(os.path.realpath(sys.executable)), *site.getsitepackages()}
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        folders.add(site.getusersitepackages())
    return sorted(folders)


def landlock_abi() -> int:
    """The Landlock ABI version this kernel offers; 0 when it has none."""
    if not LINUX:
        return 0
    abi = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(abi, 0)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _landlock_ruleset(abi: int, readable: list[str], writable: list[str]) -> int:
    """A Landlock ruleset fd (close-on-exec): `readable` may be read and executed, `writable` fully used,
    everything else on the filesystem (and TCP, signals and abstract unix sockets outside) refused."""
    all_fs = (1 << 13) - 1 | (1 << 13 if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0) \
        | (FS_IOCTL_DEV if abi >= 5 else 0)
    attr = _RulesetAttr(all_fs, NET_BIND_TCP_AND_CONNECT_TCP if abi >= 4 else 0,
                        SCOPE_ABSTRACT_UNIX_SOCKET_AND_SIGNAL if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    rules = [(path, READ_RIGHTS) for path in readable] + [(path, all_fs) for path in writable]
    for path, rights in rules:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue  # not on this machine
        rights &= all_fs if os.path.isdir(path) else FILE_RIGHTS
        try:
            rule = _PathBeneathAttr(rights, fd)
            if _libc.syscall(SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                             ctypes.byref(rule), ctypes.c_uint32(0)) < 0:
                os.close(ruleset)
                raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
        finally:
            os.close(fd)
    return ruleset


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


_NO_CAPS = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable for both 32-bit halves: all zero
_CAP_HEADER = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3


def yield_cpu(nice: int = BACKGROUND_NICE) -> None:
    """Lower this process's CPU priority to `nice`, and, when it leads a session of its own, that session's: with
    Linux autogroup (on by default) each session shares the CPU as a whole whatever its processes' nice, so twenty
    new sessions would get twenty shares and the app one. Safe between fork and exec (`preexec_fn`)."""
    if os.getpriority(os.PRIO_PROCESS, 0) < nice:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    if os.getsid(0) != os.getpid():  # in its parent's session: that autogroup is the app's own
        return
    try:
        with open("/proc/self/autogroup", "w") as autogroup:
            autogroup.write(str(nice))
    except OSError:  # no autogroup here (other kernels, or it is off)
        pass


def _preexec(rlimits, net: str, ruleset: int | None, uid: int, gid: int, report: int):
    """What the child does between fork and exec. A refused step writes its name to `report` and raises,
    which makes this start fail (see `start`)."""
    def refused(step: str, call: str) -> OSError:
        os.write(report, step.encode())
        return OSError(ctypes.get_errno(), call)

    def confine() -> None:
        yield_cpu()
        for which, pair in rlimits:
            resource.setrlimit(which, pair)
        if net == "netns" and _libc.unshare(CLONE_NEWNET) != 0:
            raise refused("netns", "unshare(CLONE_NEWNET)")
        if net == "userns":
            if _libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
                raise refused("userns", "unshare(CLONE_NEWUSER|CLONE_NEWNET)")
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
                fd = os.open(f"/proc/self/{name}", os.O_WRONLY)
                os.write(fd, text.encode())
                os.close(fd)
        if not LINUX:
            return
        if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise refused("no_new_privs", "prctl(PR_SET_NO_NEW_PRIVS)")
        if _libc.syscall(SYS_CAPSET, ctypes.byref(_CAP_HEADER), ctypes.byref(_NO_CAPS)) != 0:
            raise refused("capset", "capset")
        if ruleset is not None and _libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset),
                                                 ctypes.c_uint32(0)) != 0:
            raise refused("landlock", "landlock_restrict_self")
    return confine


def start(argv: list[str], workspace: Path, limits: Limits = Limits(), readable: tuple[str, ...] = (),
          pass_fds: tuple[int, ...] = (), stdin=None, stdout=None, stderr=None) -> Confined:
    """Start `argv` confined (see the module docstring), with `workspace` as its working directory and
    the files in `readable` readable besides the Python installation and system libraries."""
    workspace = Path(workspace).resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="ml-intern-sandbox-")).resolve()
    env = child_env(scratch)
    readable_paths = [*python_readable(), *SYSTEM_READABLE, *readable]
    while True:  # each failed attempt leaves out one more optional step
        net = next((step for step in ("netns", "userns") if step not in _refused), "none")
        landlock = "landlock" not in _refused and landlock_abi() > 0
        ruleset = _landlock_ruleset(landlock_abi(), readable_paths, [str(workspace), str(scratch), "/dev/null"]) \
            if landlock else None
        report_r, report_w = os.pipe()
        try:
            process = subprocess.Popen(
                argv, cwd=workspace, env=env, start_new_session=True, pass_fds=pass_fds, stdin=stdin, stdout=stdout,
                stderr=stderr, close_fds=True,
                preexec_fn=_preexec(limits.rlimits(), net, ruleset, os.getuid(), os.getgid(), report_w))
        except subprocess.SubprocessError as exc:
            step = os.read(report_r, 64).decode() if select.select([report_r], [], [], 0)[0] else ""
            if step not in OPTIONAL_STEPS:
                shutil.rmtree(scratch, ignore_errors=True)
                raise RuntimeError(f"could not start a confined process for {argv[0]}: "
                                   f"{step or 'a confinement step'} was refused") from exc
            _refused.add(step)  # this machine refuses it: leave it out from now on
            continue
        finally:
            for fd in (report_r, report_w, ruleset):
                if fd is not None:
                    os.close(fd)
        return Confined(process, scratch, network_isolated=net != "none", filesystem_restricted=landlock)


def run(argv: list[str], workspace: Path | None = None, limits: Limits = Limits(), input: str = "",
        timeout_s: float = 10.0) -> subprocess.CompletedProcess:
    """Run `argv` confined to completion, with `input` on stdin; its workspace is a scratch folder unless
    given. Raises subprocess.TimeoutExpired (after killing it) when it runs past `timeout_s`."""
    scratch_workspace = None if workspace else Path(tempfile.mkdtemp(prefix="ml-intern-workspace-"))
    child = start(argv, workspace or scratch_workspace, limits, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE)
    try:
        out, err = child.process.communicate(input.encode(), timeout=timeout_s)
        return subprocess.CompletedProcess(argv, child.process.returncode, out.decode(errors="replace"),
                                           err.decode(errors="replace"))
    finally:
        child.kill()
        if scratch_workspace:
            shutil.rmtree(scratch_workspace, ignore_errors=True)
