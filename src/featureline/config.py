"""featureline.yaml plus FEATURELINE_* environment overrides, validated once."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featureline.errors import ConfigError, NotFoundError, did_you_mean

CONFIG_FILE = "featureline.yaml"
_KNOWN = {"project", "registry", "offline_store", "online_store", "description", "metadata", "artifacts", "writes"}
_WRITE_KEYS = {"max_future_seconds"}
DEFAULT_MAX_FUTURE_SECONDS = 300.0  # how far past now an event time may be when written


@dataclass(frozen=True)
class RepoConfig:
    repo_path: Path
    project: str
    registry: str
    offline_path: Path
    online: dict[str, Any]
    metadata: str = "data/metadata.db"
    artifacts: str = "data/artifacts"
    max_future_seconds: float | None = DEFAULT_MAX_FUTURE_SECONDS  # None: no bound
    offline_engine: dict[str, Any] = field(default_factory=dict)  # `offline_store:` minus its path

    @classmethod
    def load(cls, repo_path: str | os.PathLike[str]) -> RepoConfig:
        root = Path(repo_path).resolve()
        f = root / CONFIG_FILE
        if not f.exists():
            raise NotFoundError(
                f"No `{CONFIG_FILE}` in `{root}`: this is not a feature repo. "
                f"Fix: run `featureline init {repo_path}` or pass the repo folder (--repo / FEATURELINE_REPO)."
            )
        import yaml

        try:
            raw = yaml.safe_load(f.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"`{f}` is not valid YAML: {e}") from e
        if not isinstance(raw, dict):
            raise ConfigError(f"`{f}` must be a mapping with at least `project:`.")
        problems = [
            f"unknown setting `{k}`.{did_you_mean(k, _KNOWN)}" for k in raw if k not in _KNOWN
        ]
        project = raw.get("project")
        if not isinstance(project, str) or not project:
            problems.append("`project` must be set to a name, e.g. `project: fraud`.")
        writes = raw.get("writes") or {}
        max_future: float | None = DEFAULT_MAX_FUTURE_SECONDS
        if not isinstance(writes, dict):
            problems.append("`writes` must be a mapping, e.g. `writes: {max_future_seconds: 300}`.")
        else:
            problems += [f"unknown setting `writes.{k}`.{did_you_mean(k, _WRITE_KEYS)}" for k in writes if k not in _WRITE_KEYS]
            if "max_future_seconds" in writes:
                v = writes["max_future_seconds"]
                if v is None:
                    max_future = None
                elif isinstance(v, int | float) and not isinstance(v, bool) and v >= 0:
                    max_future = float(v)
                else:
                    problems.append(f"`writes.max_future_seconds` must be a number of seconds >= 0 or null (no bound), got `{v}`.")
        offline = raw.get("offline_store") or {}
        if not isinstance(offline, dict):
            problems.append("`offline_store` must be a mapping, e.g. `offline_store: {type: duckdb, path: data/offline}`.")
            offline = {}
        else:
            from featureline.offline.engines import validate_engine_config

            problems += validate_engine_config(offline)
        if problems:
            raise ConfigError(f"Problems in `{f}`:\n" + "\n".join(f"  - {p}" for p in problems))
        online = raw.get("online_store") or {"type": "sqlite", "path": "data/online.db"}
        registry = os.environ.get("FEATURELINE_REGISTRY") or str(raw.get("registry", "data/registry.db"))
        offline_path = Path(os.environ.get("FEATURELINE_OFFLINE_PATH") or offline.get("path", "data/offline"))
        if not offline_path.is_absolute():
            offline_path = root / offline_path
        metadata = os.environ.get("FEATURELINE_METADATA") or str(raw.get("metadata", "data/metadata.db"))
        artifacts = str(raw.get("artifacts", "data/artifacts"))
        if "://" not in artifacts and not Path(artifacts).is_absolute():
            artifacts = str(root / artifacts)
        return cls(
            root, str(project), registry, offline_path, dict(online), metadata, artifacts, max_future,
            offline_engine={k: v for k, v in offline.items() if k != "path"},
        )
