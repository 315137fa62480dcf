"""Structural rules of the deployment files: docker-compose.yml, Dockerfile, .env.example,
.dockerignore, the pgAdmin provisioning, the setup scripts and the Kubernetes manifests.

Docker cannot run on the CI machine, so these tests read the files; .ci/validate-deploy adds
the compose parser, the Compose-spec schema, hadolint, shellcheck and the CLI checks.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from taskhub.cli import app as cli_app
from taskhub.config import Settings
from tests.ops.kustomize import pod_spec
from tests.ops.kustomize import render as render_overlay

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
APP_SERVICES = ("migrate", "web", "worker")
SERVICES = {"db", "redis", "migrate", "web", "worker", "pgadmin"}
# Inside a container the server must listen on every interface (ports stay on 127.0.0.1).
SERVE_ARGS = ["serve", "--host", "0.0.0.0", "--port", "8000"]  # noqa: S104
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$")
REQUIRED_REF = re.compile(r"^\$\{[A-Z][A-Z0-9_]*:\?[^}]+\}$")
VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def env_example() -> dict[str, str]:
    """The uncommented assignments of .env.example."""
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key] = value
    return values


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose-style ${VAR}, ${VAR:-default} and ${VAR:?error} against `env`."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op is not None and op.endswith("?"):
            raise AssertionError(f"${{{name}}} is required: {arg}")
        return arg or ""

    return VARIABLE.sub(one, value.replace("$$", "\0")).replace("\0", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment is written as a mapping"
    return {str(k): str(v) for k, v in env.items()}


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuations joined), split into build stages."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def instruction(stage: list[str], name: str) -> list[str]:
    return [line[len(name) :].strip() for line in stage if line.upper().startswith(name + " ")]


def test_services_are_the_full_stack(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == SERVICES
    assert services["db"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["pgadmin"]["image"].startswith("dpage/pgadmin4")


def test_published_ports_bind_to_loopback_by_default(
    services: dict[str, dict[str, Any]],
) -> None:
    env = env_example()
    assert env["BIND_ADDRESS"] == "127.0.0.1"
    published = {name: s.get("ports", []) for name, s in services.items() if s.get("ports")}
    assert set(published) == {"web", "pgadmin"}
    for name, ports in published.items():
        for port in ports:
            assert isinstance(port, str), f"{name}: write ports as HOST_IP:HOST:CONTAINER"
            for source in ({}, env):  # compose's own defaults, and the example .env
                resolved = interpolate(port, source)
                assert resolved.startswith("127.0.0.1:"), f"{name} publishes {resolved}"


def test_no_literal_secrets(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    app_env = compose["x-app"]["environment"]
    for name, service in services.items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                assert REQUIRED_REF.match(value), f"{name}.{key} must be ${{VAR:?...}} from .env"
    url = app_env["DATABASE_URL"]
    assert re.fullmatch(
        r"postgresql://taskhub:\$\{POSTGRES_PASSWORD:\?[^}]+\}@db:5432/taskhub", url
    ), url
    # No default value may stand in for a secret anywhere in the file.
    for match in VARIABLE.finditer(COMPOSE_FILE.read_text()):
        if SECRET_NAME.search(match.group(1)):
            assert match.group(2) == ":?", f"${{{match.group(1)}}} must fail when unset"


def test_app_services_run_the_image_in_prod(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        service = services[name]
        env = environment(service)
        assert "build" in service, name
        assert env["ENVIRONMENT"] == "prod", name
        assert REQUIRED_REF.match(env["SECRET_KEY"]), name
        assert env["DATABASE_URL"].startswith("postgresql://"), name
        assert "@db:5432/" in env["DATABASE_URL"], name
        assert env["REDIS_URL"] == "redis://redis:6379/0", name
        assert "entrypoint" not in service, f"{name}: the image's entrypoint is `taskhub`"
    assert services["web"]["command"] == SERVE_ARGS
    assert services["worker"]["command"] == ["worker"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"


def test_startup_order(services: dict[str, dict[str, Any]]) -> None:
    for name in ("web", "worker"):
        deps = services[name]["depends_on"]
        assert deps["migrate"] == {"condition": "service_completed_successfully"}, name
        assert deps["db"] == {"condition": "service_healthy"}, name
        assert deps["redis"] == {"condition": "service_healthy"}, name
    assert services["migrate"]["depends_on"]["db"] == {"condition": "service_healthy"}
    assert services["pgadmin"]["depends_on"]["db"] == {"condition": "service_healthy"}


def test_worker_scales(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "container_name" not in service, f"{name}: a fixed name prevents --scale"
    worker = services["worker"]
    assert "ports" not in worker
    assert environment(worker)["WORKER_METRICS_PORT"] == "9100"
    assert "9100" in [str(p) for p in worker.get("expose", [])]


def test_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name in ("db", "redis", "web", "worker", "pgadmin"):
        check = services[name].get("healthcheck")
        assert check, name
        assert check.get("test"), name
        assert not check.get("disable"), name
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    assert "/health" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["migrate"]["healthcheck"] == {"disable": True}


def test_named_volumes(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    assert "pgdata:/var/lib/postgresql/data" in services["db"]["volumes"]
    assert "redisdata:/data" in services["redis"]["volumes"]
    assert "--appendonly" in services["redis"]["command"]
    assert {"pgdata", "redisdata", "pgadmindata"} <= set(compose["volumes"])


def test_pgadmin_is_provisioned(services: dict[str, dict[str, Any]]) -> None:
    pgadmin = services["pgadmin"]
    assert "./docker/pgadmin/servers.json:/pgadmin4/servers.json:ro" in pgadmin["volumes"]
    servers = json.loads((ROOT / "docker/pgadmin/servers.json").read_text())["Servers"]
    [server] = servers.values()
    db_env = environment(services["db"])
    assert server["Host"] == "db"
    assert server["Port"] == 5432
    assert server["Username"] == db_env["POSTGRES_USER"]
    assert server["MaintenanceDB"] == db_env["POSTGRES_DB"]
    passfile = server["ConnectionParameters"]["passfile"]
    script = pgadmin["entrypoint"][-1]
    # The pgpass written at start matches the server entry and sits where pgAdmin (server
    # mode) resolves "passfile": inside the login user's storage directory.
    assert f'"$$dir{passfile}"' in script
    assert f"'db:5432:*:{server['Username']}:%s\\n'" in script
    assert script.rstrip().endswith("exec /entrypoint.sh")


def test_env_example_documents_every_setting(compose: dict[str, Any]) -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))
    settings = {name.upper() for name in Settings.model_fields}
    assert settings <= documented, f"undocumented settings: {sorted(settings - documented)}"
    env = env_example()
    # Every variable compose requires has a value in the example, so `config` passes on it.
    for match in VARIABLE.finditer(COMPOSE_FILE.read_text()):
        if match.group(2) == ":?":
            assert match.group(1) in env, f"{match.group(1)} is missing from .env.example"
    for key in ("POSTGRES_PASSWORD", "PGADMIN_DEFAULT_EMAIL", "PGADMIN_DEFAULT_PASSWORD"):
        assert key in env, key
    for key in ("WEB_PORT", "PGADMIN_PORT"):
        assert env[key].isdigit(), key
    assert interpolate("${SECRET_KEY:?x}", env) == "change-me"


def test_setup_scripts_fill_every_placeholder() -> None:
    placeholders = {key for key, value in env_example().items() if value == "change-me"}
    assert placeholders == {"SECRET_KEY", "POSTGRES_PASSWORD", "PGADMIN_DEFAULT_PASSWORD"}
    common = (ROOT / "scripts/lib/setup-common.sh").read_text()
    [keys] = re.findall(r'^GENERATED_KEYS="([^"]+)"', common, re.MULTILINE)
    assert set(keys.split()) == placeholders
    windows = (ROOT / "scripts/setup-windows.ps1").read_text()
    [keys] = re.findall(r"^\$GeneratedKeys = @\(([^)]*)\)", windows, re.MULTILINE)
    assert set(re.findall(r"'([A-Z_]+)'", keys)) == placeholders
    for script in ("setup-linux.sh", "setup-macos.sh"):
        text = (ROOT / "scripts" / script).read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), script
        assert ". scripts/lib/setup-common.sh" in text, script
        assert "bring_up" in text, script
        assert "print_summary" in text, script
    for text in (common, windows):
        assert "'up', '-d', '--build'" in text or "up -d --build" in text
        assert "run --rm migrate" in text or "'run', '--rm', 'migrate'" in text
        assert "taskhub create-superuser --email" in text


def test_dockerfile_is_multistage_uv_nonroot() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "builder and runtime stages"
    builder, final = stages[0], stages[-1]
    for line in builder + final:
        assert not re.search(r"\b(curl|wget)\b", line), f"fetches outside PyPI/Debian: {line}"
    makefile = (ROOT / "Makefile").read_text()
    [uv_version] = re.findall(r"^UV_VERSION \?= (\S+)$", makefile, re.MULTILINE)
    assert f"ARG UV_VERSION={uv_version}" in builder, "the image uses the Makefile's uv"
    assert any('pip install --no-cache-dir "uv==${UV_VERSION}"' in line for line in builder)
    assert any("uv sync --frozen --no-dev" in line for line in builder)
    # The final stage gets the venv only: no uv, no pip install, no sources.
    assert not any("uv " in line or "pip install" in line for line in final)
    copies = instruction(final, "COPY")
    assert copies == ["--from=builder /app/.venv /app/.venv"], copies
    [user] = instruction(final, "USER")
    assert user.split(":")[0] not in {"root", "0"}
    [check] = instruction(final, "HEALTHCHECK")
    assert "urllib.request" in check
    assert "/health" in check


def test_dockerfile_runs_what_make_run_runs(services: dict[str, dict[str, Any]]) -> None:
    [final] = dockerfile_stages()[-1:]
    [entrypoint] = instruction(final, "ENTRYPOINT")
    [cmd] = instruction(final, "CMD")
    assert json.loads(entrypoint) == ["taskhub"]
    image_cmd = json.loads(cmd)
    assert image_cmd == SERVE_ARGS
    [expose] = instruction(final, "EXPOSE")
    assert expose == image_cmd[-1]
    [check] = instruction(final, "HEALTHCHECK")
    assert f"127.0.0.1:{image_cmd[-1]}/health" in check
    # `make run` = `taskhub migrate`, then `taskhub serve --host H --port P`.
    dry_run = subprocess.run(
        ["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    commands = [
        shlex.split(line)[shlex.split(line).index("taskhub") :]
        for line in dry_run.splitlines()
        if "taskhub" in shlex.split(line)
    ]
    assert [c[:2] for c in commands] == [["taskhub", "migrate"], ["taskhub", "serve"]]
    make_serve_options = [arg for arg in commands[1] if arg.startswith("--")]
    assert make_serve_options == [arg for arg in image_cmd if arg.startswith("--")]
    # In compose, migrate runs first and gates the server, as in `make run`.
    assert services["migrate"]["command"] == commands[0][1:]
    assert services["web"]["command"] == image_cmd


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for pattern in (".venv", ".tools", ".git", ".env", "taskhub.db", ".taskhub-secret"):
        assert pattern in patterns, pattern
    assert {".pytest_cache", ".mypy_cache", ".ruff_cache", "**/__pycache__"} <= patterns
    for needed in ("pyproject.toml", "uv.lock", "README.md", "src"):
        assert needed not in patterns, f"{needed} is needed by the image build"


# ------------------------------------------------------------------------------------------
# Kubernetes (deploy/k8s): the overlays, rendered by tests/ops/kustomize.py. .ci/validate-deploy
# also renders them with `kubectl kustomize` (the same result, or it fails) and validates base
# files and renderings against the Kubernetes schemas (kubernetes-validate).

K8S = ROOT / "deploy/k8s"
OVERLAYS = ("dev", "prod")
TASKHUB_COMMANDS = {
    "taskhub-web": ["taskhub", *SERVE_ARGS],
    "taskhub-worker": ["taskhub", "worker"],
    "taskhub-migrate": ["taskhub", "migrate"],
}
PLACEHOLDER = "change-me"


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    """An overlay's name and its rendered manifests."""
    return str(request.param), render_overlay(K8S / "overlays" / str(request.param))


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def workloads(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if pod_spec(m) is not None}


