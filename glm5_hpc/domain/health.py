"""Health verdicts: the probe ladder's rungs judged from parsed replies, and a repetition
detector for the recipe's failure mode ("repetitive gibberish" after a clean startup). Pure."""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

RUNGS = ("health", "models", "completion")
_WORD = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class Verdict:
    rung: str
    ok: bool
    detail: str
    at: float = 0.0
    replied: bool = True  # False when the server did not answer at all (refused, timeout, reset)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Repetition:
    """Measures of how repetitive a text is; `gibberish` combines them. Thresholds were chosen on
    degenerate loops and coherent paragraphs of several styles (tests/test_health.py)."""

    tokens: int
    distinct_bigram_ratio: float  # distinct bigrams / bigrams; loops reuse few
    longest_run: int  # longest run of one token repeated back to back
    trigram_coverage: float  # share of tokens inside a trigram that occurs more than once
    compression_ratio: float  # zlib size / raw size; low means repetitive (texts of 64+ bytes)

    @property
    def gibberish(self) -> bool:
        if self.tokens < 6:
            return False
        return (
            self.distinct_bigram_ratio < 0.5
            or self.longest_run >= 4
            or self.trigram_coverage > 0.6
            or self.compression_ratio < 0.25
        )


def repetition(text: str) -> Repetition:
    tokens = [t.lower() for t in _WORD.findall(text)]
    bigrams = list(pairwise(tokens))
    ratio = len(set(bigrams)) / len(bigrams) if bigrams else 1.0
    longest = run = 1 if tokens else 0
    for a, b in pairwise(tokens):
        run = run + 1 if a == b else 1
        longest = max(longest, run)
    trigrams = [tuple(tokens[i : i + 3]) for i in range(len(tokens) - 2)]
    counts = Counter(trigrams)
    covered = {i + k for i, t in enumerate(trigrams) if counts[t] > 1 for k in range(3)}
    coverage = len(covered) / len(tokens) if tokens else 0.0
    raw = text.encode()
    compression = len(zlib.compress(raw, 9)) / len(raw) if len(raw) >= 64 else 1.0
    return Repetition(len(tokens), round(ratio, 3), longest, round(coverage, 3), round(compression, 3))


def judge_health(status: int, at: float = 0.0) -> Verdict:
    return Verdict("health", status == 200, f"GET /health -> {status}", at)


def judge_models(status: int, body: Any, model_id: str, at: float = 0.0) -> Verdict:
    if status != 200:
        return Verdict("models", False, f"GET /v1/models -> {status}", at)
    data = body.get("data") if isinstance(body, dict) else None
    ids = [m.get("id") for m in data if isinstance(m, dict)] if isinstance(data, list) else []
    if model_id not in ids:
        return Verdict("models", False, f"/v1/models lists {ids}, not {model_id!r}", at)
    return Verdict("models", True, f"/v1/models lists {model_id!r}", at)


def completion_text(body: Any) -> str | None:
    try:
        text = body["choices"][0]["text"]
    except (KeyError, IndexError, TypeError):
        return None
    return text if isinstance(text, str) else None


def judge_completion(status: int, body: Any, expect: str, at: float = 0.0) -> Verdict:
    if status != 200:
        return Verdict("completion", False, f"POST /v1/completions -> {status}", at)
    text = completion_text(body)
    if text is None:
        return Verdict("completion", False, "reply has no choices[0].text", at)
    rep = repetition(text)
    shown = text.strip()[:500]
    if rep.gibberish:
        return Verdict(
            "completion",
            False,
            f"gibberish (distinct bigrams {rep.distinct_bigram_ratio}, longest run {rep.longest_run}, "
            f"compression {rep.compression_ratio}): {shown!r}",
            at,
        )
    if expect and expect.lower() not in text.lower():
        return Verdict("completion", False, f"does not mention {expect!r}: {shown!r}", at)
    return Verdict("completion", True, shown, at)
