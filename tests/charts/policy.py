"""The pod policy every workload must meet, as a pure function over a pod spec (Kubernetes JSON shape).

Each container (init containers and sidecars included):
- resolves to a non-root UID: ``runAsUser`` > 0 on the container or the pod, or an image whose declared
  numeric non-root user is listed in ``charts/images.yaml`` (what the kubelet can verify for runAsNonRoot);
  and nothing says ``runAsUser: 0``;
- runs an image that is pinned (a version tag that is not ``latest``, or a digest) and on the allow-list
  (``images``), or one the harness builds (``built``: its repository with any tag but ``latest``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from sandbox.paths import CHARTS_DIR


@cache
def allow_list() -> tuple[dict[str, int | None], dict[str, int | None]]:
    """(pinned ref -> declared user, built repository -> declared user) from charts/images.yaml."""
    doc = yaml.safe_load((CHARTS_DIR / "images.yaml").read_text())
    return ({i["ref"]: i.get("user") for i in doc["images"]},
            {b["repository"]: b.get("user") for b in doc["built"]})  # fmt: skip


def _pinned(ref: str) -> bool:
    if "@sha256:" in ref:
        return True
    name, _, tag = ref.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def declared_user(image: str) -> int | None:
    """The image's declared non-root user from the allow-list (None: root, unknown, or not listed)."""
    refs, built = allow_list()
    if image in refs:
        return refs[image]
    repository = image.split("@", 1)[0].rpartition(":")[0]
    return built.get(repository)


def image_problem(image: str) -> str | None:
    refs, built = allow_list()
    if not _pinned(image):
        return f"image {image} is not pinned (version tag or digest)"
    repository = image.split("@", 1)[0].rpartition(":")[0]
    if image not in refs and repository not in built:
        return f"image {image} is not on the allow-list (charts/images.yaml)"
    return None


def violations(where: str, spec: dict[str, Any]) -> list[str]:
    """Every policy violation of one pod spec, each naming the container and the fix."""
    problems = []
    pod_sc = spec.get("securityContext") or {}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    for c in containers:
        name = f"{where}/{c['name']}"
        sc = c.get("securityContext") or {}
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        if uid == 0:
            problems.append(f"{name}: runAsUser is 0 (root)")
        elif uid is None and not declared_user(c["image"]):
            problems.append(
                f"{name}: no runAsUser and {c['image']} declares no non-root user in charts/images.yaml "
                "(root by default): set securityContext.runAsUser"
            )
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{name}: capabilities are not dropped (drop: [ALL])")
        if problem := image_problem(c["image"]):
            problems.append(f"{name}: {problem}")
    return problems
