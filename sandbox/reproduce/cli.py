"""``sandbox reproduce``: read one production DAG run and write a scenario that replays it.

Registered into ``sandbox.cli`` when that module builds its parser (its ``PLUGIN_MODULES``). Every
line it prints is checked for the credentials' values (masked as ``***``).
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox import cli, paths
from sandbox.errors import SandboxError

if TYPE_CHECKING:
    from sandbox.reproduce.access import Credentials

DEFAULT_DAG = "train_model_pipeline"



def production_data_bucket() -> str:
    """Production's data bucket: the platform chart's ``dataBucket`` (its one home)."""
    import yaml

    values = yaml.safe_load((paths.CHARTS_DIR / "platform" / "values.yaml").read_text())
    return str(values["dataBucket"])


def _configure(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "Credentials: MLOPS_REPRO_AIRFLOW_TOKEN or MLOPS_REPRO_AIRFLOW_USERNAME/_PASSWORD, "
        "MLOPS_REPRO_MLFLOW_TOKEN or _USERNAME/_PASSWORD, MLOPS_REPRO_S3_ACCESS_KEY_ID/_SECRET_ACCESS_KEY "
        "(environment, or KEY=VALUE lines in --credentials FILE). --name names the sandbox that "
        "--copy-data copies into. See docs/reproduce.md."
    )
    p.add_argument(
        "--airflow-url", required=True, help="production Airflow API server, e.g. https://airflow.example"
    )
    p.add_argument("--dag-run-id", required=True, help="the DAG run to reproduce (Airflow's run id)")
    p.add_argument("--dag-id", default=DEFAULT_DAG, help=f"its DAG (default {DEFAULT_DAG})")
    p.add_argument(
        "--mlflow-url",
        default=None,
        help="production MLflow tracking server (pins params, metrics, registry)",
    )
    p.add_argument("--s3-url", default=None, help="production S3 endpoint for --copy-data (default: AWS)")
    p.add_argument(
        "--data-bucket", default=None, help="production's data bucket (default: the platform chart's)"
    )
    p.add_argument(
        "--copy-data",
        action="store_true",
        help="copy the run's split into the sandbox's S3 (--name) and pin it",
    )
    p.add_argument(
        "--data-from", default=None, metavar="SRC",
        help="copy the split from SRC instead: s3://bucket/prefix/ on production S3, or a local folder",
    )  # fmt: skip
    p.add_argument(
        "--credentials", type=Path, default=None, metavar="FILE", help="KEY=VALUE credentials file"
    )
    p.add_argument(
        "-o", "--output", type=Path, default=None, help="scenario file (default scenarios/repro/<run>.yaml)"
    )
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument(
        "--metric-tolerance", type=float, default=None, metavar="ABS",
        help="pin metrics to production's value +/- ABS (default 1e-6; 0 = exact)",
    )  # fmt: skip


def _command_line(args: argparse.Namespace) -> str:
    """The invocation, for the scenario's header (flags only: credentials never travel as flags)."""
    parts = ["sandbox", "reproduce", "--airflow-url", args.airflow_url, "--dag-id", args.dag_id,
             "--dag-run-id", args.dag_run_id]  # fmt: skip
    for flag, value in (("--mlflow-url", args.mlflow_url), ("--s3-url", args.s3_url),
                        ("--data-bucket", args.data_bucket), ("--data-from", args.data_from)):  # fmt: skip
        if value:
            parts += [flag, value]
    if args.copy_data:
        parts.append("--copy-data")
    if args.name:
        parts += ["--name", args.name]
    return shlex.join(parts)


def _run(args: argparse.Namespace) -> int:
    from sandbox.reproduce.access import load_credentials

    credentials = load_credentials(args.credentials)
    secrets = credentials.secret_values()
    try:
        return _reproduce(args, credentials)
    except SandboxError as exc:  # masked in place: subclasses differ in their constructors
        from sandbox.report import redact

        exc.what, exc.fix, exc.detail = (redact(t, secrets) for t in (exc.what, exc.fix, exc.detail))
        exc.args = (exc.render(),)
        raise


