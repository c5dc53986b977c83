"""Warm jobs for the local task runtime: a job server that has imported the jobs' third-party libraries
once and forks each job from that state, and the client a task runs in place of the interpreter.

    python warm_jobs.py serve SOCKET --jobs JOBS_DIR [--learned FILE]   # the ``job-server`` service
    python -I -S warm_jobs.py run SOCKET -- PYTHON -m PKG ARGS...   # what ``LocalJobOperator`` runs

The client keeps a subprocess's contract, so the operator cannot tell the difference: it hands the
server its stdin/stdout/stderr (the task log's pipe, passed as file descriptors), its environment and
working directory; the forked job runs ``-m PKG`` as ``python -m`` would (``sys.path[0]`` the working
dir, then ``PYTHONPATH``; ``sys.argv``; exit code, uncaught traceback, ``atexit``), and the client exits
with the job's code (or dies of the job's signal). A signal to the client (the task killed) goes to the
job; a client that dies (a killed worker) makes the server terminate its job.

Only libraries are preloaded: the modules the files under JOBS_DIR import, minus JOBS_DIR's own
packages and the standard library, so an edit under ``jobs/`` takes effect on the next task.
Libraries that the jobs import only at run time (MLflow imports skops when it saves a model) are
learned: with ``--learned FILE`` each job reports the library modules it imported beyond the preload,
and once no job has run for a second the server imports them too (after a forked probe has shown
that importing them starts no thread and opens no socket) and keeps the list in FILE for its next start.
Fork safety: the server has no threads and no open connections when it forks; the two pools that
start at import (OpenBLAS's, pyarrow's jemalloc thread) are kept from starting by the service's env
(``OPENBLAS_NUM_THREADS=1``, ``JE_ARROW_MALLOC_CONF``) and the BLAS pool is sized in the child to what a
fresh interpreter would pick. A server with threads anyway refuses to fork. Whenever the server is
absent, refuses or breaks before the job starts, the client runs the job as a plain process
(``exec``), and says so on stderr.

Standalone on purpose (stdlib only at import): it runs in the platform env, where the harness is not
installed, and the client starts in milliseconds with ``-I -S``.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

MAX_MESSAGE = 1 << 20  # the request carries the job's environment
STDIO = (0, 1, 2)
KILL_GRACE_S = 10.0  # a job whose client died gets SIGTERM, then SIGKILL after this
LEARN_IDLE_S = 1.0  # learned modules are imported once no job has started or ended for this long
# The learning probe's exit codes when its imports started a thread, or opened a socket.
PROBE_EXITS = {3: "importing them starts a thread", 4: "importing them opens a socket"}
LIBRARY_DIRS = ("site-packages", "dist-packages")  # a module learned from a job must come from one
# What the server's env keeps from starting threads at import, and where the child's own value comes from.
BLAS_THREADS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
SERVER_ENV = {"OPENBLAS_NUM_THREADS": "1", "JE_ARROW_MALLOC_CONF": "background_thread:false"}


# ---------------------------------------------------------------- protocol (one JSON message each way)
def _send(sock: socket.socket, message: dict[str, Any], fds: tuple[int, ...] = ()) -> None:
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def _recv(sock: socket.socket, maxfds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    """One message (None at EOF) and the descriptors that came with it."""
    data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, maxfds)
    message = None
    try:
        if data:
            message = json.loads(data)  # ValueError for a message that does not parse
    finally:
        if message is None:  # EOF or a message that does not parse: nobody gets its descriptors
            for fd in fds:
                os.close(fd)
    return message, (fds if message is not None else [])


def _connect(path: str, timeout: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock


def ping(path: str | os.PathLike[str], timeout: float = 2.0) -> dict[str, Any] | None:
    """The server's answer (``warm``, ``why``, ``preloaded``, ``threads``, ``python``); None when no
    server answers at ``path``."""
    try:
        with _connect(os.fspath(path), timeout) as sock:
            _send(sock, {"ping": True})
            answer, _ = _recv(sock)
            return answer
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- what to preload
def own_names(jobs_dir: Path) -> set[str]:
    """The top-level packages and modules of ``jobs_dir``: project code, never preloaded."""
    own = {p.name for p in jobs_dir.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    return own | {p.stem for p in jobs_dir.glob("*.py")}


def third_party_imports(jobs_dir: Path) -> list[str]:
    """The modules the ``.py`` files under ``jobs_dir`` import (at any depth of the code), minus the
    folder's own top-level packages and modules, the standard library and ``__future__``."""
    own = own_names(jobs_dir)
    found: set[str] = set()
    for path in sorted(jobs_dir.rglob("*.py")):
        try:
            tree = ast.parse(path.read_bytes(), str(path))
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
    skip = own | set(sys.stdlib_module_names) | {"__future__"}
    return sorted(name for name in found if name.split(".")[0] not in skip)


