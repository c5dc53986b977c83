"""The kind backend's plan: every command and manifest ``up`` runs, in order, without running any.

``sandbox plan --backend kind [--gpu] [--context CTX]`` prints it; ``KindBackend.up`` executes the same
steps (skipping those whose work is already done), so what is printed is what runs.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sandbox import paths
from sandbox.backends.kind import cluster, dags, helm, images
from sandbox.images.build import build_argv
from sandbox.images.tag import image_tag


@dataclass(frozen=True)
class Step:
    """One command. ``stdin`` is a manifest piped to it; ``files`` are files it reads (path -> content)."""

    key: str
    title: str
    argv: tuple[str, ...]
    stdin: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)

    @property
    def command(self) -> str:
        return shlex.join(self.argv) + (" -f - <<EOF" if self.stdin is not None else "")


def state_dir(sandbox_name: str) -> Path:
    """Where the kind backend keeps one sandbox's generated files and secrets."""
    return paths.state_root() / "kind-backend" / sandbox_name


def plan(
    sandbox_name: str = "default",
    *,
    gpu: bool = False,
    kube_context: str | None = None,
    host_ports: Mapping[str, int] | None = None,
    job_image: str | None = None,
    secrets: Mapping[str, str] | None = None,
    binaries: Mapping[str, str] | None = None,
) -> list[Step]:
    """The ordered steps of ``up``.

    Args:
        gpu: nvkind-style GPU node, NVIDIA device plugin, the ``sandbox-gpu`` overlays.
        kube_context: target an existing cluster (no kind create/load; the job image must be pullable
            there: pass ``job_image``).
        host_ports: host loopback ports for ``airflow``, ``mlflow``, ``s3`` (kind only).
        secrets: the generated secrets; None prints ``<redacted>`` in the Secret manifests.
        binaries: tool name -> executable (default: the bare names, as printed).
    """
    bins = {"docker": "docker", "kind": "kind", "helm": "helm", "kubectl": "kubectl", **dict(binaries or {})}
    name = cluster.cluster_name(sandbox_name)
    context = kube_context or cluster.kube_context(name)
    folder = state_dir(sandbox_name)
    tag = job_image or image_tag(paths.JOBS_DIR)
    steps: list[Step] = []

    if kube_context is None:
        config_path = folder / "kind-config.yaml"
        config = cluster.kind_config(
            name, gpu=gpu, dags_dir=paths.DAGS_DIR, ports=cluster.host_ports(host_ports)
        )
        steps.append(Step("cluster", f"create kind cluster {name} (reused when it exists)",
                          tuple(cluster.create_argv(bins["kind"], name, config_path)),
                          files={str(config_path): cluster.render_config(config)}))  # fmt: skip
        if gpu:
            for i, (title, argv) in enumerate(cluster.gpu_setup_argv(bins["docker"], name)):
                steps.append(Step(f"gpu-node-{i}", f"GPU node: {title}", tuple(argv)))
        if job_image is None:
            steps.append(Step("image-build", f"build the job image {tag} (skipped when present)",
                              tuple(build_argv(bins["docker"], tag, paths.JOBS_DIR))))  # fmt: skip
        steps.append(Step("image-load", f"kind load {tag} (skipped when on the node)",
                          tuple(images.load_argv(bins["kind"], tag, name))))  # fmt: skip

    kubectl = (bins["kubectl"], "--context", context)
    if gpu and kube_context is None:
        steps.append(Step("runtime-class", f"RuntimeClass {cluster.RUNTIME_CLASS} (nvkind)",
                          (*kubectl, "apply"),
                          stdin=cluster.runtime_class_manifest()))  # fmt: skip
    namespaces = [helm.NAMESPACE] + (["nvidia"] if gpu and kube_context is None else [])
    steps.append(
        Step("namespace", "namespaces", (*kubectl, "apply"), stdin=helm.namespace_manifest(namespaces))
    )
    steps.append(Step("secrets", "Secrets the charts reference (generated per sandbox)",
                      (*kubectl, "--namespace", helm.NAMESPACE, "apply"),
                      stdin=helm.secrets_manifest(secrets)))  # fmt: skip
    # kind nodes mount the repo's dags/ (the overlay's hostPath); any other cluster gets them by ConfigMap.
    dags_dir = paths.DAGS_DIR if kube_context is not None else None
    if dags_dir is not None:
        steps.append(Step("dags", f"ConfigMap {dags.CONFIGMAP} from {dags_dir} (existing cluster)",
                          (*kubectl, "--namespace", helm.NAMESPACE, "apply"),
                          stdin=dags.configmap_manifest(dags_dir, namespace=helm.NAMESPACE)))  # fmt: skip

    generated = folder / "airflow-values.generated.yaml"
    overlay = paths.CHARTS_DIR / "airflow" / f"values-{helm.overlay_name(gpu)}.yaml"
    values = helm.airflow_generated_values(overlay, tag, dags_dir=dags_dir)
    generated_text = yaml.safe_dump(values, sort_keys=False)
    for release in helm.releases(gpu=gpu and kube_context is None, generated_airflow_values=generated):
        files = {str(generated): generated_text} if release.name == "airflow" else {}
        steps.append(Step(f"helm:{release.name}", f"install {release.name}",
                          tuple(helm.upgrade_argv(bins["helm"], release, context)), files=files))  # fmt: skip
    return steps


def format_plan(steps: list[Step]) -> str:
    """Human-readable plan: numbered commands, then each file and manifest they use."""
    lines: list[str] = []
    for i, step in enumerate(steps, 1):
        lines.append(f"# {i}. {step.title}")
        for path, content in step.files.items():
            lines += [f"# file {path}:", *(f"#   {line}" for line in content.rstrip().splitlines())]
        lines.append(step.command)
        if step.stdin is not None:
            lines += [step.stdin.rstrip(), "EOF"]
        lines.append("")
    return "\n".join(lines)
