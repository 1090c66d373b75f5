"""The pipeline DSL: `@step`, `@pipeline`, `when`.

A step is a plain typed function; its parameter annotations type its inputs and its return
annotation types its output(s)::

    @step
    def load(n: int) -> pa.Table: ...

    @step(retries=2, timeout=60, resources={"num_cpus": 2}, outputs=("model", "accuracy"))
    def train(data: pa.Table, lr: float = 0.1) -> tuple[Model, float]: ...

    @pipeline
    def training(n: int = 1000, lr: float = 0.1):
        data = load(n)                        # traced: returns an `Output` handle
        model, acc = train(data, lr=lr)       # several outputs unpack (or `.output("model")`)
        scores = score.map(items=[1, 2, 3], model=model)   # fan-out: one run per element
        total = summarize(scores)             # collect: `summarize` receives a list
        with when(acc >= 0.9):                # conditions: the block runs only if true
            deploy(model)

Decorating `training` traces its body once (steps are *not* run) into a `Graph`, validated at
once: every problem is reported together in one `DefinitionError`. Run it with
`featureline.pipelines.runner.run(training, {"n": 10})`.

Conditions: `with when(handle_or_param <op> value):` with `==, !=, <, <=, >, >=`, or
`when(handle)` for truthiness, `~` negates; blocks nest (all must hold). The value of a step
output used in a condition is loaded by the runner, so keep it small (a number, a string).
A step whose condition is false is "skipped", and so is every step that needs its output.

Cache keys: a step is reused when its code, inputs and environment match a cached run. A step
whose result also depends on the world outside its inputs (a feature store that ingested new
rows) declares `@step(cache_key=fn)`: `fn` is called in the runner, before the cache lookup,
with the step inputs it names (by parameter name), and what it returns (JSON-like) joins the
key. `featureline.models.steps.build_training_set` keys on the data visible to it this way.

Steps defined in `__main__` (a script or a notebook) or inside a function travel to worker
processes by value (cloudpickle); steps of an importable module travel by reference.

Fan-out: `step.map(items=list_or_handle, **other_inputs)` runs the step once per element;
the element goes to the parameter named by `over=`, else to a parameter called `items`, else
to the first parameter not given in `other_inputs`. Outside a pipeline, calling a step (or
`.map`) just calls the function, which keeps steps easy to unit-test.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, NamedTuple, TypeVar, overload

from featureline.errors import DefinitionError, did_you_mean
from featureline.pipelines._trace import BUILDER, Builder, Output, Param, when
from featureline.pipelines.graph import (
    REQUIRED,
    Graph,
    PipelineParam,
)

DEFAULT_OUTPUT = "output"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass(frozen=True)
class StepOptions:
    cache: bool = True
    retries: int = 0
    retry_backoff: float = 0.5
    timeout: float | None = None
    resources: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["resources"] = dict(self.resources)
        return d

    def problems(self, step: str) -> list[str]:
        p: list[str] = []
        if not isinstance(self.cache, bool):
            p.append(f"step `{step}`: `cache` must be True or False, not `{self.cache!r}`.")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            p.append(f"step `{step}`: `retries` must be an integer >= 0, not `{self.retries!r}`.")
        if not _number(self.retry_backoff) or self.retry_backoff < 0:
            p.append(
                f"step `{step}`: `retry_backoff` must be seconds >= 0, not `{self.retry_backoff!r}`."
            )
        if self.timeout is not None and (not _number(self.timeout) or self.timeout <= 0):
            p.append(
                f"step `{step}`: `timeout` must be seconds > 0 or None, not `{self.timeout!r}`."
            )
        if not isinstance(self.resources, Mapping):
            p.append(
                f"step `{step}`: `resources` must be a dict like {{'num_cpus': 1}}, not `{self.resources!r}`."
            )
        else:
            for k, v in self.resources.items():
                if not isinstance(k, str) or not _number(v) or v < 0:
                    p.append(f"step `{step}`: resource `{k}` must be a number >= 0, not `{v!r}`.")
        return p


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class InputSpec(NamedTuple):
    name: str
    annotation: Any
    default: Any

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


class Step:
    """A typed function usable as a pipeline step. Create with `@step`."""

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        options: StepOptions | None = None,
        outputs: tuple[str, ...] | None = None,
        cache_key: Callable[..., Any] | None = None,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.options = options or StepOptions()
        self.cache_key = cache_key
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        problems = self.options.problems(self.name)
        if not _NAME.match(self.name):
            problems.append(
                f"step name `{self.name}` must start with a letter or `_` and use letters, digits, `_ - .`."
            )
        hints = resolve_hints(fn)
        self.inputs: dict[str, InputSpec] = {}
        self.accepts_kwargs = False
        for p in inspect.signature(fn).parameters.values():
            if p.kind is p.VAR_KEYWORD:
                self.accepts_kwargs = True
            elif p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY):
                problems.append(
                    f"step `{self.name}`: parameter `{p.name}` must be passable by keyword (no `*args` or `/`)."
                )
            else:
                default = REQUIRED if p.default is p.empty else p.default
                self.inputs[p.name] = InputSpec(p.name, hints.get(p.name, Any), default)
        self._declared_outputs = outputs
        self.outputs: dict[str, Any] = _outputs(
            self.name, hints.get("return", Any), outputs, problems
        )
        self.output_names: tuple[str, ...] = tuple(self.outputs)
        self.cache_key_inputs: tuple[str, ...] = _cache_key_inputs(self, problems)
        if problems:
            raise DefinitionError.from_problems(problems, what=f"step `{self.name}`")

    def with_options(self, **changes: Any) -> Step:
        """A copy with other options (`name`, `cache`, `retries`, `retry_backoff`, `timeout`, `resources`)."""
        name = changes.pop("name", self.name)
        try:
            opts = replace(self.options, **changes)
        except TypeError as e:
            raise DefinitionError(f"step `{self.name}`: {e}") from None
        return Step(self.fn, name, opts, self._declared_outputs, self.cache_key)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        builder = BUILDER.get()
        if builder is None:
            return self.fn(*args, **kwargs)
        return builder.add(self, args, kwargs, None)

    def map(self, items: Any = REQUIRED, *, over: str | None = None, **inputs: Any) -> Any:
        """Run once per element of `items`; inside a pipeline, returns a handle to the list."""
        if items is REQUIRED:
            if over is None or over not in inputs:
                raise DefinitionError(
                    f"`{self.name}.map(...)` needs `items=` (a list or a handle to one)."
                )
            items = inputs.pop(over)
        if over is None:
            free = [p for p in self.inputs if p not in inputs]
            over = "items" if "items" in free else (free[0] if free else None)
        if over is None:
            raise DefinitionError(
                f"`{self.name}.map(...)`: every parameter is already given; nothing to map over."
            )
        builder = BUILDER.get()
        if builder is None:
            return [self.fn(**{over: it}, **inputs) for it in items]
        return builder.add(self, (), {**inputs, over: items}, over)

    def __reduce__(self) -> tuple[Any, ...]:
        """By reference (module and name) when a worker can import this very step, else by
        value: a step of `__main__` (a script, a notebook), made in a function or by
        `with_options` is shipped with its code, so workers never import the user's main."""
        mod, qual = self.fn.__module__, self.fn.__qualname__
        if mod != "__main__" and _resolve(mod, qual, import_=False) is self:
            return (load_step, (mod, qual))
        import cloudpickle

        state = (self.fn, self.name, self.options, self._declared_outputs, self.cache_key)
        return (_step_by_value, (cloudpickle.dumps(state, protocol=5),))

    def __repr__(self) -> str:
        return f"<step {self.name} ({self.fn.__module__}.{self.fn.__qualname__})>"


