"""Service faults on kind: a platform service's workload scaled to zero, and back.

| action        | inject                               | restore                                          |
|---------------|--------------------------------------|--------------------------------------------------|
| `stop`        | `kubectl scale --replicas=0`         | `kubectl scale --replicas=1`, `rollout status`   |
| `unavailable` | the same (volumes, so data, stay)    | the same                                         |

`kill` and `pause` are not offered: the kubelet restarts a killed container at once (no outage to
observe), and a container cannot be SIGSTOPped through the Kubernetes API. Scenarios that need them are
skipped on kind with that reason. Every sandbox workload runs one replica (values-sandbox*.yaml).
"""

from __future__ import annotations

from collections.abc import Callable

from sandbox.backends.kind.plan import Step
from sandbox.errors import ConfigError
from sandbox.stack import SERVICE_NAMES

NAMESPACE = "mlops"
# Service -> (workload kind, name): the project charts' fullnames and the official Airflow chart's
# `<release>-<component>` names (release `airflow`; its triggerer is a StatefulSet with persistence on).
WORKLOADS: dict[str, tuple[str, str]] = {
    "postgres": ("statefulset", "postgres"),
    "s3": ("statefulset", "s3"),
    "mlflow": ("deployment", "mlflow"),
    "airflow-api-server": ("deployment", "airflow-api-server"),
    "airflow-scheduler": ("deployment", "airflow-scheduler"),
    "airflow-dag-processor": ("deployment", "airflow-dag-processor"),
    "airflow-triggerer": ("statefulset", "airflow-triggerer"),
}
ACTIONS = frozenset({"stop", "unavailable"})
ROLLOUT_TIMEOUT = "5m"


def _workload(service: str) -> tuple[str, str]:
    if service not in WORKLOADS:
        raise ConfigError(f"Unknown service {service!r}.", f"Use one of: {', '.join(SERVICE_NAMES)}.")
    return WORKLOADS[service]


def inject_steps(kubectl: str, context: str, service: str, action: str) -> list[Step]:
    """The commands that put ``action`` on ``service`` in place."""
    if action not in ACTIONS:
        raise ConfigError(
            f"The kind backend cannot {action!r} a service.", f"Use one of: {', '.join(sorted(ACTIONS))}."
        )
    kind, name = _workload(service)
    base = (kubectl, "--context", context, "--namespace", NAMESPACE)
    scale = (*base, "scale", f"{kind}/{name}", "--replicas=0")
    return [Step(f"fault:{service}", f"{action} {service}", scale)]


def restore_steps(kubectl: str, context: str, service: str, action: str) -> list[Step]:
    """The commands that undo ``action`` and wait until the workload is ready again."""
    kind, name = _workload(service)
    base = (kubectl, "--context", context, "--namespace", NAMESPACE)
    return [
        Step(f"restore:{service}", f"start {service} again",
             (*base, "scale", f"{kind}/{name}", "--replicas=1")),
        Step(
            f"ready:{service}", f"wait for {service}",
            (*base, "rollout", "status", f"{kind}/{name}", f"--timeout={ROLLOUT_TIMEOUT}"),
        ),
    ]  # fmt: skip


class KindServiceControl:
    """One service of a kind sandbox under a fault (``sandbox.stack.ServiceControl``)."""

    actions = ACTIONS

    def __init__(self, name: str, kubectl: str, context: str, run: Callable[[Step], None]) -> None:
        _workload(name)
        self.name = name
        self._kubectl, self._context, self._run = kubectl, context, run

    def inject(self, action: str) -> str:
        for step in inject_steps(self._kubectl, self._context, self.name, action):
            self._run(step)
        return "scaled to 0 replicas"

    def restore(self, action: str) -> str:
        for step in restore_steps(self._kubectl, self._context, self.name, action):
            self._run(step)
        return "scaled to 1 replica, rolled out"
