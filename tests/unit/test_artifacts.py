"""Artifacts: every materializer round-trips, storage is content-addressed and atomic; cache keys."""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from sklearn.linear_model import LinearRegression

from featureline.errors import (
    ConfigError,
    MissingExtraError,
    NotFoundError,
    StorageError,
    ValidationError,
)
from featureline.pipelines.artifacts import ArtifactRef, ArtifactStore, Metrics, materializer_for
from featureline.pipelines.cache import cache_key, code_hash


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "i": [1, 2, 3],
            "f": [1.5, None, 3.0],
            "s": ["a", None, "c"],
            "b": [True, False, True],
            "t": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
            "c": pd.Categorical(["x", "y", "x"]),
            "n": pd.array([1, None, 3], dtype="Int64"),
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(str(tmp_path / "artifacts"))


@pytest.fixture
def memory_root() -> str:
    return f"memory://featureline-test-{uuid.uuid4().hex}"


# ---- round trips ----------------------------------------------------------------------------


def _same(expected: Any, got: Any) -> None:
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(got, expected)
    elif isinstance(expected, pl.DataFrame):
        assert got.equals(expected) and got.schema == expected.schema
    elif isinstance(expected, np.ndarray):
        assert got.dtype == expected.dtype and np.array_equal(got, expected)
    else:
        assert type(got) is type(expected) and got == expected


VALUES: list[tuple[str, Any]] = [
    ("arrow", pa.table({"a": [1, 2, None], "s": ["x", "y", "z"]})),
    ("pandas", _frame()),
    ("pandas", _frame().set_index("s")),
    ("polars", pl.DataFrame({"a": [1, 2], "s": ["x", None], "f": [0.5, 1.5]})),
    ("numpy", np.arange(12, dtype=np.float32).reshape(3, 4)),
    ("json", {"b": [1, 2.5, None, True], "a": {"nested": "ü"}}),
    ("json", ["x", 1]),
    ("json", "text"),
    ("json", 42),
    ("json", None),
    ("metrics", Metrics(rmse=0.25, r2=1)),
    ("pickle", (1, "tuple")),
    ("pickle", {1: "int keys"}),
    ("pickle", np.array([{"a": 1}, None], dtype=object)),
    ("pickle", pd.DataFrame({"mixed": [1, "a", None]})),
    ("pickle", pd.DataFrame({0: [1.0]})),
]


@pytest.mark.parametrize(
    ("kind", "value"), VALUES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(VALUES)]
)
def test_round_trip(store: ArtifactStore, kind: str, value: Any) -> None:
    ref = store.put(value)
    assert ref.kind == kind
    assert store.exists(ref)
    _same(value, store.get(ref))
    if kind != "pickle":  # frames Arrow cannot hold fall back to pickle when written
        assert store.materializer_for(value).kind == kind


def test_model_round_trip(store: ArtifactStore) -> None:
    x = np.array([[1.0], [2.0], [3.0]])
    model = LinearRegression().fit(x, np.array([2.0, 4.0, 6.0]))
    ref = store.put(model)
    assert ref.kind == "model" and ref.materializer == "featureline.model"
    loaded = store.get(ref)
    assert isinstance(loaded, LinearRegression)
    assert np.allclose(loaded.predict(np.array([[4.0]])), [8.0])


def test_file_and_folder_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "report.txt"
    src.write_bytes(b"hello artifacts")
    ref = store.put(src)
    assert ref.kind == "file" and ref.size == 15
    assert ref.id == hashlib.sha256(b"hello artifacts").hexdigest()[:32]
    got = store.get(ref)
    assert isinstance(got, Path) and got.read_bytes() == b"hello artifacts" and got != src

    folder = tmp_path / "model_dir"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.bin").write_bytes(b"A" * 100)
    (folder / "sub" / "b.json").write_text('{"b": 1}')
    ref = store.put(folder)
    assert ref.kind == "dir" and ref.size == 108
    got = store.get(ref)
    assert isinstance(got, Path) and got.is_dir()
    assert sorted(p.relative_to(got).as_posix() for p in _files(got)) == ["a.bin", "sub/b.json"]
    assert (got / "sub" / "b.json").read_text() == '{"b": 1}'


def test_folder_id_depends_on_content_and_names_not_location(
    store: ArtifactStore, tmp_path: Path
) -> None:
    def make(where: Path, name: str) -> Path:
        (where / "d").mkdir(parents=True)
        (where / "d" / name).write_text("same")
        return where

    first = store.put(make(tmp_path / "one", "x.txt"))
    assert store.put(make(tmp_path / "two", "x.txt")).id == first.id
    assert store.put(make(tmp_path / "three", "y.txt")).id != first.id


def test_hints_coerce_declared_types(store: ArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "out.csv").write_text("a\n1\n")
    assert store.put(str(tmp_path / "out.csv"), hint=Path).kind == "file"
    assert store.put(str(tmp_path / "out.csv")).kind == "json"
    ref = store.put({"acc": 1}, hint=Metrics)
    assert ref.kind == "metrics" and store.get(ref) == Metrics(acc=1.0)