def _resolve(module: str, qualname: str, *, import_: bool) -> Any:
    mod = importlib.import_module(module) if import_ else sys.modules.get(module)
    obj: Any = mod
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


def _step_by_value(data: bytes) -> Step:
    """The other half of `Step.__reduce__` for steps shipped by value."""
    import pickle

    return Step(*pickle.loads(data))


def _cache_key_inputs(st: Step, problems: list[str]) -> tuple[str, ...]:
    """The step inputs a `cache_key` function is called with (its parameters, all inputs)."""
    fn = st.cache_key
    if fn is None:
        return ()
    if not callable(fn):
        problems.append(
            f"step `{st.name}`: `cache_key` must be a function of the step's inputs, not `{fn!r}`."
        )
        return ()
    names: list[str] = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            problems.append(
                f"step `{st.name}`: `cache_key` parameter `{p.name}` must be a named input of the step (no *args, **kwargs or `/`)."
            )
        elif p.name not in st.inputs:
            problems.append(
                f"step `{st.name}`: `cache_key` parameter `{p.name}` is not an input of the step."
                f"{did_you_mean(p.name, st.inputs)} Inputs: {', '.join(f'`{i}`' for i in st.inputs) or 'none'}."
            )
        else:
            names.append(p.name)
    return tuple(names)


def load_step(module: str, qualname: str) -> Step:
    """Re-import a step by module and qualified name (how steps travel to worker processes)."""
    obj = _resolve(module, qualname, import_=True)
    if not isinstance(obj, Step):
        raise DefinitionError(f"`{module}.{qualname}` is not a step in the worker process.")
    return obj


def resolve_hints(fn: Any) -> dict[str, Any]:
    """Type hints with string annotations resolved; an unresolvable one becomes `Any`."""
    try:
        return typing.get_type_hints(fn)
    except Exception:
        pass
    out: dict[str, Any] = {}
    for k, v in getattr(fn, "__annotations__", {}).items():
        try:
            out[k] = eval(v, getattr(fn, "__globals__", {})) if isinstance(v, str) else v
        except Exception:
            out[k] = Any
    return out


