"""The docker task runtime's costs: the job image build (cold, after a job edit, present) and the per-step
container overhead against the local runtime's subprocess.

    .venv/bin/python benchmarks/bench_job_image.py [--runs 5]

- cold: ``docker build --no-cache`` of ``jobs/`` (the base image present: pulled, or the stand-in);
- job edit: a scratch copy of ``jobs/`` with one job file changed (the dependency layer cached);
- present: ``ensure_job_image`` finding the content-hash tag (what every warm ``up`` pays);
- per step: a container configured as ``DockerJobOperator`` configures a job's (create, start, wait,
  remove) running ``python -c "import mlops_jobs"``, against that command as a subprocess of the platform
  env (the local runtime). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sandbox import paths
from sandbox.images.build import build_argv, ensure_job_image
from sandbox.images.engine import check
from sandbox.images.tag import image_tag

sys.path.insert(0, str(paths.DAGS_DIR))
from mlops_pipeline.build import JOB_UID
from mlops_pipeline.containers import DockerJobOperator
from mlops_pipeline.steps import SMALL, Step

PROBE = "import mlops_jobs"


def _timed(argv: list[str], **kwargs: object) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True, **kwargs)  # type: ignore[call-overload]
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="containers / subprocesses per figure")
    args = ap.parse_args(argv)
    console = Console(highlight=False)
    engine = check("The job image benchmark needs Docker")
    docker = str(engine.docker)
    tag = ensure_job_image(engine.docker, paths.JOBS_DIR, image_tag(paths.JOBS_DIR), out=sys.stderr).tag
    table = Table(title=f"job image and containers (Docker {engine.version})")
    table.add_column("what")
    table.add_column("seconds", justify="right")

    with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
        cold_tag = "mlops-jobs:bench-cold"
        cold = _timed([*build_argv(docker, cold_tag, paths.JOBS_DIR), "--no-cache"])
        table.add_row("build, cold (--no-cache)", f"{cold:.1f}")
        subprocess.run([docker, "rmi", "-f", cold_tag], capture_output=True, check=False)
        jobs = Path(tmp) / "jobs"
        shutil.copytree(paths.JOBS_DIR, jobs, ignore=shutil.ignore_patterns("__pycache__"))
        main_py = jobs / "mlops_jobs" / "__main__.py"
        main_py.write_text(main_py.read_text() + "\n# benchmark edit\n")
        edit_tag = image_tag(jobs)
        with open("/dev/null", "w") as quiet:
            edit = ensure_job_image(engine.docker, jobs, edit_tag, out=quiet)
        table.add_row("build after a job edit (deps cached)", f"{edit.seconds:.1f}")
        subprocess.run([docker, "rmi", "-f", edit_tag], capture_output=True, check=False)
    present = ensure_job_image(engine.docker, paths.JOBS_DIR, tag)
    table.add_row("image present (warm up: skipped)", f"{present.seconds:.2f}")

    import docker as docker_sdk

    client = docker_sdk.from_env()
    op = DockerJobOperator(task_id="bench", step=Step("bench", "preprocess", {}, SMALL, image=tag),
                           platform_configmap="p", platform_secret="p", secret_keys=[], job_uid=JOB_UID,
                           labels={"mlops-sandbox.bench": "1"})  # fmt: skip
    container_s, local_s = [], []
    with tempfile.TemporaryDirectory(prefix="bench-xcom-") as xcom:
        Path(xcom).chmod(0o777)
        for _ in range(args.runs):
            config = op.container_config({}, xcom, engine_cpus=1, labels={})
            config["command"] = ["python", "-c", PROBE]
            started = time.monotonic()
            container = client.containers.create(**config)
            container.start()
            container.wait()
            container.remove(force=True)
            container_s.append(time.monotonic() - started)
            local_s.append(_timed([sys.executable, "-c", PROBE], env={"PYTHONPATH": str(paths.JOBS_DIR)}))
    client.close()
    table.add_row(f"step in a container (median of {args.runs})", f"{statistics.median(container_s):.2f}")
    table.add_row(f"step as a subprocess, local runtime (median of {args.runs})",
                  f"{statistics.median(local_s):.2f}")  # fmt: skip
    overhead = statistics.median(container_s) - statistics.median(local_s)
    table.add_row("container overhead per step", f"{overhead:.2f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
