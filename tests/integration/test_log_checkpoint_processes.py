"""View log checkpoints under several real processes at once: writers appending commits with
idempotency keys and a merger replacing live commits, while checkpoints rewrite the file every
few lines. No acknowledged commit is lost or counted twice, and every reader — the writers'
own incremental caches and a fresh parse — agrees with the union of what was acknowledged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import featureline
from featureline.offline._log import ViewLog

SRC = str(Path(featureline.__file__).resolve().parent.parent)

WORKER = """
import json, sys
from featureline.offline import _log
from featureline.errors import CommitConflict
from featureline.offline._log import Part, ViewLog
_log.CHECKPOINT_LINES = 7
root, name, n, merger = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
import time
log, made = ViewLog(__import__("pathlib").Path(root)), []
deadline = time.monotonic() + 120
if merger:  # until every writer's last commit is in (or two minutes passed)
    i = 0
    while time.monotonic() < deadline and not all(log.find_key(f"{w}-59") for w in "abc"):
        i += 1
        live = log.live_commits()
        if len(live) >= 3:
            try:
                c = log.replace([Part(f"parts/{name}-m{i}", 3)], [x.seq for x in live[:3]], {})
            except CommitConflict:
                continue
            made.append([c.seq, None, c.replaces])
for i in range(0 if merger else n):
    key = f"{name}-{i}"
    c = log.commit(lambda: [Part(f"parts/{key}", 1)], meta={"who": name}, idempotency_key=key)
    again = log.commit(lambda: [Part(f"parts/{key}-again", 1)], idempotency_key=key)
    assert again.seq == c.seq, (again.seq, c.seq)  # the same key twice is one commit
    assert log.find_key(key).seq == c.seq
    made.append([c.seq, key, []])
print(json.dumps({"made": made, "live": [c.seq for c in log.live_commits()]}))
"""


def test_checkpoints_under_concurrent_writers_and_a_merger_lose_nothing(tmp_path: Path) -> None:
    root = tmp_path / "v1"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(root), name, str(n), merger],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
        )
        for name, n, merger in [("a", 60, "0"), ("b", 60, "0"), ("c", 60, "0"), ("m", 0, "1")]
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    made = sorted((m[0], m[1], tuple(m[2])) for o in outs for m in o["made"])
    seqs = [m[0] for m in made]
    assert len(seqs) == len(set(seqs))  # no seq acknowledged twice
    keys = {m[1]: m[0] for m in made if m[1] is not None}
    assert len(keys) == 180  # every write acknowledged once
    replaced = {s for m in made for s in m[2]}
    merges = [m for m in made if m[1] is None]
    assert merges, "the merger never merged: the test proved nothing"
    want_live = [s for s in seqs if s not in replaced]
    fresh = ViewLog(root)
    assert [c.seq for c in fresh.live_commits()] == want_live
    for k, seq in keys.items():
        found = fresh.find_key(k)
        assert found is not None and found.seq == seq, k
    assert fresh.last() is not None and fresh.last().seq == max(seqs)
    lines = fresh.log_path.read_text().count("\n")
    assert lines < len(made), (lines, len(made))  # it was checkpointed
