"""`featureline token create | list | revoke`, `featureline permissions check`, `featureline audit`.

Token management is local: it needs write access to the repo's data/auth.db (which already gives
access to every file of the repo), so the first admin token can be created before any exists.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from featureline.cli._common import CliError, open_store

if TYPE_CHECKING:
    from featureline.auth import Authorizer
    from featureline.feature_store import FeatureStore

__all__ = ["audit", "permissions", "token"]


def _authorizer(store: FeatureStore) -> Authorizer:
    a = store.authorizer
    if a is None:
        from featureline.auth import Authorizer

        c = store.config
        a = Authorizer(c.auth, store.repo_path, lambda: None, c.registry, c.project)
    return a


def _when(ts: float | None) -> str:
    return "never" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@click.group()
def token() -> None:
    """API tokens: shown once, stored hashed (data/auth.db), with expiry, revocable."""


@token.command("create")
@click.argument("name")
@click.option("--roles", required=True, help="Comma-separated roles, e.g. `reader,writer`.")
@click.option(
    "--expires", "expires", default=None, metavar="DURATION", help="e.g. 30d, 12h (default: never)."
)
@click.pass_context
def token_create(ctx: click.Context, name: str, roles: str, expires: str | None) -> None:
    """Create a token for principal NAME; it is printed once and never stored in clear."""
    from featureline.auth import parse_duration

    store = open_store(ctx)
    seconds = parse_duration(expires) if expires else None
    secret, info = _authorizer(store).tokens.create(name, roles.split(","), seconds)
    click.echo(secret)
    click.echo(
        f"Token `{info.id}` for `{info.name}` (roles: {', '.join(info.roles)}; expires: "
        f"{_when(info.expires_at)}). It is shown only now: store it safely.",
        err=True,
    )


@token.command("list")
@click.pass_context
def token_list(ctx: click.Context) -> None:
    """Every token: id, principal, roles, created, expires, status (never the secret)."""
    store = open_store(ctx)
    rows = _authorizer(store).tokens.list()
    if not rows:
        click.echo("No tokens. Create one: featureline token create NAME --roles ROLE")
        return
    click.echo(f"{'id':<17} {'name':<20} {'roles':<24} {'created':<26} {'expires':<26} status")
    for t in rows:
        click.echo(
            f"{t.id:<17} {t.name:<20} {','.join(t.roles):<24} {_when(t.created_at):<26} "
            f"{_when(t.expires_at):<26} {t.status()}"
        )


@token.command("revoke")
@click.argument("id_or_name")
@click.pass_context
def token_revoke(ctx: click.Context, id_or_name: str) -> None:
    """Revoke a token by id, or every active token of a principal name."""
    store = open_store(ctx)
    done = _authorizer(store).tokens.revoke(id_or_name)
    if not done:
        click.echo(f"`{id_or_name}` was already revoked.")
    for t in done:
        click.echo(f"Revoked token `{t.id}` of `{t.name}`.")


@click.group()
def permissions() -> None:
    """Explain permission decisions."""


def _principal(store: FeatureStore, who: str) -> Any:
    from featureline.auth import Principal

    a = _authorizer(store)
    if who.startswith("role:"):
        return Principal(who, tuple(r for r in who[5:].split(",") if r), "explain")
    if who.startswith("fl_") or who.count(".") == 2:
        return a.authenticate(who)
    active = [t for t in a.tokens.list() if t.name == who and t.status() == "active"]
    if not active:
        raise CliError(
            f"No active token for principal `{who}`. Fix: pass `role:ROLE1,ROLE2`, a token, or a name "
            "from `featureline token list`."
        )
    return Principal(who, tuple({r for t in active for r in t.roles}), "explain")


@permissions.command("check")
@click.argument("principal")
@click.argument("action")
@click.argument("resource")
@click.pass_context
def permissions_check(ctx: click.Context, principal: str, action: str, resource: str) -> None:
    """May PRINCIPAL do ACTION on RESOURCE? Exit 0 if allowed, 3 if denied.

    \b
    PRINCIPAL  a token name (the roles of its active tokens), `role:ml,ops`, or a token
    ACTION     describe, apply, read_online, read_offline, write_online, write_offline, admin
    RESOURCE   TYPE:NAME (feature_view:driver_stats, model:fraud, endpoint:/metrics), or a
               feature `view:feature` (its pii tag counts for reads)
    """
    from featureline.definitions import ACTIONS, RESOURCE_TYPES, is_pii
    from featureline.errors import did_you_mean

    if action not in ACTIONS:
        raise CliError(
            f"`{action}` is not an action.{did_you_mean(action, ACTIONS)} Valid: {', '.join(ACTIONS)}."
        )
    store = open_store(ctx)
    who = _principal(store, principal)
    kind, _, name = resource.partition(":")
    tags: dict[str, str] = {}
    pii: tuple[str, ...] = ()
    if kind not in RESOURCE_TYPES:  # a feature ref view:feature
        view = store.get_feature_view(kind)
        f = next((f for f in view.features if f.name == name), None)
        if f is None:
            raise CliError(f"View `{view.name}` has no feature `{name}`.")
        kind, name, tags = "feature_view", view.name, view.tags
        pii = (f.name,) if is_pii(f.tags) and action.startswith("read") else ()
    elif kind == "feature_view" and name:
        try:
            tags = store.get_feature_view(name).tags
        except Exception:  # not applied (yet): judged by name alone
            tags = {}
    if not store.config.auth.enabled:
        click.echo("auth is not enabled (auth.enabled in featureline.yaml): everything is allowed.")
    from featureline.auth import decide

    perms = _catalog_permissions(store)
    d = decide(
        who, action, kind, name, tags, perms, store.config.auth.admin_roles, pii, explain=True
    )
    click.echo(("ALLOWED: " if d.allowed else "DENIED: ") + d.reason)
    for note in d.notes:
        click.echo(f"  - {note}")
    if not d.allowed:
        ctx.exit(3)


def _catalog_permissions(store: FeatureStore) -> list[Any]:
    from featureline.errors import NotFoundError

    try:
        return list(store.catalog().permissions.values())
    except NotFoundError:
        return []


@click.command()
@click.option(
    "--since", default=None, metavar="TS|DURATION", help="ISO time or a duration back, e.g. 1h."
)
@click.option("--principal", default=None)
@click.option("--action", default=None)
@click.option("--result", default=None, type=click.Choice(["allowed", "denied"]))
@click.option("--limit", default=100, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line.")
@click.pass_context
def audit(
    ctx: click.Context,
    since: str | None,
    principal: str | None,
    action: str | None,
    result: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """The audit log: who did what, when, with which result (newest last)."""
    import json

    from featureline.auth import AuditLog

    store = open_store(ctx)
    when = _since(since) if since else None
    log = AuditLog(store.repo_path / "data" / "audit", store.config.auth.audit)
    events = log.query(when, principal, action, result, limit)
    if not events:
        click.echo(
            "No audit events."
            + ("" if store.config.auth.audit.enabled else " (auth.audit is off.)")
        )
        return
    for ev in events:
        if as_json:
            click.echo(json.dumps(ev))
            continue
        reason = f"  {ev['reason']}" if ev.get("reason") else ""
        click.echo(
            f"{ev['ts']}  {ev['principal']:<16} {ev['action']:<14} {ev['resource']:<32} {ev['result']}{reason}"
        )


def _since(text: str) -> datetime:
    """`1h` (a duration back from now) or an ISO time with a zone."""
    import time

    from featureline.auth import parse_duration
    from featureline.errors import ValidationError

    try:
        return datetime.fromtimestamp(time.time() - parse_duration(text), UTC)
    except ValidationError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise CliError(
            f"--since `{text}` is neither an ISO time with a zone (e.g. 2026-01-01T00:00+00:00) "
            "nor a duration like 1h."
        )
    return when
