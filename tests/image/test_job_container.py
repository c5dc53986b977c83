"""The production job image under its pod's constraints, on a real Docker engine, as the docker task runtime
(``DockerJobOperator``) runs it: the job runs as uid 10001 from the image, only ``/tmp`` and the XCom folder
are writable, exit codes keep their meaning (a failed gate is final), the XCom file comes back, and a job
importing a module that ``jobs/requirements.txt`` lacks fails with the ImportError in the task log (proved on
a scratch copy of ``jobs/``: the local runtime, whose platform env has the module, would pass).

Needs Docker: skipped with the reason where no engine is usable, failed under CI=true (.ci/run starts one).
The image is built as ``sandbox up --task-runtime docker`` builds it (a stand-in base where none is pulled).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sandbox import paths
from sandbox.backends.local.runtime import CONTAINER_LABEL, remove_containers
from sandbox.errors import PreflightError
from sandbox.images import engine as engine_mod
from sandbox.images.build import ensure_job_image
from sandbox.images.tag import image_tag
from sandbox.pytest_plugin import missing

sys.path.insert(0, str(paths.DAGS_DIR))
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from mlops_pipeline.build import JOB_UID
from mlops_pipeline.containers import DockerJobOperator
from mlops_pipeline.outcomes import GATE_FAILED_EXIT_CODE
from mlops_pipeline.steps import SMALL, Step

pytestmark = pytest.mark.slow
TEST_LABEL = {"mlops-sandbox.test": "tests/image"}


@pytest.fixture(scope="module")
def engine() -> engine_mod.Engine:
    try:
        return engine_mod.check("The job image tests run it in containers")
    except PreflightError as exc:
        missing(exc.render())


@pytest.fixture(scope="module")
def job_image(engine: engine_mod.Engine) -> str:
    """The job image from the repo's jobs/, built unless the engine has it (output on stderr)."""
    return ensure_job_image(engine.docker, paths.JOBS_DIR, image_tag(paths.JOBS_DIR), out=sys.stderr).tag


@pytest.fixture(scope="module")
def client(engine: engine_mod.Engine) -> Iterator[Any]:
    import docker

    c = docker.from_env()
    try:
        yield c
        for leftover in c.containers.list(all=True, filters={"label": "mlops-sandbox.test"}):
            leftover.remove(force=True)
    finally:
        c.close()


def operator(image: str, job: str = "preprocess", **kwargs: Any) -> DockerJobOperator:
    return DockerJobOperator(
        task_id=f"{job}_probe", step=Step(f"{job}_probe", job, {}, SMALL, image=image),
        platform_configmap="platform", platform_secret="platform", secret_keys=[], job_uid=JOB_UID,
        labels=TEST_LABEL, **kwargs,
    )  # fmt: skip


def run_python(client: Any, image: str, code: str, tmp_path: Path, *, xcom: bool = False) -> tuple[int, str]:
    """``python -c code`` in a container configured exactly as the operator configures a job's."""
    op = operator(image, do_xcom_push=xcom)
    xcom_dir = tmp_path / "xcom"
    xcom_dir.mkdir(mode=0o777, exist_ok=True)
    xcom_dir.chmod(0o777)
    config = op.container_config({}, str(xcom_dir), engine_cpus=1, labels={})
    config["command"] = ["python", "-c", code]
    container = client.containers.create(**config)
    try:
        container.start()
        code_ = int(container.wait(timeout=120)["StatusCode"])
        return code_, container.logs().decode()
    finally:
        container.remove(force=True)


def test_the_job_runs_as_the_images_uid_10001_with_home_in_tmp(
    client: Any, job_image: str, tmp_path: Path
) -> None:
    config = operator(job_image).container_config({}, str(tmp_path), engine_cpus=1, labels={})
    assert "user" not in config, "the image's USER runs, as in the pod (runAsUser checks it, never overrides)"
    probe = "import os; print(os.getuid(), os.getgid(), os.environ['HOME'])"
    code, out = run_python(client, job_image, probe, tmp_path)
    assert (code, out.split()) == (0, [str(JOB_UID), str(JOB_UID), "/tmp"]), out


@pytest.mark.parametrize("path", ["/opt/mlops/mlops_jobs/injected.py", "/etc/x", "/home/x"])
def test_writing_outside_tmp_fails_on_the_read_only_root(client: Any, job_image: str, tmp_path: Path,
                                                          path: str) -> None:  # fmt: skip
    code, out = run_python(client, job_image, f"open({path!r}, 'w').write('x')", tmp_path)
    # The read-only mount refuses it (EROFS), before file permissions (EACCES) are even asked.
    assert code != 0 and "Read-only file system" in out, out


