"""Loading Dapr resource YAML: every repo file loads; bad files fail naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.errors import ResourceError
from sidecar.resources import load_resources

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def repo_yaml_files() -> list[Path]:
    skip = {".venv", ".git", ".peer-venvs", "node_modules"}
    return sorted(
        p
        for p in REPO.rglob("*.y*ml")
        if p.suffix in (".yaml", ".yml")
        and not skip.intersection(p.relative_to(REPO).parts)
        and p.parent.name != "workflows"
    )


def test_every_component_folder_in_the_repo_loads() -> None:
    folders = [
        REPO / "components",
        REPO / "components" / "postgres",
        REPO / "components" / "in-memory",
    ]
    for folder in folders:
        res = load_resources([folder], "any-app")
        types = {c.name: c.type for c in res.components}
        assert set(types) == {"statestore", "pubsub"}, folder
        store = next(c for c in res.components if c.name == "statestore")
        assert store.flag("actorStateStore")
        assert res.inbound_retry("pubsub", "pubsub") is not None


def test_default_components_are_redis_shared_by_name() -> None:
    res = load_resources([REPO / "components"], "a")
    store = next(c for c in res.components if c.name == "statestore")
    assert store.type == "state.redis"
    assert store.get("keyPrefix") == "name"
    assert next(c for c in res.components if c.name == "pubsub").type == "pubsub.redis"


@pytest.mark.parametrize("path", repo_yaml_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_resource_yaml_in_the_repo_parses(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if "kind:" not in text or "dapr.io" not in text:
        pytest.skip("not a Dapr resource file")
    load_resources([path], "any-app")


def test_unknown_type_names_file_and_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: x}\n"
        "spec: {type: state.cassandra, version: v1, metadata: []}\n",
    )
    with pytest.raises(ResourceError) as info:
        load_resources([tmp_path], "a")
    assert info.value.file == str(path)
    assert info.value.field == "spec.type"
    assert "state.cassandra" in str(info.value)


def test_missing_required_metadata_names_the_field(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: r}\n"
        "spec: {type: state.redis, version: v1, metadata: [{name: keyPrefix, value: name}]}\n",
    )
    with pytest.raises(ResourceError, match=r"spec\.metadata\[redisHost\]"):
        load_resources([tmp_path], "a")


def test_unsupported_version_and_missing_metadata_list(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: p}\n"
        "spec: {type: state.postgresql, version: v1, metadata: [{name: connectionString, value: x}]}\n",
    )
    with pytest.raises(ResourceError, match=r"spec\.version"):
        load_resources([tmp_path], "a")
    _write(
        tmp_path,
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: p}\n"
        "spec: {type: state.in-memory, version: v1}\n",
    )
    with pytest.raises(ResourceError, match=r"spec\.metadata"):
        load_resources([tmp_path], "a")


def test_scopes_env_refs_and_templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDECAR_TEST_HOST", "localhost:6379")
    _write(
        tmp_path,
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: ps}\n"
        "spec:\n  type: pubsub.redis\n  version: v1\n  metadata:\n"
        "  - {name: redisHost, envRef: SIDECAR_TEST_HOST}\n"
        "  - {name: consumerID, value: '{appID}-group'}\n"
        "scopes: [app-a]\n",
    )
    assert load_resources([tmp_path], "app-b").components == ()
    (comp,) = load_resources([tmp_path], "app-a").components
    assert comp.get("redisHost") == "localhost:6379"
    assert comp.get("consumerID") == "app-a-group"


def test_declarative_subscription_v2_and_resiliency(tmp_path: Path) -> None:
    _write(
        tmp_path,
        """
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: s}
spec:
  pubsubname: pubsub
  topic: orders
  routes:
    rules: [{match: 'event.type == "a"', path: /a}]
    default: /all
  deadLetterTopic: poison
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: r}
spec:
  policies:
    retries:
      quick: {policy: constant, duration: 10ms, maxRetries: 2}
  targets:
    components:
      pubsub: {inbound: {retry: quick}}
""",
    )
    res = load_resources([tmp_path], "a")
    (sub,) = res.subscriptions
    assert [(r.match, r.path) for r in sub.rules] == [('event.type == "a"', "/a"), ("", "/all")]
    assert sub.dead_letter_topic == "poison"
    policy = res.inbound_retry("pubsub", "pubsub")
    assert policy is not None and policy.max_retries == 2 and policy.duration == pytest.approx(0.01)


def test_resiliency_naming_an_unknown_policy_fails(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: r}\n"
        "spec: {policies: {}, targets: {components: {pubsub: {inbound: {retry: nope}}}}}\n",
    )
    with pytest.raises(ResourceError, match=r"spec\.targets\.components\.pubsub\.inbound\.retry"):
        load_resources([tmp_path], "a")


def test_public_api_is_pinned() -> None:
    import sidecar

    assert sorted(sidecar.__all__) == [
        "ApiError", "AppSpec", "BrokerError", "Cluster", "ETagInvalid", "ETagMismatch",
        "FaultPlan", "LocalSidecarError", "PubSubFaults", "ResourceError", "RunTemplate",
        "Sidecar", "SidecarOptions", "StartupError", "StateFaults", "StateStoreError",
        "Topology", "load_template",
    ]  # fmt: skip
    assert all(hasattr(sidecar, name) for name in sidecar.__all__)
