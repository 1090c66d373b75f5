"""The pipeline DAG: nodes, how each step parameter gets its value, validation, order, spec.

Usually built by tracing a `@pipeline` function (`dsl.py`), or by hand from `Node`s;
`validate()` reports every problem of either at once in one `DefinitionError`.
A step parameter is bound to one `Source`:

* `Const(value)`      a literal written in the pipeline body;
* `ParamRef(name)`    a pipeline parameter, resolved when the run starts;
* `OutputRef(node, output)`  an output of another node (`output=None`: its only output).
  When that node is *mapped* (fan-out), the value is the list of its per-item results.

`Node.map_over` names the parameter a node fans out over: its source must be a list (a
literal, a list parameter, a list-returning step, or another mapped node), and the node runs
once per element. `Node.conditions` are all evaluated before the node runs; one false
condition skips it (and its dependants).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from featureline.errors import DefinitionError, NotFoundError, did_you_mean, unknown
from featureline.pipelines._types import (
    compatible,
    element_type,
    is_unknown,
    type_name,
    value_matches,
)


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"

    def __reduce__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""Marks a parameter without a default."""


class StepLike(Protocol):
    """What the graph, the tracer and the executors use of a step (`dsl.Step` is the one kind).

    Structural, so that these layers never import the DSL, which imports them."""

    @property
    def name(self) -> str: ...
    @property
    def fn(self) -> Callable[..., Any]: ...
    @property
    def inputs(self) -> Mapping[str, Any]:
        """Parameter name → its spec (`.annotation`, `.default`)."""
        ...

    @property
    def outputs(self) -> Mapping[str, Any]:
        """Output name → its annotated type."""
        ...

    @property
    def output_names(self) -> tuple[str, ...]: ...
    @property
    def options(self) -> Any:
        """A `dsl.StepOptions` (`timeout`, `retries`, `resources`, ...)."""
        ...


@dataclass(frozen=True)
class Const:
    value: Any


@dataclass(frozen=True)
class ParamRef:
    name: str


@dataclass(frozen=True)
class OutputRef:
    node: str
    output: str | None = None


Source = Const | ParamRef | OutputRef

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "truthy": lambda a, _b: bool(a),
    "falsy": lambda a, _b: not a,
}
_NEGATE = {
    "==": "!=",
    "!=": "==",
    "<": ">=",
    ">=": "<",
    ">": "<=",
    "<=": ">",
    "truthy": "falsy",
    "falsy": "truthy",
}


@dataclass(frozen=True)
class Condition:
    """`left op right`, evaluated when the run reaches the node. `~cond` negates it."""

    left: Source
    op: str
    right: Any = None

    def __invert__(self) -> Condition:
        return Condition(self.left, _NEGATE[self.op], self.right)

    def __bool__(self) -> bool:
        raise DefinitionError(
            f"`{self.describe()}` has no value while the pipeline is being defined. "
            "Fix: use `with when(...):` around the steps to run conditionally, not `if`."
        )

    def evaluate(self, left: Any, right: Any) -> bool:
        return bool(_OPS[self.op](left, right))

    def describe(self) -> str:
        left = describe_source(self.left)
        if self.op in ("truthy", "falsy"):
            return left if self.op == "truthy" else f"not {left}"
        right = describe_source(self.right) if isinstance(self.right, Source) else repr(self.right)
        return f"{left} {self.op} {right}"


def describe_source(src: Source) -> str:
    if isinstance(src, ParamRef):
        return f"param `{src.name}`"
    if isinstance(src, OutputRef):
        return f"`{src.node}`" + (f".output(`{src.output}`)" if src.output else "")
    return repr(src.value)


@dataclass(frozen=True)
class PipelineParam:
    name: str
    annotation: Any = Any
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def type(self) -> Any:
        if not is_unknown(self.annotation) or self.required or self.default is None:
            return self.annotation
        return type(self.default)


@dataclass
class Node:
    """One step call in the graph. `step` is a `dsl.Step` (anything with its attributes)."""

    name: str
    step: Any
    inputs: dict[str, Source] = field(default_factory=dict)
    map_over: str | None = None
    conditions: tuple[Condition, ...] = ()
    problems: list[str] = field(default_factory=list)

    def sources(self) -> Iterator[Source]:
        yield from self.inputs.values()
        for c in self.conditions:
            yield c.left
            if isinstance(c.right, Source):
                yield c.right

    def upstream(self) -> list[str]:
        """Names of the nodes this one waits for (data and conditions), in first-use order."""
        seen: dict[str, None] = {}
        for s in self.sources():
            if isinstance(s, OutputRef):
                seen.setdefault(s.node, None)
        return list(seen)


