"""The Kustomize base from the plan: plain YAML written by a YAML library, no templating. Pure: the same plan
gives the same bytes.

Hot reload on a cluster: the Cortexfile is a ConfigMap (no name hash, so an edit changes it in place rather
than rolling the pods) mounted as a folder at /etc/cortex; the kubelet swaps its `..data` link and the
runtime's watcher follows that swap."""

from __future__ import annotations

from typing import Any

from menlo_cortex.cortexfile.formats import CONFIG_DIR, CORTEXFILE_NAME, DATA_DIR

from ...artifacts import Files, text
from ...escape import sh, yaml_documents
from .plan import PROBE_PERIOD_S, KubePlan

NAME = "cortex"
CONFIG_MAP = f"{NAME}-config"
SECRET = f"{NAME}-secrets"
CLAIM = f"{NAME}-models"
USER = 10001  # the image's service user (images/targets/oci, the Dockerfiles)
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "llm-server"}
GPU_RESOURCES = {"cuda": "nvidia.com/gpu", "rocm": "amd.com/gpu"}


def render(plan: KubePlan) -> Files:
    """Every file of the base, by name."""
    manifests = {"deployment.yaml": deployment(plan), "service.yaml": service(plan),
                 "networkpolicy.yaml": network_policy(plan)}  # fmt: skip
    if plan.replicas > 1:
        manifests["poddisruptionbudget.yaml"] = disruption_budget()
    if not plan.bake_models:
        manifests["persistentvolumeclaim.yaml"] = claim(plan)
    files = {name: yaml_documents([manifest]) for name, manifest in manifests.items()}
    files["kustomization.yaml"] = yaml_documents([kustomization(sorted(manifests))])
    files[CORTEXFILE_NAME] = plan.cortexfile
    files["README.md"] = readme(plan)
    return {name: text(content) for name, content in files.items()}


def readme(plan: KubePlan) -> str:
    """How to apply the base, and the Secret it expects (its keys, never values)."""
    lines = [
        "# Kubernetes base made by `cortex build --format kube`",
        "",
        f"The appliance image `{plan.image}` in a Deployment; the Cortexfile beside this file is its ConfigMap "
        "(edit it and apply again: the running pods reload it, no restart).",
        "",
        "```sh",
    ]
    keys = [f"--from-literal={name}=..." for name in plan.env_secrets]
    keys += [sh(f"--from-file={item.name}=./{item.name}") for item in plan.secret_files]
    if keys:
        lines.append(f"kubectl create secret generic {SECRET} " + " ".join(keys))
    lines += ["kubectl apply -k .", "```", "",
              "Replicas, resources and a namespace are an overlay's: `kustomize` patches this base.", ""]  # fmt: skip
    return "\n".join(lines)


def kustomization(resources: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "labels": [{"pairs": dict(LABELS), "includeSelectors": True}],
        "resources": resources,
        # No name hash: an edit of the Cortexfile updates the ConfigMap in place and the runtime reloads it.
        "configMapGenerator": [
            {"name": CONFIG_MAP, "files": [CORTEXFILE_NAME], "options": {"disableNameSuffixHash": True}}
        ],
    }


def deployment(plan: KubePlan) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER,
            "runAsGroup": USER,
            "fsGroup": USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_server(plan)],
        "volumes": _volumes(plan),
    }
    if not plan.bake_models:
        pod["initContainers"] = [_puller(plan)]
    annotations: dict[str, str] = {}
    if plan.metrics_public:
        annotations |= {"prometheus.io/scrape": "true", "prometheus.io/port": str(plan.port),
                        "prometheus.io/path": "/metrics", "prometheus.io/scheme": _scheme(plan).lower()}  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME},
        "spec": {
            "replicas": plan.replicas,
            "selector": {"matchLabels": dict(LABELS)},
            "strategy": _strategy(plan),
            "template": {
                "metadata": {"labels": dict(LABELS), "annotations": annotations}
                if annotations
                else {"labels": dict(LABELS)},
                "spec": pod,
            },
        },
    }


