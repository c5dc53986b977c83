"""Warm jobs (``sandbox/platform/warm_jobs.py``): a job forked by the real job server, run in the real
platform env, keeps a subprocess's contract; the server refuses to fork with threads; the client falls
back to a plain process. The stack-level check (a real task's log) is in ``test_local_stack.py``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from sandbox.envs import ensure_platform_env
from sandbox.paths import JOBS_DIR
from sandbox.platform import airflow_local_settings, warm_jobs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FORKED = "job forked by the warm job server"
PLAIN = "starting the job as a plain process"

PROBE = '''
import json, os, signal, sys, time

mode = sys.argv[1]
if mode == "facts":
    import importlib

    import numpy

    # Imported by name so the server does not preload it: the BLAS pool must be a fresh one's anyway.
    threadpool_info = importlib.import_module("threadpoolctl").threadpool_info
    blas = sorted(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
    print(json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "path": sys.path, "name": __name__,
                      "env": dict(os.environ), "blas": blas, "seed": numpy.random.rand(),
                      "version": VERSION}))
    print("to stderr", file=sys.stderr)
    open(os.environ["XCOM"], "w").write('{"ok": true}') if os.environ.get("XCOM") else None
    sys.exit(int(os.environ.get("PROBE_EXIT", "0")))
if mode == "raise":
    raise RuntimeError("boom from the job")
if mode == "sleep":
    # Raw writes: the signal may land while print("sleeping") is still flushing (a reentrant print fails).
    signal.signal(signal.SIGTERM, lambda *_: (os.write(1, b"got SIGTERM\\n"), os._exit(7)))
    print("sleeping", flush=True)
    # Short sleeps: CPython runs a handler between bytecodes, so a signal that lands after the last
    # check but before a blocking call starts waits for the call to end (in any process, warm or not).
    for _ in range(1200):
        time.sleep(0.1)
if mode == "die":
    os.kill(os.getpid(), signal.SIGKILL)
if mode == "late":  # a library the job imports only at run time, as MLflow imports skops
    import importlib

    name = os.environ["PROBE_LATE_IMPORT"]
    print(json.dumps({"loaded_at_start": name in sys.modules}))
    importlib.import_module(name)
'''


def _probe(jobs: Path, version: int) -> None:
    package = jobs / "probe_job"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    # The padding changes the file's size with its version: CPython trusts a cached .pyc whose
    # recorded mtime (whole seconds) and size match, so a same-size edit within the second of the
    # last compile would run the old bytecode, warm or plain alike.
    (package / "version.py").write_text(f"VERSION = {version}\n" + "#" * version + "\n")
    (package / "__main__.py").write_text(f"from probe_job.version import VERSION\n{PROBE}")


@pytest.fixture(scope="module")
def python() -> Path:
    return ensure_platform_env() / "bin" / "python"


def _serve(
    python: Path, sock: Path, jobs: Path, env: dict[str, str], learned: Path | None = None
) -> subprocess.Popen[str]:
    learning = ["--learned", str(learned)] if learned else []
    proc = subprocess.Popen(
        [str(python), str(warm_jobs.__file__), "serve", str(sock), "--jobs", str(jobs), *learning],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while warm_jobs.ping(sock) is None:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the job server never answered"
        time.sleep(0.1)
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _server_env() -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **warm_jobs.SERVER_ENV}


@pytest.fixture(scope="module")
def server(python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A job server over a jobs folder holding the probe (and importing ``numpy.random``, so that is
    preloaded, with its global random state)."""
    root = tmp_path_factory.mktemp("warm")
    jobs = root / "jobs"
    _probe(jobs, 1)
    imports = "import numpy.random\nimport probe_job.version\nfrom . import nothing\n"
    (jobs / "uses_numpy.py").write_text(imports)
    sock = root / "jobs.sock"
    proc = _serve(python, sock, jobs, _server_env())
    yield sock, jobs
    _stop(proc)
    assert not sock.exists(), "the server removes its socket when it stops"


def _client(python: Path, sock: Path, jobs: Path, *args: str) -> list[str]:
    return [str(python), "-I", "-S", str(warm_jobs.__file__), "run", str(sock), "--",
            str(python), "-m", "probe_job", *args]  # fmt: skip


