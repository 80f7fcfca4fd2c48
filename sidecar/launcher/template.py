"""The multi-app run template (``dapr.yaml``) of ``dapr run -f`` (dapr-contract §6).

``common`` keys apply to every app that leaves them unset; ``env`` merges per key (the
app wins). ``common`` paths are relative to the template, app paths to ``appDirPath``.
Resources path per app: the app's ``resourcesPaths`` → ``<appDirPath>/.dapr/resources``
if it exists → ``common.resourcesPaths`` → ``~/.dapr/components`` (if it exists). Unknown keys are
ignored, as the CLI's non-strict parser does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from sidecar.errors import ResourceError

__all__ = ["AppSpec", "HealthCheck", "RunTemplate", "load_template", "quantity_bytes"]

_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "Ki": 1 << 10,
    "Mi": 1 << 20,
    "Gi": 1 << 30,
}


def quantity_bytes(text: str) -> int:
    """Bytes of a size as daprd's flags take it (a Kubernetes quantity: ``4Mi``,
    ``512Ki``, ``10M``, ``1048576``)."""
    number = text.rstrip("kKMGiB")
    unit = text[len(number) :]
    if unit not in _UNITS or not number.isdigit():
        raise ValueError(f"{text!r} is not a size like 4Mi, 512Ki or 1048576")
    return int(number) * _UNITS[unit]


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class HealthCheck:
    """App health checks (``enableAppHealthCheck`` and its settings): the sidecar probes
    ``GET path`` every ``interval_s`` seconds with a ``timeout_ms`` timeout, and takes
    the app out (actor placement, subscriptions) after ``threshold`` failures in a row.
    Defaults are daprd's."""

    path: str = "/healthz"
    interval_s: int = 5
    timeout_ms: int = 500
    threshold: int = 3


@dataclass(frozen=True)
class AppSpec:
    """One app of a run: its process and its sidecar."""

    app_id: str
    app_dir: Path
    command: tuple[str, ...] = ()
    app_port: int | None = None
    app_host: str = "127.0.0.1"
    app_protocol: str = "http"
    http_port: int = 0
    grpc_port: int = 0
    env: Mapping[str, str] = field(default_factory=_empty)
    resources_paths: tuple[Path, ...] = ()
    instance: str = ""
    """A replica's own name when several apps share ``app_id`` (replicas of one app,
    as on Kubernetes); empty for the usual one app per id."""
    health_check: HealthCheck | None = None
    config_file: Path | None = None
    placement_address: str | None = None
    scheduler_address: str | None = None
    max_body_size: str = "4Mi"
    """daprd's ``--max-body-size``: the largest request body its APIs and app channel take."""
    read_buffer_size: str = "4Ki"
    app_max_concurrency: int = -1
    log_level: str | None = None
    app_log_destination: str = "fileAndConsole"
    """Where the app's log lines go (``appLogDestination``): ``console``, ``file``
    (``<appDirPath>/.dapr/logs/<app id>_app_<time>.log``) or ``fileAndConsole``."""
    daprd_log_destination: str = "file"
    """Where its daprd's lines go (``daprdLogDestination``; ``--daprd`` only)."""

    @property
    def name(self) -> str:
        """What the launcher calls this app (its logs, kill/restart): the instance
        name of a replica, else the app id."""
        return self.instance or self.app_id


@dataclass(frozen=True)
class RunTemplate:
    name: str
    apps: tuple[AppSpec, ...]
    file: Path


def _paths(raw: object, base: Path, where: str, field_name: str) -> list[Path]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise ResourceError(where, field_name, "must be a list of paths")
    return [(base / Path(p).expanduser()).resolve() for p in raw]


