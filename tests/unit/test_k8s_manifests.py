"""deploy/k8s, validated offline: Kubernetes' own schemas (strict: no unknown field), and the rules
this service needs from them (one GPU per worker, probes on /health and /health/live, the two
volumes, settings that exist, no root)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.config import Settings

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
VERSIONS = ("1.29.0", "1.33.0")  # the oldest and newest minor versions the manifests target
# Read by CUDA or the image, not by Settings.
NOT_SETTINGS = {"CUDA_CACHE_PATH", "CUDA_CACHE_DISABLE", "CUDA_CACHE_MAXSIZE", "CUDA_FORCE_PTX_JIT"}
NOT_SETTINGS |= {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD", "PGDATA"}  # the postgres image's


def _documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    documents = []
    for name in kustomization["resources"]:
        documents += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return documents


DOCUMENTS = _documents()


def _named(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in DOCUMENTS if d["kind"] == kind and d["metadata"]["name"] == name)


def _pod_specs() -> list[dict[str, Any]]:
    specs = []
    for doc in DOCUMENTS:
        template = doc.get("spec", {}).get("template")
        if template:
            specs.append(template["spec"])
    return specs


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_matches_the_kubernetes_schema(version: str) -> None:
    for doc in DOCUMENTS:
        kubernetes_validate.validate(doc, version, strict=True)


def test_a_worker_holds_one_gpu_and_mounts_the_models_and_the_jit_cache() -> None:
    worker = _named("Deployment", "transcription-worker")["spec"]["template"]["spec"]
    container = worker["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claims = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in worker["volumes"]}
    assert claims[mounts["/models"]] == "transcription-models"
    assert claims[mounts["/cuda-cache"]] == "transcription-cuda-cache"
    prewarm = _named("Job", "transcription-prewarm")["spec"]["template"]["spec"]
    assert prewarm["containers"][0]["args"] == ["prewarm"]
    assert {v["persistentVolumeClaim"]["claimName"] for v in prewarm["volumes"]} == set(claims.values()) - {None}


@pytest.mark.parametrize("name", ["transcription-api", "transcription-worker"])
def test_probes_map_to_health_and_liveness(name: str) -> None:
    container = _named("Deployment", name)["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/health/live", "a long JIT compile must not fail start-up"
    # Longer than SHUTDOWN_GRACE_S, so running jobs are handed back before the kill.
    grace = int(_named("ConfigMap", "transcription-config")["data"]["SHUTDOWN_GRACE_S"])
    pod = _named("Deployment", name)["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > grace


def test_the_api_runs_without_models_and_the_workers_with_them() -> None:
    def env(name: str) -> dict[str, Any]:
        container = _named("Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}

    api, worker = env("transcription-api"), env("transcription-worker")
    assert api["ROLE"] == "api" and worker["ROLE"] == "all" and worker["DEVICE"] == "cuda"
    assert "nvidia.com/gpu" not in str(_named("Deployment", "transcription-api"))
    for role in (api, worker):
        assert role["JOBS_DATABASE_URL"]["secretKeyRef"]["key"] == "jobs-database-url"


def test_every_setting_named_is_one_the_service_reads() -> None:
    known = {name.upper() for name in Settings.model_fields} | {"HF_TOKEN"} | NOT_SETTINGS
    named = set(_named("ConfigMap", "transcription-config")["data"])
    for spec in _pod_specs():
        for container in spec["containers"]:
            named |= {e["name"] for e in container.get("env", [])}
    assert named - known == set()
    Settings(**{k.lower(): v for k, v in _named("ConfigMap", "transcription-config")["data"].items()
                if k.lower() in Settings.model_fields})  # fmt: skip


def test_no_container_runs_as_root_or_unbounded() -> None:
    for spec in _pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert "memory" in container["resources"]["limits"]


def test_workers_scale_on_the_queue_depth() -> None:
    hpa = _named("HorizontalPodAutoscaler", "transcription-worker")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "transcription-worker"
    metric = hpa["metrics"][0]["external"]["metric"]["name"]
    readme = (K8S / "README.md").read_text()
    assert f'as: "{metric}"' in readme, "the prometheus-adapter rule that serves the metric is documented"
    assert 'transcription_jobs{state="queued"}' in readme


def test_the_schema_check_catches_a_misspelt_field() -> None:
    worker = yaml.safe_load(yaml.safe_dump(_named("Deployment", "transcription-worker")))
    worker["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, VERSIONS[-1], strict=True)
