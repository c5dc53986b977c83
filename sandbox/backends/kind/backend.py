"""KindBackend: the production charts on a kind cluster (or an existing cluster by kube context).

``up`` runs the plan (``plan.py``) step by step, skipping what a warm cluster already has: the cluster
itself, the job image (content-hash tag) and every release whose inputs hash as at its last install.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from sandbox.backends.kind import access, cluster, helm, images, preflight
from sandbox.backends.kind.plan import Step, plan, state_dir
from sandbox.errors import ConfigError, ServiceError
from sandbox.images.engine import present
from sandbox.redaction import redact
from sandbox.secrets import SecretStore
from sandbox.stack import Capability, Credentials, Endpoints, ServiceControl, ServiceStatus, UpResult

ProgressFn = Callable[[str, str, str], None]


def _noop(_service: str, _event: str, _detail: str) -> None:
    return None


class KindBackend:
    """Options: ``gpu`` (nvkind-style GPU), ``keep`` (``down`` leaves the cluster), ``kube_context``
    (existing cluster: no create/delete/load; pass ``job_image``), ``host_ports``, ``node_address``
    (where NodePorts answer for an existing cluster), ``progress`` callback."""

    name = "kind"

    def __init__(
        self,
        sandbox_name: str = "default",
        gpu: bool = False,
        keep: bool = False,
        kube_context: str | None = None,
        *,
        host_ports: Mapping[str, int] | None = None,
        job_image: str | None = None,
        node_address: str = "127.0.0.1",
        progress: ProgressFn | None = None,
    ) -> None:
        if kube_context is not None and not kube_context.strip():
            raise ConfigError("--context is empty.", "Pass a context from `kubectl config get-contexts`.")
        self.sandbox_name = sandbox_name
        self.gpu = gpu
        self.keep = keep
        self.kube_context = kube_context
        self.cluster = cluster.cluster_name(sandbox_name)
        self.context = kube_context or cluster.kube_context(self.cluster)
        self.ports = cluster.host_ports(host_ports) if kube_context is None else dict(cluster.NODE_PORTS)
        self.job_image = job_image
        self.node_address = node_address
        self.progress = progress or _noop
        self.dir = state_dir(sandbox_name)
        self.state = SecretStore(self.dir)
        self.hashes_file = self.dir / "releases.json"

    # ---------------------------------------------------------------- protocol
    def up(self) -> UpResult:
        started = time.monotonic()
        tools = preflight.tools(need_kind=self.kube_context is None)
        preflight.docker_daemon(tools.docker)
        if self.gpu and self.kube_context is None:
            preflight.gpu_host(tools.docker)
        secrets = self.state.load_or_create_secrets()
        bins = {
            "docker": str(tools.docker.path),
            "helm": str(tools.helm.path),
            "kubectl": str(tools.kubectl.path),
        }
        if tools.kind:
            bins["kind"] = str(tools.kind.path)
        steps = plan(self.sandbox_name, gpu=self.gpu, kube_context=self.kube_context, host_ports=self.ports
                     if self.kube_context is None else None, job_image=self.job_image, secrets=secrets,
                     binaries=bins)  # fmt: skip
        hashes = self._hashes()
        reused = self.kube_context is None and cluster.exists(bins["kind"], self.cluster)
        ran = 0
        for step in steps:
            self._write_files(step)  # before _done: a release's hash covers its generated values file
            if self._done(step, bins, reused, hashes):
                self.progress(step.key, "reused", step.title)
                continue
            self.progress(step.key, "starting", step.title)
            self._run(step)
            ran += 1
            if step.key.startswith("helm:"):
                hashes[step.key] = self._release_hash(step)
                self._save_hashes(hashes)
            self.progress(step.key, "ready", step.title)
        if self.schedules_marker.exists():  # left by a `trigger: schedule` scenario that was interrupted
            self.progress("schedules", "stopping", "schedules left on by an interrupted scenario")
            self.set_schedules(False)
            ran += 1
        self.ready_for_work()
        return UpResult(self.endpoints, reused=reused and ran == 0, seconds=time.monotonic() - started,
                        services=self.status())  # fmt: skip

    def down(self, *, purge: bool = False) -> None:
        if self.kube_context is None and not self.keep:
            kind = preflight.tools().kind
            if kind and cluster.exists(str(kind.path), self.cluster):
                subprocess.run(cluster.delete_argv(str(kind.path), self.cluster), check=False, timeout=300)
            with contextlib.suppress(OSError):
                self.hashes_file.unlink()
        if purge:
            shutil.rmtree(self.dir, ignore_errors=True)

    def exists(self) -> bool:
        return self.dir.is_dir()

    def status(self) -> list[ServiceStatus]:
        out = []
        for service, url in access.health_urls(self.endpoints).items():
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    out.append(ServiceStatus(service, resp.status == 200, f"HTTP {resp.status}", url=url))
            except OSError as exc:
                out.append(ServiceStatus(service, False, str(exc)[:200], url=url))
        return out

    @property
    def endpoints(self) -> Endpoints:
        host = "127.0.0.1" if self.kube_context is None else self.node_address
        return access.endpoints(
            self.ports, host=host, credentials_file=self.state.secrets_file, state_dir=self.dir
        )

    @property
    def credentials(self) -> Credentials:
        """The sandbox's generated credentials (created on first use, kept under the state folder)."""
        self.state.load_or_create_secrets()
        return self.state.credentials()

    def capabilities(self) -> frozenset[Capability]:
        # "faults": the Airflow chart's airflowLocalSettings carries the sandbox's cluster policy
        # (helm.airflow_generated_values); "service_faults": workloads scaled to zero and back (faults.py);
        # "schedules": the scheduler's environment (schedules.py).
        caps: set[Capability] = {"kubernetes", "faults", "service_faults", "schedules"}
        if self.gpu:
            caps.add("gpu")
        return frozenset(caps)

    def service_control(self, name: str) -> ServiceControl:
        """Scale one service's workload to zero and back (``sandbox.backends.kind.faults``)."""
        from sandbox.backends.kind.faults import KindServiceControl

        return KindServiceControl(name, self._kubectl(), self.context, self._run)

    def set_schedules(self, on: bool) -> str:
        """Set (or remove) the scheduler's schedules variable and wait for its rollout (schedules.py);
        a marker file lets ``up`` remove one an interrupted scenario left set."""
        from sandbox.backends.kind import schedules

        if on:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.schedules_marker.touch()
        for step in schedules.steps(self._kubectl(), self.context, on):
            self._run(step)
        if not on:
            self.schedules_marker.unlink(missing_ok=True)
        return f"scheduler rolled out with schedules {'on' if on else 'off'}"

    def ready_for_work(self) -> None:
        """Make the api-server build its execution API now (``execution_api_ready``): ``helm --wait``
        saw it ready, but its first request takes seconds, and would be the first task's start call."""
        from sandbox.clients.airflow import execution_api_ready  # the REST client: not for every command

        url = self.endpoints.airflow_url
        try:
            execution_api_ready(url)
        except OSError as exc:
            raise ServiceError(
                f"The Airflow execution API at {url}/execution/ does not answer: {exc}",
                "Tasks call it to start: see the api-server's log (`sandbox status --backend kind`, and the "
                "diagnostics bundle of a scenario run).",
            ) from exc
        self.progress("ready-for-work", "ready", "the execution API answers")

    @property
    def schedules_marker(self) -> Path:
        return self.dir / "schedules-on"

    @staticmethod
    def _kubectl() -> str:
        return shutil.which("kubectl") or str(Path(".tools/bin/kubectl").resolve())

    def revive(self, skip: Iterable[str] = ()) -> list[str]:
        """Nothing to do: the kubelet restarts what exits."""
        return []

    def diagnostics(self, dest: Path) -> Path:
        """kubectl describe/logs/events for the namespace (and nvidia with --gpu) under ``dest/kind``."""
        folder = dest / "kind"
        folder.mkdir(parents=True, exist_ok=True)
        base = [self._kubectl(), "--context", self.context]
        namespaces = [helm.NAMESPACE] + (["nvidia"] if self.gpu else [])
        secrets = self.credentials.secrets() if self.state.secrets_file.exists() else []
        for ns in namespaces:
            for fname, args in {
                f"{ns}-pods.txt": ["get", "pods", "-o", "wide"],
                f"{ns}-describe.txt": ["describe", "pods"],
                f"{ns}-events.txt": ["get", "events", "--sort-by=.lastTimestamp"],
                f"{ns}-logs.txt": ["logs", "--all-containers", "--prefix", "--tail=500", "-l",
                                   "app.kubernetes.io/part-of=mlops-platform"],
                f"{ns}-airflow-logs.txt": ["logs", "--all-containers", "--prefix", "--tail=500",
                                           "-l", "release=airflow"],
            }.items():  # fmt: skip
                argv = [*base, "--namespace", ns, *args]
                out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
                (folder / fname).write_text(redact(out.stdout + out.stderr, secrets))
        return folder

    # ---------------------------------------------------------------- internals
    def _done(self, step: Step, bins: Mapping[str, str], reused: bool, hashes: Mapping[str, str]) -> bool:
        tag = step.argv[3] if step.key in ("image-build", "image-load") else ""
        if step.key == "cluster" or step.key.startswith("gpu-node-"):
            return reused
        if step.key == "image-build":
            return present(bins["docker"], tag)
        if step.key == "image-load":
            return images.on_node(bins["docker"], cluster.node_container(self.cluster), tag)
        if step.key.startswith("helm:"):
            return hashes.get(step.key) == self._release_hash(step)
        return False

    def _release_hash(self, step: Step) -> str:
        name = step.key.split(":", 1)[1]
        generated = self.dir / "airflow-values.generated.yaml"
        for release in helm.releases(
            gpu=self.gpu and self.kube_context is None, generated_airflow_values=generated
        ):
            if release.name == name:
                return helm.inputs_hash(release)
        return ""

    @staticmethod
    def _write_files(step: Step) -> None:
        for path, content in step.files.items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(content)

    def _run(self, step: Step) -> None:
        argv = [*step.argv, "-f", "-"] if step.stdin is not None else list(step.argv)
        try:
            out = subprocess.run(
                argv, input=step.stdin, capture_output=True, text=True, timeout=1800, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(f"{step.title}: no result in 30 minutes.", "See `sandbox status`.") from exc
        if out.returncode != 0:
            raise ServiceError(
                f"{step.title} failed (exit {out.returncode}): {step.command}",
                "Fix the cause below and run `sandbox up --backend kind` again (finished steps are skipped).",
                detail=(out.stdout + out.stderr)[-4000:],
            )

    def _hashes(self) -> dict[str, str]:
        try:
            return dict(json.loads(self.hashes_file.read_text()))
        except (OSError, ValueError):
            return {}

    def _save_hashes(self, hashes: Mapping[str, str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hashes_file.write_text(json.dumps(dict(hashes), indent=2))
