"""One exception root for Featureline. Each error knows its HTTP status and pickles cleanly.

Every exception class Featureline raises on purpose lives here::

    FeaturelineError (500)
    ├── ValidationError (400)            bad input: a value, a frame, a definition
    │   ├── DefinitionError              all problems of the definitions at once
    │   ├── ConstraintViolationError (422) a strict gate refused a batch (with the report)
    │   ├── RequestTooLarge (413)
    │   ├── UnsupportedMediaType (415)
    │   └── MisdirectedRequest (421)      Host not on the allow-list
    ├── UnauthenticatedError (401)        no or bad credential
    ├── PermissionDeniedError (403)       a principal may not do this
    ├── NotFoundError (404)
    ├── MethodNotAllowed (405)
    ├── RequestTimeout (408)
    ├── ConflictError (409)
    │   ├── RegistryConflictError         apply lost a compare-and-swap
    │   └── CommitConflict                a compaction lost its compare-and-swap
    ├── UserCodeError (500)               a user's function (on-demand view, step) raised
    │   ├── StepError                     a pipeline step failed (step, run, inputs, traceback)
    │   └── ModelHookError (422)          a model's pre/post-processing hook raised or answered badly
    ├── WorkerCrashedError (500)          the process running a step died
    ├── ConfigError (500)
    ├── StorageError (503)
    │   └── PartialWriteError             committed offline, online apply failed
    └── MissingExtraError (500)

`ClientGone` (the client hung up mid-body) is control flow, not an error: it derives from
`Exception` so that nothing answers it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class FeaturelineError(Exception):
    """Root of every error Featureline raises on purpose."""

    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (type(self), (self.message,))

    def __str__(self) -> str:
        return self.message


class ValidationError(FeaturelineError):
    """Bad input from the user: a value, a frame, a definition."""

    http_status = 400


class DefinitionError(ValidationError):
    """One or more problems in feature definitions; all are listed together."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [message])
        super().__init__(message)

    def __reduce__(self) -> tuple[type, tuple[str, list[str]]]:  # type: ignore[override]
        return (type(self), (self.message, self.problems))

    @classmethod
    def from_problems(cls, problems: list[str], what: str = "definitions") -> DefinitionError:
        lines = [f"{len(problems)} problem(s) in the {what}:"]
        lines += [f"  - {p}" for p in problems]
        return cls("\n".join(lines), problems)


class ConstraintViolationError(ValidationError):
    """A view's strict gate refused a whole write: rows violate its constraints (422).

    `report` names each violated constraint with its count and sample rows; nothing was written."""

    http_status = 422

    def __init__(self, message: str, report: dict[str, Any] | None = None) -> None:
        self.report = dict(report or {})
        super().__init__(message)

    def __reduce__(self) -> tuple[type, tuple[str, dict[str, Any]]]:  # type: ignore[override]
        return (type(self), (self.message, self.report))


class NotFoundError(FeaturelineError):
    """A named thing (view, feature, entity, version, file) does not exist."""

    http_status = 404


class ConflictError(FeaturelineError):
    """A change that cannot be applied as asked (e.g. a breaking change to a view)."""

    http_status = 409


class RegistryConflictError(ConflictError):
    """Another writer appended a registry version after this change was planned (409).

    `expected` is the version the change was planned against (None: the empty registry),
    `actual` the registry's version when the append was refused, and `objects` names the
    conflicting definitions (e.g. "view `driver_stats`") when they are known.
    """

    def __init__(
        self,
        message: str,
        expected: int | None = None,
        actual: int | None = None,
        objects: list[str] | None = None,
    ) -> None:
        self.expected = expected
        self.actual = actual
        self.objects = list(objects or [])
        super().__init__(message)

    def __reduce__(  # type: ignore[override]
        self,
    ) -> tuple[type, tuple[str, int | None, int | None, list[str]]]:
        return (type(self), (self.message, self.expected, self.actual, self.objects))


class CommitConflict(ConflictError):
    """A compaction lost its compare-and-swap: a commit it meant to replace is no longer live."""


class ConfigError(FeaturelineError):
    """featureline.yaml or FEATURELINE_* settings are wrong."""

    http_status = 500


class StorageError(FeaturelineError):
    """A backend failed to read or write."""

    http_status = 503


class PartialWriteError(StorageError):
    """A write committed offline (it is durable and counted) but its online apply failed.

    Carries the commit; retrying with the same idempotency key completes the online apply
    without writing the batch twice.
    """

    def __init__(self, message: str, commit: int = 0) -> None:
        self.commit = commit
        super().__init__(message)

    def __reduce__(self) -> tuple[type, tuple[str, int]]:  # type: ignore[override]
        return (type(self), (self.message, self.commit))


class UnauthenticatedError(FeaturelineError):
    """No credential, or one that is wrong, expired or revoked."""

    http_status = 401


class JwksReloadPending(UnauthenticatedError):
    """The token names a key the verifier does not hold, and a JWKS reload for it is under way
    (`JwtVerifier.verify(token, wait=False)`): `await pending.wait()` (off the loop's back), then
    verify again. Left unawaited it is a 401 asking the client to retry."""

    def __init__(self, kid: str | None, reload: Any, wait_seconds: float) -> None:
        super().__init__(
            f"The bearer JWT is signed with key `{kid}`, which this server does not hold yet: it is "
            "reloading the JWKS from the identity provider. Fix: retry in a few seconds."
        )
        self.reload = reload  # a concurrent.futures.Future of the reload
        self.wait_seconds = wait_seconds

    async def wait(self) -> None:
        """Until the reload has landed (or failed: then its error, e.g. a JWKS that cannot be
        loaded at all), at most `wait_seconds`; the event loop keeps serving."""
        import asyncio

        try:
            await asyncio.wait_for(asyncio.wrap_future(self.reload), self.wait_seconds)
        except TimeoutError:
            return  # still loading: authenticating again answers this 401 (retry)


