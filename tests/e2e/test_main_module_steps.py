"""Steps defined in `__main__` run on the default (process) executor (issue 9): a script without
`if __name__ == "__main__":` and a notebook-like `__main__` with no file. The steps travel to
the workers by value, and the workers never re-run the user's script."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = """
from pathlib import Path

import pyarrow as pa

from featureline.pipelines import Metrics, pipeline, run, step

HERE = Path({here!r})
with open(HERE / "ran.log", "a") as f:  # once per time this body runs, in any process
    f.write("ran\\n")

OFFSET = 10


def helper(x):
    return x + OFFSET


class Factor:  # a value of a class of `__main__`, passed as a step input
    def __init__(self, k):
        self.k = k


class Multiplier:  # ... and returned by one step, loaded by another (in another worker)
    def __init__(self, factor):
        self.k = factor.k

    def __call__(self, x):
        return self.k * x


@step
def inc(x: int) -> int:
    return helper(x)


@step
def multiplier(factor: Factor) -> Multiplier:
    return Multiplier(factor)


@step
def double_all(x: int, m: Multiplier) -> pa.Table:
    return pa.table({{"x": [m(x), m(x + 1)]}})


@step
def total(t: pa.Table) -> Metrics:
    return Metrics(total=sum(t.column("x").to_pylist()))


@pipeline
def p(x: int = 1):
    total(double_all(inc(x), multiplier(Factor(2))))


r = run(p, {{"x": 1}}, artifact_root=HERE / "artifacts")  # the default executor: "process"
r.raise_for_status()
print("RESULT", r.output("inc"), r.output("total")["total"], r.statuses["inc"])
"""


def _run(tmp_path: Path, code: str, *, as_file: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FEATURELINE_HOME": str(tmp_path / "home")}
    if as_file:
        script = tmp_path / "unguarded.py"
        script.write_text(code)
        args, stdin = [sys.executable, str(script)], None
    else:  # like a notebook: `__main__` has no file to import
        args, stdin = [sys.executable, "-c", code], None
    return subprocess.run(
        args, input=stdin, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )


def test_a_script_without_a_main_guard_runs_steps_on_the_process_executor(tmp_path: Path) -> None:
    out = _run(tmp_path, SCRIPT.format(here=str(tmp_path)), as_file=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RESULT 11 46.0 succeeded" in out.stdout
    assert (tmp_path / "ran.log").read_text() == "ran\n"  # the workers did not re-run the script


def test_steps_defined_in_a_main_without_a_file_run_on_the_process_executor(tmp_path: Path) -> None:
    code = SCRIPT.format(here=str(tmp_path))
    out = _run(tmp_path, code, as_file=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RESULT 11 46.0 succeeded" in out.stdout
    again = _run(tmp_path, code, as_file=False)  # the same code: the same cache keys
    assert again.returncode == 0 and "RESULT 11 46.0 cached" in again.stdout, again.stderr[-3000:]
    assert (tmp_path / "ran.log").read_text() == "ran\nran\n"


def test_a_guarded_script_still_runs_once(tmp_path: Path) -> None:
    body = SCRIPT.format(here=str(tmp_path)).split("\nr = run(")[0]
    guarded = body + textwrap.dedent("""
        if __name__ == "__main__":
            r = run(p, {"x": 2}, artifact_root=HERE / "artifacts")
            r.raise_for_status()
            print("RESULT", r.output("inc"))
    """)
    out = _run(tmp_path, guarded, as_file=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RESULT 12" in out.stdout and (tmp_path / "ran.log").read_text() == "ran\n"
