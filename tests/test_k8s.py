"""The Kubernetes manifests: valid against the API schemas (kubernetes-validate, offline),
with probes on the service's real health endpoints and only settings the service knows."""

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from devtools.replica_process import ROOT
from service.settings import Settings

MANIFESTS = sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifests_validate_strictly(path: Path) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, "1.30", strict=True)


def test_deployment_probes_service_and_settings() -> None:
    docs = {doc["kind"]: doc for doc in documents(ROOT / "deploy" / "k8s" / "dyna-cache.yaml")}
    assert set(docs) == {"Deployment", "Service", "HorizontalPodAutoscaler",
                         "PodDisruptionBudget"}  # fmt: skip
    pod = docs["Deployment"]["spec"]["template"]
    (api,) = pod["spec"]["containers"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    known = {f"DYNACACHE_{name.upper()}" for name in Settings.model_fields}
    names = {env["name"] for env in api["env"]}
    assert names <= known, names - known
    assert {"DYNACACHE_REDIS_URL", "DYNACACHE_ADMIN_TOKEN", "DYNACACHE_HOST"} <= names
    # the Service, the autoscaler and the budget all point at the Deployment's pods
    labels = pod["metadata"]["labels"]
    assert docs["Service"]["spec"]["selector"] == labels
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    assert docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == "dyna-cache"
