"""deploy/ validates with real tools, and says what the shop and the README say.

Kubernetes and Cloud Run manifests: harness/deploy_check/manifests.py on Debian's
Kubernetes API models. compose: Debian's docker-compose (``config``). nginx: ``nginx -t``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.servers.backing import SYSTEM_PYTHON
from harness.servers.shop import BASE_DIR

DEPLOY = BASE_DIR / "deploy"
MANIFESTS = sorted([*DEPLOY.glob("k8s/*.yaml"), *DEPLOY.glob("cloudrun/*.yaml")])
COMPOSE = DEPLOY / "compose" / "compose.yaml"
README = (BASE_DIR / "README.md").read_text()
ENV_MODULE = (BASE_DIR / "config" / "env.py").read_text()


def validate(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SYSTEM_PYTHON, str(BASE_DIR / "harness" / "deploy_check" / "manifests.py"), *map(str, paths)],
        capture_output=True,
        text=True,
    )


def compose_config(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["docker-compose", "-f", str(path), "config"], capture_output=True, text=True)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def deploy_section() -> str:
    return README.split("\n## Deploy", 1)[1].split("\n## ", 1)[0]


# --- Kubernetes and Cloud Run --------------------------------------------------------------------
def test_kubernetes_and_cloud_run_manifests_validate():
    assert {p.name for p in MANIFESTS} >= {
        "deployment.yaml",
        "service.yaml",
        "hpa.yaml",
        "pdb.yaml",
        "migrate-job.yaml",
        "kustomization.yaml",
    }
    result = validate(*MANIFESTS)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(MANIFESTS)} file(s), {len(MANIFESTS)} resource(s), 0 problem(s)" in result.stdout


@pytest.mark.parametrize(
    ("source", "old", "new", "complaint"),
    [
        ("k8s/deployment.yaml", "readinessProbe:", "readinesProbe:", "readinesProbe: unknown field"),
        ("k8s/deployment.yaml", "revisionHistoryLimit: 5", 'revisionHistoryLimit: "5"', "expected int"),
        ("k8s/deployment.yaml", "  revisionHistoryLimit", "  replicas: 3\n  revisionHistoryLimit", "replicas"),
        (
            "k8s/deployment.yaml",
            "        - name: shop\n          image",
            "        - image",
            "`name`, must not be `None`",
        ),
        ("k8s/deployment.yaml", "path: /healthz", "path: /health", "should ask /healthz"),
        ("k8s/service.yaml", "app.kubernetes.io/name: shop\n  ports", "app: shop\n  ports", "selects no Deployment"),
        ("cloudrun/service.yaml", "containerConcurrency:", "concurrency:", "concurrency: unknown field"),
        ("cloudrun/service.yaml", "name: WEB_CONCURRENCY", "name: PORT", "PORT is set by Cloud Run itself"),
    ],
)
def test_the_validator_rejects_broken_manifests(tmp_path, source, old, new, complaint):
    text = (DEPLOY / source).read_text()
    assert old in text
    broken = tmp_path / Path(source).name
    broken.write_text(text.replace(old, new, 1))
    others = [p for p in MANIFESTS if p.name != broken.name and p.parent.name == "k8s"]

    result = validate(broken, *(others if source.startswith("k8s") else []))

    assert result.returncode == 1
    assert complaint in result.stdout, result.stdout


def test_probes_and_shutdown_fit_the_shop():
    deployment = load(DEPLOY / "k8s" / "deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    gunicorn = (BASE_DIR / "config" / "gunicorn.conf.py").read_text()
    graceful = int(re.search(r"graceful_timeout = (\d+)", gunicorn).group(1))
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])

    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["terminationGracePeriodSeconds"] > pre_stop + graceful
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
    assert "10001" in (BASE_DIR / "Dockerfile").read_text()

    service = load(DEPLOY / "cloudrun" / "service.yaml")
    template = service["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    run = template["spec"]["containers"][0]
    assert int(annotations["autoscaling.knative.dev/minScale"]) >= 1
    assert int(annotations["autoscaling.knative.dev/maxScale"]) > int(annotations["autoscaling.knative.dev/minScale"])
    assert template["spec"]["containerConcurrency"] > 0
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"} <= {
        e["name"] for e in run["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert run["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert run["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_every_variable_the_manifests_set_is_one_the_shop_reads():
    names = set()
    for path in [*MANIFESTS, COMPOSE]:
        text = path.read_text()
        names |= set(re.findall(r"- name: ([A-Z_]+)\n", text))
        names |= set(re.findall(r"^  ([A-Z_]+): ", text, re.MULTILINE))
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS"} <= names
    for name in names:
        assert f'"{name}"' in ENV_MODULE, f"{name} is set in deploy/ but the shop never reads it"


# --- compose and its nginx -----------------------------------------------------------------------
def test_compose_file_validates_with_docker_compose():
    result = compose_config(COMPOSE)

    assert result.returncode == 0, result.stderr
    stack = yaml.safe_load(result.stdout)["services"]
    assert set(stack) == {"postgres", "redis", "migrate", "shop", "nginx"}
    assert stack["shop"]["deploy"]["replicas"] == 3
    assert stack["shop"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "sticky" not in (DEPLOY / "compose" / "nginx.conf").read_text().replace("no sticky", "")


def test_docker_compose_rejects_a_broken_compose_file(tmp_path):
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("    healthcheck:", "    healthchek:", 1))

    result = compose_config(broken)

    assert result.returncode != 0
    assert "healthchek" in result.stderr


def test_compose_nginx_configuration_passes_nginx_t(tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {DEPLOY / 'compose' / 'nginx.conf'};\n}}\n"
    )

    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(main)], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


# --- README --------------------------------------------------------------------------------------
def test_readme_deploy_section_names_the_files_and_commands_that_exist():
    section = deploy_section()
    for heading in ("Cloud Run", "Kubernetes", "compose", "Migrations", "during a deploy"):
        assert heading in section, heading
    for path in re.findall(r"deploy/[\w./-]+\.(?:yaml|conf)", section):
        assert (BASE_DIR / path).is_file(), path
    for path in [*MANIFESTS, COMPOSE]:
        assert f"`{path.name}`" in section or str(path.relative_to(BASE_DIR)) in section, path.name
    cloud_run = section.split("### Cloud Run", 1)[1].split("###", 1)[0]
    commands = re.findall(r"^(gcloud .+)$", cloud_run, re.MULTILINE)
    assert len(commands) == 5, commands
    service = load(DEPLOY / "cloudrun" / "service.yaml")
    for secret in {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in service["spec"]["template"]["spec"]["containers"][0]["env"]
        if "valueFrom" in e
    }:
        assert secret in cloud_run, f"the secret {secret} is never created in the README"
