"""The web UI's JSON API in the OpenAPI document (`server/routes/ui.py` serves it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def ui_paths(_errors: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """The web UI (issue 12): its page and assets, and the JSON API behind every page."""
    text = {"type": "string"}

    def page(op: str, summary: str, ctype: str) -> dict[str, Any]:
        return {
            "get": {
                "operationId": op,
                "tags": ["ui"],
                "summary": summary,
                "responses": {
                    "200": {"description": summary, "content": {ctype: {"schema": text}}},
                    **_errors(400, 421),
                },
            }
        }

    def q(name: str, desc: str, required: bool = False, **schema: Any) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": required,
            "schema": {"type": "string", "maxLength": 200, **schema},
            "description": desc,
        }

    def p(name: str, desc: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^/]+$"},
            "description": desc,
        }

    def api(op: str, summary: str, desc: str, params: list[Any], codes: tuple[int, ...]) -> Any:
        return {
            "get": {
                "operationId": op,
                "tags": ["ui"],
                "summary": summary,
                "description": desc,
                "parameters": params,
                "responses": {
                    "200": {
                        "description": summary,
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **_errors(*codes),
                },
            }
        }

    when = "ISO 8601 time (UTC when it names no zone)"
    return {
        "/ui": page("uiPage", "The web UI (HTML; pages are client-side, under #/)", "text/html"),
        "/ui/app.js": page("uiScript", "The web UI's script", "text/javascript"),
        "/ui/app.css": page("uiStyles", "The web UI's styles", "text/css"),
        "/ui/api/search": api(
            "uiSearch",
            "Search the catalog",
            "Entities, feature view versions, on-demand views, feature services and models whose "
            "name, description, owner, tags or field names hold every word of `q` (name matches "
            "first; at most 50 results, `total` counts all).",
            [q("q", "Words to find (empty: everything).")],
            (400, 421),
        ),
        "/ui/api/views/{name}": api(
            "uiView",
            "A catalog object's page (a feature view, entity, feature service or on-demand view)",
            "A feature view (the default `kind`): definition, every version and the diff between "
            "consecutive versions, the registry history of the view, row counts, and per-feature "
            "statistics (null rate, distinct, min/max/mean, percentiles, a 20-bin histogram computed "
            "by DuckDB over the stored rows; cached per view version and commit), stored rows by "
            "hour, day or month of event time, a preview of the newest rows (null without "
            "read_offline), freshness, `governance` (field constraints, view checks, the ingestion "
            "gate's mode, the rows the quarantine holds per constraint and its newest 10 rows, null "
            "without read_offline), `related` objects and "
            "`code`: the statement of the repo's definition files that defines it (file, lines, "
            "text; null when not found). `kind=entity`, `feature_service` or "
            "`on_demand_feature_view`: that object's definition, its versions (a new one each time "
            "the registry's definition changed) with diffs, registry history, related objects and "
            "code. `part=lineage`: the graph feature view version -> training set -> run -> model "
            "version -> alias walked down from every version of the view (or one `version`).",
            [
                p("name", "The object's name."),
                q(
                    "kind",
                    "Which catalog object of that name (default feature_view; a feature view's "
                    "name that is an on-demand view's answers that).",
                    enum=["feature_view", "entity", "feature_service", "on_demand_feature_view"],
                ),
                q(
                    "part",
                    "page (default) or lineage (a feature view's).",
                    enum=["page", "lineage"],
                ),
                q("version", "With part=lineage: one view version only.", pattern="^[0-9]+$"),
            ],
            (400, 404, 421),
        ),
        "/ui/api/runs": api(
            "uiRuns",
            "Pipeline runs",
            "Runs, newest first (status, times, duration); with `details=true` also their params "
            "and metrics (a comparison of up to 1,000 runs). With `ids`, the runs named, with "
            "params and metrics (at most 50).",
            [
                q("pipeline", "Only runs of this pipeline."),
                q("limit", "At most this many runs (1 to 1000; default 100).", pattern="^[0-9]+$"),
                {
                    **q("ids", "Comma-separated run ids: answer these runs."),
                    "schema": {"type": "string", "maxLength": 1000},
                },
                q("details", "true: each run with its params and metrics.", enum=["true", "false"]),
            ],
            (400, 404, 421),
        ),
        "/ui/api/runs/{id}": api(
            "uiRun",
            "One pipeline run",
            "Status, params, metrics and each step with its status, attempts, duration, outputs, "
            "metrics, error and log; `edges` (step -> step through an artifact) make the step graph.",
            [p("id", "A run id.")],
            (400, 404, 421),
        ),
        "/ui/api/models": api(
            "uiModels",
            "Registered models",
            "Each model with its version count, latest version and aliases.",
            [],
            (400, 421),
        ),
        "/ui/api/models/{name}": api(
            "uiModel",
            "One model",
            "Every version with its aliases, run, metrics, params, features and model card.",
            [p("name", "A registered model.")],
            (400, 404, 421),
        ),
        "/ui/api/lineage/{model}": api(
            "uiLineage",
            "Lineage graph of a model",
            "Nodes and edges: feature view version -> training set -> run -> model version -> alias, "
            "for every version of the model (or one `version`).",
            [
                p("model", "A registered model."),
                q("version", "One version only.", pattern="^[0-9]+$"),
            ],
            (400, 404, 421),
        ),
        "/ui/api/pit": api(
            "uiPointInTime",
            "Point-in-time explorer",
            "The stored values of one entity key of a view over time (each row with its event, "
            "created and ingested times, and whether it was known at `as_of`), and what "
            "get_training_set returns for the key at `at` as the store knew it at `as_of`.",
            [
                q(
                    "view",
                    "A feature view with one join key (`view@v2` pins a version).",
                    True,
                    minLength=1,
                ),
                q("key", "The entity key.", True, minLength=1),
                q("at", f"Event time of the training row ({when}; default now)."),
                q("as_of", f"System time: what the store knew then ({when}; default now)."),
            ],
            (400, 404, 421),
        ),
    }
