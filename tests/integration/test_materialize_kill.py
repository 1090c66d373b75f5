"""Materialization killed with SIGKILL half way: running it again converges, nothing is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import featureline as fl
from tests.helpers import TS

USER = fl.Entity("user", ["user_id"])
VIEW = fl.FeatureView(
    "v", [USER], [fl.Field("user_id", fl.Int64), fl.Field("x", fl.Float64), fl.Field("n", fl.Int64)]
)

_MATERIALIZE = textwrap.dedent(
    """
    import sys
    import featureline as fl
    import featureline.online.materialize as m
    m.CHUNK_ROWS = 2_000  # many small chunks, so the kill lands between writes
    store = fl.FeatureStore(sys.argv[1])
    print("start", flush=True)
    store.materialize_incremental()
    print("done", flush=True)
    """
)


def _batch(n_keys: int, rows_per_key: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = n_keys * rows_per_key
    base = datetime.now(UTC) - timedelta(days=1)
    return pa.table(
        {
            "user_id": pa.array(np.repeat(np.arange(n_keys), rows_per_key), pa.int64()),
            "event_timestamp": pa.array(
                [base + timedelta(seconds=int(s)) for s in rng.integers(0, 80_000, n)], TS
            ),
            "x": rng.random(n),
            "n": pa.array(np.arange(n) + seed * 10_000_000, pa.int64()),
        }
    )


@pytest.mark.slow
def test_killed_materialization_converges(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    fl.init_repo(repo, project="k", with_data=False)
    (repo / "definitions.py").unlink()
    store = fl.FeatureStore(repo)
    store.apply([USER, VIEW])
    store.ingest("v", _batch(60_000, 3, seed=1))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(
        [sys.executable, "-c", _MATERIALIZE, str(repo)], stdout=subprocess.PIPE, env=env
    ) as p:
        assert p.stdout is not None and p.stdout.readline().strip() == b"start"
        deadline = time.monotonic() + 30
        while store.online.count(_table(store)) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
        p.wait()
    partial = store.online.count(_table(store))
    assert 0 < partial < 60_000, f"the kill did not land half way ({partial} keys written)"
    assert store.online.get_meta(f"watermark:{_table(store)}") is None  # not marked done

    store.ingest("v", _batch(60_000, 1, seed=2))  # late/corrected rows arrive meanwhile
    store.materialize_incremental()
    keys = [*range(0, 60_000, 7), 999_999]
    now = datetime.now(UTC)
    online = store.get_online_features(["v:x", "v:n"], {"user_id": keys})
    ent = pa.table(
        {"user_id": pa.array(keys, pa.int64()), "event_timestamp": pa.array([now] * len(keys), TS)}
    )
    offline = store.get_training_set(ent, ["v:x", "v:n"]).to_arrow()
    assert online.to_dict()["n"] == offline.column("n").to_pylist()
    assert online.to_dict()["x"] == offline.column("x").to_pylist()
    assert store.online.count(_table(store)) == 60_000
    # and a second run has nothing left to do
    assert store.materialize_incremental()[0].keys_written == 0
    store.close()


def _table(store: fl.FeatureStore) -> str:
    from featureline.online._read import table_name

    return table_name(store.get_feature_view("v"))