def _job_env(jobs: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "PYTHONPATH": str(jobs), "PYTHONUNBUFFERED": "1", **extra}


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_a_warm_job_sees_what_a_fresh_interpreter_sees(
    server: tuple[Path, Path], python: Path, tmp_path: Path
) -> None:
    sock, jobs = server
    env = _job_env(jobs, PROBE_EXIT="3", XCOM=str(tmp_path / "xcom.json"), MARK="warm or not")
    warm = _run(_client(python, sock, jobs, "facts"), env, tmp_path)
    assert FORKED in warm.stderr, warm.stderr
    assert (tmp_path / "xcom.json").read_text() == '{"ok": true}'
    plain = _run([str(python), "-m", "probe_job", "facts"], env, tmp_path)
    assert warm.returncode == plain.returncode == 3
    assert "to stderr" in warm.stderr and "to stderr" in plain.stderr
    warm_facts, plain_facts = json.loads(warm.stdout), json.loads(plain.stdout)
    assert warm_facts.pop("seed") != plain_facts.pop("seed")
    assert warm_facts == plain_facts  # argv, cwd, sys.path, __name__, the whole env, BLAS threads
    again = json.loads(_run(_client(python, sock, jobs, "facts"), env, tmp_path).stdout)
    assert again["seed"] != json.loads(warm.stdout)["seed"], "each fork gets a fresh NumPy seed"


def test_a_crashing_job_shows_its_traceback_and_exits_1(
    server: tuple[Path, Path], python: Path, tmp_path: Path
) -> None:
    sock, jobs = server
    result = _run(_client(python, sock, jobs, "raise"), _job_env(jobs), tmp_path)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "RuntimeError: boom from the job" in result.stderr


def test_a_job_killed_by_a_signal_shows_that_signal(
    server: tuple[Path, Path], python: Path, tmp_path: Path
) -> None:
    sock, jobs = server
    result = _run(_client(python, sock, jobs, "die"), _job_env(jobs), tmp_path)
    assert result.returncode == -signal.SIGKILL, result.stderr


