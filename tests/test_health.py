"""The gibberish detector, the ladder's verdicts, and how the watcher reads a server's progress before ready."""

from __future__ import annotations

import pytest

from glm5_hpc.domain.health import judge_completion, judge_health, judge_models, repetition
from glm5_hpc.domain.watch import Progress

COHERENT = {
    "the stand-in's answer": " Paris. Paris is the largest city in France and the seat of its government, known for the"
    " Eiffel Tower, the Louvre and the river Seine.",
    "short answer": " Paris, which has been the country's political and cultural centre for centuries.",
    "encyclopedic": " Paris is the capital and most populous city of France. Situated on the Seine River, in the north"
    " of the country, it is at the heart of the Ile-de-France region. The city is a major railway, highway and"
    " air-transport hub served by two international airports, and it hosts the headquarters of several"
    " international organisations, including UNESCO and the OECD.",
    "conversational": " Paris, of course! I went there last spring with my sister and we spent most of our time just"
    " walking around. Honestly, the best part wasn't the museums but the little bakeries on every corner. If you"
    " ever go, skip the long lines at the tower and have a picnic by the canal instead.",
    "instructions": " Paris. To get there from London, take the Eurostar from St Pancras; the trip takes a little over"
    " two hours. Book early for cheaper fares, bring your passport, and arrive at least forty-five minutes before"
    " departure because security checks can be slow during holidays.",
    "list": " Paris. Other capitals in Europe include:\n1. Berlin, capital of Germany\n2. Madrid, capital of Spain\n"
    "3. Rome, capital of Italy\n4. Lisbon, capital of Portugal\n5. Vienna, capital of Austria",
    "technical": " a question the model answers only after the attention kernels were built with the right head"
    " size. In GLM-5 the value head dimension is 256 while the non-positional query-key dimension is 192, so a kernel"
    " that assumes they are equal reads past the end of each value vector and produces noise.",
    "narrative": " Paris, she wrote in the letter, though by the time it arrived he had already left. The train"
    " pulled out slowly, rain streaking across the windows, and he wondered whether she would still be waiting at"
    " the station when he finally came back home that winter.",
}
DEGENERATE = {
    "loop from the issue": " lot lot pet dealer lot lot pet",
    "loop, longer": " lot lot pet dealer" * 12,
    "one token": " the" * 40,
    "one word capitalised": " Paris Paris Paris Paris Paris Paris Paris Paris",
    "repeated sentence": " The capital of France is Paris." * 6,
    "repeated phrase": " is the capital of the capital of the capital of the capital of the capital of the capital of",
    "stand-in's gibberish": " the the of, the and the the the of, the and the the the of, the and the",
    "punctuation": ",,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,",
    "digits": " 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
    "one character": "".join(" 的" for _ in range(40)),
    "alternating": " yes no yes no yes no yes no yes no yes no",
}


@pytest.mark.parametrize("style", sorted(COHERENT))
def test_coherent_text_passes(style: str) -> None:
    rep = repetition(COHERENT[style])
    assert not rep.gibberish, rep


@pytest.mark.parametrize("kind", sorted(DEGENERATE))
def test_degenerate_text_flagged(kind: str) -> None:
    rep = repetition(DEGENERATE[kind])
    assert rep.gibberish, rep


def test_short_text_not_judged() -> None:
    assert not repetition(" Paris.").gibberish
    assert not repetition("").gibberish


def body(text: str) -> dict:
    return {"choices": [{"index": 0, "text": text}]}


def test_completion_verdicts() -> None:
    assert judge_completion(200, body(COHERENT["encyclopedic"]), "Paris").ok
    v = judge_completion(200, body(DEGENERATE["stand-in's gibberish"]), "Paris")
    assert not v.ok and v.detail.startswith("gibberish (distinct bigrams")
    v = judge_completion(200, body(COHERENT["technical"]), "Paris")
    assert not v.ok and "does not mention 'Paris'" in v.detail
    assert not judge_completion(500, None, "Paris").ok
    assert judge_completion(200, {"unexpected": True}, "Paris").detail == "reply has no choices[0].text"
    assert judge_completion(200, {"choices": [{"text": 5}]}, "Paris").detail == "reply has no choices[0].text"


def test_models_and_health_verdicts() -> None:
    listed = {"object": "list", "data": [{"id": "GLM-5-nvfp4-v1"}]}
    assert judge_models(200, listed, "GLM-5-nvfp4-v1").ok
    assert not judge_models(200, listed, "other").ok
    assert not judge_models(200, {"data": "junk"}, "x").ok
    assert not judge_models(200, None, "x").ok
    assert judge_health(200).ok and not judge_health(503).ok


def test_progress_tells_waiting_for_ranks_from_loading_from_hung() -> None:
    p = Progress(ranks=4, hang_after_s=60, now=0)
    assert p.update([], 100, now=1) == ("waiting-for-ranks", "0 of 4 ranks started")
    assert p.update(["n1", "n1", "n2"], 100, now=30) == ("waiting-for-ranks", "3 of 4 ranks started (on n1, n2)")
    phase, reason = p.update(["n1", "n1", "n2"], 100, now=90)  # a rank that never starts: no progress for 60 s
    assert phase == "hung" and reason.startswith("no progress for 60s (health.hang_after_s 60): 3 of 4 ranks started")
    assert p.update(["n1", "n1", "n2", "n2"], 100, now=91) == ("loading", "all 4 ranks started (on n1, n2)")
    assert p.update(["n1", "n1", "n2", "n2"], 900, now=150)[0] == "loading"  # the log grows: still loading
    assert p.update(["n1", "n1", "n2", "n2"], 900, now=209)[0] == "loading"
    assert p.update(["n1", "n1", "n2", "n2"], 900, now=210)[0] == "hung"


def test_progress_on_one_node_and_with_the_hang_check_off() -> None:
    one = Progress(ranks=1, hang_after_s=10, now=0)
    assert one.update([], 5, now=1) == ("loading", "")
    hung = "no progress for 10s (health.hang_after_s 10): no new log line and no answer on /health"
    assert one.update([], 5, now=11) == ("hung", hung)
    off = Progress(ranks=2, hang_after_s=0, now=0)
    assert off.update(["n1"], 5, now=10**6) == ("waiting-for-ranks", "1 of 2 ranks started (on n1)")