def _strategy(plan: KubePlan) -> dict[str, Any]:
    """A new pod before the old one goes; with the models' claim (ReadWriteOnce) the old one must let go first."""
    if not plan.bake_models:
        return {"type": "Recreate"}
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def _server(plan: KubePlan) -> dict[str, Any]:
    container = {
        "name": NAME,
        "image": plan.image,
        "ports": [{"name": "http", "containerPort": plan.port, "protocol": "TCP"}],
        "env": _env(plan.env_secrets),
        "resources": _resources(plan),
        "securityContext": _restricted(),
        "volumeMounts": _mounts(plan),
        "startupProbe": _probe(plan, "/ready", PROBE_PERIOD_S, plan.startup_failures),
        "readinessProbe": _probe(plan, "/ready", 10, 3),
        "livenessProbe": _probe(plan, "/health", 10, 3),
    }
    return {key: value for key, value in container.items() if value}


def _puller(plan: KubePlan) -> dict[str, Any]:
    """Fills the models' volume before the server starts: `cortex pull` verifies every sha256."""
    command = ["/opt/cortex/bin/cortex", "pull", "--defaults", "kube", "-f", f"{CONFIG_DIR}/{CORTEXFILE_NAME}"]
    container = {"name": "pull-models", "image": plan.image, "command": command, "env": _env(plan.pull_env_secrets),
                 "securityContext": _restricted(), "volumeMounts": _mounts(plan)}  # fmt: skip
    return {key: value for key, value in container.items() if value}


def _restricted() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}}  # fmt: skip


def _env(names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": name}}} for name in names]


def _resources(plan: KubePlan) -> dict[str, Any]:
    memory = f"{plan.memory_mib}Mi"
    limits = {"memory": memory}
    if plan.accelerator in GPU_RESOURCES:
        limits[GPU_RESOURCES[plan.accelerator]] = "1"
    return {"requests": {"cpu": str(plan.cpu), "memory": memory}, "limits": limits}


def _probe(plan: KubePlan, path: str, period_s: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http", "scheme": _scheme(plan)}, "periodSeconds": period_s,
            "timeoutSeconds": 5, "failureThreshold": failures}  # fmt: skip


def _scheme(plan: KubePlan) -> str:
    return "HTTPS" if plan.tls else "HTTP"


def _mounts(plan: KubePlan) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
              {"name": "tmp", "mountPath": "/tmp"}]  # fmt: skip
    if not plan.bake_models:
        mounts.append({"name": "models", "mountPath": DATA_DIR})
    mounts += [{"name": _volume_name(index), "mountPath": folder, "readOnly": True}
               for index, folder in enumerate(plan.secret_folders)]  # fmt: skip
    return mounts


def _volumes(plan: KubePlan) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": CONFIG_MAP}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
    ]
    if not plan.bake_models:
        volumes.append({"name": "models", "persistentVolumeClaim": {"claimName": CLAIM}})
    for index, folder in enumerate(plan.secret_folders):
        items = [{"key": item.name, "path": item.name} for item in plan.secret_files if item.folder == folder]
        volumes.append({"name": _volume_name(index), "secret": {"secretName": SECRET, "items": items,
                                                                  "defaultMode": 0o440}})  # fmt: skip
    return volumes


def _volume_name(index: int) -> str:
    return f"secret-files-{index}"


def service(plan: KubePlan) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME},
        "spec": {
            "selector": dict(LABELS),
            "ports": [{"name": "http", "port": plan.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def network_policy(plan: KubePlan) -> dict[str, Any]:
    """Only the service port comes in; nothing else reaches the pod."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": NAME},
        "spec": {
            "podSelector": {"matchLabels": dict(LABELS)},
            "policyTypes": ["Ingress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": plan.port}]}],
        },
    }


def disruption_budget() -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": NAME},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(LABELS)}},
    }


def claim(plan: KubePlan) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": f"{plan.model_volume_gib}Gi"}}}  # fmt: skip
    if plan.storage_class:
        spec["storageClassName"] = plan.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": CLAIM}, "spec": spec}
