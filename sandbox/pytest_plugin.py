"""pytest plugin: options, fixtures and scenario collection.

Scenario files become test items: a ``.yaml``/``.yml`` file named on the command line, or found in a
folder pytest walks when it declares ``apiVersion: mlops-sandbox/...`` at its top level (other YAML,
e.g. charts or test data, is never collected). Every file is validated while pytest collects,
so a bad file stops the session before any stack starts. The stack starts once per session, in its
own item (``StackItem``, ahead of the first scenario that will run: its own progress lines, summary row
and JUnit test case, so no scenario's time includes it) or on the first fixture that needs it, and stops
at the end unless ``--keep`` or it was already running when the session began (a warm stack the user
started stays up).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from sandbox import paths
from sandbox.scenarios.loader import LoadedScenario, ScenarioLoadError, is_scenario_file, load

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    # The clients import in seconds (generated Airflow models, MLflow): only when a stack is used,
    # so collection and `pytest tests` stay fast.
    from sandbox.scenarios.runner import Platform, Runner, ScenarioResult
    from sandbox.stack import Backend, UpResult

_STATE = pytest.StashKey["_Session"]()


def missing(reason: str) -> NoReturn:
    """Skip for something this machine lacks, but fail under ``CI=true``: in CI a missing install step
    (helm, Docker, the platform lock) must show up as a failure, never as a quiet skip."""
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(f"{reason} (CI=true: an install step is missing; it must not turn into a skip)")
    pytest.skip(reason)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlops-sandbox", "mlops-sandbox scenario suites")
    group.addoption(
        "--backend",
        default=os.environ.get("MLOPS_SANDBOX_BACKEND", "local"),
        help="backend running the platform: local (default) or kind [env MLOPS_SANDBOX_BACKEND]",
    )
    group.addoption(
        "--sandbox-name",
        default=os.environ.get("MLOPS_SANDBOX_NAME", "default"),
        help="sandbox to use or start (state under .sandbox/<name>/) [env MLOPS_SANDBOX_NAME]",
    )
    group.addoption(
        "--keep", action="store_true", default=False, help="leave the stack running after the session"
    )
    group.addoption(
        "--parallel",
        type=int,
        default=int(os.environ.get("MLOPS_SANDBOX_PARALLEL", "1") or 1),
        metavar="N",
        help="run up to N scenarios at once on the one stack (default 1); a scenario marked "
        "'exclusive: true' always runs alone [env MLOPS_SANDBOX_PARALLEL]",
    )
    # The kind backend's options, the same as `sandbox up` takes (sandbox/backend_options.py).
    group.addoption("--gpu", action="store_true", default=None,
                    help="kind: a GPU cluster (nvkind) [env MLOPS_SANDBOX_GPU]")
    group.addoption("--context", dest="kube_context", default=None, metavar="CTX",
                    help="kind: an existing cluster by kube context [env MLOPS_SANDBOX_CONTEXT]")
    group.addoption("--job-image", default=None, metavar="IMAGE",
                    help="kind: a job image the cluster can pull [env MLOPS_SANDBOX_JOB_IMAGE]")  # fmt: skip
    # The local backend's task runtime, the same as `sandbox up --task-runtime` takes.
    from sandbox.backend_options import TASK_RUNTIME_HELP, TASK_RUNTIMES

    group.addoption("--task-runtime", default=None, choices=TASK_RUNTIMES, help=TASK_RUNTIME_HELP)


@dataclass
class _Session:
    """Per-session state: the backend, the stack once up, and every scenario's outcome."""

    config: pytest.Config
    backend: Backend | None = None
    up: UpResult | None = None
    platform: Platform | None = None
    started: float = field(default_factory=time.monotonic)
    rows: list[dict[str, str]] = field(default_factory=list)
    details: list[tuple[str, str, Path | None]] = field(default_factory=list)
    # (scenario, timeline text) of every scenario with service faults, passed or not.
    timelines: list[tuple[str, str]] = field(default_factory=list)
    report_dir: Path = field(default_factory=lambda: paths.reports_dir() / time.strftime("%Y%m%d-%H%M%S"))
    registry: dict[str, Any] | None = None
    collected: int = 0
    stack_error: BaseException | None = None
    runtime_problem: str | None = None  # "" once checked and fine
    # --parallel: scenarios run ahead in worker threads, each item then reports its own result.
    ahead: dict[str, Future[ScenarioResult]] = field(default_factory=dict)
    runners: list[Runner] = field(default_factory=list)
    pool: ThreadPoolExecutor | None = None
    # The DAGs the session's scenarios trigger, and their scheduler-made runs when the stack came up.
    dag_ids: set[str] = field(default_factory=set)
    scheduled_at_start: dict[str, set[tuple[str, str]]] | None = None
    # Scheduler-made runs a scenario asked for (`trigger: schedule`), as "dag_id/run_id".
    requested_schedules: set[str] = field(default_factory=set)

    def scheduled_runs(self) -> dict[str, set[tuple[str, str]]]:
        """Runs of the scenarios' DAGs that the scheduler made itself (``scheduled__...``), as (id, when
        queued): a `trigger: schedule` scenario may delete a run and the scheduler make one of its id."""
        from sandbox.scenarios.schedule import SCHEDULED_PREFIX

        out: dict[str, set[tuple[str, str]]] = {}
        for dag_id in sorted(self.dag_ids):
            try:
                runs = self.stack().airflow.dag_runs_queued_at(dag_id, containing=SCHEDULED_PREFIX)
                out[dag_id] = set(runs.items())
            except Exception:
                out[dag_id] = set()  # not parsed yet: no run either
        return out

    def unrequested_runs(self) -> list[str]:
        """Runs the scheduler made during this session that no `trigger: schedule` scenario asked for:
        a sandbox runs only what is triggered."""
        if self.platform is None or self.scheduled_at_start is None:
            return []
        before = self.scheduled_at_start
        now = self.scheduled_runs()
        made = {f"{d}/{run_id}" for d, runs in now.items() for run_id, _ in runs - before.get(d, set())}
        return sorted(made - self.requested_schedules)

    def _runner(self, item: ScenarioItem) -> Runner:
        from sandbox.scenarios.runner import Runner

        return Runner(self.stack(), progress=self.progress().for_scenario(item.loaded.path.stem))

    def run_scenario(self, item: ScenarioItem) -> ScenarioResult:
        """Run the item's scenario (on a worker thread when it was started ahead: wait for it)."""
        future = self._run_ahead(item)
        if future is None:
            result = self._runner(item).run(item.loaded.scenario, item.loaded.path)
        else:
            try:
                result = future.result()  # that scenario's own error is its item's failure; the others go on
            except (KeyboardInterrupt, SystemExit):  # Ctrl-C: end what the workers run (runs marked failed)
                self.stop_ahead()
                raise
        self.requested_schedules |= {f"{result.scenario.dag}/{r}" for r in result.scheduled_runs}
        return result

    def _run_ahead(self, item: ScenarioItem) -> Future[ScenarioResult] | None:
        """With ``--parallel N`` (N > 1), the first of a stretch of consecutive scenarios that may share
        the stack starts the whole stretch, N at a time; an exclusive scenario, or any other test item,
        ends the stretch (items are run in order, so it starts only once the stretch is over)."""
        workers = self.config.getoption("parallel")
        if workers <= 1 or item.loaded.scenario.exclusive:
            return None
        if item.nodeid not in self.ahead:
            from concurrent.futures import ThreadPoolExecutor

            if self.pool is None:
                self.pool = ThreadPoolExecutor(workers, thread_name_prefix="scenario")
            items = item.session.items
            for other in items[items.index(item) :]:
                if not isinstance(other, ScenarioItem) or other.loaded.scenario.exclusive:
                    break
                if other.skip_reason():
                    continue  # its setup skips it
                runner = self._runner(other)
                self.runners.append(runner)
                self.ahead[other.nodeid] = self.pool.submit(
                    runner.run, other.loaded.scenario, other.loaded.path
                )
        return self.ahead[item.nodeid]

    def stop_ahead(self) -> None:
        """Cancel every scenario started ahead and wait for the workers (their runs marked failed)."""
        for runner in self.runners:
            runner.cancelled.set()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def task_runtime_problem(self) -> str:
        """Why the backend's task runtime cannot run here ("" when it can): the docker runtime needs a
        Docker engine this user may use."""
        if self.runtime_problem is None:
            self.runtime_problem = ""
            if getattr(self.get_backend(), "task_runtime", None) == "docker":
                from sandbox.errors import PreflightError
                from sandbox.images import engine

                try:
                    engine.check("The docker task runtime runs the job image in containers")
                except PreflightError as exc:
                    self.runtime_problem = exc.render()
        return self.runtime_problem

    def get_backend(self) -> Backend:
        if self.backend is None:
            from sandbox import backend_options
            from sandbox.stack import get_backend

            name = self.config.getoption("backend")
            options = backend_options.resolve(
                name, gpu=self.config.getoption("gpu"), context=self.config.getoption("kube_context"),
                job_image=self.config.getoption("job_image"),
                task_runtime=self.config.getoption("task_runtime"),
            )  # fmt: skip
            self.backend = get_backend(name, self.config.getoption("sandbox_name"), **options)
        return self.backend

    def stack(self) -> Platform:
        """The running platform; starts (or reuses) it on first use. A failed start is not retried: every
        later user gets the same error at once."""
        if self.stack_error is not None:
            raise self.stack_error
        if self.platform is None:
            backend = self.get_backend()
            runtime = getattr(backend, "task_runtime", None)  # the local backend's
            label = f"{backend.sandbox_name}, {runtime} task runtime" if runtime else backend.sandbox_name
            self.progress().emit("stack", f"starting the {backend.name} backend ({label})...")
            try:
                self.up = backend.up()
            except BaseException as exc:
                self.stack_error = exc
                raise
            how = "reused a running stack" if self.up.reused else "started"
            self.progress().emit("stack", f"{how} in {self.up.seconds:.1f}s", style="green")
            from sandbox.scenarios.runner import Platform

            self.platform = Platform(backend)
            self.scheduled_at_start = self.scheduled_runs()
        return self.platform

    def progress(self) -> Any:
        from sandbox.report import LiveProgress

        if not hasattr(self, "_progress"):
            tr = self.config.pluginmanager.get_plugin("terminalreporter")
            capman = self.config.pluginmanager.get_plugin("capturemanager")
            self._progress = LiveProgress(
                file=getattr(tr, "_tw", None) and tr._tw._file,
                suspend=(capman.global_and_fixture_disabled if capman else None),
                secrets=lambda: self.platform.secrets() if self.platform else [],
            )
        return self._progress