def thread_names() -> list[str]:
    """This process's OS threads (their ``comm``), the main one included."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:  # not Linux: Python's own threads are all that can be seen
        import threading

        return [t.name for t in threading.enumerate()]
    names = []
    for task in tasks:
        with contextlib.suppress(OSError):
            names.append(Path(f"/proc/self/task/{task}/comm").read_text().strip())
    return names


def _excluded(name: str, own: set[str]) -> bool:
    """Never preloaded: the jobs' own code, the standard library, ``__main__`` and the like."""
    top = name.partition(".")[0]
    return top in own or top in sys.stdlib_module_names or top.startswith("__")


def _names_in(path: Path | None) -> list[str]:
    """The module names a learned file or a job's report lists; [] when it is missing or unreadable."""
    try:
        names = json.loads(path.read_text()) if path is not None else []
    except (OSError, ValueError):
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def socket_fds() -> set[str]:
    """This process's open sockets (``socket:[inode]``); empty where ``/proc`` cannot tell."""
    found = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/self/fd/{fd}")
                if target.startswith("socket:"):
                    found.add(target)
    return found


# ---------------------------------------------------------------- server
class Server:
    def __init__(self, path: str, jobs_dir: Path, learned: Path | None = None) -> None:
        self.path = path
        self.jobs_dir = jobs_dir
        self.learned_file = learned  # None: no learning
        self.preloaded: list[str] = []
        self.failed: dict[str, str] = {}
        self.pending: set[str] = set()  # learned from jobs, not imported yet
        self.learned: set[str] = set()  # learned and imported, here or by an earlier server (FILE)
        self.rejected: set[str] = set()  # learned, but importing them starts a thread or opens a socket
        self.probe: tuple[int, list[str]] | None = None  # the learning probe's pid and its modules
        self.last_activity = time.monotonic()
        self.why_cold = ""
        self.jobs: dict[int, socket.socket] = {}  # pid -> its client's connection
        self.kill_at: dict[int, float] = {}  # pid -> when SIGKILL follows the SIGTERM
        self.base_path: list[str] = []
        self.import_env: dict[str, str] = {}  # what the preloaded modules put in os.environ
        self.owner_pid = os.getpid()
        self.selector = selectors.DefaultSelector()

    def preload(self) -> None:
        started = time.monotonic()
        own = own_names(self.jobs_dir)
        self.learned = {n for n in _names_in(self.learned_file) if not _excluded(n, own)}
        self._import([*third_party_imports(self.jobs_dir), *sorted(self.learned)])
        print(
            f"preloaded {len(self.preloaded)} module(s) in {time.monotonic() - started:.2f}s "
            f"({len(self.learned)} learned from earlier jobs): {', '.join(self.preloaded)}", flush=True,
        )  # fmt: skip
        for name, why in self.failed.items():
            print(f"not preloaded: {name} ({why})", flush=True)
        self._check_threads()

    def _import(self, names: Iterable[str]) -> None:
        """Import ``names`` here (a failure is recorded: an optional import such as pynvml is the job's
        to handle), note what the imports set in ``os.environ``, and freeze what is now loaded."""
        before = dict(os.environ)
        for name in names:
            if name in self.preloaded or name in self.failed:
                continue
            try:
                importlib.import_module(name)
                self.preloaded.append(name)
            except Exception as exc:
                self.failed[name] = f"{type(exc).__name__}: {exc}"
        self.import_env.update({k: v for k, v in os.environ.items() if before.get(k) != v})
        gc.collect()
        gc.freeze()  # keeps the collector from writing to (and so copying) the preloaded objects

    def _check_threads(self) -> None:
        threads = thread_names()
        if len(threads) > 1 and not self.why_cold:
            self.why_cold = (
                f"the job server has {len(threads)} threads after its imports ({', '.join(threads)}): "
                "forking it is unsafe"
            )
            print(f"cold: {self.why_cold}; jobs run as plain processes", flush=True)

    # ------------------------------------------------------------ learning what jobs import late
    def report_path(self, pid: int) -> Path | None:
        """Where the job ``pid`` leaves the names of the library modules it imported."""
        if self.learned_file is None:
            return None
        return self.learned_file.with_name(f"{self.learned_file.name}.{pid}")

    def job_report(self) -> Callable[[], None]:
        """In the forked child, before the job runs: an ``atexit`` hook that writes the library modules
        the job imported beyond what it was forked with (modules under ``site-packages`` only: never
        the job's own code, wherever its ``sys.path`` finds that)."""
        path = self.report_path(os.getpid())
        before = set(sys.modules)
        own = own_names(self.jobs_dir)
        libraries = tuple(p + os.sep for p in self.base_path if os.path.basename(p) in LIBRARY_DIRS)

        def report() -> None:
            names = []
            for name, module in list(sys.modules.items()):
                origin = getattr(getattr(module, "__spec__", None), "origin", None) or ""
                if name not in before and not _excluded(name, own) and origin.startswith(libraries):
                    names.append(name)
            if path is not None and names:
                with contextlib.suppress(OSError):
                    path.write_text(json.dumps(sorted(names)))

        return report

    def _take_report(self, pid: int) -> None:
        path = self.report_path(pid)
        if path is None:
            return
        names = _names_in(path)
        with contextlib.suppress(OSError):
            path.unlink()
        known = set(self.preloaded) | set(self.failed) | self.rejected
        self.pending.update(n for n in names if n not in known)

    def _learn(self) -> None:
        """While idle: fork a probe that imports the pending modules and tells whether that started a
        thread or opened a socket; ``_probe_done`` imports them here when it did neither."""
        if not self.pending or self.jobs or self.probe or self.why_cold:
            return
        if time.monotonic() - self.last_activity < LEARN_IDLE_S:
            return
        names = sorted(self.pending)
        self.pending.clear()
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # the probe: never returns
            code = 1
            try:
                sockets = socket_fds()
                for name in names:
                    with contextlib.suppress(Exception):
                        importlib.import_module(name)
                code = 3 if len(thread_names()) > 1 else 4 if socket_fds() - sockets else 0
            finally:
                os._exit(code)
        self.probe = (pid, names)

    def _probe_done(self, status: int) -> None:
        assert self.probe is not None
        _pid, names = self.probe
        self.probe = None
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            self.rejected.update(names)
            why = PROBE_EXITS.get(code, f"the probe exited {code}")
            print(f"not preloading what jobs imported ({why}): {', '.join(names)}", flush=True)
            return
        started = time.monotonic()
        self._import(names)
        learned = [n for n in names if n in self.preloaded]
        print(
            f"learned {len(learned)} module(s) from jobs, imported in {time.monotonic() - started:.2f}s: "
            f"{', '.join(learned)}", flush=True,
        )  # fmt: skip
        self._check_threads()
        self.learned.update(learned)
        if self.learned_file is not None and learned:
            tmp = self.learned_file.with_name(self.learned_file.name + ".tmp")
            with contextlib.suppress(OSError):
                tmp.write_text(json.dumps(sorted(self.learned)))
                os.replace(tmp, self.learned_file)

    def serve(self) -> dict[str, Any] | None:
        """Answer until SIGTERM (returns None); in a forked child, return its job's request."""
        # The interpreter's own sys.path, without this script's folder: a job's sys.path starts from it.
        self.base_path = sys.path[1:]
        self.preload()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        old_umask = os.umask(0o177)  # the socket is the owner's only: a request runs code as the owner
        try:
            listener.bind(self.path)
        finally:
            os.umask(old_umask)
        listener.listen(64)
        listener.setblocking(False)
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        signal.set_wakeup_fd(wake_w.fileno())
        stopping: list[int] = []
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
        signal.signal(signal.SIGINT, lambda signum, _frame: stopping.append(signum))
        selector = self.selector
        selector.register(listener, selectors.EVENT_READ, "accept")
        selector.register(wake_r, selectors.EVENT_READ, "wake")
        print(f"serving on {self.path}", flush=True)
        try:
            while not stopping:
                for key, _ in selector.select(timeout=1.0):
                    if key.data == "wake":
                        with contextlib.suppress(OSError):
                            wake_r.recv(4096)
                    elif key.data == "accept":
                        request = self._accept(listener, closing=(listener, wake_r, wake_w))
                        if request is not None:  # the forked child
                            selector.close()
                            return request
                    else:  # a running job's client: it only ever speaks by going away
                        self._client_gone(key.fileobj, key.data)
                self._reap()
                self._kill_overdue()
                self._learn()
        finally:
            if os.getpid() == self.owner_pid:
                self._shutdown(listener)
        return None

    def _accept(self, listener: socket.socket, closing: tuple[socket.socket, ...]) -> dict[str, Any] | None:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return None
        conn.setblocking(True)
        conn.settimeout(5.0)
        try:
            request, fds = _recv(conn, maxfds=len(STDIO))
        except (OSError, ValueError):
            conn.close()
            return None
        if request is None:
            conn.close()
            return None
        if request.get("ping"):
            with contextlib.suppress(OSError):
                _send(conn, self._status())
            conn.close()
            return None
        why = self._refusal(request, fds)
        if why:
            for fd in fds:
                os.close(fd)
            with contextlib.suppress(OSError):
                _send(conn, {"fallback": why})
            conn.close()
            return None
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the job: drop everything of the server's, keep the client's descriptors
            for sock in (*closing, *self.jobs.values(), conn):
                sock.close()
            signal.set_wakeup_fd(-1)
            request["fds"] = fds
            return request
        for fd in fds:
            os.close(fd)
        self.jobs[pid] = conn
        self.last_activity = time.monotonic()
        try:
            _send(conn, {"pid": pid})
        except OSError:
            self._terminate(pid)
        self.selector.register(conn, selectors.EVENT_READ, pid)
        return None

    def _status(self) -> dict[str, Any]:
        return {
            "warm": not self.why_cold, "why": self.why_cold, "preloaded": self.preloaded,
            "threads": len(thread_names()), "python": sys.executable, "jobs": len(self.jobs),
            "learning": sorted(self.pending | set(self.probe[1] if self.probe else ())),
            "rejected": sorted(self.rejected),
        }  # fmt: skip

    def _refusal(self, request: dict[str, Any], fds: list[int]) -> str:
        argv = request.get("argv")
        if self.why_cold:
            return self.why_cold
        if len(fds) != len(STDIO):
            return "the request came without its standard streams"
        if not isinstance(argv, list) or len(argv) < 3 or argv[1] != "-m":
            return "the warm job server runs `PYTHON -m MODULE ...` commands only"
        if os.path.realpath(argv[0]) != os.path.realpath(sys.executable):
            return f"the job wants {argv[0]}, the job server runs {sys.executable}"
        if not isinstance(request.get("env"), dict) or not isinstance(request.get("cwd"), str):
            return "the request lacks the job's environment or working directory"
        return ""

    def _client_gone(self, conn: Any, pid: int) -> None:
        with contextlib.suppress(OSError, ValueError):
            if conn.recv(16):
                return  # clients send nothing after the request; ignore whatever it is
        self._forget(conn)
        if pid in self.jobs:  # the task's process died before its job: end the job as it would have
            print(f"job {pid}: its client went away; terminating it", flush=True)
            self._terminate(pid)

    def _terminate(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        self.kill_at.setdefault(pid, time.monotonic() + KILL_GRACE_S)

    def _kill_overdue(self) -> None:
        now = time.monotonic()
        for pid, deadline in list(self.kill_at.items()):
            if now >= deadline and pid in self.jobs:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                del self.kill_at[pid]

    def _reap(self) -> None:
        while self.jobs or self.probe:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.probe and pid == self.probe[0]:
                self._probe_done(status)
                continue
            self.last_activity = time.monotonic()
            self._take_report(pid)
            conn = self.jobs.pop(pid, None)
            self.kill_at.pop(pid, None)
            if conn is not None:
                with contextlib.suppress(OSError):
                    _send(conn, {"exit": os.waitstatus_to_exitcode(status)})
                self._forget(conn)
                conn.close()

    def _forget(self, conn: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn)

    def _shutdown(self, listener: socket.socket) -> None:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        if self.probe:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.probe[0], signal.SIGKILL)
        for pid in list(self.jobs):
            self._terminate(pid)
        deadline = time.monotonic() + KILL_GRACE_S
        while self.jobs and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.1)
        for pid in list(self.jobs):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def become_job(
    request: dict[str, Any], base_path: list[str], import_env: dict[str, str], report: Callable[[], None]
) -> None:
    """In the forked child: take on the client's streams, environment, working dir, ``sys.path`` and
    ``sys.argv``, then run the job's module as ``python -m`` does (exceptions and ``SystemExit`` leave
    through the interpreter as they would there). ``import_env``: what the preloaded modules set in
    ``os.environ`` at import (scikit-learn's ``KMP_*``), set again where the job's env lacks it.
    ``report``: run at exit, after the job's own ``atexit`` hooks (``Server.job_report``)."""
    for signum in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in zip(STDIO, request["fds"], strict=True):
        os.dup2(fd, target)
        if fd not in STDIO:
            os.close(fd)
    env: dict[str, str] = request["env"]
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(write_through=unbuffered or stream is sys.stderr)  # type: ignore[union-attr]
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(import_env)
    os.environ.update(env)
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [os.getcwd(), *extra, *base_path]
    importlib.invalidate_caches()
    _fresh_process_state(env)
    argv: list[str] = request["argv"]
    import atexit

    atexit.register(report)  # registered first, so it runs last
    sys.argv = [argv[2], *argv[3:]]  # runpy replaces argv[0] with the module's file, as -m does
    import runpy

    runpy.run_module(argv[2], run_name="__main__", alter_sys=True)


