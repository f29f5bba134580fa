"""The benchmark's pure parts against AIPerf 0.13.0's real exports (tests/fixtures/aiperf: a run
at concurrency 4 against the stand-in, and the per-request records of a run against a server
that answered without content): the command line, the figures, the verdict, the tables."""

from __future__ import annotations

import json

import pytest

from glm5_hpc.app.remote import bench_argv
from glm5_hpc.domain.bench import BenchPlan, aiperf_argv, check_plan, compare, export_dir, new_id, row_of, row_of_records, table
from glm5_hpc.domain.bench import verdict as verdict_of
from tests.conftest import FIXTURES

AIPERF = FIXTURES / "aiperf"
PLAN = BenchPlan((1, 4), 64, 32, requests=32)


def test_the_aiperf_command_streams_fixes_the_lengths_and_forces_full_outputs() -> None:
    argv = aiperf_argv("/opt/aiperf/bin/aiperf", PLAN, "http://n1:8000", "GLM-5", "/models/GLM-5", "/runs/r/bench/1")
    text = " ".join(argv)
    assert argv[:2] == ["/opt/aiperf/bin/aiperf", "profile"] and "--streaming" in argv
    assert "--concurrency 1,4 " in text and "--synthetic-input-tokens-mean 64 --synthetic-input-tokens-stddev 0" in text
    assert "--output-tokens-mean 32 --output-tokens-stddev 0" in text and "min_tokens:32" in text and "ignore_eos:true" in text
    assert argv[-2:] == ["--request-count", "32"] and "--tokenizer /models/GLM-5" in text
    assert aiperf_argv("a", PLAN._replace(requests=None, duration_s=30), "u", "m", "t", "d")[-2:] == [
        "--benchmark-duration",
        "30",
    ]
    assert export_dir("/d", PLAN, 4) == "/d/concurrency_4" and export_dir("/d", PLAN._replace(concurrencies=(4,)), 4) == "/d"


def test_plans_are_checked() -> None:
    assert check_plan(PLAN) == ""
    assert "a concurrency is listed twice" in check_plan(PLAN._replace(concurrencies=(4, 4)))
    assert "not both" in check_plan(PLAN._replace(duration_s=10))
    assert "at least 1 token" in check_plan(PLAN._replace(output_len=0))


def test_figures_from_a_real_export() -> None:
    row = row_of(4, json.loads((AIPERF / "profile_export_aiperf.json").read_text()))
    assert (row["concurrency"], row["requests"], row["errors"], row["output_tokens"]) == (4, 32, 0, 1024)
    assert row["ttft"] == {"p50": 44.987, "p90": 49.092, "p99": 54.382}
    assert row["e2e"]["p50"] == 227.749 and row["itl"]["p50"] == 5.912
    assert round(row["output_tokens_s"]) == 540 and round(row["requests_s"], 2) == 16.87
    assert verdict_of([row]) == ""
    assert "| 4 | 32 | 0 | 539.9 | 16.87 | 45.0 / 49.1 / 54.4 |" in table([row])


def test_failed_and_empty_runs_are_named() -> None:
    records = [json.loads(line) for line in (AIPERF / "failed-requests.jsonl").read_text().splitlines()]
    failed = row_of_records(2, records)
    assert (failed["requests"], failed["errors"]) == (0, 4)
    said = verdict_of([failed])
    assert (
        said.startswith("4 failed request(s) at concurrency 2 (InvalidInferenceResultError(") and "no request completed" in said
    )
    empty = row_of(4, json.loads((AIPERF / "profile_export_aiperf.json").read_text())) | {"output_tokens": 0}
    assert verdict_of([empty]) == "zero generated tokens at concurrency 4"


def test_two_runs_side_by_side() -> None:
    row = row_of(4, json.loads((AIPERF / "profile_export_aiperf.json").read_text()))
    a = {"id": "A1", "url": "u", "rows": [row]}
    b = {"id": "B1", "url": "u", "rows": [row | {"output_tokens_s": row["output_tokens_s"] * 2, "concurrency": 4}]}
    text = compare(a, b)  # type: ignore[arg-type]
    assert "A: A1 (u)   B: B1 (u)" in text and "| 4 | 539.9 | 1079.8 | 2.00x |" in text
    assert "(no concurrency measured in both runs)" in compare(a, {**b, "rows": []})  # type: ignore[arg-type]


def test_ids_are_unique_and_the_remote_arguments_carry_the_plan() -> None:
    assert new_id([], 0) == "19700101-000000" and new_id(["19700101-000000"], 0) == "19700101-000000-1"
    argv = bench_argv(PLAN, {"url": "http://x:1", "plot": "/tmp/p.png", "tokenizer": None})
    assert argv[:8] == ["--concurrency", "1,4", "--input-len", "64", "--output-len", "32", "--json", "--requests"]
    assert "--url" in argv and "--plot" in argv and "--tokenizer" not in argv


@pytest.mark.parametrize("bad", ["0", "1,x", "5000", ""])
def test_concurrency_flag_rejects(bad: str) -> None:
    from glm5_hpc.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["bench", "--url", "http://127.0.0.1:1", "--model", "m", "--concurrency", bad])
    assert exc.value.code == 2