def _env(raw: object, where: str, field_name: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ResourceError(where, field_name, "must be a mapping of names to values")
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


def _size(raw: object, where: str, field_name: str) -> str:
    text = "4Mi" if raw is None or raw == "" else str(raw)
    try:
        quantity_bytes(text)
    except ValueError as exc:
        raise ResourceError(where, field_name, str(exc)) from None
    return text


_DESTINATIONS = ("console", "file", "fileAndConsole")


def _destination(raw: object, default: str, where: str, field_name: str) -> str:
    """A log destination as the Dapr CLI takes it (the default when unset)."""
    if raw is None or raw == "":
        return default
    if raw not in _DESTINATIONS:
        raise ResourceError(where, field_name, f"must be one of {', '.join(_DESTINATIONS)}")
    return str(raw)


def _str(raw: object) -> str | None:
    return None if raw is None or raw == "" else str(raw)


def _int(raw: object, where: str, field_name: str) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ResourceError(where, field_name, "must be a port number")
    try:
        return int(raw)
    except ValueError:
        raise ResourceError(where, field_name, f"{raw!r} is not a port number") from None


def _bool(raw: object, where: str, field_name: str) -> bool:
    if raw is None:
        return False
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise ResourceError(where, field_name, "must be true or false")


def _health(pick: Any, where: str, field_base: str) -> HealthCheck | None:
    if not _bool(pick("enableAppHealthCheck"), where, f"{field_base}.enableAppHealthCheck"):
        return None
    default = HealthCheck()
    values = {}
    for key, attr in (
        ("appHealthProbeInterval", "interval_s"),
        ("appHealthProbeTimeout", "timeout_ms"),
        ("appHealthThreshold", "threshold"),
    ):
        value = _int(pick(key), where, f"{field_base}.{key}")
        values[attr] = getattr(default, attr) if value is None else value
    return HealthCheck(path=str(pick("appHealthCheckPath") or default.path), **values)


def _config(
    app: Mapping[str, Any], common: Mapping[str, Any], app_dir: Path, base: Path
) -> Path | None:
    """Config file per app: the app's ``configFilePath`` → ``<appDirPath>/.dapr/config.yaml``
    if it exists → ``common.configFilePath`` → none (daprd's caller picks its default)."""
    if isinstance(app.get("configFilePath"), str):
        return (app_dir / Path(app["configFilePath"]).expanduser()).resolve()
    local = app_dir / ".dapr" / "config.yaml"
    if local.is_file():
        return local
    if isinstance(common.get("configFilePath"), str):
        return (base / Path(common["configFilePath"]).expanduser()).resolve()
    return None


def _resources(
    app: Mapping[str, Any], common: Mapping[str, Any], app_dir: Path, base: Path, where: str
) -> tuple[Path, ...]:
    own = _paths(app.get("resourcesPaths"), app_dir, where, "resourcesPaths")
    own += _paths(app.get("resourcesPath"), app_dir, where, "resourcesPath")
    if own:
        return tuple(own)
    local = app_dir / ".dapr" / "resources"
    if local.is_dir():
        return (local,)
    shared = _paths(common.get("resourcesPaths"), base, where, "common.resourcesPaths")
    shared += _paths(common.get("resourcesPath"), base, where, "common.resourcesPath")
    if shared:
        return tuple(shared)
    fallback = Path("~/.dapr/components").expanduser()
    return (fallback,) if fallback.is_dir() else ()


def load_template(file: Path | str) -> RunTemplate:
    path = Path(file).resolve()
    where = str(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ResourceError(where, "<file>", f"cannot read the run template: {exc}") from None
    if not isinstance(doc, Mapping):
        raise ResourceError(where, "<document>", "expected a mapping")
    if not doc.get("version"):
        raise ResourceError(where, "version", "is required and must be non-zero")
    base = path.parent
    common = doc.get("common") or {}
    if not isinstance(common, Mapping):
        raise ResourceError(where, "common", "must be a mapping")
    raw_apps = doc.get("apps")
    if not isinstance(raw_apps, list) or not raw_apps:
        raise ResourceError(where, "apps", "needs at least one app")
    apps: list[AppSpec] = []
    seen: set[str] = set()
    for i, app in enumerate(raw_apps):
        field_base = f"apps[{i}]"
        if not isinstance(app, Mapping):
            raise ResourceError(where, field_base, "must be a mapping")
        dir_raw = app.get("appDirPath")
        if not isinstance(dir_raw, str) or not dir_raw:
            raise ResourceError(where, f"{field_base}.appDirPath", "is required")
        app_dir = (base / dir_raw).resolve()
        if not app_dir.is_dir():
            raise ResourceError(where, f"{field_base}.appDirPath", f"{app_dir} is not a directory")
        app_id = str(app.get("appID") or app_dir.name)
        if app_id in seen:
            raise ResourceError(where, f"{field_base}.appID", f"app id {app_id!r} is used twice")
        seen.add(app_id)

        def pick(key: str, app: Mapping[str, Any] = app) -> Any:
            return app[key] if app.get(key) is not None else common.get(key)

        command = app.get("command") or []
        if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
            raise ResourceError(where, f"{field_base}.command", "must be a list of strings")
        env = {**_env(common.get("env"), where, "common.env")}
        env.update(_env(app.get("env"), where, f"{field_base}.env"))
        apps.append(
            AppSpec(
                app_id=app_id,
                app_dir=app_dir,
                command=tuple(command),
                app_port=_int(app.get("appPort"), where, f"{field_base}.appPort"),
                app_host=str(pick("appChannelAddress") or "127.0.0.1"),
                app_protocol=str(pick("appProtocol") or "http"),
                http_port=_int(app.get("daprHTTPPort"), where, f"{field_base}.daprHTTPPort") or 0,
                grpc_port=_int(app.get("daprGRPCPort"), where, f"{field_base}.daprGRPCPort") or 0,
                env=MappingProxyType(env),
                resources_paths=_resources(app, common, app_dir, base, where),
                health_check=_health(pick, where, field_base),
                config_file=_config(app, common, app_dir, base),
                placement_address=_str(pick("placementHostAddress")),
                scheduler_address=_str(pick("schedulerHostAddress")),
                max_body_size=_size(pick("maxBodySize"), where, f"{field_base}.maxBodySize"),
                read_buffer_size=str(pick("readBufferSize") or "4Ki"),
                app_max_concurrency=_int(
                    pick("appMaxConcurrency"), where, f"{field_base}.appMaxConcurrency"
                )
                or -1,
                log_level=_str(pick("logLevel")),
                app_log_destination=_destination(
                    pick("appLogDestination"),
                    "fileAndConsole",
                    where,
                    f"{field_base}.appLogDestination",
                ),
                daprd_log_destination=_destination(
                    pick("daprdLogDestination"), "file", where, f"{field_base}.daprdLogDestination"
                ),
            )
        )
    _refuse_shared_in_memory([a for a in apps if _is_superstep_app(a)], where)
    return RunTemplate(str(doc.get("name") or path.stem), tuple(apps), path)


_IN_MEMORY = ("state.in-memory", "pubsub.in-memory")


def _in_memory_components(paths: tuple[Path, ...]) -> list[str]:
    """``name (type)`` of each in-memory component in the resource folders."""
    found: list[str] = []
    for folder in paths:
        for file in sorted(folder.glob("*.y*ml")) if folder.is_dir() else ():
            try:
                docs = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
            except (OSError, yaml.YAMLError):
                continue  # the sidecar names a broken file when it loads it
            for doc in docs:
                if isinstance(doc, Mapping) and doc.get("kind") == "Component":
                    kind = (doc.get("spec") or {}).get("type")
                    if kind in _IN_MEMORY:
                        name = (doc.get("metadata") or {}).get("name", "?")
                        found.append(f"{name} ({kind})")
    return found


def _is_superstep_app(app: AppSpec) -> bool:
    """Whether the app is one of a superstep deployment (the API app or a host)."""
    return any("executor_host" in part or "superstep-serve" in part for part in app.command)


def _refuse_shared_in_memory(apps: list[AppSpec], where: str) -> None:
    """Several apps of a superstep deployment on in-memory components: each sidecar
    would hold a store and a broker of its own, and the apps, which share run records
    and messages, would never see each other's (every run fails). Refused at start;
    other apps may use in-memory components as Dapr allows."""
    if len(apps) < 2:
        return
    for app in apps:
        found = _in_memory_components(app.resources_paths)
        if found:
            raise ResourceError(
                where,
                "apps",
                f"{len(apps)} apps use in-memory components ({', '.join(found)} in "
                f"{', '.join(str(p) for p in app.resources_paths)}), which live inside one "
                "sidecar each and cannot be shared: the apps would not see each other's "
                "state or messages. Use components/ (Redis) or components/postgres/, or "
                "in-memory components with a single app: dapr.inmemory.yaml, the API app "
                "serving the pools itself (SUPERSTEP_POOLS)",
            )
