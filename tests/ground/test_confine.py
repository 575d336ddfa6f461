"""tools/confine.py: what a confined child can reach when its code runs unrestricted Python (what a complete
escape from smolagents' interpreter would get): no token, no network, no file outside its workspace."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tools import confine
from tools.confine import Limits
from tools.settings import Settings

CANARIES = {"HF_TOKEN": "hf_canaryConfine0123456789", "ANTHROPIC_API_KEY": "sk-ant-canaryConfine",
            "GITHUB_TOKEN": "ghp_canaryConfine", "OPENAI_API_KEY": "sk-canaryConfine", "SOME_OTHER": "other-value"}


def run_python(code: str, workspace: Path, limits: Limits = Limits(), timeout_s: float = 60.0):
    return confine.run([sys.executable, "-I", "-c", code], workspace=workspace, limits=limits, timeout_s=timeout_s)


@pytest.fixture
def canaries(monkeypatch):
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    return CANARIES


def test_environment_is_scrubbed_home_is_scratch_and_cwd_is_the_workspace(tmp_path, canaries):
    workspace = tmp_path / "ws"
    child = confine.start([sys.executable, "-I", "-c", (
        "import json, os, sys; json.dump({'env': dict(os.environ), 'cwd': os.getcwd(), 'sid': os.getsid(0), "
        "'pid': os.getpid()}, sys.stdout)")], workspace, stdout=subprocess.PIPE)
    out, _ = child.process.communicate(timeout=60)
    seen = json.loads(out)
    scratch = child.scratch
    child.kill()

    env = seen["env"]
    assert set(env) <= {"PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "HOME", "TMPDIR", "PYTHON_DOTENV_DISABLED"}
    assert not any(value in json.dumps(env) for value in canaries.values())
    assert env["HOME"] == str(scratch) != os.environ.get("HOME")
    assert Path(env["TMPDIR"]).parent == scratch
    assert seen["cwd"] == str(workspace.resolve())
    assert seen["sid"] == seen["pid"]  # a session (and process group) of its own
    assert not scratch.exists()  # removed with the child


def test_resource_limits_come_from_settings_and_hold(tmp_path):
    limits = Limits.from_settings(Settings(data_dir=tmp_path, sandbox_cpu_s=7, sandbox_memory_mb=1024,
                                           sandbox_file_mb=1, sandbox_processes=16))
    assert limits == Limits(cpu_s=7, memory_mb=1024, file_mb=1, processes=16)
    code = ("import json, resource as r; print(json.dumps({n: r.getrlimit(getattr(r, n)) for n in "
            "('RLIMIT_CPU', 'RLIMIT_AS', 'RLIMIT_FSIZE', 'RLIMIT_NPROC', 'RLIMIT_CORE')}))")
    own = resource.getrlimit(resource.RLIMIT_CPU)
    seen = json.loads(run_python(code, tmp_path / "ws", limits).stdout)
    assert resource.getrlimit(resource.RLIMIT_CPU) == own  # the parent keeps its own
    assert seen["RLIMIT_CPU"] == [7, 12] and seen["RLIMIT_AS"] == [1024 << 20] * 2
    assert seen["RLIMIT_FSIZE"] == [1 << 20] * 2 and seen["RLIMIT_NPROC"] == [16, 16] and seen["RLIMIT_CORE"] == [0, 0]

    big = run_python("open('big.bin', 'wb').write(b'x' * (2 << 20))", tmp_path / "ws", limits)
    assert big.returncode == 1 and "File too large" in big.stderr  # Python ignores SIGXFSZ: the write fails
    spin = run_python("while True:\n    pass", tmp_path / "ws", Limits(cpu_s=1), timeout_s=30)
    assert spin.returncode == -signal.SIGXCPU
    hog = run_python("x = bytearray(2 << 30)", tmp_path / "ws", limits)
    assert hog.returncode == 1 and "MemoryError" in hog.stderr


def test_a_child_past_its_timeout_is_killed_with_its_process_group(tmp_path):
    with pytest.raises(subprocess.TimeoutExpired):
        run_python("import time\ntime.sleep(60)", tmp_path / "ws", timeout_s=1)
    child = confine.start([sys.executable, "-I", "-c", (
        "import subprocess, time\nprint(subprocess.Popen(['sleep', '60']).pid, flush=True)\ntime.sleep(60)")],
        tmp_path / "ws", stdout=subprocess.PIPE)
    grandchild = int(child.process.stdout.readline())
    child.kill()
    status = Path(f"/proc/{grandchild}/status")
    for _ in range(50):  # SIGKILL is delivered asynchronously
        if not status.exists() or "State:\tZ" in status.read_text():  # gone, or a zombie awaiting its reaper
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"process {grandchild}, started by the confined child, outlived it")


def autogroup_nice(pid: int) -> int | None:
    """The nice value of the autogroup `pid` is in (`/autogroup-12 nice 19`), or None without autogroup."""
    try:
        return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def test_a_child_runs_below_the_app_so_a_burst_of_children_cannot_starve_it(tmp_path):
    child = confine.start([sys.executable, "-I", "-c", "import sys; sys.stdin.read()"], tmp_path / "ws",
                          stdin=subprocess.PIPE)
    try:
        assert os.getpriority(os.PRIO_PROCESS, child.process.pid) == confine.BACKGROUND_NICE == 19
        mine = autogroup_nice(os.getpid())
        if mine is not None:  # Linux autogroup: its own session is its own group, which must be niced as well
            assert autogroup_nice(child.process.pid) == 19 != mine
    finally:
        child.kill()


def test_a_child_in_the_apps_own_session_yields_the_cpu_but_leaves_the_apps_autogroup_alone():
    """A local evaluation runs in the app's session: nicing that session's autogroup would nice the app itself."""
    before = autogroup_nice(os.getpid())
    done = subprocess.run([sys.executable, "-c", "import os; print(os.nice(0))"], capture_output=True, text=True,
                          timeout=60, preexec_fn=confine.yield_cpu)
    assert done.stdout.strip() == "19"
    assert autogroup_nice(os.getpid()) == before


def test_jobs_inherit_the_environment_but_no_credential_or_llm_endpoint(monkeypatch):
    owner = {"HF_TOKEN": "hf_owner", "ANTHROPIC_API_KEY": "sk-ant-owner", "GITHUB_TOKEN": "ghp_owner",
             "OPENAI_API_KEY": "sk-owner", "OAUTH_CLIENT_SECRET": "oauth-owner", "ANTHROPIC_BASE_URL": "http://llm",
             "ML_INTERN_OPENAI_BASE_URL": "http://llm2", "AWS_SECRET_ACCESS_KEY": "aws", "HF_TOKEN_PATH": "/t",
             "WANDB_API_KEY": "wandb", "DB_PASSWORD": "pw", "HUGGING_FACE_HUB_TOKEN": "hf_old_name",
             "OAUTH_SCOPES": "openid", "GH_AUTH": "gh"}
    kept = {"HF_ENDPOINT": "http://127.0.0.1:1", "HF_HUB_OFFLINE": "0", "ML_INTERN_DATA_DIR": "/data",
            "TOKENIZERS_PARALLELISM": "false", "KEYBOARD_LAYOUT": "us"}
    for name, value in {**owner, **kept}.items():
        monkeypatch.setenv(name, value)

    env = confine.credential_free_env({"HF_TOKEN": "hf_the_users_own", "MODE": "x"})

    assert not set(owner) - {"HF_TOKEN"} & set(env)
    assert env["HF_TOKEN"] == "hf_the_users_own" and env["MODE"] == "x"
    assert {k: env[k] for k in kept} == kept and env["PATH"] == os.environ["PATH"]


@pytest.fixture
def loopback_server():
    """A TCP server on this host's loopback, counting the connections it accepts."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def serve():
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            accepted.append(connection)

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], accepted
    server.close()


