"""A repo for the web UI tests: the drivers example applied and ingested, and two runs of its
training pipeline (two model versions, the second aliased production)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import featureline as fl

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "drivers"


def ui_repo(root: Path) -> dict[str, Any]:
    """Build the repo at `root`; returns the run ids (oldest first) and the model name."""
    from featureline.pipelines.runner import run

    sys.path.insert(0, str(EXAMPLES))
    try:
        from driver_pipeline import training
    finally:
        sys.path.remove(str(EXAMPLES))
    fl.init_repo(root, project="ui")
    run_ids = []
    with fl.FeatureStore(root) as store:
        store.apply(message="first")
        store.ingest("driver_stats")
        for n in (600, 900):
            result = run(
                training,
                {"repo": str(root), "n": n, "drivers": 50, "days": 6},
                executor="inline",
                artifact_root=store.config.artifacts,
                metadata=store.models.metadata,
            )
            assert result.status == "succeeded", result.errors
            run_ids.append(result.run_id)
    return {"runs": run_ids, "model": "driver_quality"}
