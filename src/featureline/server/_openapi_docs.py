"""A self-contained HTML page rendering the OpenAPI document (no CDN): what /docs serves."""

from __future__ import annotations

import html
import json
from typing import Any

from featureline.server._openapi_common import BEARER_AUTH

__all__ = ["render_docs"]

_CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem}.op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.m{display:inline-block;min-width:3.5rem;font-weight:bold;color:#fff;border-radius:4px;text-align:center;padding:0 .4rem;margin-right:.5rem}
.post{background:#49cc90}.get{background:#61affe}code,pre{background:#f6f8fa;border-radius:4px}pre{padding:.6rem;overflow:auto}
td{padding:.1rem .6rem;vertical-align:top}"""


def _per_view_docs(schema: dict[str, Any]) -> list[str]:
    """The columns each view's `df` needs (the `oneOf` of a Feast push or write body)."""
    e = html.escape
    out = []
    for branch in schema.get("oneOf", ()):
        df = branch.get("properties", {}).get("df")
        if "title" not in branch or not isinstance(df, dict):
            continue
        cols = ", ".join(
            f"<code>{e(c)}</code>{'' if c in df.get('required', ()) else ' (optional)'}"
            for c in df.get("properties", {})
        )
        out.append(f"<p>View <code>{e(branch['title'])}</code>: columns {cols}.</p>")
    return out


def render_docs(spec: dict[str, Any]) -> str:
    """A readable HTML listing of every operation of `spec`, with examples and schemas."""
    e = html.escape
    info = spec["info"]
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(info['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(info['title'])}</h1><p>version {e(info['version'])} · <a href='/openapi.json'>openapi.json</a></p><p>{e(info['description'])}</p>",
    ]
    scheme = spec.get("components", {}).get("securitySchemes", {}).get(BEARER_AUTH)
    if scheme is not None and spec.get("security"):
        public = [
            p
            for p, item in spec["paths"].items()
            if any(isinstance(op, dict) and op.get("security") == [] for op in item.values())
        ]
        waived = ", ".join(f"<code>{e(p)}</code>" for p in public) or "none"
        out.append(
            f"<p><b>Authentication</b> ({e(BEARER_AUTH)}, HTTP bearer): {e(scheme['description'])} "
            f"Public: {waived}.</p>"
        )
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            out.append(
                f"<div class='op' id='{e(op['operationId'])}'><h3><span class='m {method}'>{method.upper()}</span><code>{e(path)}</code> — {e(op['summary'])}</h3>"
            )
            if op.get("description"):
                out.append(f"<p>{e(op['description'])}</p>")
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
                out.append(f"<p>Request body: <code>{e(ref)}</code></p>")
                if "example" in body:
                    out.append(f"<pre>{e(json.dumps(body['example'], indent=2))}</pre>")
                props = spec["components"]["schemas"][ref].get("properties", {})
                rows = "".join(
                    f"<tr><td><code>{e(k)}</code></td><td>{e(str(v.get('type', '')))}</td><td>{e(v.get('description', ''))}</td></tr>"
                    for k, v in props.items()
                )
                out.append(f"<table>{rows}</table>")
                out += _per_view_docs(spec["components"]["schemas"][ref])
            resp = "".join(
                f"<tr><td><b>{e(code)}</b></td><td>{e(r['description'])}</td></tr>"
                for code, r in op["responses"].items()
            )
            out.append(f"<p>Responses:</p><table>{resp}</table></div>")
    out.append("</body></html>")
    return "".join(out)