def _outputs(
    name: str, ret: Any, names: tuple[str, ...] | None, problems: list[str]
) -> dict[str, Any]:
    is_nt = isinstance(ret, type) and issubclass(ret, tuple) and hasattr(ret, "_fields")
    if names is None:
        if is_nt:
            hints = resolve_hints(ret)
            return {f: hints.get(f, Any) for f in ret._fields}
        if ret is None or ret is type(None):
            return {}
        return {DEFAULT_OUTPUT: ret}
    names = tuple(names) if not isinstance(names, str) else (names,)
    bad = [n for n in names if not isinstance(n, str) or not n.isidentifier()]
    if bad or not names or len(set(names)) != len(names):
        problems.append(f"step `{name}`: `outputs` must be distinct identifiers, not `{names!r}`.")
        return {DEFAULT_OUTPUT: Any}
    args = typing.get_args(ret)
    origin = typing.get_origin(ret)
    if is_nt:
        hints = resolve_hints(ret)
        types = [hints.get(f, Any) for f in ret._fields]
    elif origin is tuple and args and Ellipsis not in args:
        types = list(args)
    elif typing.is_typeddict(ret):
        hints = resolve_hints(ret)
        missing = [n for n in names if n not in hints]
        if missing:
            problems.append(f"step `{name}`: outputs {missing} are not keys of `{ret.__name__}`.")
        return {n: hints.get(n, Any) for n in names}
    elif isinstance(origin, type) and issubclass(origin, Mapping) and len(args) == 2:
        return dict.fromkeys(names, args[1])
    else:
        return dict.fromkeys(names, Any)
    if len(types) != len(names):
        problems.append(
            f"step `{name}` declares {len(names)} outputs {list(names)} but its return annotation has {len(types)}."
        )
    return {n: (types[i] if i < len(types) else Any) for i, n in enumerate(names)}


@overload
def step(fn: _F, /) -> Step: ...
@overload
def step(
    *,
    cache: bool = ...,
    retries: int = ...,
    retry_backoff: float = ...,
    timeout: float | None = ...,
    resources: Mapping[str, float] | None = ...,
    name: str | None = ...,
    outputs: tuple[str, ...] | None = ...,
    cache_key: Callable[..., Any] | None = ...,
) -> Callable[[_F], Step]: ...
def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    cache: bool = True,
    retries: int = 0,
    retry_backoff: float = 0.5,
    timeout: float | None = None,
    resources: Mapping[str, float] | None = None,
    name: str | None = None,
    outputs: tuple[str, ...] | None = None,
    cache_key: Callable[..., Any] | None = None,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Make a function a pipeline step (bare `@step` or `@step(retries=2, ...)`).

    `cache_key`: a function of (some of) the step's inputs whose result joins the step's cache
    key, for a step that reads something its inputs do not capture (module docstring)."""
    opts = StepOptions(cache, retries, retry_backoff, timeout, dict(resources or {}))

    def wrap(f: Callable[..., Any]) -> Step:
        return Step(f, name, opts, outputs, cache_key)

    return wrap(fn) if fn is not None else wrap


class Pipeline:
    """A traced, validated pipeline. Create with `@pipeline`; run with `runner.run`."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.__doc__ = fn.__doc__
        hints = resolve_hints(fn)
        params: dict[str, PipelineParam] = {}
        problems: list[str] = []
        for p in inspect.signature(fn).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                problems.append(
                    f"pipeline `{self.name}`: `{p.name}` must be a named parameter (no *args/**kwargs)."
                )
                continue
            default = REQUIRED if p.default is p.empty else p.default
            params[p.name] = PipelineParam(p.name, hints.get(p.name, Any), default)
        self.graph = Graph(self.name, params)
        if problems:
            raise DefinitionError.from_problems(problems, what=f"pipeline `{self.name}`")
        builder = Builder(self.graph)
        token = BUILDER.set(builder)
        try:
            fn(**{p: Param(p) for p in params})
        except DefinitionError:
            raise
        except Exception as e:
            raise DefinitionError(
                f"defining pipeline `{self.name}` failed: {type(e).__name__}: {e}"
            ) from e
        finally:
            BUILDER.reset(token)
        self.graph.validate()

    @property
    def params(self) -> dict[str, PipelineParam]:
        return self.graph.params

    def run(self, params: Mapping[str, Any] | None = None, **options: Any) -> Any:
        """Shortcut for `featureline.pipelines.runner.run(self, params, **options)`."""
        from featureline.pipelines.runner import run

        return run(self, dict(params or {}), **options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise DefinitionError(
            f"pipeline `{self.name}` is not called directly. Fix: `{self.name}.run({{...params}})` "
            "or `featureline.pipelines.runner.run(pipeline, params)`."
        )

    def __repr__(self) -> str:
        return f"<pipeline {self.name}: {len(self.graph.nodes)} steps>"


@overload
def pipeline(fn: Callable[..., Any], /) -> Pipeline: ...
@overload
def pipeline(*, name: str | None = ...) -> Callable[[Callable[..., Any]], Pipeline]: ...
def pipeline(
    fn: Callable[..., Any] | None = None, /, *, name: str | None = None
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Trace a function whose body calls steps into a validated `Pipeline`."""
    if fn is not None:
        return Pipeline(fn, name)
    return lambda f: Pipeline(f, name)


__all__ = [
    "DEFAULT_OUTPUT",
    "InputSpec",
    "Output",
    "Param",
    "Pipeline",
    "Step",
    "StepOptions",
    "load_step",
    "pipeline",
    "step",
    "when",
]