def _reproduce(args: argparse.Namespace, credentials: Credentials) -> int:
    from rich.console import Console

    from sandbox.config import load_settings
    from sandbox.report import redact
    from sandbox.reproduce import data, scenario
    from sandbox.reproduce.access import Production, endpoint_url
    from sandbox.reproduce.source import AirflowReader, MlflowReader

    console = Console(highlight=False)
    secrets = credentials.secret_values()
    started = time.monotonic()

    def say(text: str) -> None:
        console.print(redact(text, secrets), markup=False, highlight=False, soft_wrap=True)

    production = Production(
        airflow_url=endpoint_url(args.airflow_url, "Airflow", "--airflow-url"),
        credentials=credentials,
        mlflow_url=endpoint_url(args.mlflow_url, "MLflow", "--mlflow-url") if args.mlflow_url else None,
        s3_url=endpoint_url(args.s3_url, "S3", "--s3-url") if args.s3_url else None,
        data_bucket=args.data_bucket or production_data_bucket(),
    )
    copy = args.copy_data or bool(args.data_from)
    say(f"reading DAG run {args.dag_run_id!r} of {args.dag_id!r} from Airflow {production.airflow_url}")
    run = AirflowReader(production).read(args.dag_id, args.dag_run_id)
    tasks = ", ".join(f"{t.task_id} {t.state} (try {t.try_number})" for t in run.tasks.values())
    say(f"  {run.state}: {tasks}")
    if production.mlflow_url:
        experiment = run.conf.get("experiment_name", run.defaults.get("experiment_name"))
        say(f"reading its MLflow runs from {production.mlflow_url}")
        MlflowReader(production).read_into(run, str(experiment) if experiment else None)
        trained = run.trained
        if trained is not None:
            metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(trained.metrics.items()))
            say(f"  run {trained.run_id} ({trained.experiment_name}): {metrics}")
        for v in run.versions:
            say(f"  {v.model_name} v{v.version}: {scenario.GATE_TAG}={v.tags.get(scenario.GATE_TAG, '-')}")
    else:
        say("no --mlflow-url: params, metrics and the registry will not be pinned")
    output = args.output or scenario.default_output(run)
    scenario.ensure_writable(output, args.force)  # before copying anything
    copied = None
    if copy:
        split = data.read_production_split(production, run.dag_run_id, args.data_from)
        trained = run.trained
        expected = trained.params.get("data_content_hash") if trained else None
        settings = load_settings(name=args.name, backend=args.backend)
        from sandbox.stack import get_backend

        backend = get_backend(settings.backend, settings.name)
        ep, creds = backend.endpoints, backend.credentials
        client = data.s3_client(ep.s3_url, creds.s3_access_key, creds.s3_secret_key, "us-east-1")
        say(f"copying the split from {split.origin} to sandbox {backend.sandbox_name!r}")
        copied = data.copy_split(
            split,
            expected,
            client,
            ep.data_bucket,
            data.copy_key(run.dag_run_id),
            f"sandbox {backend.sandbox_name!r} S3 ({ep.s3_url})",
            on_step=lambda line: say(f"  {line}"),
        )
        say(f"  {copied.content_hash}" + (" = production's data_content_hash" if expected else ""))
    options = scenario.Options(
        command=_command_line(args),
        output=output,
        copied=copied,
        tolerance=scenario.DEFAULT_TOLERANCE if args.metric_tolerance is None else args.metric_tolerance,
    )
    text = scenario.build(run, options)
    scenario.check_no_secrets(text, credentials)
    scenario.validate(text, output)
    scenario.write(text, output, args.force)
    say(f"wrote {output} (valid; {len(text.splitlines())} lines) in {time.monotonic() - started:.1f}s")
    name = f" --name {args.name}" if args.name else ""
    say(f"next: sandbox run {output}{name}")
    return 0


cli.register(cli.Command("reproduce", "write a scenario that replays a production DAG run", _configure, _run))
