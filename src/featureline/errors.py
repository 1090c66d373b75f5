"""One exception root for Featureline. Each error knows its HTTP status and pickles cleanly."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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
    "ConfigError",
    "ConflictError",
    "DefinitionError",
    "FeaturelineError",
    "MissingExtraError",
    "NotFoundError",
    "RegistryConflictError",
    "StorageError",
    "ValidationError",
    "did_you_mean",
    "unknown",
]