def _session(config: pytest.Config) -> _Session:
    if _STATE not in config.stash:
        config.stash[_STATE] = _Session(config)
    return config.stash[_STATE]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario: a scenario file collected by the mlops-sandbox plugin")
    config.addinivalue_line("markers", "gpu: needs an NVIDIA GPU visible to NVML")
    _session(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is not None:
        state.stop_ahead()  # e.g. after -x: scenarios started ahead that no item waited for
    if state is None or state.backend is None or state.up is None:
        return
    if config.getoption("keep") or state.up.reused:
        return
    state.backend.down()


# --- collection ---------------------------------------------------------------------------------


def _named(config: pytest.Config) -> set[Path]:
    """The files given on the command line (``path`` or ``path::name``), resolved."""
    base = config.invocation_params.dir
    return {(base / arg.split("::", 1)[0]).resolve() for arg in config.args}


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    if file_path.resolve() in _named(parent.config) or is_scenario_file(file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def pytest_itemcollected(item: pytest.Item) -> None:
    _session(item.config).collected += 1


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: only the scenarios that remain count
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Put the stack start ahead of the first scenario that will run, as an item of its own."""
    if config.option.collectonly:
        return
    scenarios = [i for i in items if isinstance(i, ScenarioItem)]
    if not scenarios:
        return  # e.g. the project's own tests: no stack item
    try:
        if _session(config).task_runtime_problem() or all(i.skip_reason() for i in scenarios):
            return  # nothing can use a stack (only GPU scenarios on a host without one; no Docker)
    except Exception:
        pass  # the backend cannot be set up: the stack item reports why, as its failure
    _session(config).dag_ids = {i.loaded.scenario.dag for i in scenarios}
    items.insert(items.index(scenarios[0]), StackItem.from_parent(session, name="stack"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = _session(session.config)
    unrequested = state.unrequested_runs()
    if unrequested:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(
                f"the scheduler created DAG run(s) no scenario triggered: {', '.join(unrequested)}; a "
                "sandbox runs only what is triggered (set [scheduler] use_job_schedule: false in the Airflow "
                "values overlay)",
                red=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and not _session(session.config).collected:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            where = ", ".join(session.config.args) or "."
            tr.write_line(
                f"no scenario files (and no tests) found in {where}: a scenario file is a .yaml/.yml "
                "file with the top-level line 'apiVersion: mlops-sandbox/v1', or one named on the "
                "command line"
            )


class ScenarioFile(pytest.File):
    """One scenario file: validated here, at collection, before any stack starts."""

    def collect(self) -> Iterator[pytest.Item]:
        state = _session(self.config)
        if state.registry is None:
            from sandbox.scenarios import dags

            state.registry = dags.scan()
        try:
            loaded = load(self.path, registry=state.registry)
        except ScenarioLoadError as exc:
            raise self.CollectError("\n".join(str(i) for i in exc.issues)) from exc
        item = ScenarioItem.from_parent(self, name=loaded.scenario.name, loaded=loaded)
        item.add_marker(pytest.mark.scenario)
        for cap in loaded.scenario.requires:
            item.add_marker(getattr(pytest.mark, cap))
        yield item


class ScenarioFailed(Exception):
    def __init__(self, result: ScenarioResult, bundle: Path | None) -> None:
        self.result = result
        self.bundle = bundle
        super().__init__(result.failure_text())


def scenario_skip(backend: Backend, scenario: Any) -> str | None:
    """Why ``scenario`` cannot run on ``backend`` (None when it can): the one rule for the plugin and the
    benchmarks."""
    from sandbox.scenarios.model import TaskPoint

    if reason := service_fault_skip(backend, scenario):
        return reason
    needs = list(scenario.requires)
    if scenario.all_task_faults() or any(
        isinstance(f.at, TaskPoint) and f.at.event == "start" for f in scenario.all_service_faults()
    ):
        needs.append("faults")  # task faults, and the hold of a service fault's start point
    if scenario.trigger == "schedule":
        needs.append("schedules")
    for cap in needs:
        if cap == "gpu":
            from sandbox.gpu import detect

            info = detect()
            if not info.available:
                return f"needs a GPU: {info.reason}"
        if cap not in backend.capabilities():
            return f"needs capability {cap!r}, which the {backend.name} backend does not offer"
    return None


class StackItem(pytest.Item):
    """Starts (or reuses) the session's stack: reported as its own line, row and JUnit test case."""

    def runtest(self) -> None:
        state = _session(self.config)
        state.stack()
        assert state.up is not None
        self.user_properties.append(("reused", str(state.up.reused).lower()))
        self.user_properties.append(("up_seconds", f"{state.up.seconds:.2f}"))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return f"the stack did not start: {excinfo.value}"

    def reportinfo(self) -> tuple[str, int, str]:
        backend = self.config.getoption("backend")
        return "stack", 0, f"stack: {backend} backend, sandbox {self.config.getoption('sandbox_name')}"


def service_fault_skip(backend: Backend, scenario: Any) -> str | None:
    """Why this backend cannot inject the scenario's service faults (None when it can)."""
    from sandbox.scenarios.model import TaskPoint
    from sandbox.stack import ServiceFaults

    wanted = scenario.all_service_faults()
    if not wanted:
        return None
    if "service_faults" not in backend.capabilities() or not isinstance(backend, ServiceFaults):
        return f"needs capability 'service_faults', which the {backend.name} backend does not offer"
    for fault in wanted:
        if fault.action not in backend.service_control(fault.service).actions:
            return f"needs '{fault.action}' of {fault.service}, which the {backend.name} backend cannot do"
        if isinstance(fault.at, TaskPoint) and fault.at.event == "registered" and not hasattr(
            backend, "sql_session"
        ):
            return (
                f"needs the 'registered' fault point, which holds an MLflow run in the {backend.name} "
                "backend's Postgres: only the local backend gives that access"
            )
    return None


class ScenarioItem(pytest.Item):
    """Runs one scenario through the runner and fails with every mismatch listed."""

    def __init__(self, *, loaded: LoadedScenario, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loaded = loaded
        self.result: ScenarioResult | None = None
        self._skip: tuple[str | None] | None = None

    def skip_reason(self) -> str | None:
        """Why this scenario cannot run on the session's backend (None when it can); asked once."""
        if self._skip is None:
            self._skip = (scenario_skip(_session(self.config).get_backend(), self.loaded.scenario),)
        return self._skip[0]

    def setup(self) -> None:
        problem = _session(self.config).task_runtime_problem()
        if problem:
            missing(problem)
        reason = self.skip_reason()
        if reason:
            pytest.skip(reason)

    def runtest(self) -> None:
        state = _session(self.config)
        label = self.loaded.path.stem
        self.result = result = state.run_scenario(self)
        platform = state.stack()
        self.user_properties.append(("wall_seconds", f"{result.wall_seconds:.2f}"))
        self.user_properties.append(("dag_runs", ",".join(r.observation.dag_run_id for r in result.runs)))
        for i, timeline in enumerate(result.timelines):
            for j, record in enumerate(timeline.faults):
                key = f"fault.run{i + 1}.{j + 1}"
                self.user_properties.append((key, record.summary()))
                if record.recovery_seconds is not None:
                    self.user_properties.append((f"{key}.recovery_seconds", f"{record.recovery_seconds:.2f}"))
            if timeline.faults:
                self.user_properties.append((f"timeline.run{i + 1}", timeline.render()))
        if result.has_service_faults:
            state.timelines.append((label, result.timeline_text()))
            for timeline in result.timelines:
                for record in timeline.faults:
                    state.progress().emit(label, f"fault: {record.summary()}", style="cyan")
        if result.passed:
            state.progress().emit(label, f"passed in {result.wall_seconds:.1f}s", style="green")
            return
        from sandbox.report import write_diagnostics

        bundle: Path | None = None
        try:
            bundle = write_diagnostics(platform, result, state.report_dir / label)
        except Exception as exc:  # the failure itself matters more than its bundle
            state.progress().emit(label, f"could not write diagnostics: {exc}", style="yellow")
        state.progress().emit(label, f"{result.verdict}; diagnostics: {bundle}", style="red")
        raise ScenarioFailed(result, bundle)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailed):
            exc = excinfo.value
            text = (
                f"scenario {self.loaded.scenario.name!r} ({self.loaded.display_path}) {exc.result.verdict}:\n"
            )
            text += exc.result.failure_text()
            if exc.bundle:
                text += f"\ndiagnostics bundle: {exc.bundle}"
            platform = _session(self.config).platform
            return platform.redact(text) if platform else text
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario: {self.loaded.scenario.name}"


# --- reporting ----------------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if isinstance(item, StackItem) and (rep.when == "call" or rep.outcome != "passed"):
        from sandbox.report import stack_row

        state = _session(item.config)
        reused = state.up is not None and state.up.reused
        verdict = "failed" if rep.outcome != "passed" else "reused" if reused else "started"
        wall = state.up.seconds if state.up is not None else rep.duration
        backend, name = item.config.getoption("backend"), item.config.getoption("sandbox_name")
        state.rows.append(stack_row(backend, name, verdict, wall))
        return
    if not isinstance(item, ScenarioItem):
        return
    if rep.when == "call" or (rep.when == "setup" and rep.outcome != "passed"):
        verdict = {"passed": "passed", "skipped": "skipped"}.get(rep.outcome, "failed")
        if item.result is not None and item.result.aborted is not None:
            verdict = "error"
        from sandbox.report import summary_row

        state = _session(item.config)
        name = item.loaded.path.stem
        # The scenario's own time: with --parallel, an item whose scenario ran ahead takes no time itself.
        wall = item.result.wall_seconds if item.result is not None else rep.duration
        state.rows.append(summary_row(name, item.result, verdict, wall))
        if rep.outcome == "skipped" and isinstance(rep.longrepr, tuple):
            state.rows[-1]["dag"] = f"skipped: {rep.longrepr[2].removeprefix('Skipped: ')}"
        if item.result is not None and not item.result.passed:
            bundle = None
            if isinstance(call.excinfo and call.excinfo.value, ScenarioFailed):
                bundle = call.excinfo.value.bundle  # type: ignore[union-attr]
            state.details.append((name, item.result.failure_text(), bundle))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or not state.rows:
        return
    from rich.console import Console

    from sandbox.report import summary_table, write_markdown

    console = Console(file=terminalreporter._tw._file, highlight=False)
    console.print(summary_table(state.rows))
    secrets = state.platform.secrets() if state.platform else []
    path = write_markdown(
        state.rows,
        state.details,
        backend=config.getoption("backend"),
        sandbox_name=config.getoption("sandbox_name"),
        total_wall=time.monotonic() - state.started,
        secrets=secrets,
        timelines=state.timelines,
    )
    terminalreporter.write_line(f"scenario report: {path}")


# --- fixtures for Python tests ------------------------------------------------------------------


@pytest.fixture(scope="session")
def sandbox_stack(pytestconfig: pytest.Config) -> Platform:
    """The running platform (started once per session; see the module docstring for teardown)."""
    return _session(pytestconfig).stack()


@pytest.fixture
def run_dag(sandbox_stack: Platform, request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Trigger one DAG run and return its RunObservation.

    ``run_dag(conf, dag=..., faults=[{"task": ..., "tries": [1]}], timeout=180)``; the experiment and
    model names default to fresh per-call names (isolation).
    """
    from sandbox.scenarios import faults as faults_mod
    from sandbox.scenarios.model import Expect, Fault, RunSpec
    from sandbox.scenarios.observations import RunObservation
    from sandbox.scenarios.runner import Runner, _slug

    runner = Runner(sandbox_stack)

    def _run(
        conf: dict[str, Any] | None = None,
        *,
        dag: str = "train_model_pipeline",
        faults: list[dict[str, Any]] | None = None,
        timeout: float = 180.0,
    ) -> RunObservation:
        token = os.urandom(3).hex()
        name = f"sbx-{_slug(request.node.name, 32)}-{token}"
        conf = {"experiment_name": name, "model_name": name, **(conf or {})}
        spec = RunSpec(conf=conf, faults=[Fault.model_validate(f) for f in faults or []])
        runner.ensure_dag(dag, time.monotonic() + 90)
        dag_run_id = f"sbx__pytest__{token}__1"
        with faults_mod.armed(sandbox_stack.airflow, dag_run_id, spec.task_faults):
            # Python tests assert on the observation themselves: no failure ends the wait early.
            runner.trigger_and_wait(dag, dag_run_id, conf, spec, Expect(), timeout, fail_fast=False)
        return runner.observe(dag, dag_run_id, conf["experiment_name"], conf["model_name"], None)

    return _run