def test_tmp_and_the_xcom_folder_are_writable_and_the_xcom_comes_back(
    client: Any, job_image: str, tmp_path: Path
) -> None:
    op = operator(job_image, do_xcom_push=True)
    xcom_dir = tmp_path / "xcom"
    xcom_dir.mkdir()
    xcom_dir.chmod(0o777)
    config = op.container_config({}, str(xcom_dir), engine_cpus=1, labels={})
    write = ("import json; open('/tmp/scratch', 'w').write('x'); "
             "json.dump({'rows': 3}, open('/airflow/xcom/return.json', 'w'))")  # fmt: skip
    config["command"] = ["python", "-c", write]
    container = client.containers.create(**config)
    try:
        assert op._run(container) == {"rows": 3}
    finally:
        container.remove(force=True)


@pytest.mark.parametrize(("exit_code", "final"), [(GATE_FAILED_EXIT_CODE, True), (1, False)])
def test_exit_codes_keep_their_meaning(client: Any, job_image: str, tmp_path: Path, exit_code: int,
                                       final: bool) -> None:  # fmt: skip
    """A failed gate fails the task without a retry (AirflowFailException); any other code may be retried."""
    op = operator(job_image)
    config = op.container_config({}, str(tmp_path), engine_cpus=1, labels={})
    config["command"] = ["python", "-c", f"import sys; print('the job says why'); sys.exit({exit_code})"]
    container = client.containers.create(**config)
    try:
        with pytest.raises(AirflowException, match=f"exited with {exit_code}: the job says why") as err:
            op._run(container)
    finally:
        container.remove(force=True)
    assert isinstance(err.value, AirflowFailException) is final


@pytest.fixture
def scratch_image(engine: engine_mod.Engine, job_image: str, tmp_path: Path) -> Iterator[str]:
    """A scratch copy of jobs/ whose preprocess job imports ``psutil``, which jobs/requirements.txt lacks."""
    jobs = tmp_path / "jobs"
    shutil.copytree(paths.JOBS_DIR, jobs, ignore=shutil.ignore_patterns("__pycache__"))
    module = jobs / "mlops_jobs" / "preprocess.py"
    module.write_text(module.read_text() + "\nimport psutil  # noqa: E402,F401  (not in requirements.txt)\n")
    tag = image_tag(jobs)
    ensure_job_image(engine.docker, jobs, tag, out=sys.stderr)
    try:
        yield tag
    finally:
        subprocess.run([str(engine.docker), "rmi", "-f", tag], capture_output=True, timeout=120, check=False)


def test_a_module_missing_from_the_requirements_fails_with_the_import_error_in_the_task_log(
    scratch_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    assert importlib.util.find_spec("psutil") is not None, "the local runtime (platform env) would import it"
    platform = tmp_path / "platform"
    for kind in ("configmaps", "secrets"):
        (platform / kind).mkdir(parents=True)
        (platform / kind / "platform.json").write_text(json.dumps({}))
    monkeypatch.setenv("MLOPS_LOCAL_PLATFORM_DIR", str(platform))
    ti = SimpleNamespace(dag_id="probe", run_id="manual__probe", task_id="preprocess_probe", try_number=1)
    capfd.readouterr()
    with pytest.raises(AirflowException) as err:
        operator(scratch_image).execute({"ti": ti})
    assert not isinstance(err.value, AirflowFailException), "an import error may be transient to Airflow"
    # The operator's task logger (outside a task runner it writes to the console, inside to the task log).
    logged = "".join(capfd.readouterr())
    assert "ModuleNotFoundError: No module named 'psutil'" in logged, logged[-2000:]
    assert "No module named 'psutil'" in str(err.value)


def test_down_removes_the_job_containers_a_killed_worker_left(
    engine: engine_mod.Engine, client: Any, job_image: str
) -> None:
    """A job container outlives a worker killed with -9; ``down`` (``_reap``) removes it by the sandbox's
    marker, and only it."""
    marker = f"/tmp/sandbox-{uuid.uuid4().hex[:8]}"
    argv = ["python", "-c", "import time; time.sleep(300)"]
    ours = client.containers.run(job_image, argv, detach=True, labels={CONTAINER_LABEL: marker, **TEST_LABEL})
    other = client.containers.run(job_image, argv, detach=True,
                                  labels={CONTAINER_LABEL: marker + "-other", **TEST_LABEL})  # fmt: skip
    try:
        assert remove_containers(engine.host, marker) == 1
        assert client.containers.list(all=True, filters={"label": f"{CONTAINER_LABEL}={marker}"}) == []
        other.reload()
        assert other.status == "running", "another sandbox's container stays"
    finally:
        for c in (ours, other):
            with contextlib.suppress(Exception):
                c.remove(force=True)