def test_metrics_validate_values() -> None:
    assert Metrics({"a": np.float32(0.5)}, b=2) == {"a": 0.5, "b": 2.0}
    with pytest.raises(ValidationError, match="`acc`"):
        Metrics(acc="high")
    with pytest.raises(ValidationError, match="`flag`"):
        Metrics(flag=True)


# ---- content addressing ---------------------------------------------------------------------


def test_same_content_same_id_stored_once(store: ArtifactStore, tmp_path: Path) -> None:
    a, b = store.put(_frame()), store.put(_frame())
    assert a == b
    assert a.uri == store.path(a) == str(tmp_path / "artifacts" / a.id[:2] / a.id)
    assert _files(tmp_path / "artifacts") == [Path(a.uri)]
    assert store.put(_frame().head(2)).id != a.id


def test_arrow_id_is_the_hash_of_the_ipc_stream(store: ArtifactStore) -> None:
    table = pa.table({"a": [1, 2, 3]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data = sink.getvalue().to_pybytes()
    ref = store.put(table)
    assert ref.id == hashlib.sha256(data).hexdigest()[:32] and ref.size == len(data)


def test_concurrent_puts_of_the_same_value(store: ArtifactStore, tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        refs = list(pool.map(lambda _: store.put(np.arange(100_000)), range(16)))
    assert len(set(refs)) == 1 and _files(tmp_path / "artifacts") == [Path(refs[0].uri)]


def test_exists_is_false_when_bytes_are_gone(store: ArtifactStore, tmp_path: Path) -> None:
    ref = store.put({"k": "v" * 100})
    Path(store.path(ref)).unlink()
    assert not store.exists(ref)
    with pytest.raises(NotFoundError, match=ref.id):
        store.get(ref)
    assert store.put({"k": "v" * 100}) == ref and store.exists(ref)  # a put repairs it
    truncated = ArtifactRef(ref.id, ref.kind, ref.uri, ref.size + 1, ref.materializer)
    assert not store.exists(truncated)


def test_invalid_refs_are_rejected(store: ArtifactStore) -> None:
    bad = ArtifactRef("../../etc/passwd", "file", "", 1, "featureline.file")
    with pytest.raises(ValidationError, match="ArtifactRef"):
        store.get(bad)


# ---- bad values and atomicity ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ((x for x in range(3)), "generator"),
        (threading.Lock(), "lock"),
        ([b"x" * 5_000_000, threading.Lock()], "list"),
    ],
)
def test_unpicklable_values_name_their_type(
    store: ArtifactStore, tmp_path: Path, value: object, type_name: str
) -> None:
    with pytest.raises(ValidationError, match=type_name) as info:
        store.put(value)
    assert "Fix:" in str(info.value)
    assert _files(tmp_path / "artifacts") == []  # no partial file left behind


def test_functions_and_classes_of_main_are_stored_by_value(store: ArtifactStore) -> None:
    ns: dict[str, Any] = {"__name__": "__main__"}
    exec(
        "class Model:\n    def predict(self, x):\n        return 2 * x\n", ns
    )  # as in a notebook cell
    ref = store.put([ns["Model"](), lambda x: x + 1])
    data = Path(ref.uri).read_bytes()
    model, fn = pickle.loads(data)
    assert model.predict(3) == 6 and fn(1) == 2
    assert (
        store.put((1, "tuple")).id == store.put((1, "tuple")).id
    )  # plain values: plain pickle bytes
    assert Path(store.put((1, "tuple")).uri).read_bytes() == pickle.dumps((1, "tuple"), protocol=5)


def test_missing_path_is_a_validation_error(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        store.put(tmp_path / "never-written.parquet")


class _HalfWriter:
    kind = "half"

    def can_handle(self, obj: object) -> bool:
        return isinstance(obj, bytes)

    def write(self, obj: Any, path: Path) -> None:
        path.write_bytes(obj[: len(obj) // 2])
        raise OSError("disk full")

    def read(self, path: Path) -> object:
        return path.read_bytes()


class _BytesMaterializer(_HalfWriter):
    kind = "bytes"

    def write(self, obj: Any, path: Path) -> None:
        path.write_bytes(obj)


def test_a_failing_writer_leaves_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a", materializers=(_HalfWriter(),))
    with pytest.raises(StorageError, match="disk full"):
        store.put(b"0123456789" * 1000)
    assert _files(tmp_path / "a") == []


def test_custom_materializers_win_and_resolve_by_name(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a", materializers=(_BytesMaterializer(),))
    ref = store.put(b"raw")
    assert ref.kind == "bytes" and ref.materializer.endswith(":_BytesMaterializer")
    assert store.get(ref) == b"raw"
    assert ArtifactStore(tmp_path / "a").get(ref) == b"raw"  # imported by name
    with pytest.raises(ValidationError, match="is not a materializer"):
        ArtifactStore(tmp_path / "a", materializers=(object(),))


def test_materializer_for_picks_the_most_specific() -> None:
    assert materializer_for(Metrics(a=1)).kind == "metrics"
    assert materializer_for({"a": 1}).kind == "json"
    assert materializer_for(LinearRegression()).kind == "model"
    assert materializer_for(object()).kind == "pickle"


# ---- roots ----------------------------------------------------------------------------------


def test_fsspec_memory_root(memory_root: str, tmp_path: Path) -> None:
    import fsspec

    store = ArtifactStore(memory_root, cache_dir=tmp_path / "cache")
    ref = store.put(_frame())
    assert ref.uri.startswith("memory://") and ref.uri == store.path(ref)
    assert store.put(_frame()) == ref
    _same(_frame(), store.get(ref))
    folder = tmp_path / "d"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "f.txt").write_text("in memory")
    dir_ref = store.put(folder)
    assert dir_ref.id == ArtifactStore(tmp_path / "local").put(folder).id
    assert (Path(str(store.get(dir_ref))) / "sub" / "f.txt").read_text() == "in memory"
    fs, _ = fsspec.core.url_to_fs(memory_root)
    assert not [p for p in fs.find(fs._strip_protocol(memory_root)) if ".tmp" in p]
    fs.rm(fs._strip_protocol(ref.uri))
    assert not store.exists(ref)
    restored = pickle.loads(pickle.dumps(store))
    assert restored.exists(dir_ref)


def test_file_url_root_is_a_local_folder(tmp_path: Path) -> None:
    store = ArtifactStore(f"file://{tmp_path / 'x'}")
    ref = store.put([1, 2])
    assert Path(ref.uri).parent.parent == tmp_path / "x" and store.get(ref) == [1, 2]


def test_bad_roots(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bogus"):
        ArtifactStore("bogus://x")
    with pytest.raises(ConfigError, match="empty"):
        ArtifactStore("")
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(MissingExtraError, match=r"featureline\[fsspec\]"):
        ArtifactStore("memory://x")
    assert ArtifactStore(str(tmp_path)).put(1).kind == "json"  # local roots need no fsspec


# ---- cache keys -----------------------------------------------------------------------------


def test_cache_key_is_canonical_and_sensitive() -> None:
    base = cache_key("code", {"a": 1, "b": [1, 2]}, {"x": "id1"}, {"PY": "3.11"})
    assert base == cache_key("code", {"b": [1, 2], "a": 1}, {"x": "id1"}, {"PY": "3.11"})
    assert len(base) == 64
    others = [
        cache_key("code2", {"a": 1, "b": [1, 2]}, {"x": "id1"}, {"PY": "3.11"}),
        cache_key("code", {"a": 1, "b": (1, 2)}, {"x": "id1"}, {"PY": "3.11"}),
        cache_key("code", {"a": 1.0, "b": [1, 2]}, {"x": "id1"}, {"PY": "3.11"}),
        cache_key("code", {"a": True, "b": [1, 2]}, {"x": "id1"}, {"PY": "3.11"}),
        cache_key("code", {"a": 1, "b": [1, 2]}, {"x": "id2"}, {"PY": "3.11"}),
        cache_key("code", {"a": 1, "b": [1, 2]}, {"x": "id1"}, None),
    ]
    assert len({base, *others}) == 7
    when = datetime(2024, 1, 1, tzinfo=UTC)
    assert cache_key("c", {"t": when, "p": Path("a"), "n": np.int64(3), "s": {2, 1}}, {}) == (
        cache_key("c", {"t": when, "p": Path("a"), "n": 3, "s": {1, 2}}, {})
    )
    with pytest.raises(ValidationError, match=r"`params\.obj`"):
        cache_key("c", {"obj": object()}, {})


def _load(tmp_path: Path, folder: str, source: str) -> Callable[..., Any]:
    path = tmp_path / folder / "stepmod.py"
    path.parent.mkdir()
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("stepmod", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.train


def test_code_hash_follows_the_code_not_comments_or_decorators(tmp_path: Path) -> None:
    deco = "def step(**kw):\n    return lambda f: f\n\n"
    one = _load(tmp_path, "a", deco + "@step(retries=1)\ndef train(x):\n    return x + 1\n")
    two = _load(tmp_path, "b", deco + "@step(retries=3)\ndef train(x):  # note\n    return x + 1\n")
    three = _load(tmp_path, "c", deco + "def train(x):\n    return x + 2\n")
    assert code_hash(one) == code_hash(two) != code_hash(three)
    assert code_hash(_frame) == code_hash(_frame) and len(code_hash(_frame)) == 64


def test_code_hash_without_source_uses_bytecode() -> None:
    first: dict[str, Any] = {}
    second: dict[str, Any] = {}
    exec("def f(x):\n    return x * 2\n", first)
    exec("def f(x):\n    return x * 3\n", second)
    assert code_hash(first["f"]) != code_hash(second["f"])
    again: dict[str, Any] = {}
    exec("\n\ndef f(x):\n    return x * 2\n", again)
    assert code_hash(again["f"]) == code_hash(first["f"])
