"""The definition objects and their dict form (the registry stores the dict form)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from featureline.definitions._aggregation import Aggregation
from featureline.definitions._checks import Check
from featureline.definitions._stream import StreamSource
from featureline.types import DType, parse_dtype

RESERVED_PREFIX = "__"


def _tags(tags: dict[str, str] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (tags or {}).items()}


@dataclass(frozen=True)
class Entity:
    """A thing features describe (a driver, a card). `join_keys` are its key columns."""

    name: str
    join_keys: list[str] = field(default_factory=list)
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        keys = list(self.join_keys) if self.join_keys else [self.name]
        object.__setattr__(self, "join_keys", keys)
        object.__setattr__(self, "tags", _tags(self.tags))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "join_keys": list(self.join_keys),
            "description": self.description,
            "owner": self.owner,
            "tags": dict(self.tags),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Entity:
        return cls(
            d["name"],
            list(d["join_keys"]),
            d.get("description", ""),
            d.get("owner", ""),
            d.get("tags", {}),
        )


@dataclass(frozen=True)
class Field:
    """A typed column of a feature view."""

    name: str
    dtype: DType
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    constraints: list[Check] = field(default_factory=list)  # e.g. [Check.min(0)]

    def __post_init__(self) -> None:
        if isinstance(self.dtype, str):
            object.__setattr__(self, "dtype", parse_dtype(self.dtype))
        object.__setattr__(self, "tags", _tags(self.tags))
        object.__setattr__(self, "constraints", list(self.constraints or []))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": str(self.dtype),
            "description": self.description,
            "tags": dict(self.tags),
            # only when used: registries written before constraints existed stay unchanged
            **(
                {"constraints": [c.to_dict() for c in self.constraints]} if self.constraints else {}
            ),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Field:
        return cls(
            d["name"],
            parse_dtype(d["dtype"]),
            d.get("description", ""),
            d.get("tags", {}),
            [Check.from_dict(c) for c in d.get("constraints", [])],
        )


@dataclass(frozen=True)
class FileSource:
    """Parquet or CSV files (a path or a glob) with an event-time column."""

    path: str
    timestamp_field: str = "event_timestamp"
    created_timestamp_field: str | None = None
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "file",
            "path": self.path,
            "timestamp_field": self.timestamp_field,
            "created_timestamp_field": self.created_timestamp_field,
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileSource:
        return cls(
            d["path"], d["timestamp_field"], d.get("created_timestamp_field"), d.get("name", "")
        )

    @property
    def format(self) -> str:
        return "csv" if self.path.lower().endswith((".csv", ".csv.gz")) else "parquet"


@dataclass(frozen=True)
class FeatureViewProjection:
    """A view with a subset of its features, as used in a FeatureService: `view[["a", "b"]]`."""

    view: FeatureView
    features: list[str]

    def refs(self) -> list[str]:
        return [f"{self.view.name}:{f}" for f in self.features]


@dataclass(frozen=True, eq=False)
class FeatureView:
    """A group of features over the same entities, read from one source, with a time-to-live."""

    name: str
    entities: list[Entity] = field(default_factory=list)
    schema: list[Field] = field(default_factory=list)
    source: FileSource | None = None
    ttl: timedelta | None = None
    owner: str = ""
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    online: bool = True
    version: int = 1
    aggregations: list[Aggregation] = field(default_factory=list)
    tile: timedelta = timedelta(0)  # aggregation tile size; 0: exact windows
    freshness: timedelta | None = None  # objective: newest servable event at most this old
    stream_source: StreamSource | None = None  # where `featureline stream` reads its events
    checks: list[Check] = field(default_factory=list)  # view checks: Check.unique(), Check.sql
    gate: str | None = None  # strict | quarantine | warn; None: quarantine when constrained

    def __post_init__(self) -> None:
        object.__setattr__(self, "entities", list(self.entities))
        object.__setattr__(self, "schema", list(self.schema))
        object.__setattr__(self, "tags", _tags(self.tags))
        object.__setattr__(self, "aggregations", list(self.aggregations or []))
        object.__setattr__(self, "checks", list(self.checks or []))

    @property
    def constrained(self) -> bool:
        """Whether any field or view check applies to writes."""
        return bool(self.checks) or any(f.constraints for f in self.schema)

    @property
    def gate_mode(self) -> str | None:
        """The ingestion gate writes use: the declared one, else `quarantine` when constrained."""
        if not self.constrained:
            return None
        return self.gate or "quarantine"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureView) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.name, self.version))

    def __getitem__(self, features: list[str] | str) -> FeatureViewProjection:
        names = [features] if isinstance(features, str) else list(features)
        return FeatureViewProjection(self, names)

    @property
    def join_keys(self) -> list[str]:
        keys: list[str] = []
        for e in self.entities:
            for k in e.join_keys:
                if k not in keys:
                    keys.append(k)
        return keys

    @property
    def features(self) -> list[Field]:
        """Fields that are features (the schema minus the join keys and timestamp columns)."""
        skip = set(self.join_keys)
        if self.source is not None:
            skip |= {self.source.timestamp_field, self.source.created_timestamp_field or ""}
        return [f for f in self.schema if f.name not in skip]

    @property
    def key_fields(self) -> dict[str, DType]:
        """Join keys whose type the schema declares."""
        keys = set(self.join_keys)
        return {f.name: f.dtype for f in self.schema if f.name in keys}

    def feature(self, name: str) -> Field | None:
        for f in self.features:
            if f.name == name:
                return f
        return None

    def aggregation(self, name: str) -> Aggregation | None:
        for a in self.aggregations:
            if a.name == name:
                return a
        return None

    @property
    def feature_names(self) -> list[str]:
        """What refs may name: the stored features, then the aggregation features."""
        return [f.name for f in self.features] + [a.name for a in self.aggregations]

    @property
    def freshness_us(self) -> int | None:
        if not isinstance(self.freshness, timedelta):
            return None
        return self.freshness // timedelta(microseconds=1)

    @property
    def tile_us(self) -> int:
        if not isinstance(self.tile, timedelta):
            return 0
        return self.tile // timedelta(microseconds=1)

    @property
    def ttl_seconds(self) -> float | None:
        if self.ttl is None:
            return None
        return self.ttl.total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "entities": [e.name for e in self.entities],
            "schema": [f.to_dict() for f in self.schema],
            "source": self.source.to_dict() if self.source is not None else None,
            "ttl_seconds": self.ttl_seconds,
            "owner": self.owner,
            "description": self.description,
            "tags": dict(self.tags),
            "online": self.online,
            **({"freshness_us": self.freshness_us} if self.freshness is not None else {}),
            # only when used: registries written before aggregations existed stay unchanged
            **(
                {"aggregations": [a.to_dict() for a in self.aggregations], "tile_us": self.tile_us}
                if self.aggregations
                else {}
            ),
            # only when set, likewise
            **(
                {"stream_source": self.stream_source.to_dict()}
                if self.stream_source is not None
                else {}
            ),
            **({"checks": [c.to_dict() for c in self.checks]} if self.checks else {}),
            **({"gate": self.gate} if self.gate is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], entities: dict[str, Entity]) -> FeatureView:
        ttl = d.get("ttl_seconds")
        return cls(
            name=d["name"],
            entities=[entities[n] if n in entities else Entity(n) for n in d["entities"]],
            schema=[Field.from_dict(f) for f in d["schema"]],
            source=FileSource.from_dict(d["source"]) if d.get("source") else None,
            ttl=timedelta(seconds=ttl) if ttl is not None else None,
            owner=d.get("owner", ""),
            description=d.get("description", ""),
            tags=d.get("tags", {}),
            online=d.get("online", True),
            version=int(d.get("version", 1)),
            aggregations=[Aggregation.from_dict(a) for a in d.get("aggregations", [])],
            tile=timedelta(microseconds=int(d.get("tile_us", 0))),
            freshness=(
                timedelta(microseconds=int(d["freshness_us"]))
                if d.get("freshness_us") is not None
                else None
            ),
            stream_source=(
                StreamSource.from_dict(d["stream_source"]) if d.get("stream_source") else None
            ),
            checks=[Check.from_dict(c) for c in d.get("checks", [])],
            gate=d.get("gate"),
        )


@dataclass(frozen=True)
class FeatureService:
    """A named set of features a model uses: views, view projections or "view:feature" strings."""

    name: str
    features: list[Any] = field(default_factory=list)
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", list(self.features))
        object.__setattr__(self, "tags", _tags(self.tags))

    def refs(self) -> list[str]:
        """The feature references ("view:feature") this service selects."""
        out: list[str] = []
        for item in self.features:
            if isinstance(item, FeatureView):
                out += [f"{item.name}:{f}" for f in item.feature_names]
            elif isinstance(item, FeatureViewProjection):
                out += item.refs()
            else:
                out.append(str(item))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "features": self.refs(),
            "description": self.description,
            "owner": self.owner,
            "tags": dict(self.tags),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureService:
        return cls(
            d["name"],
            list(d["features"]),
            d.get("description", ""),
            d.get("owner", ""),
            d.get("tags", {}),
        )
