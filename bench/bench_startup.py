"""Benchmark: start-up time of `import featureline` and of `featureline --help`.

Median of 10 fresh processes each (after one untimed warm-up that fills the OS file cache).
`featureline --help` runs the console script installed next to this Python (sys.executable's
bin dir); when it is not installed, the same code the generated console script runs is timed
instead (`python -c "...from featureline.cli import main; sys.exit(main())" --help`) and the
report says so. A bare `python -c pass` is timed too, as the floor.

    PYTHONPATH=src python bench/bench_startup.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO_SRC = BENCH.parent / "src"
RUNS = 10


def _env() -> dict[str, str]:
    """The environment for the children: featureline importable (this checkout's src/ if needed)."""
    env = dict(os.environ)
    probe = subprocess.run(
        [sys.executable, "-c", "import featureline"], env=env, capture_output=True, check=False
    )
    if probe.returncode != 0:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_SRC), env.get("PYTHONPATH")]))
    return env


def median_seconds(
    cmd: list[str], env: dict[str, str], runs: int = RUNS
) -> tuple[float, list[float]]:
    subprocess.run(cmd, env=env, check=True, capture_output=True)  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def run() -> dict[str, Any]:
    env = _env()
    script = Path(sys.executable).parent / "featureline"
    if script.exists():
        help_cmd, help_label = [str(script), "--help"], "featureline --help"
    else:
        shim = "import sys; sys.argv[0] = 'featureline'; from featureline.cli import main; sys.exit(main())"
        help_cmd = [sys.executable, "-c", shim, "--help"]
        help_label = "featureline --help (console script not installed: its code run via python -c)"
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import featureline'": [sys.executable, "-c", "import featureline"],
        help_label: help_cmd,
    }
    res: dict[str, Any] = {}
    for label, cmd in cases.items():
        med, times = median_seconds(cmd, env)
        res[label] = med
        print(
            f"{label}: median {med * 1000:.0f} ms over {len(times)} runs (min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms)"
        )
    res["import_ms"] = res["python -c 'import featureline'"] * 1000
    res["help_ms"] = res[help_label] * 1000
    res["python_ms"] = res["python -c pass"] * 1000
    res["help_label"] = help_label
    return res


if __name__ == "__main__":
    run()
