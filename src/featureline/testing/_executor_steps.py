"""Steps and pipelines for `executor_contract` (module level, so workers can import them)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from featureline.pipelines.artifacts import Metrics
from featureline.pipelines.dsl import pipeline, step, when


@step
def make_table(n: int) -> pa.Table:
    return pa.table({"x": list(range(n))})


@step
def double(t: pa.Table) -> pa.Table:
    return t.set_column(0, "x", pa.array([v * 2 for v in t.column("x").to_pylist()]))


@step
def table_sum(t: pa.Table) -> int:
    return int(sum(t.column("x").to_pylist()))


@step
def numbers(n: int) -> list[int]:
    return list(range(n))


@step
def square(x: int) -> int:
    return x * x


@step
def add_all(xs: list[int]) -> int:
    return sum(xs)


@step
def evaluate(total: int) -> Metrics:
    return Metrics(score=total / 100)


@step
def label(value: int, prefix: str = "v") -> str:
    return f"{prefix}{value}"


class MinMax(NamedTuple):
    lo: int
    hi: int


@step
def bounds(t: pa.Table) -> MinMax:
    xs = t.column("x").to_pylist()
    return MinMax(min(xs), max(xs))


@step(outputs=("evens", "odds"))
def parity(t: pa.Table) -> dict[str, list[int]]:
    xs = t.column("x").to_pylist()
    return {"evens": [x for x in xs if x % 2 == 0], "odds": [x for x in xs if x % 2]}


@step
def write_note(folder: str, text: str) -> Path:
    path = Path(folder) / f"note-{os.getpid()}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@step
def read_note(note: Path) -> str:
    return note.read_text()


@step
def as_array(t: pa.Table) -> np.ndarray:
    return np.asarray(t.column("x").to_pylist(), dtype=np.float64)


@step
def array_sum(a: np.ndarray) -> float:
    return float(a.sum())


@step
def explode(t: pa.Table, message: str) -> pa.Table:
    raise ValueError(f"boom: {message}")


def _bump(counter: str) -> int:
    path = Path(counter)
    n = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(n))
    return n


@step(retries=2, retry_backoff=0.05)
def flaky(counter: str) -> str:
    if _bump(counter) < 2:
        raise RuntimeError("first attempt fails")
    return "ok"


@step(timeout=0.5)
def sleepy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@step
def unpicklable(n: int) -> Any:
    return threading.Lock()


@step
def chatty(n: int) -> int:
    print(f"hello from stdout {n}")
    print(f"hello from stderr {n}", file=__import__("sys").stderr)
    return n


@step(retries=1, retry_backoff=0.0)
def killed_once(counter: str) -> int:
    if _bump(counter) < 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


@step
def killed_always(counter: str) -> int:
    _bump(counter)
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


# ---- pipelines --------------------------------------------------------------------------------


@pipeline
def linear(n: int = 4) -> None:
    table_sum(double(make_table(n)))


@pipeline
def fan(n: int = 4) -> None:
    squares = square.map(items=numbers(n))
    total = add_all(squares)
    label.map(items=squares, prefix="sq")
    add_all(square.map(items=[5, 6]))
    evaluate(total)


@pipeline
def gated(n: int = 4, deploy: bool = False) -> None:
    total = table_sum(make_table(n))
    with when(total > 100):
        big = square(total)
    label(big, prefix="big")  # outside the block, but it needs `big`: skipped with it
    with when(total <= 100):
        label(total, prefix="small")
    with when(deploy):
        label(n, prefix="deployed")


@pipeline
def typed(folder: str = "", n: int = 5) -> None:
    t = make_table(n)
    b = bounds(t)
    label(b.output("hi"), prefix="hi")
    add_all(parity(t)["odds"])
    read_note(write_note(folder, "a note"))
    array_sum(as_array(t))


@pipeline
def failing(n: int = 3) -> None:
    t = make_table(n)
    table_sum(double(explode(t, "bad input")))
    table_sum(double(t))


@pipeline
def retrying(counter: str = "") -> None:
    flaky(counter)


@pipeline
def slow(seconds: float = 30.0) -> None:
    sleepy(seconds)


@pipeline
def bad_return(n: int = 1) -> None:
    unpicklable(n)


@pipeline
def logging_pipe(n: int = 7) -> None:
    chatty(n)


@pipeline
def crash_once(counter: str = "") -> None:
    killed_once(counter)


@pipeline
def crash_always(counter: str = "") -> None:
    killed_always(counter)
