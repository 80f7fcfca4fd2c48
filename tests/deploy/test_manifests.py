"""Static checks of the deployment files under ``deploy/``.

Nothing here talks to a cluster, a Docker engine or Azure: the files are parsed and
cross-checked (Dapr annotations against container ports and uvicorn arguments,
shared settings across apps, Dapr component fields, the ACA component schema, the
Bicep file's structure). ``kubectl kustomize`` renders the Kubernetes overlays when
kubectl is installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.launcher.deployment import KEEP_ALIVE_S, LocalDeployment

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
BASE = K8S / "base"
ACA = DEPLOY / "aca"
BICEP = ACA / "main.bicep"

SHARED = ("SUPERSTEP_WORKFLOWS", "SUPERSTEP_NAMESPACE", "SUPERSTEP_STATESTORE", "SUPERSTEP_PUBSUB")
CONFIGMAP = "superstep-config"
RUN_TEMPLATE = REPO / "dapr.yaml"
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024  # the apps' default, daprd's default --max-body-size
TOKENS = ("APP_API_TOKEN", "DAPR_API_TOKEN", "SUPERSTEP_API_TOKEN")
# dapr.yaml (run template) key -> Kubernetes annotation, for the app health checks
APP_HEALTH = {
    "enableAppHealthCheck": "dapr.io/enable-app-health-check",
    "appHealthCheckPath": "dapr.io/app-health-check-path",
    "appHealthProbeInterval": "dapr.io/app-health-probe-interval",
    "appHealthProbeTimeout": "dapr.io/app-health-probe-timeout",
    "appHealthThreshold": "dapr.io/app-health-threshold",
}


# -- helpers ----------------------------------------------------------------------------------
def _docs(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert all(isinstance(d, dict) for d in docs), path
    return docs


def _k8s_docs(folder: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(folder.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in _docs(path):
            yield path, doc


def _of_kind(kind: str, folder: Path = BASE) -> list[dict[str, Any]]:
    return [d for _, d in _k8s_docs(folder) if d.get("kind") == kind]


def _deployments() -> list[dict[str, Any]]:
    deps = _of_kind("Deployment")
    assert deps, "no Deployment under deploy/kubernetes/base"
    return deps


def _container(dep: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = dep["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, dep["metadata"]["name"]
    return containers[0]


def _annotations(dep: dict[str, Any]) -> dict[str, Any]:
    annotations: dict[str, Any] = dep["spec"]["template"]["metadata"].get("annotations", {})
    return annotations


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def _secret_env(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """env name -> (Secret name, key) of the variables taken from a Secret."""
    out: dict[str, tuple[str, str]] = {}
    for e in container.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            out[e["name"]] = (str(ref["name"]), str(ref["key"]))
    return out


def _quantity_bytes(text: str) -> int:
    """A Kubernetes-style size ("4Mi", "4M", "4194304") in bytes, as daprd reads
    ``--max-body-size``."""
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "k": 1000, "M": 1000**2, "G": 1000**3}
    match = re.fullmatch(r"(\d+)([KMG]i|[kMG])?", text)
    assert match, f"not a size: {text!r}"
    return int(match.group(1)) * units.get(match.group(2) or "", 1)


def _run_template() -> dict[str, Any]:
    (doc,) = _docs(RUN_TEMPLATE)
    common: dict[str, Any] = doc["common"]
    return common


def _kustomization(folder: Path) -> dict[str, Any]:
    (doc,) = _docs(folder / "kustomization.yaml")
    return doc


def _config_literals() -> dict[str, str]:
    gens = _kustomization(BASE).get("configMapGenerator", [])
    (gen,) = [g for g in gens if g["name"] == CONFIGMAP]
    out: dict[str, str] = {}
    for literal in gen["literals"]:
        key, sep, value = str(literal).partition("=")
        assert sep, literal
        out[key] = value
    return out


def _effective_env(dep: dict[str, Any]) -> dict[str, str]:
    """The environment a Deployment's app sees: the shared ConfigMap, then its own env."""
    container = _container(dep)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if source.get("configMapRef", {}).get("name") == CONFIGMAP:
            env.update(_config_literals())
    env.update(_env(container))
    return env


def _uvicorn_port(args: list[str]) -> int:
    assert "--port" in args, args
    return int(args[len(args) - 1 - args[::-1].index("--port") + 1])


def _meta(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(i["name"]): i for i in items}


def _is_pool(dep: dict[str, Any]) -> bool:
    return bool(_container(dep)["args"][0] in ("host", "executor"))


def _app_ids() -> set[str]:
    return {str(_annotations(d)["dapr.io/app-id"]) for d in _deployments()}


def _settings_source() -> str:
    return (REPO / "executor_host" / "_settings.py").read_text(encoding="utf-8")


# -- every file parses --------------------------------------------------------------------------
def _deploy_files(*suffixes: str) -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in suffixes)


