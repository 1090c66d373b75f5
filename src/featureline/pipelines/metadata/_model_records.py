"""The model registry, kept in the metadata store: versions, aliases and model cards.

A model version points at a model artifact (content-addressed) and carries a card: metrics,
parameters, the features it was trained on (pinned to view versions), the registry version,
the training set and the run. Aliases (`production`, `staging`, ...) move between versions.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from featureline.errors import NotFoundError, ValidationError, did_you_mean
from featureline.pipelines.artifacts import ArtifactRef

P = "featureline_meta_"
MODEL_TABLES = (P + "model_versions", P + "model_aliases")
MODELS_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {P}model_versions (
    namespace TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    artifact TEXT NOT NULL, card TEXT NOT NULL, created_at {{ts}} NOT NULL,
    PRIMARY KEY (namespace, name, version));
CREATE TABLE IF NOT EXISTS {P}model_aliases (
    namespace TEXT NOT NULL, name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL,
    updated_at {{ts}} NOT NULL, PRIMARY KEY (namespace, name, alias))
"""
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _check(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValidationError(
            f"{what} `{value!r}` is not valid. Fix: use letters, digits, `_`, `.` or `-`, starting with a letter."
        )
    return value


def _training_set_of(card: Any) -> Any:
    training = card.get("training") if isinstance(card, dict) else None
    return training.get("training_set_id") if isinstance(training, dict) else None


class ModelRegistryMixin:
    """Model registry methods for SqlMetadataStore (shares its connections and transactions)."""

    namespace: str

    if TYPE_CHECKING:  # provided by SqlMetadataStore

        def _x(self, db: Any, sql: str, *params: Any) -> Any: ...
        def _write(self, fn: Any) -> Any: ...
        def _read(self, fn: Any) -> Any: ...
        def _to_db(self, ts: datetime) -> Any: ...
        def _from_db(self, value: Any) -> datetime: ...

    def register_model_version(self, name: str, artifact: ArtifactRef, card: dict[str, Any]) -> int:
        """Add a version (previous + 1) of model `name`; returns the version number."""
        from featureline.pipelines.metadata._store import dump, now

        _check(name, "Model name")
        card_text = dump(card)
        art = json.dumps(artifact.__dict__)

        def run(db: Any) -> int:
            row = self._x(
                db,
                f"SELECT max(version) FROM {P}model_versions WHERE namespace = ? AND name = ?",
                self.namespace,
                name,
            ).fetchone()
            version = int(row[0] or 0) + 1
            self._x(
                db,
                f"INSERT INTO {P}model_versions (namespace, name, version, artifact, card, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                self.namespace,
                name,
                version,
                art,
                card_text,
                self._to_db(now()),
            )
            return version

        return int(self._write(run))

    def register_model_version_once(
        self, name: str, artifact: ArtifactRef, card: dict[str, Any]
    ) -> tuple[int, bool]:
        """(version, True) after adding a version like `register_model_version`, or (version,
        False) when a version of `name` already holds the same model artifact trained on the
        same training set (`card["training"]["training_set_id"]`, None for none): registering
        it again returns that version. The check and the insert are one transaction."""
        from featureline.pipelines.metadata._store import dump, now

        _check(name, "Model name")
        card_text = dump(card)
        art = json.dumps(artifact.__dict__)
        trained_on = _training_set_of(card)

        def run(db: Any) -> tuple[int, bool]:
            sql = f"SELECT version, artifact, card FROM {P}model_versions WHERE namespace = ? AND name = ? ORDER BY version"
            found = self._x(db, sql, self.namespace, name).fetchall()
            for version, other_art, other_card in found:
                if (
                    json.loads(other_art).get("id") == artifact.id
                    and _training_set_of(json.loads(other_card)) == trained_on
                ):
                    return int(version), False
            version = max((int(r[0]) for r in found), default=0) + 1
            self._x(
                db,
                f"INSERT INTO {P}model_versions (namespace, name, version, artifact, card, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                self.namespace,
                name,
                version,
                art,
                card_text,
                self._to_db(now()),
            )
            return version, True

        version, new = self._write(run)
        return int(version), bool(new)

    def set_model_alias(self, name: str, alias: str, version: int) -> None:
        """Point `alias` (e.g. `production`) of model `name` at `version`."""
        from featureline.pipelines.metadata._store import now

        _check(alias, "Alias")
        if alias.isdigit() or alias == "latest":
            raise ValidationError(
                f"Alias `{alias}` would be ambiguous with a version. Fix: use a word, e.g. `production`."
            )
        self.get_model_version(name, version)

        def run(db: Any) -> None:
            self._x(
                db,
                f"INSERT INTO {P}model_aliases (namespace, name, alias, version, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (namespace, name, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
                self.namespace,
                name,
                alias,
                int(version),
                self._to_db(now()),
            )

        self._write(run)

    def get_model_version(self, name: str, ref: int | str | None = None) -> dict[str, Any]:
        """A version by number, by alias, or the latest (`None` / "latest")."""
        _check(name, "Model name")

        def run(db: Any) -> dict[str, Any]:
            version: int | None
            if ref is None or ref == "latest":
                row = self._x(
                    db,
                    f"SELECT max(version) FROM {P}model_versions WHERE namespace = ? AND name = ?",
                    self.namespace,
                    name,
                ).fetchone()
                version = int(row[0]) if row and row[0] is not None else None
            elif isinstance(ref, int) or (isinstance(ref, str) and ref.lstrip("v").isdigit()):
                version = int(str(ref).lstrip("v"))
            else:
                row = self._x(
                    db,
                    f"SELECT version FROM {P}model_aliases WHERE namespace = ? AND name = ? AND alias = ?",
                    self.namespace,
                    name,
                    ref,
                ).fetchone()
                if row is None:
                    aliases = [
                        r[0]
                        for r in self._x(
                            db,
                            f"SELECT alias FROM {P}model_aliases WHERE namespace = ? AND name = ?",
                            self.namespace,
                            name,
                        ).fetchall()
                    ]
                    raise NotFoundError(
                        f"Model `{name}` has no alias `{ref}`.{did_you_mean(str(ref), aliases)} "
                        f"Aliases: {', '.join(aliases) or 'none'}. Fix: `featureline models alias {name} {ref} VERSION`."
                    )
                version = int(row[0])
            row = (
                None
                if version is None
                else self._x(
                    db,
                    f"SELECT version, artifact, card, created_at FROM {P}model_versions WHERE namespace = ? AND name = ? AND version = ?",
                    self.namespace,
                    name,
                    version,
                ).fetchone()
            )
            if row is None:
                names = [
                    r[0]
                    for r in self._x(
                        db,
                        f"SELECT DISTINCT name FROM {P}model_versions WHERE namespace = ?",
                        self.namespace,
                    ).fetchall()
                ]
                what = f"version {version}" if version is not None else "versions"
                raise NotFoundError(
                    f"Model `{name}` has no {what}.{did_you_mean(name, names)} Registered models: {', '.join(sorted(names)) or 'none'}."
                )
            aliases = [
                r[0]
                for r in self._x(
                    db,
                    f"SELECT alias FROM {P}model_aliases WHERE namespace = ? AND name = ? AND version = ?",
                    self.namespace,
                    name,
                    int(row[0]),
                ).fetchall()
            ]
            return {
                "name": name,
                "version": int(row[0]),
                "artifact": ArtifactRef(**json.loads(row[1])),
                "card": json.loads(row[2]),
                "created_at": self._from_db(row[3]),
                "aliases": sorted(aliases),
            }

        result: dict[str, Any] = self._read(run)
        return result

    def list_model_versions(self, name: str | None = None) -> list[dict[str, Any]]:
        """(name, version, created_at, aliases) of every version, newest first."""

        def run(db: Any) -> list[dict[str, Any]]:
            sql = f"SELECT name, version, created_at FROM {P}model_versions WHERE namespace = ?"
            params: list[Any] = [self.namespace]
            if name is not None:
                sql += " AND name = ?"
                params.append(name)
            rows = self._x(db, sql + " ORDER BY name, version DESC", *params).fetchall()
            aliases: dict[tuple[str, int], list[str]] = {}
            for n, a, v in self._x(
                db,
                f"SELECT name, alias, version FROM {P}model_aliases WHERE namespace = ?",
                self.namespace,
            ).fetchall():
                aliases.setdefault((n, int(v)), []).append(a)
            return [
                {
                    "name": n,
                    "version": int(v),
                    "created_at": self._from_db(t),
                    "aliases": sorted(aliases.get((n, int(v)), [])),
                }
                for n, v, t in rows
            ]

        result: list[dict[str, Any]] = self._read(run)
        return result