class PermissionDeniedError(FeaturelineError):
    """The principal is known but not granted this action on this resource."""

    http_status = 403


class UserCodeError(FeaturelineError):
    """A user's own code (an on-demand view's function, a pipeline step) raised: a bug to fix
    in that code, not a validation error of the request."""

    http_status = 500


class RequestTooLarge(ValidationError):
    """The body, or the number of entity rows, is over the server's limit."""

    http_status = 413


class ClientGone(Exception):
    """The client disconnected before sending the whole body: there is no one to answer."""


class UnsupportedMediaType(ValidationError):
    """A POST body that is not declared `application/json`.

    A web page may send a "simple" cross-site POST (text/plain, a form, or a Blob without a type)
    to any address, localhost included, without asking the server first (no CORS preflight).
    Only parsing bodies declared as JSON means such a request can never write or read anything."""

    http_status = 415


class RequestTimeout(FeaturelineError):
    """The request body did not arrive in time (slow or stalled client)."""

    http_status = 408


class MisdirectedRequest(ValidationError):
    """The Host header names a host this server does not answer for (DNS rebinding guard)."""

    http_status = 421


class ModelHookError(UserCodeError):
    """A model's pre- or post-processing hook (stored with the model version) raised, or returned
    something prediction cannot use. The request was well formed, so the server answers 422
    (Unprocessable Content) naming the model, the hook and the error, not a 500."""

    http_status = 422


class MethodNotAllowed(FeaturelineError):
    http_status = 405

    def __init__(self, message: str, allow: str) -> None:
        super().__init__(message)
        self.headers: tuple[tuple[bytes, bytes], ...] = ((b"allow", allow.encode()),)


class StepError(UserCodeError):
    """A step failed. Names the step, the run, its inputs, and carries the user traceback."""

    def __init__(
        self,
        message: str,
        step: str = "",
        run_id: str = "",
        inputs: dict[str, str] | None = None,
        traceback: str = "",
        error_type: str = "",
        retryable: bool = True,
    ) -> None:
        super().__init__(message)
        self.step, self.run_id, self.inputs = step, run_id, dict(inputs or {})
        self.traceback, self.error_type, self.retryable = traceback, error_type, retryable

    def __reduce__(self) -> tuple[Any, ...]:
        args = (
            self.message,
            self.step,
            self.run_id,
            self.inputs,
            self.traceback,
            self.error_type,
            self.retryable,
        )
        return (type(self), args)

    @classmethod
    def build(
        cls,
        what: str,
        *,
        step: str,
        run_id: str,
        inputs: dict[str, str],
        traceback: str = "",
        error_type: str = "",
        retryable: bool = True,
    ) -> StepError:
        lines = [f"step `{step}` failed in run `{run_id}`: {what}"]
        if inputs:
            lines.append("  inputs: " + ", ".join(f"{k}={v}" for k, v in inputs.items()))
        if traceback:
            lines.append("  user traceback:")
            lines += ["    " + ln for ln in traceback.rstrip().splitlines()]
        return cls("\n".join(lines), step, run_id, inputs, traceback, error_type, retryable)


class WorkerCrashedError(FeaturelineError):
    """The process (or node) running a step died before it could report."""


class MissingExtraError(FeaturelineError):
    """An optional dependency is not installed."""

    http_status = 500

    @classmethod
    def for_extra(cls, module: str, extra: str) -> MissingExtraError:
        return cls(
            f"`{module}` is not installed; it is needed for this backend. "
            f"Fix: pip install 'featureline[{extra}]'"
        )


def did_you_mean(value: str, options: Iterable[str]) -> str:
    """Return ' Did you mean `x`?' for the closest option, or an empty string."""
    opts = sorted(set(options))
    close = difflib.get_close_matches(value, opts, n=1, cutoff=0.6)
    if close:
        return f" Did you mean `{close[0]}`?"
    return ""


def unknown(kind: str, value: str, options: Iterable[str]) -> str:
    """A standard 'unknown X' message with did-you-mean and the valid options."""
    opts = sorted(set(options))
    msg = f"Unknown {kind} `{value}`.{did_you_mean(value, opts)}"
    if opts:
        shown = ", ".join(f"`{o}`" for o in opts[:20])
        more = f" (and {len(opts) - 20} more)" if len(opts) > 20 else ""
        msg += f" Valid: {shown}{more}."
    else:
        msg += f" No {kind}s are defined."
    return msg


__all__ = [
    "ClientGone",
    "CommitConflict",
    "ConfigError",
    "ConflictError",
    "ConstraintViolationError",
    "DefinitionError",
    "FeaturelineError",
    "JwksReloadPending",
    "MethodNotAllowed",
    "MisdirectedRequest",
    "MissingExtraError",
    "ModelHookError",
    "NotFoundError",
    "PartialWriteError",
    "PermissionDeniedError",
    "RegistryConflictError",
    "RequestTimeout",
    "RequestTooLarge",
    "StepError",
    "StorageError",
    "UnauthenticatedError",
    "UnsupportedMediaType",
    "UserCodeError",
    "ValidationError",
    "WorkerCrashedError",
    "did_you_mean",
    "unknown",
]