def _start_sleeper(python: Path, sock: Path, jobs: Path, cwd: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(_client(python, sock, jobs, "sleep"), env=_job_env(jobs), cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stderr is not None and proc.stdout is not None
    line = proc.stderr.readline()
    assert FORKED in line, line
    assert proc.stdout.readline().strip() == "sleeping"
    return proc, int(line.rsplit("pid ", 1)[1].rstrip(")\n"))


def test_terminating_the_task_terminates_its_job(
    server: tuple[Path, Path], python: Path, tmp_path: Path
) -> None:
    """``LocalJobOperator.on_kill`` terminates what it started: the job gets the signal."""
    sock, jobs = server
    proc, _pid = _start_sleeper(python, sock, jobs, tmp_path)
    proc.terminate()
    out, err = proc.communicate(timeout=30)
    assert "got SIGTERM" in out and proc.returncode == 7, (out, err, proc.returncode)


def test_a_job_whose_task_process_died_is_ended(
    server: tuple[Path, Path], python: Path, tmp_path: Path
) -> None:
    sock, jobs = server
    proc, pid = _start_sleeper(python, sock, jobs, tmp_path)
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 20
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the job outlived its task's process"
        time.sleep(0.1)


def test_a_request_that_does_not_parse_keeps_no_descriptor(server: tuple[Path, Path]) -> None:
    """The server closes the streams a broken request carried (it answers, and holds no more fds)."""
    import socket

    sock, _jobs = server
    answer = warm_jobs.ping(sock)
    assert answer is not None
    server_pid = next(p.pid for p in psutil.process_iter(["cmdline"])
                      if str(sock) in (p.info["cmdline"] or []) and "serve" in p.info["cmdline"])  # fmt: skip
    before = psutil.Process(server_pid).num_fds()
    for _ in range(3):
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as conn:
            conn.connect(str(sock))
            socket.send_fds(conn, [b"{not json"], [0, 1, 2])
            assert conn.recv(64) == b""  # closed without an answer
    assert warm_jobs.ping(sock) is not None
    assert psutil.Process(server_pid).num_fds() == before


def test_job_code_is_never_preloaded(server: tuple[Path, Path], python: Path, tmp_path: Path) -> None:
    """An edit under jobs/ takes effect on the next task; only libraries are preloaded."""
    sock, jobs = server
    answer = warm_jobs.ping(sock)
    assert answer is not None and answer["warm"], answer
    assert "numpy.random" in answer["preloaded"] and "probe_job.version" not in answer["preloaded"]
    first = json.loads(_run(_client(python, sock, jobs, "facts"), _job_env(jobs), tmp_path).stdout)
    _probe(jobs, 2)
    try:
        second = json.loads(_run(_client(python, sock, jobs, "facts"), _job_env(jobs), tmp_path).stdout)
    finally:
        _probe(jobs, 1)
    assert (first["version"], second["version"]) == (1, 2)


def test_without_a_server_the_job_runs_as_a_plain_process(python: Path, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    _probe(jobs, 1)
    argv = _client(python, tmp_path / "no.sock", jobs, "facts")
    result = _run(argv, _job_env(jobs, PROBE_EXIT="4"), tmp_path)
    assert PLAIN in result.stderr and result.returncode == 4
    assert json.loads(result.stdout)["argv"][1:] == ["facts"]


def test_the_real_jobs_preload_without_threads_and_a_threaded_server_refuses_to_fork(
    python: Path, tmp_path: Path
) -> None:
    """The server's env keeps OpenBLAS's pool and pyarrow's jemalloc thread from starting at import;
    without it the server has threads, refuses to fork, and a job runs as a plain process instead."""
    sock = tmp_path / "real.sock"
    proc = _serve(python, sock, JOBS_DIR, _server_env())
    try:
        answer = warm_jobs.ping(sock)
        assert answer is not None
        assert answer["warm"] and answer["threads"] == 1, answer
        assert {"mlflow", "pandas", "boto3", "sklearn.ensemble"} <= set(answer["preloaded"])
    finally:
        _stop(proc)
    jobs = tmp_path / "jobs"
    _probe(jobs, 1)
    (jobs / "imports.py").write_text("import numpy\nimport pyarrow\n")
    threaded = {k: v for k, v in _server_env().items() if k not in warm_jobs.SERVER_ENV}
    proc = _serve(python, sock, jobs, threaded)
    try:
        answer = warm_jobs.ping(sock)
        assert answer is not None and not answer["warm"] and "threads" in answer["why"], answer
        result = _run(_client(python, sock, jobs, "facts"), _job_env(jobs), tmp_path)
        assert "forking it is unsafe" in result.stderr and PLAIN in result.stderr
        assert result.returncode == 0 and json.loads(result.stdout)["version"] == 1
    finally:
        _stop(proc)


def test_third_party_imports_leave_out_the_jobs_own_code_and_the_stdlib(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text(
        "import os, json\nimport pkg.b\nfrom pkg import c\nfrom . import d\nimport mod\n"
        "def f():\n    import sklearn.ensemble\n    from mlflow.tracking import MlflowClient\n"
    )
    (tmp_path / "mod.py").write_text("from __future__ import annotations\nimport boto3\n")
    (tmp_path / "broken.py").write_text("def (:\n")
    assert warm_jobs.third_party_imports(tmp_path) == ["boto3", "mlflow.tracking", "sklearn.ensemble"]


def test_the_policy_hands_the_launcher_to_local_job_operators_only(monkeypatch: pytest.MonkeyPatch) -> None:
    class LocalJobOperator:
        launcher: tuple[str, ...] = ()

        def pre_execute(self, context: object) -> None: ...

    class KubernetesPodOperator(LocalJobOperator): ...

    launcher = ["/env/python", "-I", "-S", "warm_jobs.py", "run", "/s.sock", "--"]
    local, pod, plain = LocalJobOperator(), KubernetesPodOperator(), LocalJobOperator()
    monkeypatch.setenv(airflow_local_settings.JOB_LAUNCHER_ENV, json.dumps(launcher))
    airflow_local_settings.task_policy(local)
    airflow_local_settings.task_policy(pod)
    monkeypatch.delenv(airflow_local_settings.JOB_LAUNCHER_ENV)
    airflow_local_settings.task_policy(plain)
    assert (local.launcher, pod.launcher, plain.launcher) == (launcher, (), ())
    assert airflow_local_settings.job_launcher({airflow_local_settings.JOB_LAUNCHER_ENV: "{not json"}) == []


def test_the_socket_path_fits_a_unix_socket_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the state folder when it fits sun_path (108 bytes), else in a private per-user folder."""
    from types import SimpleNamespace

    from sandbox.backends.local import jobserver
    from sandbox.backends.local.state import SandboxState
    from sandbox.errors import PreflightError

    short = SimpleNamespace(state=SandboxState("s", tmp_path))
    assert jobserver.socket_path(short) == tmp_path / "s" / "jobs.sock"  # type: ignore[arg-type]
    short_tmp = Path(tempfile.mkdtemp(prefix="wj", dir="/tmp"))  # pytest's own tmp_path is long
    monkeypatch.setattr("tempfile.tempdir", str(short_tmp))
    try:
        deep = SimpleNamespace(state=SandboxState("s" * 40, tmp_path / ("d" * 80)))
        path = jobserver.socket_path(deep)  # type: ignore[arg-type]
        assert len(os.fsencode(path)) <= 100 and path.parent.parent == short_tmp
        assert path.parent.stat().st_mode & 0o777 == 0o700
        if os.getuid() == 0:  # someone else's folder at that name is refused, never used
            os.chown(path.parent, 65534, 65534)
            with pytest.raises(PreflightError, match="belongs to someone else"):
                jobserver.socket_path(deep)  # type: ignore[arg-type]
    finally:
        shutil.rmtree(short_tmp)


def _learned(sock: Path, name: str) -> dict[str, Any]:
    """The server's ping once it has decided about ``name`` (after a second without jobs)."""
    deadline = time.monotonic() + 60
    while True:
        answer = warm_jobs.ping(sock)
        assert answer is not None
        if name in answer["preloaded"] or name in answer["rejected"]:
            return answer
        assert time.monotonic() < deadline, f"the server never learned about {name}: {answer}"
        time.sleep(0.1)


def test_a_library_a_job_imports_at_run_time_is_learned_and_preloaded_from_then_on(
    python: Path, tmp_path: Path
) -> None:
    """MLflow imports skops only when it saves a model, so no scan of jobs/ sees it: the server learns
    it from the job, imports it once idle, and preloads it when it starts again (the learned file)."""
    jobs, sock, learned = tmp_path / "jobs", tmp_path / "learn.sock", tmp_path / "learned.json"
    _probe(jobs, 1)
    env = _job_env(jobs, PROBE_LATE_IMPORT="yaml")
    proc = _serve(python, sock, jobs, _server_env(), learned)
    try:
        assert "yaml" not in warm_jobs.ping(sock)["preloaded"]  # type: ignore[index]
        first = _run(_client(python, sock, jobs, "late"), env, tmp_path)
        assert FORKED in first.stderr and json.loads(first.stdout) == {"loaded_at_start": False}
        answer = _learned(sock, "yaml")
        assert "yaml" in answer["preloaded"] and answer["warm"] and answer["threads"] == 1, answer
        second = _run(_client(python, sock, jobs, "late"), env, tmp_path)
        assert FORKED in second.stderr and json.loads(second.stdout) == {"loaded_at_start": True}
    finally:
        _stop(proc)
    saved = json.loads(learned.read_text())
    assert "yaml" in saved and not [n for n in saved if n.startswith("probe_job")], saved
    proc = _serve(python, sock, jobs, _server_env(), learned)
    try:
        assert "yaml" in warm_jobs.ping(sock)["preloaded"]  # type: ignore[index]
    finally:
        _stop(proc)
    assert not list(tmp_path.glob("learned.json.*")), "every job's report is taken and removed"


def test_a_learned_library_that_starts_a_thread_or_opens_a_socket_is_never_preloaded(
    python: Path, tmp_path: Path
) -> None:
    """The server imports a learned library only after a forked probe has imported it without a new
    thread or socket: a fork of a parent with threads is unsafe, and a socket would be shared by every job."""
    jobs, sock = tmp_path / "jobs", tmp_path / "learn.sock"
    _probe(jobs, 1)
    site = tmp_path / "site-packages"  # a library folder on the server's path, as the env's own is
    site.mkdir()
    (site / "threads_at_import.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n"
    )
    (site / "socket_at_import.py").write_text("import socket\nHELD = socket.socket()\n")
    server_env = {**_server_env(), "PYTHONPATH": str(site)}
    proc = _serve(python, sock, jobs, server_env, tmp_path / "learned.json")
    try:
        for name in ("threads_at_import", "socket_at_import"):
            env = {**_job_env(jobs, PROBE_LATE_IMPORT=name), "PYTHONPATH": f"{jobs}:{site}"}
            assert FORKED in _run(_client(python, sock, jobs, "late"), env, tmp_path).stderr
            answer = _learned(sock, name)
            assert answer["warm"] and answer["threads"] == 1 and name not in answer["preloaded"], answer
            again = _run(_client(python, sock, jobs, "late"), env, tmp_path)
            assert FORKED in again.stderr and json.loads(again.stdout) == {"loaded_at_start": False}
    finally:
        _stop(proc)
    log = proc.stdout.read() if proc.stdout else ""
    assert "importing them starts a thread" in log and "importing them opens a socket" in log, log
