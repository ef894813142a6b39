"""Suggestions for a name that does not exist: the closest existing names by edit distance."""
from __future__ import annotations


def distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions), case-insensitive."""
    a, b = a.lower(), b.lower()
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def closest(name: str, candidates, limit: int = 3) -> list[str]:
    """Up to `limit` candidates within a third of the name's length (at least 2 edits)."""
    bound = max(2, len(name) // 3)
    scored = sorted((distance(name, c), c) for c in set(candidates))
    return [c for d, c in scored if d <= bound][:limit]


def did_you_mean(name: str, candidates) -> str:
    near = closest(name, candidates)
    if not near:
        return ''
    return '; did you mean %s?' % ' or '.join(repr(c) for c in near)