@pytest.mark.parametrize(
    "path", _deploy_files(".yaml", ".yml"), ids=lambda p: str(p.relative_to(REPO))
)
def test_every_yaml_file_parses(path: Path) -> None:
    assert _docs(path), f"{path} is empty"


@pytest.mark.parametrize("path", _deploy_files(".json"), ids=lambda p: str(p.relative_to(REPO)))
def test_every_json_file_parses(path: Path) -> None:
    assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict)


def test_the_expected_files_exist() -> None:
    for rel in (
        "Dockerfile",
        "entrypoint.sh",
        "kubernetes/base/kustomization.yaml",
        "kubernetes/keda/kustomization.yaml",
        "aca/main.bicep",
        "aca/main.parameters.json",
        "aca/components/statestore.yaml",
        "aca/components/pubsub.yaml",
    ):
        assert (DEPLOY / rel).is_file(), rel
    assert (REPO / "docs" / "deploy.md").is_file()


# -- the image ---------------------------------------------------------------------------------
def test_both_ignore_files_keep_everything_but_what_the_image_copies_out() -> None:
    """`az acr build .` reads the root .dockerignore only, BuildKit the Dockerfile's own:
    they must say the same, and let through exactly what the Dockerfile copies."""
    root = (REPO / ".dockerignore").read_text()
    assert root == (DEPLOY / "Dockerfile.dockerignore").read_text()
    kept = {line[1:].removesuffix("/**") for line in root.splitlines() if line.startswith("!")}
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    copied = {
        src
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from" not in line
        for src in line.split()[1:-1]
    }
    assert copied == kept
    assert "**" in root.splitlines()  # everything else (the venv, caches) stays out


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_image_pins_every_dependency_it_installs() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {
        _name(line): line.split("==", 1)[1]
        for line in (DEPLOY / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dapr"]]
    assert [r for r in wanted if _name(r) not in pins] == []
    assert pins["dapr"] == pins["dapr-ext-fastapi"] == pins["dapr-ext-grpc"]
    assert "--constraint constraints.txt" in (DEPLOY / "Dockerfile").read_text()


# -- Kubernetes ---------------------------------------------------------------------------------
def test_kustomizations_list_every_manifest() -> None:
    for folder in (BASE, K8S / "keda"):
        listed = _kustomization(folder)["resources"]
        for entry in listed:
            assert (folder / entry).exists(), f"{folder}: {entry} does not exist"
        files = {
            str(p.relative_to(folder))
            for p in folder.rglob("*.yaml")
            if p.name != "kustomization.yaml"
        }
        assert files <= set(listed), f"{folder}: not in kustomization: {files - set(listed)}"


def test_every_deployment_is_dapr_enabled_with_matching_ports() -> None:
    for dep in _deployments():
        name = dep["metadata"]["name"]
        ann = _annotations(dep)
        assert ann.get("dapr.io/enabled") == "true", name
        assert isinstance(ann.get("dapr.io/app-id"), str) and ann["dapr.io/app-id"], name
        assert isinstance(ann.get("dapr.io/app-port"), str), f"{name}: annotation must be a string"
        assert ann.get("dapr.io/app-protocol", "http") == "http", name
        app_port = int(ann["dapr.io/app-port"])
        container = _container(dep)
        ports = [p["containerPort"] for p in container["ports"]]
        assert ports == [app_port], f"{name}: container ports {ports} vs app-port {app_port}"
        args = [str(a) for a in container["args"]]
        assert args[0] in ("api", "host"), f"{name}: first argument must be the role"
        assert _uvicorn_port(args) == app_port, f"{name}: uvicorn --port vs app-port"
        assert app_port not in (3500, 50001), f"{name}: the Dapr sidecar owns 3500/50001"
        # the app records itself under APP_ID; the injector does not set it
        assert _env(container).get("APP_ID") == ann["dapr.io/app-id"], name
        # liveness: the process; readiness: the process and its Dapr sidecar
        for probe, path in (
            ("startupProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("livenessProbe", "/healthz"),
        ):
            assert container[probe]["httpGet"]["path"] == path, f"{name}: {probe}"


def test_pool_deployments_set_their_pool() -> None:
    pools = [d for d in _deployments() if _is_pool(d)]
    assert len(pools) >= 2
    for dep in pools:
        env = _env(_container(dep))
        pool = env.get("SUPERSTEP_POOL")
        assert pool, f"{dep['metadata']['name']} sets no SUPERSTEP_POOL"
        assert _annotations(dep)["dapr.io/app-id"] == f"superstep-executor-{pool}"
        # replicas share the app id; each records itself under its pod name
        host_id = next(e for e in _container(dep)["env"] if e["name"] == "SUPERSTEP_HOST_ID")
        assert host_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    apis = [d for d in _deployments() if not _is_pool(d)]
    assert len(apis) == 1
    assert "SUPERSTEP_POOL" not in _env(_container(apis[0]))
    pool_names = [_env(_container(d))["SUPERSTEP_POOL"] for d in pools]
    assert len(set(pool_names)) == len(pool_names), "two Deployments serve one pool"


def test_every_app_shares_namespace_workflows_and_components() -> None:
    literals = _config_literals()
    assert literals["SUPERSTEP_WORKFLOWS"] and literals["SUPERSTEP_NAMESPACE"]
    seen = set()
    for dep in _deployments():
        container = _container(dep)
        refs = [s.get("configMapRef", {}).get("name") for s in container.get("envFrom", [])]
        assert CONFIGMAP in refs, dep["metadata"]["name"]
        overridden = set(SHARED) & set(_env(container))
        assert not overridden, f"{dep['metadata']['name']} overrides {overridden}"
        env = _effective_env(dep)
        seen.add(tuple(env[k] for k in SHARED))
    assert len(seen) == 1, seen


def test_env_names_are_read_by_the_settings() -> None:
    source = _settings_source()
    names = set(_config_literals())
    for dep in _deployments():
        names |= set(_env(_container(dep)))
    names |= set(re.findall(r"name: '(SUPERSTEP_\w+|APP_ID)'", BICEP.read_text(encoding="utf-8")))
    for name in sorted(names):
        assert f'"{name}"' in source, f"{name} is not read by executor_host/_settings.py"


def test_api_service_targets_the_api_port() -> None:
    (svc,) = _of_kind("Service")
    (api,) = [d for d in _deployments() if not _is_pool(d)]
    assert svc["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]
    named = {p["name"]: p["containerPort"] for p in _container(api)["ports"]}
    for port in svc["spec"]["ports"]:
        assert port["targetPort"] in named or port["targetPort"] in named.values()


def test_every_deployment_turns_on_dapr_app_health_checks() -> None:
    """Without app health checks a dead or hung host keeps its actors and its consumer
    group on daprd (dapr-contract 4.1); the values are the run template's."""
    common = _run_template()
    want = {
        annotation: str(common[key]).lower() if isinstance(common[key], bool) else str(common[key])
        for key, annotation in APP_HEALTH.items()
    }
    assert want == {
        "dapr.io/enable-app-health-check": "true",
        "dapr.io/app-health-check-path": "/healthz",
        "dapr.io/app-health-probe-interval": "1",
        "dapr.io/app-health-probe-timeout": "500",
        "dapr.io/app-health-threshold": "2",
    }
    for dep in _deployments():
        name = dep["metadata"]["name"]
        ann = _annotations(dep)
        for annotation, value in want.items():
            assert ann.get(annotation) == value, f"{name}: {annotation}"
        # daprd's check and the kubelet's liveness probe ask the same open route
        path = _container(dep)["livenessProbe"]["httpGet"]["path"]
        assert ann["dapr.io/app-health-check-path"] == path, name


def test_body_limit_is_the_same_on_daprd_and_the_apps() -> None:
    template = _quantity_bytes(str(_run_template()["maxBodySize"]))
    for dep in _deployments():
        name = dep["metadata"]["name"]
        size = _annotations(dep).get("dapr.io/max-body-size")
        assert isinstance(size, str), f"{name}: dapr.io/max-body-size is not set (as a string)"
        assert size == "4Mi", name
        limit = int(_effective_env(dep).get("SUPERSTEP_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))
        assert _quantity_bytes(size) == limit == template, f"{name}: daprd and the app differ"


def test_every_deployment_takes_the_dapr_tokens_from_secrets() -> None:
    """daprd reads key "token" of the Secrets named by the annotations; the app gets the
    same values from the same Secrets: APP_API_TOKEN to check daprd's calls, DAPR_API_TOKEN
    to send on its own calls to daprd."""
    for dep in _deployments():
        name = dep["metadata"]["name"]
        ann = _annotations(dep)
        app_secret = ann.get("dapr.io/app-token-secret")
        api_secret = ann.get("dapr.io/api-token-secret")
        assert app_secret and api_secret, f"{name}: token annotations missing"
        assert app_secret != api_secret, f"{name}: one token for both directions"
        secrets = _secret_env(_container(dep))
        assert secrets.get("APP_API_TOKEN") == (app_secret, "token"), name
        assert secrets.get("DAPR_API_TOKEN") == (api_secret, "token"), name


def test_only_the_api_takes_the_client_token_from_a_secret() -> None:
    for dep in _deployments():
        name = dep["metadata"]["name"]
        secrets = _secret_env(_container(dep))
        if _is_pool(dep):
            assert "SUPERSTEP_API_TOKEN" not in secrets, f"{name}: hosts have no client API"
            continue
        secret, key = secrets["SUPERSTEP_API_TOKEN"]
        assert key == "token"
        ann = _annotations(dep)
        assert secret not in (ann["dapr.io/app-token-secret"], ann["dapr.io/api-token-secret"])


def test_no_token_or_secret_value_is_in_the_manifests() -> None:
    for dep in _deployments():
        literal = set(TOKENS) & set(_env(_container(dep)))
        assert not literal, f"{dep['metadata']['name']}: {literal} given as literal values"
        assert set(_secret_env(_container(dep))) <= set(TOKENS), "unexpected secret env"
    for folder in (BASE, K8S / "keda"):
        assert not _of_kind("Secret", folder), f"{folder}: Secrets do not belong in the repo"
        assert "secretGenerator" not in _kustomization(folder), folder


def test_only_the_api_app_is_exposed_by_a_service() -> None:
    """Only the API gets a Service; an executor host's app port is reached by its own
    daprd over localhost (and by the kubelet's probes), never through a Service."""
    services = [d for folder in (BASE, K8S / "keda") for d in _of_kind("Service", folder)]
    assert len(services) == 1, [s["metadata"]["name"] for s in services]
    for dep in _deployments():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        for svc in services:
            selector = svc["spec"].get("selector") or {}
            selects = bool(selector) and selector.items() <= labels.items()
            assert selects == (not _is_pool(dep)), f"{svc['metadata']['name']} vs {labels}"
        pod = dep["spec"]["template"]["spec"]
        assert not pod.get("hostNetwork"), dep["metadata"]["name"]
        for port in _container(dep)["ports"]:
            assert "hostPort" not in port, dep["metadata"]["name"]
    for kind in ("Ingress", "Route", "HTTPRoute"):
        assert not _of_kind(kind, K8S), f"{kind} under deploy/kubernetes"


def test_dapr_components_declare_what_the_contract_requires() -> None:
    components = {d["metadata"]["name"]: d for d in _of_kind("Component")}
    literals = _config_literals()
    assert set(components) == {literals["SUPERSTEP_STATESTORE"], literals["SUPERSTEP_PUBSUB"]}
    actor_stores = 0
    for name, comp in components.items():
        assert comp["apiVersion"] == "dapr.io/v1alpha1", name
        spec = comp["spec"]
        assert isinstance(spec["type"], str) and spec["version"] == "v1", name
        meta = _meta(spec["metadata"])
        assert "redisHost" in meta, name
        password = meta["redisPassword"]
        assert "value" not in password, f"{name}: the Redis password must not be a literal"
        assert set(password["secretKeyRef"]) == {"name", "key"}, name
        assert comp.get("auth", {}).get("secretStore") == "kubernetes", name
        assert set(comp["scopes"]) == _app_ids(), f"{name}: scopes must be every app id"
        if meta.get("actorStateStore", {}).get("value") == "true":
            actor_stores += 1
    store = _meta(components[literals["SUPERSTEP_STATESTORE"]]["spec"]["metadata"])
    assert components[literals["SUPERSTEP_STATESTORE"]]["spec"]["type"].startswith("state.")
    assert store["actorStateStore"]["value"] == "true"
    assert store["keyPrefix"]["value"] == "name"
    assert components[literals["SUPERSTEP_PUBSUB"]]["spec"]["type"].startswith("pubsub.")
    assert actor_stores == 1


def test_resiliency_has_targets_under_spec_naming_known_policies() -> None:
    (res,) = _of_kind("Resiliency")
    assert res["apiVersion"] == "dapr.io/v1alpha1"
    assert "targets" not in res, "targets belong under spec"
    retries = set(res["spec"]["policies"]["retries"])
    components = res["spec"]["targets"]["components"]
    assert components["pubsub"]["inbound"]["retry"] in retries
    for comp in components.values():
        for side in comp.values():
            assert side.get("retry", next(iter(retries))) in retries


def _redis_pubsub_components() -> dict[str, dict[str, str]]:
    """Every Redis Streams pub/sub component of the repository (local, Kubernetes, ACA
    YAML and main.bicep) -> its metadata as name -> value."""
    out: dict[str, dict[str, str]] = {}
    crd_files = sorted((REPO / "components").rglob("*.yaml")) + sorted(BASE.rglob("*.yaml"))
    for path in crd_files:
        for doc in _docs(path):
            if doc.get("kind") == "Component" and doc["spec"]["type"] == "pubsub.redis":
                meta = doc["spec"]["metadata"]
                out[str(path.relative_to(REPO))] = {
                    m["name"]: str(m["value"]) for m in meta if "value" in m
                }
    for path in sorted((ACA / "components").glob("*.yaml")):
        (doc,) = _docs(path)
        if doc["componentType"] == "pubsub.redis":
            out[str(path.relative_to(REPO))] = {
                m["name"]: str(m["value"]) for m in doc["metadata"] if "value" in m
            }
    (block,) = [
        b
        for b in _bicep_resources("Microsoft.App/managedEnvironments/daprComponents")
        if "componentType: 'pubsub.redis'" in b
    ]
    out["deploy/aca/main.bicep"] = dict(re.findall(r"name: '(\w+)'\s+value: '([^']*)'", block))
    return out


def test_redis_pubsub_streams_are_capped_everywhere() -> None:
    """Redis keeps a stream's acknowledged entries: without maxLenApprox every topic's
    stream grows without bound."""
    components = _redis_pubsub_components()
    assert {
        "components/pubsub.yaml",
        "components/postgres/pubsub.yaml",
        "deploy/kubernetes/base/components/pubsub.yaml",
        "deploy/aca/components/pubsub.yaml",
        "deploy/aca/main.bicep",
    } <= set(components)
    for where, meta in components.items():
        assert "maxLenApprox" in meta, f"{where}: Redis streams grow without bound"
        assert int(meta["maxLenApprox"]) >= 1000, f"{where}: a cap below a pool's backlog"


def test_deployed_pubsub_settings_match_the_local_components() -> None:
    components = _redis_pubsub_components()
    local = components["components/pubsub.yaml"]
    for where, meta in components.items():
        for name in ("concurrency", "processingTimeout", "redeliverInterval", "maxLenApprox"):
            assert meta.get(name) == local[name], f"{where}: {name}"


def test_keda_scalers_watch_each_pool_stream_and_consumer_group() -> None:
    scaled = _of_kind("ScaledObject", K8S / "keda")
    pools = {d["metadata"]["name"]: d for d in _deployments() if _is_pool(d)}
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled} == set(pools)
    namespace = _config_literals()["SUPERSTEP_NAMESPACE"]
    auths = {a["metadata"]["name"] for a in _of_kind("TriggerAuthentication", K8S / "keda")}
    for obj in scaled:
        dep = pools[obj["spec"]["scaleTargetRef"]["name"]]
        pool = _env(_container(dep))["SUPERSTEP_POOL"]
        assert obj["spec"]["minReplicaCount"] >= 1, "a pool without a live host refuses runs"
        (trigger,) = obj["spec"]["triggers"]
        assert trigger["type"] == "redis-streams"
        assert trigger["metadata"]["stream"] == f"{namespace}.activations.{pool}"
        assert trigger["metadata"]["consumerGroup"] == _annotations(dep)["dapr.io/app-id"]
        assert trigger["authenticationRef"]["name"] in auths


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("overlay", ["base", "keda"])
def test_kustomize_renders(overlay: str) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert all(
        d["metadata"].get("namespace") == "superstep" for d in docs if d["kind"] != "Namespace"
    )
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    for dep in (d for d in docs if d["kind"] == "Deployment"):
        container = _container(dep)
        assert container["envFrom"][0]["configMapRef"]["name"] == cm["metadata"]["name"]
        assert container["image"].endswith(":" + _kustomization(BASE)["images"][0]["newTag"])


# -- Azure Container Apps ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["statestore", "pubsub"])
def test_aca_components_use_the_aca_schema(name: str) -> None:
    (doc,) = _docs(ACA / "components" / f"{name}.yaml")
    for crd_key in ("apiVersion", "kind", "spec", "auth"):
        assert crd_key not in doc, f"{crd_key} belongs to the Kubernetes schema, not ACA's"
    assert isinstance(doc["componentType"], str) and doc["version"] == "v1"
    meta = _meta(doc["metadata"])
    assert "redisHost" in meta
    secrets = {s["name"] for s in doc["secrets"]}
    for item in doc["metadata"]:
        assert "secretKeyRef" not in item, "ACA uses secretRef"
        if "secretRef" in item:
            assert item["secretRef"] in secrets
    assert "secretRef" in meta["redisPassword"]
    assert set(doc["scopes"]) == _app_ids()
    if name == "statestore":
        assert meta["actorStateStore"]["value"] == "true"
        assert meta["keyPrefix"]["value"] == "name"


def _bicep() -> str:
    return BICEP.read_text(encoding="utf-8")


def _bicep_code() -> str:
    """The Bicep text without comments and string contents (for bracket checks)."""
    text = re.sub(r"//[^\n]*", "", _bicep())
    text = re.sub(r"'(?:\\.|[^'\\])*'", "''", text)
    return text


def _bicep_params() -> dict[str, tuple[bool, bool]]:
    """param name -> (has a default, is @secure)."""
    out: dict[str, tuple[bool, bool]] = {}
    decorators: list[str] = []
    for line in _bicep().splitlines():
        stripped = line.strip()
        if stripped.startswith("@"):
            decorators.append(stripped)
            continue
        match = re.match(r"param (\w+) \w+( =)?", stripped)
        if match:
            out[match.group(1)] = (bool(match.group(2)), "@secure()" in decorators)
        if stripped and not stripped.startswith("//"):
            decorators = []
    return out


def test_bicep_brackets_balance() -> None:
    code = _bicep_code()
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for char in code:
        if char in "([{":
            stack.append(char)
        elif char in pairs:
            assert stack and stack.pop() == pairs[char], "unbalanced brackets in main.bicep"
    assert not stack


def _bicep_resources(type_prefix: str) -> list[str]:
    blocks = re.split(r"\nresource ", _bicep())
    return [b for b in blocks if f"'{type_prefix}@" in b.splitlines()[0]]


def test_bicep_uses_the_aca_component_schema() -> None:
    text = _bicep()
    for crd in ("secretKeyRef", "apiVersion: 'dapr.io", "spec:"):
        assert crd not in text, f"{crd}: Kubernetes schema in the ACA template"
    components = _bicep_resources("Microsoft.App/managedEnvironments/daprComponents")
    assert len(components) == 2, "a state store and a pub/sub"
    for block in components:
        for key in ("componentType:", "version: 'v1'", "metadata: [", "secrets: ["):
            assert key in block, f"{key} missing in {block.splitlines()[0]}"
        assert "scopes: daprAppIds" in block, block.splitlines()[0]
        assert re.search(r"name: 'redisPassword'\s+secretRef: 'redis-password'", block)
    (store,) = [b for b in components if "componentType: 'state." in b]
    assert re.search(r"name: 'actorStateStore'\s+value: 'true'", store)
    assert re.search(r"name: 'keyPrefix'\s+value: 'name'", store)
    assert "name: stateStoreName" in store


def test_bicep_container_apps_enable_dapr_on_the_app_port() -> None:
    text = _bicep()
    container_apps = _bicep_resources("Microsoft.App/containerApps")
    assert len(container_apps) == 2, "the API app and the pool apps (a loop)"
    for app in container_apps:
        dapr = re.search(r"dapr: \{(.*?)\n      \}", app, re.S)
        assert dapr, app.splitlines()[0]
        block = dapr.group(1)
        for key in ("enabled: true", "appId:", "appPort: appPort", "appProtocol: 'http'"):
            assert key in block, key
        assert "'--port'\n            string(appPort)" in app
        assert "minReplicas:" in app and "maxReplicas:" in app
        assert "name: 'APP_ID'" in app
        assert "env: concat(commonEnv" in app
    api, pool = container_apps
    assert "ingress: {" in api and "targetPort: appPort" in api
    assert "ingress:" not in pool.replace("// no ingress", "")
    assert "name: 'SUPERSTEP_POOL'" in pool
    assert "custom: {" in pool and "type: 'redis-streams'" in pool
    assert "triggerParameter: 'password'" in pool
    assert "stream: '${superstepNamespace}.activations.${pool.name}'" in pool
    assert "minReplicas: max(1, pool.minReplicas)" in pool
    assert re.search(r"@minValue\(1\)\nparam apiMinReplicas", text)


def test_bicep_shared_settings_come_from_one_list() -> None:
    text = _bicep()
    common = re.search(r"var commonEnv = \[(.*?)\n\]", text, re.S)
    assert common
    for name in SHARED:
        assert f"name: '{name}'" in common.group(1), name
        assert text.count(f"name: '{name}'") == 1, f"{name} set outside commonEnv"


def test_bicep_parameters_file_matches_the_template() -> None:
    params = _bicep_params()
    given = json.loads((ACA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert set(given) <= set(params), set(given) - set(params)
    for name, (has_default, secure) in params.items():
        if secure:
            assert name not in given, f"{name} is secret: pass it on the command line"
        elif not has_default:
            assert name in given, f"{name} has no default and is not in main.parameters.json"
    for pool in given["pools"]["value"]:
        assert {"name", "labels", "minReplicas", "maxReplicas"} <= set(pool)


def _bicep_object(name: str) -> dict[str, str]:
    """The flat ``var name = { key: value ... }`` of main.bicep, values as written."""
    match = re.search(rf"var {name} = \{{(.*?)\n\}}", _bicep(), re.S)
    assert match, name
    return dict(re.findall(r"^\s+(\w+): (.+?)\s*$", match.group(1), re.M))


def _bicep_dapr_block(app: str) -> str:
    match = re.search(r"dapr: \{(.*?)\n      \}", app, re.S)
    assert match, app.splitlines()[0]
    return match.group(1)


def test_bicep_container_apps_turn_on_dapr_app_health_checks() -> None:
    common = _run_template()
    assert _bicep_object("daprAppHealth") == {
        "enabled": str(common["enableAppHealthCheck"]).lower(),
        "path": f"'{common['appHealthCheckPath']}'",
        "probeIntervalSeconds": str(common["appHealthProbeInterval"]),
        "probeTimeoutMilliseconds": str(common["appHealthProbeTimeout"]),
        "threshold": str(common["appHealthThreshold"]),
    }
    for app in _bicep_resources("Microsoft.App/containerApps"):
        block = _bicep_dapr_block(app)
        for key in ("appHealth: daprAppHealth", "enableApiLogging: false", "logLevel: 'info'"):
            assert key in block, f"{key} missing in {app.splitlines()[0]}"
        # dapr.appHealth exists from API version 2025-02-02-preview on
        version = re.search(r"'Microsoft\.App/containerApps@(\d{4}-\d{2}-\d{2})", app)
        assert version and version.group(1) >= "2025-02-02", app.splitlines()[0]


def test_bicep_body_limit_is_the_same_on_the_sidecar_and_the_apps() -> None:
    text = _bicep()
    assert re.search(r"@minValue\(1\)\nparam maxBodyMiB int = 4\n", text)
    common = re.search(r"var commonEnv = \[(.*?)\n\]", text, re.S)
    assert common
    # the apps' limit in bytes is the sidecar's httpMaxRequestSize (MB) in MiB
    assert re.search(
        r"name: 'SUPERSTEP_MAX_BODY_BYTES'\s+value: string\(maxBodyMiB \* 1048576\)",
        common.group(1),
    )
    for app in _bicep_resources("Microsoft.App/containerApps"):
        assert "httpMaxRequestSize: maxBodyMiB" in _bicep_dapr_block(app), app.splitlines()[0]


def test_bicep_leaves_the_app_token_to_aca() -> None:
    """ACA puts APP_API_TOKEN in the app container itself and daprd sends it; a value set
    here would differ from the sidecar's."""
    code = re.sub(r"//[^\n]*", "", _bicep())
    assert "APP_API_TOKEN" not in code


def test_bicep_client_token_is_an_aca_secret_of_the_api_app() -> None:
    assert _bicep_params()["apiToken"] == (False, True), "apiToken: @secure(), no default"
    api, pool = _bicep_resources("Microsoft.App/containerApps")
    assert re.search(r"name: 'superstep-api-token'\s+value: apiToken\b", api)
    assert re.search(r"name: 'SUPERSTEP_API_TOKEN'\s+secretRef: 'superstep-api-token'", api)
    assert "apiToken" not in pool and "SUPERSTEP_API_TOKEN" not in pool
    assert _bicep().count("value: apiToken") == 1, "the token goes into one secret only"


def test_bicep_executor_hosts_have_no_ingress() -> None:
    _, pool = _bicep_resources("Microsoft.App/containerApps")
    code = re.sub(r"//[^\n]*", "", pool.split("\noutput ")[0])
    for key in ("ingress", "additionalPortMappings", "exposedPort"):
        assert key not in code, f"executor hosts: {key}"


# -- image -------------------------------------------------------------------------------------
def test_dockerfile_builds_one_non_root_image_for_both_roles() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms and all(f == "python:3.11-slim" for f in froms)
    assert '".[dapr]"' in text and '"superstep[dapr]"' in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert 'ENTRYPOINT ["superstep-serve"]' in text
    for copied in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (REPO / copied).exists(), copied
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    for copied in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert f"!{copied}" in ignore or f"!{copied}/**" in ignore, copied


@pytest.mark.skipif(shutil.which("sh") is None, reason="no POSIX shell")
@pytest.mark.parametrize(
    ("argv", "env", "factory", "rest"),
    [
        (["api", "--port", "8000"], {}, "executor_host.api:create_app", ["--port", "8000"]),
        (["host"], {}, "executor_host.host:create_app", []),
        ([], {"SUPERSTEP_ROLE": "host"}, "executor_host.host:create_app", []),
        (["--log-level", "debug"], {"SUPERSTEP_ROLE": "api"}, "executor_host.api:create_app",
         ["--log-level", "debug"]),
    ],
)  # fmt: skip
def test_entrypoint_chooses_the_role(
    tmp_path: Path, argv: list[str], env: dict[str, str], factory: str, rest: list[str]
) -> None:
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n', encoding="utf-8")
    fake.chmod(0o755)
    run_env = {"PATH": f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}", **env}
    out = subprocess.run(
        ["sh", str(DEPLOY / "entrypoint.sh"), *argv],
        capture_output=True,
        text=True,
        env=run_env,
        timeout=30,
        check=True,
    )
    args = out.stdout.splitlines()
    assert args[:4] == ["-m", "uvicorn", "--factory", factory]
    assert args[args.index("--host") + 1] == "0.0.0.0"
    assert args[args.index("--port") + 1] == "8000"
    assert args[args.index("--timeout-keep-alive") + 1] == str(KEEP_ALIVE_S)
    assert args[len(args) - len(rest) :] == rest


def test_every_launch_keeps_the_apps_idle_connections_open_as_long() -> None:
    """daprd keeps its idle connections to an app without a time limit and does not
    send an actor call again when the app closed the connection under it: uvicorn's
    default of 5 s made such calls fail under load. The run template and the local
    deployment start the apps as the image's entrypoint does."""
    assert KEEP_ALIVE_S >= 600
    (doc,) = _docs(RUN_TEMPLATE)
    commands = [app["command"] for app in doc["apps"]]
    commands += [spec.command for spec in LocalDeployment(workflows=[]).specs()]
    for command in commands:
        args = list(command)
        assert args[args.index("--timeout-keep-alive") + 1] == str(KEEP_ALIVE_S), args
    entrypoint = (DEPLOY / "entrypoint.sh").read_text(encoding="utf-8")
    assert f'--timeout-keep-alive "${{SUPERSTEP_KEEP_ALIVE_S:-{KEEP_ALIVE_S}}}"' in entrypoint


@pytest.mark.skipif(shutil.which("sh") is None, reason="no POSIX shell")
def test_entrypoint_refuses_an_unknown_role() -> None:
    out = subprocess.run(
        ["sh", str(DEPLOY / "entrypoint.sh")],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), "SUPERSTEP_ROLE": "nope"},
        timeout=30,
        check=False,
    )
    assert out.returncode == 64 and "unknown role" in out.stderr


# -- documentation -----------------------------------------------------------------------------
def test_deploy_docs_describe_the_tokens_health_checks_and_acas_dapr() -> None:
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert "no authentication of its own" not in text
    for needle in (
        *TOKENS,
        "dapr.io/app-token-secret",
        "dapr.io/api-token-secret",
        "dapr.io/enable-app-health-check",
        "dapr.io/max-body-size",
        "SUPERSTEP_MAX_BODY_BYTES",
        "httpMaxRequestSize",
        "appHealth",
        "maxLenApprox",
        "## ACA's Dapr version",
    ):
        assert needle in text, needle
    # every Secret the manifests read is one the page tells how to create
    for dep in _deployments():
        for secret, _ in _secret_env(_container(dep)).values():
            assert f"secret generic {secret} " in text, secret


ACA_APP_NAME_MAX = 32  # Azure Container Apps: at most 32 lower case letters, digits and '-'


def _aca_pool_app_names() -> dict[str, str]:
    """Pool -> its container app name, for the parameters file and the template's
    defaults (``<appPrefix>-executor-<pool>``)."""
    params = json.loads((ACA / "main.parameters.json").read_text())["parameters"]
    prefix = params["appPrefix"]["value"]
    names = {p["name"]: f"{prefix}-executor-{p['name']}" for p in params["pools"]["value"]}
    defaults = re.search(r"param pools array = \[(.*?)\n\]", _bicep(), re.S)
    assert defaults, "the pools parameter has a default list"
    for pool in re.findall(r"name: '([^']+)'", defaults.group(1)):
        names[pool] = f"superstep-executor-{pool}"
    return names


def test_the_shipped_pools_fit_aca_s_app_names() -> None:
    names = _aca_pool_app_names()
    assert set(names) >= {"default", "analysis"}
    for pool, name in names.items():
        assert len(name) <= ACA_APP_NAME_MAX, f"pool {pool!r}: {name!r}"
        assert re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]", name) and "--" not in name, name


def test_bicep_fails_a_pool_whose_app_name_aca_would_refuse_naming_the_pool() -> None:
    """Every pool app's name comes through the guard: a name over 32 characters, or with
    characters ACA refuses, fails the deployment (ARM's ``fail()``, evaluated with the
    variables at validation) with a message naming the pool. (Bicep and ARM do not run
    here: the test reads the guard.)"""
    text = _bicep()
    assert re.search(r"^var containerAppNameMax = 32$", text, re.M)
    guard = re.search(r"^var poolAppIds = (.*)$", text, re.M)
    assert guard, "poolAppIds is one guarded expression"
    expression = guard.group(1)
    assert "length(poolAppNames[i]) > containerAppNameMax ? fail(poolNameTooLong[i])" in expression
    assert "fail(poolNameBadCharacters[i])" in expression
    assert expression.endswith(": poolAppNames[i])]")
    for message in ("poolNameTooLong", "poolNameBadCharacters"):
        line = re.search(rf"^var {message} = (.*)$", text, re.M)
        assert line and "'pool \\'${pool.name}\\'" in line.group(1), message
    too_long = re.search(r"^var poolNameTooLong = (.*)$", text, re.M)
    assert too_long and "${containerAppNameMax - length('${appPrefix}-executor-')}" in (
        too_long.group(1)
    ), "the message says how long a pool name may be"
    # the names are used only through the guard: resources name poolAppIds
    uses = re.findall(r"poolAppNames\[i\]", text)
    assert len(uses) == len(re.findall(r"poolAppNames\[i\]", too_long.group(1) + expression))
    assert "poolAppIds[i]" in text


def test_the_run_template_uses_the_app_ids_of_the_kubernetes_deployment() -> None:
    """A run on ``dapr.yaml`` and one on Kubernetes name the same apps (logs, metrics,
    ``GET /hosts`` and the console read the same locally and deployed)."""
    (doc,) = _docs(RUN_TEMPLATE)
    assert {app["appID"] for app in doc["apps"]} == _app_ids()
    for app in doc["apps"]:
        assert app["env"]["APP_ID"] == app["appID"]
