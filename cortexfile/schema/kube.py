"""`build.kube:` the Deployment that `cortex build --format kube` writes (a Kustomize base: replicas and
resources beyond these are an overlay's job)."""

from __future__ import annotations

from typing import Annotated

from .base import Section, setting, word_rule

# A Kubernetes object name (DNS-1123 subdomain): lower case, digits, `-` and `.`, at most 253.
KubeName = Annotated[
    str,
    word_rule(
        r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
        "a Kubernetes name: lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit",
    ),
]


class KubeDeployment(Section):
    replicas: int = setting(
        1, "Pods of the Deployment; above 1, a PodDisruptionBudget keeps all but one up through a drain.", ge=1
    )
    model_volume_gb: int | None = setting(
        None,
        "Size of the PersistentVolumeClaim the models are pulled into when build.bake_models is false; unset: "
        "their size plus a quarter, at least 1 GiB.",
        ge=1,
    )
    storage_class: KubeName | None = setting(None, "StorageClass of that claim; unset: the cluster's default.")
