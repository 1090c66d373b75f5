"""Data quality on the write path (DESIGN §2, issue 11 items 1-2): constraint evaluation, the
ingestion gate (strict | quarantine | warn) and the quarantine with replay.

`gate` is what `featureline.write.check_rows` calls for every batch; `quarantine` stores
and replays the rows a `quarantine` gate kept out.
"""

from featureline.quality import quarantine
from featureline.quality.constraints import Violations, evaluate
from featureline.quality.gate import Gated, Refusal, gate
from featureline.quality.quarantine import ReplayResult

__all__ = ["Gated", "Refusal", "ReplayResult", "Violations", "evaluate", "gate", "quarantine"]
