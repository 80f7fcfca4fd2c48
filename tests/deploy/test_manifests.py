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

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
BASE = K8S / "base"
ACA = DEPLOY / "aca"
BICEP = ACA / "main.bicep"

SHARED = ("SUPERSTEP_WORKFLOWS", "SUPERSTEP_NAMESPACE", "SUPERSTEP_STATESTORE", "SUPERSTEP_PUBSUB")
CONFIGMAP = "superstep-config"


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
    assert args[len(args) - len(rest) :] == rest


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
