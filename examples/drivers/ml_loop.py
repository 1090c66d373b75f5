"""The demo's second half: pipeline (training set -> train -> evaluate -> register), then one
prediction over HTTP from a real server, then the model's lineage."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

import featureline as fl

HERE = Path(__file__).resolve().parent


def _serve(repo: Path) -> tuple[str, Callable[[], None]]:
    """The feature server in a background thread on a free loopback port."""
    import uvicorn

    from featureline.server import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(create_app(repo), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    return url, stop


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def ml_loop(
    repo: Path, console: Console, check: Callable[..., None], timings: dict[str, float]
) -> None:
    sys.path.insert(0, str(HERE))  # the pipeline module, for this process and the step workers
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    from driver_pipeline import training

    from featureline.pipelines import run

    with fl.FeatureStore(repo) as store:
        t0 = time.perf_counter()
        result = run(
            training,
            {"repo": str(repo.resolve())},
            executor="process",
            artifact_root=store.config.artifacts,
            metadata=store.models.metadata,
        )
        timings["pipeline (process executor)"] = time.perf_counter() - t0
        console.print(
            f"Pipeline [bold]driver_quality[/] run {result.run_id}: {result.status} "
            + ", ".join(f"{k} {v}" for k, v in result.statuses.items())
        )
        check(
            "pipeline run succeeded (training set -> train -> register)",
            result.status == "succeeded",
            str(result.errors or ""),
        )
        mv = store.models.get("driver_quality", "production")
        console.print(
            f"Registered [bold]{mv.ref}[/] as production: auc {mv.card['metrics']['auc']:.3f}, "
            f"features {', '.join(mv.features)}, registry v{mv.card['training']['registry_version']}"
        )
        check(
            "model registered with its card (metrics, pinned features, training set)",
            mv.card["metrics"]["auc"] >= 0.6
            and all("@v" in f for f in mv.features)
            and bool(mv.card["training"]["training_set_id"]),
        )

    url, stop = _serve(repo)
    try:
        t0 = time.perf_counter()
        status, body = _post(
            f"{url}/models/driver_quality/predict", {"entities": {"driver_id": [1001, 1500]}}
        )
        timings["predict over HTTP"] = time.perf_counter() - t0
    finally:
        stop()
    console.print(
        f"POST {url}/models/driver_quality/predict -> {status}: predictions {body.get('predictions')} "
        f"(model v{body.get('version')}, features {json.dumps(body.get('features'))})"
    )
    check(
        "one prediction served over HTTP with its online features",
        status == 200 and len(body.get("predictions", [])) == 2,
    )

    with fl.FeatureStore(repo) as store:
        edges = store.models.lineage("model", f"driver_quality:{body.get('version')}", "up")
        edges += store.models.lineage("model", f"driver_quality:{body.get('version')}", "down")
        console.print("Lineage (featureline lineage driver_quality):")
        for e in sorted(edges, key=lambda e: (e["src_kind"] != "feature_view", e["depth"])):
            console.print(
                f"  {e['src_kind']} {e['src_id']} --{e['relation']}--> {e['dst_kind']} {e['dst_id']}",
                markup=False,
            )
        kinds = {e["src_kind"] for e in edges} | {e["dst_kind"] for e in edges}
        check(
            "lineage: feature view -> training set -> run -> model -> deployment",
            {"feature_view", "training_set", "run", "model", "alias"} <= kinds,
            ", ".join(sorted(kinds)),
        )
        log = repo / "data" / "predictions" / "driver_quality.jsonl"
        check(
            "prediction logged with its feature vector and model version",
            log.exists() and '"version": 1' in log.read_text(),
        )