def test_the_network_is_out_of_reach_where_a_namespace_or_landlock_holds(tmp_path, loopback_server):
    port, accepted = loopback_server
    with socket.create_connection(("127.0.0.1", port), timeout=5):  # reachable from here
        pass
    child = confine.start([sys.executable, "-I", "-c", (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=5)\n"
        "    print('connected')\n"
        "except OSError as exc:\n"
        "    print('refused', exc)\n")], tmp_path / "ws", stdout=subprocess.PIPE)
    out, _ = child.process.communicate(timeout=60)
    child.kill()

    refused = out.decode().startswith("refused")
    assert refused == (child.network_isolated or (child.filesystem_restricted and confine.landlock_abi() >= 4))
    assert len(accepted) == (1 if refused else 2)
    if sys.platform.startswith("linux") and os.geteuid() == 0 and _has_cap_sys_admin():
        assert child.network_isolated  # root with CAP_SYS_ADMIN (this machine's containers): the namespace holds


def test_files_outside_the_workspace_and_other_processes_environments_are_out_of_reach(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("hf_canarySecretFile")
    code = f"""
import json, os
seen = {{}}
for name, path in (("parent_environ", "/proc/{os.getpid()}/environ"), ("own_environ", "/proc/self/environ"),
                   ("secret", {str(outside / "secret.txt")!r}), ("home", {str(Path.home())!r})):
    try:
        seen[name] = open(path, "rb").read(100).decode(errors="replace") if name != "home" else os.listdir(path)
    except OSError as exc:
        seen[name] = type(exc).__name__
for name, path in (("marker", {str(outside / "marker")!r}), ("tmp_marker", "/tmp/ml-intern-confine-marker"),
                   ("inside", "inside.txt")):
    try:
        open(path, "w").write("x")
        seen[name] = "written"
    except OSError as exc:
        seen[name] = type(exc).__name__
print(json.dumps(seen))
"""
    workspace = tmp_path / "ws"
    child = confine.start([sys.executable, "-I", "-c", code], workspace, stdout=subprocess.PIPE)
    out, _ = child.process.communicate(timeout=60)
    child.kill()
    seen = json.loads(out)

    assert seen["inside"] == "written" and (workspace / "inside.txt").read_text() == "x"
    if confine.landlock_abi():
        assert child.filesystem_restricted
        assert {seen[k] for k in ("parent_environ", "own_environ", "secret", "home", "marker", "tmp_marker")} \
            == {"PermissionError"}
        assert not (outside / "marker").exists() and not Path("/tmp/ml-intern-confine-marker").exists()
    else:
        assert not child.filesystem_restricted


def test_a_child_of_root_has_no_capabilities(tmp_path):
    code = "import os\ntry:\n    os.setuid(12345)\n    print('setuid worked')\nexcept PermissionError:\n" \
           "    print('refused')"
    assert run_python(code, tmp_path / "ws").stdout.strip() == "refused"


def _has_cap_sys_admin() -> bool:
    """CAP_SYS_ADMIN (bit 21) in this process's effective capabilities: what unshare(CLONE_NEWNET) needs."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 21 & 1)
    return False