class Graph:
    """A named DAG of nodes with pipeline parameters."""

    def __init__(
        self,
        name: str,
        params: dict[str, PipelineParam] | None = None,
        nodes: list[Node] | None = None,
    ) -> None:
        self.name = name
        self.params: dict[str, PipelineParam] = dict(params or {})
        self.nodes: list[Node] = list(nodes or [])

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        return node

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise NotFoundError(unknown("step", name, self.names) + f" (pipeline `{self.name}`)")

    def downstream(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for up in n.upstream():
                out.setdefault(up, []).append(n.name)
        return out

    # ---- validation ---------------------------------------------------------------------

    def validate(self) -> None:
        problems = self.problems()
        if problems:
            raise DefinitionError.from_problems(problems, what=f"pipeline `{self.name}`")

    def problems(self) -> list[str]:
        problems: list[str] = []
        by_name: dict[str, Node] = {}
        for n in self.nodes:
            if n.name in by_name:
                problems.append(
                    f"duplicate step name `{n.name}`: two different steps share it. "
                    "Fix: give one a distinct name with `@step(name=...)` or `.with_options(name=...)`."
                )
            by_name.setdefault(n.name, n)
        for n in self.nodes:
            problems += n.problems
            problems += self._node_problems(n, by_name)
        problems += self._cycle_problems()
        return problems

    def _node_problems(self, n: Node, by_name: dict[str, Node]) -> list[str]:
        out: list[str] = []
        step_inputs: dict[str, Any] = n.step.inputs
        for pname, src in n.inputs.items():
            if pname not in step_inputs and not n.step.accepts_kwargs:
                out.append(
                    f"step `{n.name}`: "
                    + unknown("parameter", pname, step_inputs)
                    + " Fix: remove it or rename it."
                )
                continue
            dst = step_inputs[pname].annotation if pname in step_inputs else Any
            out += self._binding_problems(n, pname, src, dst, by_name)
        for pname, spec in step_inputs.items():
            if spec.required and pname not in n.inputs:
                out.append(
                    f"step `{n.name}` is missing required input `{pname}` (type `{type_name(spec.annotation)}`). "
                    "Fix: pass it where the step is called in the pipeline, or give it a default."
                )
        if n.map_over is not None and n.map_over not in n.inputs:
            out.append(
                f"step `{n.name}` maps over `{n.map_over}`, which is not one of its bound inputs."
            )
        for c in n.conditions:
            for s in (c.left, c.right):
                if isinstance(s, Source):
                    out += self._ref_problems(n, "condition", s, by_name)
            if c.op not in _OPS:
                out.append(f"step `{n.name}`: " + unknown("condition operator", c.op, _OPS))
        return out

    def _ref_problems(
        self, n: Node, where: str, src: Source, by_name: dict[str, Node]
    ) -> list[str]:
        if isinstance(src, ParamRef) and src.name not in self.params:
            return [
                f"step `{n.name}` {where}: " + unknown("pipeline parameter", src.name, self.params)
            ]
        if isinstance(src, OutputRef):
            if src.node not in by_name:
                return [f"step `{n.name}` {where}: " + unknown("step", src.node, by_name)]
            up = by_name[src.node]
            outs = up.step.output_names
            if src.output is None and len(outs) != 1:
                if not outs:
                    return [
                        f"step `{n.name}` {where}: step `{src.node}` has no outputs (it returns None)."
                    ]
                shown = ", ".join(f"`{o}`" for o in outs)
                return [
                    f"step `{n.name}` {where}: step `{src.node}` has several outputs ({shown}). "
                    f"Fix: pick one with `.output('{outs[0]}')`."
                ]
            if src.output is not None and src.output not in outs:
                valid = ", ".join(f"`{o}`" for o in outs) or "none"
                return [
                    f"step `{n.name}` {where}: step `{src.node}` has no output `{src.output}`."
                    f"{did_you_mean(src.output, outs)} Valid: {valid}."
                ]
        return []

    def _binding_problems(
        self, n: Node, pname: str, src: Source, dst: Any, by_name: dict[str, Node]
    ) -> list[str]:
        where = f"input `{pname}`"
        refs = self._ref_problems(n, where, src, by_name)
        if refs:
            return refs
        mapped = n.map_over == pname
        if isinstance(src, Const):
            values = src.value if mapped else [src.value]
            if mapped and not isinstance(values, (list, tuple)):
                return [
                    f"step `{n.name}` maps over `{pname}`, but it is bound to `{values!r}`, which is not a list."
                ]
            for v in values:
                if not value_matches(v, dst):
                    return [
                        f"step `{n.name}` {where} expects `{type_name(dst)}` but is given `{v!r}` (`{type(v).__name__}`)."
                    ]
            return []
        got, what = self.source_type(src, by_name)
        if mapped:
            elem = element_type(got)
            if elem is None:
                return [
                    f"step `{n.name}` maps over `{pname}`, but {what} is `{type_name(got)}`, not a list."
                ]
            got, what = elem, f"each element of {what}"
        if not compatible(got, dst):
            return [
                f"type mismatch: step `{n.name}` {where} expects `{type_name(dst)}` "
                f"but {what} is `{type_name(got)}`."
            ]
        return []

    def source_type(self, src: Source, by_name: dict[str, Node] | None = None) -> tuple[Any, str]:
        """The static type a source delivers, and a phrase naming it for messages."""
        by_name = by_name if by_name is not None else {n.name: n for n in self.nodes}
        if isinstance(src, ParamRef):
            return self.params[src.name].type, f"pipeline parameter `{src.name}`"
        if isinstance(src, OutputRef):
            up = by_name[src.node]
            out = src.output or up.step.output_names[0]
            tp = up.step.outputs.get(out, Any)
            if up.map_over is not None:
                return list[tp], f"mapped step `{up.name}` (a list of its `{out}` results)"  # type: ignore[valid-type]
            return tp, f"step `{up.name}` output `{out}`"
        return type(src.value), repr(src.value)

    def _cycle_problems(self) -> list[str]:
        try:
            self.topological_order()
        except DefinitionError as e:
            return e.problems
        return []

    # ---- order and spec -----------------------------------------------------------------

    def topological_order(self) -> list[str]:
        """Node names, each after everything it waits for (stable: definition order)."""
        names = set(self.names)
        deps = {n.name: [u for u in n.upstream() if u in names and u != n.name] for n in self.nodes}
        selfloops = [n.name for n in self.nodes if n.name in n.upstream()]
        order: list[str] = []
        done: set[str] = set()
        remaining = [n.name for n in self.nodes]
        while remaining:
            ready = [x for x in remaining if x not in selfloops and all(d in done for d in deps[x])]
            if not ready:
                break
            for x in ready:
                done.add(x)
                order.append(x)
            remaining = [x for x in remaining if x not in done]
        if remaining:
            raise DefinitionError.from_problems(
                [f"cycle: {self._find_cycle(remaining, deps)}"], what=f"pipeline `{self.name}`"
            )
        return order

    @staticmethod
    def _find_cycle(remaining: list[str], deps: dict[str, list[str]]) -> str:
        for start in remaining:
            path, seen, cur = [start], {start}, start
            while True:
                nxt = next((d for d in deps[cur] if d in remaining), cur)
                if nxt in seen:
                    path = [*path[path.index(nxt) :], nxt]
                    return " → ".join(f"`{p}`" for p in reversed(path))
                path.append(nxt)
                seen.add(nxt)
                cur = nxt
        return ", ".join(remaining)  # pragma: no cover

    def to_spec(self) -> dict[str, Any]:
        """A JSON-able description (stored by the metadata store)."""
        return {
            "name": self.name,
            "params": {
                p.name: {
                    "type": type_name(p.type),
                    "required": p.required,
                    "default": None if p.required else _jsonable(p.default),
                }
                for p in self.params.values()
            },
            "nodes": [
                {
                    "name": n.name,
                    "step": n.step.name,
                    "function": f"{n.step.fn.__module__}.{n.step.fn.__qualname__}",
                    "inputs": {k: _source_spec(s) for k, s in n.inputs.items()},
                    "map_over": n.map_over,
                    "conditions": [c.describe() for c in n.conditions],
                    "outputs": {k: type_name(v) for k, v in n.step.outputs.items()},
                    "upstream": n.upstream(),
                    "options": n.step.options.to_dict(),
                }
                for n in self.nodes
            ],
        }


def _source_spec(s: Source) -> dict[str, Any]:
    if isinstance(s, ParamRef):
        return {"param": s.name}
    if isinstance(s, OutputRef):
        return {"step": s.node, "output": s.output}
    return {"value": _jsonable(s.value)}


def _jsonable(v: Any) -> Any:
    try:
        json.dumps(v, allow_nan=False)
    except (TypeError, ValueError):
        return repr(v)
    return v


__all__ = [
    "REQUIRED",
    "Condition",
    "Const",
    "Graph",
    "Node",
    "OutputRef",
    "ParamRef",
    "PipelineParam",
    "Source",
    "StepLike",
]
