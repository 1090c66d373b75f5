"""What the server needs from the store, as Protocols (the server codes against the façade only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class OnlineResult(Protocol):
    """The part of `FeatureStore.get_online_features(...)`'s response the server reads."""

    @property
    def keys(self) -> dict[str, list[Any]]: ...

    @property
    def feature_names(self) -> list[str]: ...

    @property
    def statuses(self) -> dict[str, list[str]]: ...

    @property
    def event_timestamps(self) -> dict[str, list[datetime | None]]: ...

    @property
    def event_us(self) -> dict[str, list[int | None]]: ...

    def to_dict(self) -> dict[str, list[Any]]: ...