def spec_of(workload: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a workload (every one `workloads` finds has one)."""
    spec = pod_spec(workload)
    assert spec is not None, workload["metadata"]["name"]
    return spec


def k8s_yaml_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml"))


def test_k8s_runs_what_make_run_and_compose_run(
    overlay: tuple[str, list[dict[str, Any]]], services: dict[str, dict[str, Any]]
) -> None:
    _, manifests = overlay
    found = workloads(manifests)
    assert by_kind(manifests, "Deployment").keys() >= {"taskhub-web", "taskhub-worker"}
    assert by_kind(manifests, "Job").keys() == {"taskhub-migrate"}
    for name, argv in TASKHUB_COMMANDS.items():
        [container] = spec_of(found[name])["containers"]
        assert container["command"] + container["args"] == argv, name
    # The same commands as the compose services (and so as `make run`, checked above).
    assert TASKHUB_COMMANDS["taskhub-web"][1:] == services["web"]["command"]
    assert TASKHUB_COMMANDS["taskhub-worker"][1:] == services["worker"]["command"]
    assert TASKHUB_COMMANDS["taskhub-migrate"][1:] == services["migrate"]["command"]
    # Every taskhub container runs one of them, and the CLI accepts it (with its options).
    runner = CliRunner()
    for name, workload in found.items():
        for container in spec_of(workload)["containers"]:
            if "taskhub" in container["image"]:
                argv = container["command"] + container["args"]
                assert argv in TASKHUB_COMMANDS.values(), (name, argv)
                result = runner.invoke(cli_app, [*argv[1:], "--help"])
                assert result.exit_code == 0, (argv, result.output)


def test_k8s_web_probes_and_port(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, manifests = overlay
    web = by_kind(manifests, "Deployment")["taskhub-web"]
    [container] = spec_of(web)["containers"]
    port = int(container["args"][container["args"].index("--port") + 1])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert (
        spec_of(web)["terminationGracePeriodSeconds"]
        > (container["lifecycle"]["preStop"]["sleep"]["seconds"])
    )
    [service] = [
        s for s in by_kind(manifests, "Service").values() if s["metadata"]["name"] == "taskhub-web"
    ]
    assert (
        service["spec"]["selector"].items() <= web["spec"]["template"]["metadata"]["labels"].items()
    )
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_k8s_worker_drains_on_sigterm_and_serves_metrics(
    overlay: tuple[str, list[dict[str, Any]]],
) -> None:
    _, manifests = overlay
    worker = by_kind(manifests, "Deployment")["taskhub-worker"]
    spec = spec_of(worker)
    # SIGTERM: the worker finishes and acknowledges what is in flight; its statements time
    # out after 30 s at most (taskhub.db.pg_connect_args), so it needs more than that.
    assert spec["terminationGracePeriodSeconds"] >= 60
    [container] = spec["containers"]
    assert "lifecycle" not in container, "SIGTERM itself starts the drain"
    config = by_kind(manifests, "ConfigMap")["taskhub-config"]["data"]
    metrics = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
    assert int(config["WORKER_METRICS_PORT"]) == metrics
    assert container["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert worker["spec"]["replicas"] >= 1


def test_k8s_migrate_job_and_autoscaling(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    _, manifests = overlay
    job = by_kind(manifests, "Job")["taskhub-migrate"]
    assert spec_of(job)["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1
    [hpa] = by_kind(manifests, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "taskhub-web",
    }
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    # The autoscaler owns the count: a replicas field would reset it on every apply.
    assert "replicas" not in by_kind(manifests, "Deployment")["taskhub-web"]["spec"]
    # Every Deployment has a disruption budget selecting its pods.
    budgets = by_kind(manifests, "PodDisruptionBudget")
    for name, deployment in by_kind(manifests, "Deployment").items():
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert selector == deployment["spec"]["selector"]["matchLabels"], name
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_k8s_resources_and_security_context(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    name, manifests = overlay
    [namespace] = by_kind(manifests, "Namespace").values()
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    dockerfile_user = int(instruction(dockerfile_stages()[-1], "USER")[0].split(":")[0])
    for workload_name, workload in workloads(manifests).items():
        spec = spec_of(workload)
        where = f"{name}: {workload_name}"
        assert spec["automountServiceAccountToken"] is False, where
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True, where
        assert pod_security["runAsUser"] != 0, where
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in spec["containers"]:
            if "taskhub" in container["image"]:
                assert pod_security["runAsUser"] == dockerfile_user, where
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), where
            assert "memory" in resources["limits"], where
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            assert "image" in container and not container["image"].endswith(":latest"), where


def test_k8s_settings_and_no_literal_secrets(overlay: tuple[str, list[dict[str, Any]]]) -> None:
    name, manifests = overlay
    settings = {field.upper() for field in Settings.model_fields}
    config = by_kind(manifests, "ConfigMap")["taskhub-config"]["data"]
    assert config.keys() <= settings, config.keys() - settings
    assert config["ENVIRONMENT"] == "prod"
    for key, value in config.items():
        assert not SECRET_NAME.search(key), f"{key} belongs in the Secret"
        assert "://" not in value, f"{key}: URLs carry passwords; they go in the Secret"
    for workload_name, workload in workloads(manifests).items():
        for container in spec_of(workload)["containers"]:
            for env in container.get("env", []):
                assert "value" not in env or not SECRET_NAME.search(env["name"]), workload_name
            if "taskhub" in container["image"]:
                refs = [next(iter(source.values()))["name"] for source in container["envFrom"]]
                assert refs == ["taskhub-config", "taskhub-secrets"], workload_name
    secrets = by_kind(manifests, "Secret")
    if name == "dev":
        # Generated from secrets.env (git-ignored); the example holds only placeholders.
        data = {
            k: base64.b64decode(v).decode() for k, v in secrets["taskhub-secrets"]["data"].items()
        }
        assert data.keys() <= settings
        assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"} <= data.keys()
        assert data["SECRET_KEY"] == PLACEHOLDER
        assert f":{PLACEHOLDER}@" in data["DATABASE_URL"]
    else:
        assert not secrets, "prod Secrets are created out of band, never rendered"
    # No Secret object and no secrets.env is ever committed.
    for path in k8s_yaml_files():
        for doc in yaml.safe_load_all(path.read_text()):
            assert not (doc and doc.get("kind") == "Secret"), path
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/k8s/overlays/dev/secrets.env"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, "secrets.env must be git-ignored"


def test_k8s_prod_goes_through_pgbouncer_in_transaction_mode() -> None:
    manifests = render_overlay(K8S / "overlays/prod")
    assert by_kind(manifests, "ConfigMap")["taskhub-config"]["data"]["DB_PGBOUNCER"] == "true"
    ini = by_kind(manifests, "ConfigMap")["taskhub-pgbouncer"]["data"]["pgbouncer.ini"]
    assert re.search(r"^pool_mode = transaction$", ini, re.MULTILINE)
    port = int(re.findall(r"^listen_port = (\d+)$", ini, re.MULTILINE)[0])
    service = by_kind(manifests, "Service")["taskhub-pgbouncer"]
    assert service["spec"]["ports"][0]["port"] == port
    assert "taskhub-pgbouncer" in by_kind(manifests, "Deployment")
    dev = render_overlay(K8S / "overlays/dev")
    assert by_kind(dev, "ConfigMap")["taskhub-config"]["data"]["DB_PGBOUNCER"] == "false"