def _fresh_process_state(env: dict[str, str]) -> None:
    """What a fresh interpreter would have that a fork inherits: a random NumPy seed, the BLAS pool."""
    random = sys.modules.get("numpy.random")  # imported lazily by numpy itself, eagerly by scikit-learn
    if random is not None:
        random.seed()
    if "numpy" in sys.modules:  # its BLAS was loaded under the server's OPENBLAS_NUM_THREADS=1
        with contextlib.suppress(Exception):  # no threadpoolctl installed: nothing to resize it with
            from threadpoolctl import threadpool_limits

            wanted = next((env[k] for k in BLAS_THREADS_ENV if env.get(k, "").strip().isdigit()), "")
            threadpool_limits(limits=int(wanted) if wanted else (os.cpu_count() or 1), user_api="blas")


# ---------------------------------------------------------------- client
def run(path: str, command: list[str]) -> None:
    """Run ``command`` through the server at ``path`` and exit as the job did; run it as a plain
    process (``exec``) when no server takes it."""
    try:
        sock = _connect(path, 10.0)
        _send(sock, {"argv": command, "env": dict(os.environ), "cwd": os.getcwd()}, STDIO)
        answer, _ = _recv(sock)
    except (OSError, ValueError) as exc:
        _plain(command, f"no job server at {path} ({exc.__class__.__name__}: {exc})")
    if answer is None or "pid" not in answer:
        why = (answer or {}).get("fallback") or "the job server closed the connection"
        _plain(command, why)
    pid = int(answer["pid"])

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    sock.settimeout(None)
    print(f"mlops-sandbox: job forked by the warm job server (pid {pid})", file=sys.stderr, flush=True)
    try:
        answer, _ = _recv(sock)
    except OSError:
        answer = None
    if answer is None or "exit" not in answer:  # the server died: the job's fate is unknown
        forward(signal.SIGTERM, None)
        print("mlops-sandbox: the warm job server went away while the job ran", file=sys.stderr)
        sys.exit(1)
    code = int(answer["exit"])
    if code < 0:  # killed by a signal: die of it too, so the caller sees what a subprocess shows
        with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP have no handler to reset
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        code = 128 - code
    sys.exit(code)


def _plain(command: list[str], why: str) -> None:
    print(f"mlops-sandbox: {why}; starting the job as a plain process", file=sys.stderr, flush=True)
    os.execv(command[0], command)


def main(argv: list[str]) -> None:
    usage = (
        "usage: warm_jobs.py serve SOCKET --jobs DIR [--learned FILE]"
        " | run SOCKET -- PYTHON -m MODULE [ARGS...]"
    )
    if len(argv) >= 4 and argv[0] == "run" and argv[2] == "--":
        run(argv[1], argv[3:])
    learned = argv[5] if len(argv) == 6 and argv[4] == "--learned" else None
    if len(argv) in (4, 6) and argv[0] == "serve" and argv[2] == "--jobs" and (len(argv) == 4 or learned):
        server = Server(argv[1], Path(argv[3]), Path(learned) if learned else None)
        request = server.serve()
        if request is not None:
            become_job(request, server.base_path, server.import_env, server.job_report())
        return
    sys.exit(usage)


if __name__ == "__main__":
    main(sys.argv[1:])
