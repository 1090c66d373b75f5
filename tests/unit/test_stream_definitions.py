"""Stream sources in definitions and `streams:` in featureline.yaml (issue 10, item 4)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

import featureline as fl
from featureline.config import RepoConfig
from featureline.definitions import validate_definitions
from featureline.errors import ConfigError, DefinitionError

USER = fl.Entity("user", ["user_id"])


def _view(src: object) -> fl.FeatureView:
    return fl.FeatureView(
        "tx",
        [USER],
        [fl.Field("user_id", fl.Int64), fl.Field("amount", fl.Float64)],
        ttl=timedelta(days=1),
        stream_source=src,  # type: ignore[arg-type]
    )


def test_a_stream_source_round_trips_and_is_absent_from_views_without_one() -> None:
    src = fl.StreamSource(
        "nats", "events.tx", group="w", field_map={"uid": "user_id"}, timestamp_format="epoch_ms"
    )
    v = _view(src)
    d = v.to_dict()
    assert d["stream_source"]["broker"] == "nats"
    back = fl.FeatureView.from_dict(d, {"user": USER})
    assert back.stream_source == src and back == v
    assert "stream_source" not in _view(None).to_dict()  # registries without streams unchanged
    assert src.fields_for(v) == {
        "user_id": "uid",
        "amount": "amount",
        "event_timestamp": "event_timestamp",
    }
    assert src.dead_letter_stream == "deadletter.events.tx"
    assert fl.StreamSource("redis", "tx").dead_letter_stream == "tx:dead"
    assert fl.StreamSource("redis", "tx").group_for("tx") == "featureline_tx"
    assert "StreamSource" in fl.__all__ and "StreamSource" in fl.definitions.__all__


def test_every_problem_of_a_stream_source_is_reported_at_once() -> None:
    bad = fl.StreamSource(
        "kafkaa",
        " ",
        group="a group",
        field_map={"uid": "user_idd", "t": "event_timestamp", "a": "amount", "b": "amount"},
        timestamp_format="unix",
        created_timestamp_field="created",
        max_message_bytes=0,
    )
    with pytest.raises(DefinitionError) as e:
        validate_definitions([USER], [_view(bad)], [])
    text = str(e.value)
    for needle in (
        "unknown broker `kafkaa`",
        "stream `' '`",
        "group `a group`",
        "unknown timestamp_format `unix`",
        "created_timestamp_field `created`",
        "max_message_bytes",
        "`user_idd`, which is not a column",
        "Did you mean `user_id`",
        'timestamp_field="t"',
        "both `a` and `b`",
    ):
        assert needle in text, needle
    with pytest.raises(DefinitionError, match="one subject"):
        validate_definitions([USER], [_view(fl.StreamSource("nats", "events.*"))], [])
    with pytest.raises(DefinitionError, match="must be a StreamSource"):
        validate_definitions([USER], [_view("redis://x")], [])
    validate_definitions([USER], [_view(fl.StreamSource("redis", "tx"))], [])  # fine


def _repo(tmp_path: Path, extra: str) -> Path:
    root = tmp_path / "r"
    root.mkdir(parents=True)
    (root / "featureline.yaml").write_text("project: p\n" + extra)
    return root


def test_streams_config_defaults_urls_and_unknown_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FEATURELINE_STREAMS_REDIS_URL", raising=False)
    monkeypatch.delenv("FEATURELINE_STREAMS_NATS_URL", raising=False)
    cfg = RepoConfig.load(_repo(tmp_path, ""))
    assert cfg.streams["redis"].url == "redis://127.0.0.1:6379/0"
    assert cfg.streams["nats"].url == "nats://127.0.0.1:4222"
    root = _repo(
        tmp_path / "b",
        "streams:\n  redis: {url: 'redis://h:1/2', redeliver_after_seconds: 2, max_deliveries: 3}\n",
    )
    cfg = RepoConfig.load(root)
    assert (cfg.streams["redis"].url, cfg.streams["redis"].redeliver_after_seconds) == (
        "redis://h:1/2",
        2.0,
    )
    assert cfg.streams["redis"].max_deliveries == 3
    monkeypatch.setenv("FEATURELINE_STREAMS_NATS_URL", "nats://elsewhere:4222")
    assert RepoConfig.load(root).streams["nats"].url == "nats://elsewhere:4222"
    monkeypatch.delenv("FEATURELINE_STREAMS_NATS_URL")
    bad = _repo(
        tmp_path / "c",
        "streams:\n  kafka: {}\n  redis: {uri: x, max_deliveries: -1}\n  nats: {url: nope}\n",
    )
    with pytest.raises(ConfigError) as e:
        RepoConfig.load(bad)
    text = str(e.value)
    assert "unknown setting `streams.kafka`" in text and "Valid: redis, nats" in text
    assert "unknown setting `streams.redis.uri`" in text and "Did you mean `url`" in text
    assert "streams.redis.max_deliveries" in text
    assert "`streams.nats.url` must be a URL" in text
