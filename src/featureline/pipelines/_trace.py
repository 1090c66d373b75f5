"""Tracing a pipeline body: handles for step outputs and parameters, and `when` blocks.

While a `@pipeline` function runs, calling a step records a `Node` in the graph being built
and returns an `Output` handle; comparing a handle builds a `Condition` for `when`. Handles
have no value at this point, so using one in `if` raises a helpful `DefinitionError`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from featureline.errors import DefinitionError, did_you_mean
from featureline.pipelines.graph import (
    Condition,
    Const,
    Graph,
    Node,
    OutputRef,
    ParamRef,
    Source,
    StepLike,
)


class _Handle:
    """Comparisons on handles build `Condition`s for `when`; handles have no value at trace time."""

    def _source(self) -> Source:  # overridden by Param and Output, the only handles
        raise TypeError(f"{type(self).__name__} has no source")

    def _cond(self, op: str, other: Any) -> Condition:
        right = other._source() if isinstance(other, _Handle) else other
        return Condition(self._source(), op, right)

    def __eq__(self, other: object) -> Condition:  # type: ignore[override]
        return self._cond("==", other)

    def __ne__(self, other: object) -> Condition:  # type: ignore[override]
        return self._cond("!=", other)

    def __lt__(self, other: Any) -> Condition:
        return self._cond("<", other)

    def __le__(self, other: Any) -> Condition:
        return self._cond("<=", other)

    def __gt__(self, other: Any) -> Condition:
        return self._cond(">", other)

    def __ge__(self, other: Any) -> Condition:
        return self._cond(">=", other)

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise DefinitionError(
            f"{self!r} has no value while the pipeline is being defined. "
            "Fix: pass it to a step, or use `with when(...):` instead of `if`."
        )


class Param(_Handle):
    """A pipeline parameter inside the pipeline body."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _source(self) -> Source:
        return ParamRef(self.name)

    def __repr__(self) -> str:
        return f"<param {self.name}>"


class Output(_Handle):
    """A step's output inside the pipeline body (for a mapped step: the list of results)."""

    def __init__(self, builder: Builder, node: Node, output: str | None = None) -> None:
        self._builder, self.node, self.name = builder, node, output

    def _source(self) -> Source:
        return OutputRef(self.node.name, self.name)

    def output(self, name: str) -> Output:
        outs = self.node.step.output_names
        if name not in outs:
            valid = ", ".join(f"`{o}`" for o in outs) or "none"
            problem = f"step `{self.node.name}` has no output `{name}`.{did_you_mean(name, outs)} Valid: {valid}."
            if problem not in self.node.problems:
                self.node.problems.append(problem)
        return Output(self._builder, self.node, name)

    def __getitem__(self, key: str | int) -> Output:
        if isinstance(key, int):
            names = self.node.step.output_names
            if not -len(names) <= key < len(names):
                raise DefinitionError(
                    f"step `{self.node.name}` has {len(names)} output(s); index {key} is out of range."
                )
            return self.output(names[key])
        return self.output(key)

    def __iter__(self) -> Iterator[Output]:
        names = self.node.step.output_names
        if len(names) < 2 or self.name is not None:
            raise DefinitionError(f"{self!r} is a single output and cannot be unpacked.")
        return iter([self.output(n) for n in names])

    def __repr__(self) -> str:
        return f"<output of {self.node.name}" + (f".{self.name}>" if self.name else ">")


BUILDER: contextvars.ContextVar[Builder | None] = contextvars.ContextVar(
    "featureline_pipeline", default=None
)


class Builder:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.conditions: list[Condition] = []
        self._counts: dict[str, int] = {}

    def to_source(self, value: Any, where: str, problems: list[str]) -> Source:
        if isinstance(value, Output):
            if value._builder is not self:
                problems.append(f"{where} gets {value!r} from another pipeline.")
            return value._source()
        if isinstance(value, Param):
            return value._source()
        if isinstance(value, Condition):
            problems.append(
                f"{where} gets a condition `{value.describe()}`; conditions belong in `with when(...)`."
            )
        elif isinstance(value, (list, tuple, dict, set)):
            vals = value.values() if isinstance(value, dict) else value
            if any(isinstance(v, _Handle) for v in vals):
                problems.append(
                    f"{where} gets a container holding step outputs or parameters; pass each as its own "
                    "input, or fan out with `.map(...)` and pass the mapped handle."
                )
        return Const(value)

    def add(
        self, step: StepLike, args: tuple[Any, ...], kwargs: dict[str, Any], map_over: str | None
    ) -> Output:
        name = step.name
        n = self._counts.get(name, 0)
        same = [x for x in self.graph.nodes if x.step.fn is step.fn]
        if n and same:
            name = f"{step.name}_{n + 1}"
        self._counts[step.name] = n + 1
        node = Node(name, step, map_over=map_over, conditions=tuple(self.conditions))
        params = list(step.inputs)
        if len(args) > len(params):
            node.problems.append(
                f"step `{name}` takes {len(params)} inputs but {len(args)} positional values were given."
            )
        for pname, value in [*zip(params, args, strict=False), *kwargs.items()]:
            if pname in node.inputs:
                node.problems.append(f"step `{name}` got two values for input `{pname}`.")
            node.inputs[pname] = self.to_source(
                value, f"step `{name}` input `{pname}`", node.problems
            )
        for c in self.conditions:
            for s in (c.left, c.right):
                if isinstance(s, OutputRef) and s.node == name:
                    node.problems.append(f"step `{name}` is inside a condition on its own output.")
        self.graph.add(node)
        return Output(self, node)


@contextmanager
def when(predicate: object) -> Iterator[None]:
    """Steps called inside the block run only if `predicate` holds (else they are "skipped")."""
    builder = BUILDER.get()
    if builder is None:
        raise DefinitionError("`when(...)` is only meaningful inside a @pipeline function.")
    if isinstance(predicate, Condition):
        cond = predicate
    elif isinstance(predicate, _Handle):
        cond = Condition(predicate._source(), "truthy")
    else:
        raise DefinitionError(
            f"`when` needs a step output, a parameter or a comparison of one, not `{predicate!r}`."
        )
    builder.conditions.append(cond)
    try:
        yield
    finally:
        builder.conditions.pop()


__all__ = ["BUILDER", "Builder", "Output", "Param", "when"]
