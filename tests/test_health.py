"""The gibberish detector and the ladder's verdicts."""

from __future__ import annotations

import pytest

from glm5_hpc.domain.health import judge_completion, judge_health, judge_models, repetition

COHERENT = [
    " Paris. Paris is the largest city in France and the seat of its government, known for the Eiffel Tower,"
    " the Louvre and the river Seine.",
    " Paris, which has been the country's political and cultural centre for centuries.",
    " a city of about two million people on the Seine; its metropolitan area holds more than twelve million.",
]
DEGENERATE = [
    " the the the the the the the the the the",
    " the the of, the and the the the of, the and the the the of, the and the",
    " Paris Paris Paris Paris Paris Paris Paris Paris",
    " is the capital of the capital of the capital of the capital of the capital of the capital of",
    ",,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,",
    " 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
    "".join(" 的" for _ in range(40)),
]


@pytest.mark.parametrize("text", COHERENT)
def test_coherent_text_passes(text: str) -> None:
    assert not repetition(text).gibberish


@pytest.mark.parametrize("text", DEGENERATE)
def test_degenerate_text_flagged(text: str) -> None:
    assert repetition(text).gibberish


def test_short_text_not_judged() -> None:
    assert not repetition(" Paris.").gibberish


def body(text: str) -> dict:
    return {"choices": [{"index": 0, "text": text}]}


def test_completion_verdicts() -> None:
    assert judge_completion(200, body(COHERENT[0]), "Paris").ok
    v = judge_completion(200, body(DEGENERATE[1]), "Paris")
    assert not v.ok and v.detail.startswith("gibberish (distinct bigrams")
    v = judge_completion(200, body(COHERENT[2]), "Paris")
    assert not v.ok and "does not mention 'Paris'" in v.detail
    assert not judge_completion(500, None, "Paris").ok
    assert judge_completion(200, {"unexpected": True}, "Paris").detail == "reply has no choices[0].text"


def test_models_and_health_verdicts() -> None:
    listed = {"object": "list", "data": [{"id": "GLM-5-nvfp4-v1"}]}
    assert judge_models(200, listed, "GLM-5-nvfp4-v1").ok
    assert not judge_models(200, listed, "other").ok
    assert not judge_models(200, {"data": "junk"}, "x").ok
    assert not judge_models(200, None, "x").ok
    assert judge_health(200).ok and not judge_health(503).ok
