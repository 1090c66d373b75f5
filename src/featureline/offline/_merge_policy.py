"""Which commits an automatic merge combines: size tiers with a fan-in (LSM size-tiered).

A commit of `r` rows is in tier `t` when `fan_in**t <= r < fan_in**(t+1)` (tier 0: fewer than
`fan_in` rows). A merge combines only commits of one tier, and only once that tier holds
`fan_in` of them; `fan_in` commits of tier `t` hold at least `fan_in**(t+1)` rows, so the merged
commit lands in a higher tier. Every rewrite of a row therefore lifts it at least one tier, and
a row is rewritten at most `log_fan_in(max_commit_rows) + 1` times: merge cost per pushed row is
O(log n), and a large merged commit is never rewritten by a merge of small ones. Commits above
`max_commit_rows` are left to an explicit `compact()`; one merge holds at most `max_merge_rows`.
"""

from __future__ import annotations

from featureline.offline._log import Commit


def tier(rows: int, fan_in: int) -> int:
    t, bound = 0, fan_in
    while rows >= bound:
        t, bound = t + 1, bound * fan_in
    return t


def pick(
    live: list[Commit], fan_in: int, max_commit_rows: int, max_merge_rows: int
) -> list[Commit]:
    """The commits the next automatic merge combines (log order), or [] when no tier is full."""
    fan_in = max(2, fan_in)
    tiers: dict[int, list[Commit]] = {}
    for c in live:
        if c.rows <= max_commit_rows:
            tiers.setdefault(tier(c.rows, fan_in), []).append(c)
    for t in sorted(tiers):
        group = tiers[t]
        if len(group) < fan_in:
            continue
        chosen: list[Commit] = []
        total = 0
        for c in group:  # oldest first; a backlog in one tier is taken whole, up to the cap
            if chosen and total + c.rows > max_merge_rows:
                break
            chosen.append(c)
            total += c.rows
        if len(chosen) >= 2:
            return chosen
    return []
