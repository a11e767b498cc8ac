"""Validate deploy/'s Kubernetes and Cloud Run manifests against the Kubernetes API's own models.

Run by the system Python, with Debian's python3-kubernetes (the API models
generated from Kubernetes' OpenAPI specification) and python3-yaml:

    /usr/bin/python3 harness/deploy_check/manifests.py deploy/k8s/*.yaml deploy/cloudrun/*.yaml

Every field must be one the API defines, of the type it defines, and every
required field must be there (the models refuse to be built without them).
Cloud Run's Knative resources are checked the same way where they embed
Kubernetes types (metadata, containers, probes), and by their own documented
shape around them. Then the resources are checked against each other: selectors
match the pods, probes name the shop's probe paths and ports, Cloud Run's
reserved variables are left alone. Prints one line per problem; exits 1 if any.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

# Kubernetes kinds the shop deploys, by apiVersion and kind. The client models
# autoscaling/v2 under its beta name (the same schema, released as v2 in 1.23).
MODELS = {
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "Service"): "V1Service",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2beta2HorizontalPodAutoscaler",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("batch/v1", "Job"): "V1Job",
}
# Cloud Run (Knative serving and run.googleapis.com) shapes around Kubernetes types.
CLOUD_RUN_CONTAINERS = {
    "timeoutSeconds": "int",
    "serviceAccountName": "str",
    "containers": "list[V1Container]",
    "volumes": "list[V1Volume]",
}
RESOURCE = {"apiVersion": "str", "kind": "str", "metadata": "V1ObjectMeta"}
KNATIVE_SERVICE = {
    **RESOURCE,
    "spec": {
        "template": {
            "metadata": "V1ObjectMeta",
            "spec": {"containerConcurrency": "int", **CLOUD_RUN_CONTAINERS},
        },
        "traffic": "list[object]",
    },
}
CLOUD_RUN_JOB = {
    **RESOURCE,
    "spec": {
        "template": {
            "metadata": "V1ObjectMeta",
            "spec": {
                "taskCount": "int",
                "parallelism": "int",
                "template": {"spec": {"maxRetries": "int", **CLOUD_RUN_CONTAINERS}},
            },
        }
    },
}
CLOUD_RUN = {
    ("serving.knative.dev/v1", "Service"): KNATIVE_SERVICE,
    ("run.googleapis.com/v1", "Job"): CLOUD_RUN_JOB,
}
KUSTOMIZATION = ("kustomize.config.k8s.io/v1beta1", "Kustomization")
CLOUD_RUN_RESERVED_ENV = {
    "PORT",
    "K_SERVICE",
    "K_REVISION",
    "K_CONFIGURATION",
    "CLOUD_RUN_JOB",
    "CLOUD_RUN_EXECUTION",
    "CLOUD_RUN_TASK_INDEX",
    "CLOUD_RUN_TASK_ATTEMPT",
    "CLOUD_RUN_TASK_COUNT",
}
PROBE_PATHS = {"startupProbe": "/readyz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}
PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float)}


class Checker:
    def __init__(self) -> None:
        # Debian's python3-kubernetes, there for the system Python that runs this file: imported
        # here, so the module still imports where it is missing (the project's virtualenv).
        from kubernetes import client
        from kubernetes.client import ApiClient

        self.problems: list[str] = []
        self.models = client
        self.api = ApiClient()

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    # --- Types ------------------------------------------------------------------------------
    def check_type(self, kind, value, where: str) -> None:
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                return self.problem(where, "expected a mapping")
            for key, item in value.items():
                if key not in kind:
                    self.problem(f"{where}.{key}", "unknown field")
                else:
                    self.check_type(kind[key], item, f"{where}.{key}")
        elif kind.startswith("list["):
            if not isinstance(value, list):
                return self.problem(where, "expected a list")
            for i, item in enumerate(value):
                self.check_type(kind[5:-1], item, f"{where}[{i}]")
        elif kind.startswith("dict("):
            if not isinstance(value, dict):
                return self.problem(where, "expected a mapping")
            inner = kind[kind.index(",") + 1 : -1].strip()
            for key, item in value.items():
                self.check_type(inner, item, f"{where}.{key}")
        elif kind in PRIMITIVES:
            wanted = PRIMITIVES[kind]
            if not isinstance(value, wanted) or (kind != "bool" and isinstance(value, bool)):
                self.problem(where, f"expected {kind}, got {type(value).__name__} {value!r}")
        elif kind in ("object", "datetime", "date"):
            return None
        else:
            self.check_model(kind, value, where)
        return None

    def check_model(self, name: str, value, where: str) -> None:
        model = getattr(self.models, name)
        if not isinstance(value, dict):
            return self.problem(where, f"expected a {name} mapping")
        fields = {json: attr for attr, json in model.attribute_map.items()}
        for key, item in value.items():
            if key not in fields:
                self.problem(f"{where}.{key}", f"unknown field of {name}")
            else:
                self.check_type(model.openapi_types[fields[key]], item, f"{where}.{key}")
        try:  # the generated models refuse to exist without their required fields
            self.api._ApiClient__deserialize(value, name)
        except (ValueError, TypeError) as error:
            self.problem(where, f"{name}: {error}")
        return None

    # --- Documents --------------------------------------------------------------------------
    def check_file(self, path: Path) -> list[dict]:
        try:
            documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except yaml.YAMLError as error:
            self.problem(str(path), f"not YAML: {error}")
            return []
        for index, document in enumerate(documents):
            where = f"{path}[{index}]" if len(documents) > 1 else str(path)
            if not isinstance(document, dict):
                self.problem(where, "not a mapping")
                continue
            key = (document.get("apiVersion"), document.get("kind"))
            if key in MODELS:
                self.check_model(MODELS[key], document, where)
            elif key in CLOUD_RUN:
                self.check_type(CLOUD_RUN[key], document, where)
                self.check_cloud_run(document, where)
            elif key == KUSTOMIZATION:
                self.check_kustomization(path, document, where)
            else:
                self.problem(where, f"unknown apiVersion/kind {key}")
            for container, cwhere in containers_of(document, where):
                self.check_probes(container, cwhere)
        return documents

    def check_cloud_run(self, document: dict, where: str) -> None:
        location = document.get("metadata", {}).get("labels", {}).get("cloud.googleapis.com/location")
        if not location:
            self.problem(f"{where}.metadata.labels", "cloud.googleapis.com/location (the region) is missing")
        for container, cwhere in containers_of(document, where):
            for variable in container.get("env", []):
                if variable.get("name") in CLOUD_RUN_RESERVED_ENV:
                    self.problem(f"{cwhere}.env", f"{variable['name']} is set by Cloud Run itself")
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None and set(ref) != {"name", "key"}:
                    self.problem(f"{cwhere}.env.{variable.get('name')}", "secretKeyRef needs name and key only")

    def check_probes(self, container: dict, where: str) -> None:
        ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
        for probe, path in PROBE_PATHS.items():
            if probe not in container:
                continue
            get = container[probe].get("httpGet", {})
            if get.get("path") != path:
                self.problem(f"{where}.{probe}", f"should ask {path}, asks {get.get('path')}")
            port = get.get("port")
            if port not in ports and port not in ports.values():
                self.problem(f"{where}.{probe}", f"port {port} is not one of the container's ports")

    def check_kustomization(self, path: Path, document: dict, where: str) -> None:
        allowed = {"apiVersion", "kind", "resources", "images", "labels", "namespace", "commonAnnotations"}
        for key in set(document) - allowed:
            self.problem(f"{where}.{key}", "field not used by this project's kustomization")
        for resource in document.get("resources", []):
            if not (path.parent / resource).is_file():
                self.problem(f"{where}.resources", f"{resource} does not exist")

    # --- Across documents -----------------------------------------------------------------------
    def check_together(self, documents: list[dict]) -> None:
        by_kind: dict[str, list[dict]] = {}
        for document in documents:
            by_kind.setdefault(document.get("kind"), []).append(document)
        deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
        pod_labels = [d["spec"]["template"]["metadata"].get("labels", {}) for d in deployments.values()]

        def selects_pods(selector: dict) -> bool:
            return bool(selector) and any(selector.items() <= labels.items() for labels in pod_labels)

        for deployment in deployments.values():
            selector = deployment["spec"]["selector"].get("matchLabels", {})
            labels = deployment["spec"]["template"]["metadata"].get("labels", {})
            if not selector.items() <= labels.items():
                self.problem(f"Deployment {deployment['metadata']['name']}", "selector does not match its pods")
        for service in by_kind.get("Service", []):
            if service.get("apiVersion") == "v1" and not selects_pods(service["spec"].get("selector", {})):
                self.problem(f"Service {service['metadata']['name']}", "selects no Deployment's pods")
        for pdb in by_kind.get("PodDisruptionBudget", []):
            if not selects_pods(pdb["spec"].get("selector", {}).get("matchLabels", {})):
                self.problem(f"PodDisruptionBudget {pdb['metadata']['name']}", "selects no Deployment's pods")
        for hpa in by_kind.get("HorizontalPodAutoscaler", []):
            target = hpa["spec"]["scaleTargetRef"]
            if target.get("kind") != "Deployment" or target.get("name") not in deployments:
                self.problem(f"HorizontalPodAutoscaler {hpa['metadata']['name']}", f"targets no Deployment: {target}")
            elif "replicas" in deployments[target["name"]]["spec"]:
                # Every apply would reset the autoscaler's count.
                self.problem(f"Deployment {target['name']}", "sets replicas, which its HorizontalPodAutoscaler owns")


def containers_of(document: dict, where: str):
    """Yield the containers a document runs, wherever its kind keeps them."""
    spec = document.get("spec", {})
    candidates = [
        ("spec.template.spec", spec.get("template", {}).get("spec", {})),
        (
            "spec.template.spec.template.spec",
            spec.get("template", {}).get("spec", {}).get("template", {}).get("spec", {}),
        ),
    ]
    for path, pod in candidates:
        if isinstance(pod, dict):
            for i, container in enumerate(pod.get("containers", []) or []):
                if isinstance(container, dict):
                    yield container, f"{where}.{path}.containers[{i}]"


def main(paths: list[str]) -> int:
    checker = Checker()
    documents = []
    for path in paths:
        documents += checker.check_file(Path(path))
    checker.check_together(documents)
    for problem in checker.problems:
        print(problem)
    print(f"{len(paths)} file(s), {len(documents)} resource(s), {len(checker.problems)} problem(s)")
    return 1 if checker.problems or not documents else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
