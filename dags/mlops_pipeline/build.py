"""Step -> Airflow operator, by the deployment's runtime (``MLOPS_TASK_RUNTIME``)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from mlops_pipeline.steps import PLATFORM_SECRETS, SCRATCH_DIR, Deployment, Step

GPU_RESOURCE = "nvidia.com/gpu"
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
# The job image's numeric USER (jobs/Dockerfile). Every container of a task pod runs as it: the kubelet
# refuses a container under `runAsNonRoot` that resolves to root, and the provider's xcom sidecar
# (alpine, root by default) would otherwise be one.
JOB_UID = 10001


def build_task(step: Step, deployment: Deployment, **kwargs: Any) -> BaseOperator:
    if deployment.runtime == "docker":
        from mlops_pipeline.containers import DockerJobOperator

        return DockerJobOperator(
            task_id=step.task_id,
            step=step,
            do_xcom_push=step.xcom,
            platform_configmap=deployment.platform_configmap,
            platform_secret=deployment.platform_secret,
            secret_keys=PLATFORM_SECRETS,
            job_uid=JOB_UID,
            labels={**deployment.docker_labels, **step_labels(step)},
            **kwargs,
        )
    if deployment.runtime == "local":
        from mlops_pipeline.operators import LocalJobOperator

        return LocalJobOperator(
            task_id=step.task_id,
            args=step.args,
            env=step.env,
            do_xcom_push=step.xcom,
            platform_configmap=deployment.platform_configmap,
            platform_secret=deployment.platform_secret,
            secret_keys=PLATFORM_SECRETS,
            **kwargs,
        )
    return build_pod_operator(step, deployment, **kwargs)


def step_labels(step: Step) -> dict[str, str]:
    """Labels of a step's pod (or container)."""
    return {"app.kubernetes.io/part-of": "mlops-pipeline", "mlops/step": step.job}


def build_pod_operator(step: Step, deployment: Deployment, **kwargs: Any) -> BaseOperator:
    """A ``KubernetesPodOperator`` (``JobPodOperator``: a failed gate is not retried): credentials by
    secretKeyRef, the rest of the platform by envFrom."""
    from kubernetes.client import models as k8s

    from mlops_pipeline.pod import JobPodOperator

    env = [k8s.V1EnvVar(name=name, value=value) for name, value in step.env.items()]
    env += [
        k8s.V1EnvVar(
            name=name,
            value_from=k8s.V1EnvVarSource(
                secret_key_ref=k8s.V1SecretKeySelector(name=deployment.platform_secret, key=name)
            ),
        )
        for name in PLATFORM_SECRETS
    ]
    res = step.resources
    requests = {"cpu": res.cpu_request, "memory": res.memory_request}
    limits = {"cpu": res.cpu_limit, "memory": res.memory_limit}
    tolerations: list[k8s.V1Toleration] = []
    node_selector: dict[str, str] = {}
    if step.gpu:
        limits[GPU_RESOURCE] = "1"  # extended resources: the request defaults to the limit
        tolerations = [k8s.V1Toleration(key=GPU_RESOURCE, operator="Exists", effect="NoSchedule")]
        node_selector = dict(GPU_NODE_SELECTOR)
    # The provider (cncf-kubernetes 10.25.0, utils/xcom_sidecar.py) adds `airflow-xcom-sidecar` (its pinned
    # alpine image) when do_xcom_push is set; its security context is ours to give. It is ended with
    # `kill -2 $(pgrep -u $(id -u) -f 'sh')` over exec (pod_manager.extract_xcom_kill): the exec'd shell
    # runs as the container's user, the same UID as the sidecar's own `sh`, so the signal is permitted
    # (apache/airflow #71369 was a kill aimed at processes of another user).
    hardened = {"allow_privilege_escalation": False, "capabilities": k8s.V1Capabilities(drop=["ALL"])}
    sidecar = k8s.V1SecurityContext(
        run_as_user=JOB_UID, run_as_group=JOB_UID, run_as_non_root=True, read_only_root_filesystem=True,
        **hardened,
    )  # fmt: skip
    return JobPodOperator(
        task_id=step.task_id,
        name=f"mlops-{step.task_id.replace('_', '-')}",
        namespace=deployment.namespace,
        image=step.image,
        image_pull_policy="IfNotPresent",
        cmds=["python"],
        arguments=step.args,
        env_vars=env,
        env_from=[
            k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name=deployment.platform_configmap))
        ],
        container_resources=k8s.V1ResourceRequirements(requests=requests, limits=limits),
        tolerations=tolerations,
        node_selector=node_selector,
        runtime_class_name=deployment.gpu_runtime_class if step.gpu else None,
        do_xcom_push=step.xcom,
        get_logs=True,
        on_finish_action="delete_pod",
        security_context=k8s.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=JOB_UID,
            run_as_group=JOB_UID,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        # Read-only root file system; the job writes only under SCRATCH_DIR (its HOME too), an emptyDir.
        container_security_context=k8s.V1SecurityContext(read_only_root_filesystem=True, **hardened),
        volumes=[k8s.V1Volume(name="scratch", empty_dir=k8s.V1EmptyDirVolumeSource())],
        volume_mounts=[k8s.V1VolumeMount(name="scratch", mount_path=SCRATCH_DIR)],
        xcom_sidecar_container_security_context=sidecar,
        labels=step_labels(step),
        **kwargs,
    )
