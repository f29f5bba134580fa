"""A serving benchmark of an endpoint, run by NVIDIA's AIPerf, and its results. Pure: the AIPerf
command line, the figures read from its JSON export, the verdict, the tables.

AIPerf (the `aiperf` package on PyPI) is the load generator; glm5_hpc never generates load
itself. It streams every request, so time to first token and inter-token latency are measured
on the wire, sweeps the concurrencies in one run, and writes one JSON export per concurrency.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple, NotRequired, TypedDict

MAX_CONCURRENCY = 4096  # NVIDIA's GLM-5 guide sweeps 32 .. 4096
LATENCIES = ("ttft", "itl", "e2e")  # time to first token, inter-token latency, request latency (ms)
PERCENTILES = ("p50", "p90", "p99")
AIPERF_METRICS = {"ttft": "time_to_first_token", "itl": "inter_token_latency", "e2e": "request_latency"}


class BenchPlan(NamedTuple):
    concurrencies: tuple[int, ...]
    input_len: int
    output_len: int
    requests: int | None = None  # per concurrency (None and no duration: AIPerf's default)
    duration_s: float | None = None
    endpoint: str = "completions"  # AIPerf endpoint type: completions or chat


class BenchRow(TypedDict):
    """One concurrency's figures: latencies in ms as {p50, p90, p99}, throughput per second."""

    concurrency: int
    requests: int  # completed
    errors: int
    output_tokens: int
    output_tokens_s: float
    requests_s: float
    ttft: dict[str, float]
    itl: dict[str, float]
    e2e: dict[str, float]
    first_error: NotRequired[str]  # what the first failed request said


class BenchResult(TypedDict):
    """A benchmark run, as the deployment's record keeps it (in the run it measured)."""

    id: str
    at: float
    url: str
    where: str  # "here", or the serve job's node it ran on
    plan: dict[str, Any]
    rows: list[BenchRow]
    verdict: str  # "" when every request succeeded and tokens came back
    artifacts: str
    plot: NotRequired[str]


def check_plan(plan: BenchPlan) -> str:
    """What is wrong with the plan, for the error message ("" when nothing)."""
    if not plan.concurrencies or any(not 1 <= c <= MAX_CONCURRENCY for c in plan.concurrencies):
        return f"--concurrency: give positive numbers up to {MAX_CONCURRENCY}, comma-separated (e.g. 1,8,32)"
    if len(set(plan.concurrencies)) != len(plan.concurrencies):
        return "--concurrency: a concurrency is listed twice"
    if plan.input_len < 1 or plan.output_len < 1:
        return "--input-len and --output-len must be at least 1 token"
    if plan.requests is not None and plan.duration_s is not None:
        return "give either --requests N (per concurrency) or --duration S, not both"
    if plan.requests is not None and plan.requests < 1:
        return "--requests must be at least 1"
    if plan.duration_s is not None and plan.duration_s <= 0:
        return "--duration must be positive"
    return ""


def aiperf_argv(aiperf: str, plan: BenchPlan, url: str, model: str, tokenizer: str, artifacts: str) -> list[str]:
    """One AIPerf run over every concurrency: streaming, fixed input and output lengths, outputs
    forced to full length (ignore_eos, min_tokens), token counts as the server reports them."""
    argv = [
        aiperf, "profile", "--url", url, "--model", model, "--endpoint-type", plan.endpoint, "--streaming",
        "--tokenizer", tokenizer, "--concurrency", ",".join(map(str, plan.concurrencies)),
        "--synthetic-input-tokens-mean", str(plan.input_len), "--synthetic-input-tokens-stddev", "0",
        "--output-tokens-mean", str(plan.output_len), "--output-tokens-stddev", "0",
        "--extra-inputs", "ignore_eos:true", "--extra-inputs", f"min_tokens:{plan.output_len}",
        "--use-server-token-count", "--artifact-dir", artifacts, "--ui-type", "none",
    ]  # fmt: skip
    if plan.requests is not None:
        return [*argv, "--request-count", str(plan.requests)]
    if plan.duration_s is not None:
        return [*argv, "--benchmark-duration", f"{plan.duration_s:g}"]
    return argv  # AIPerf's default count: twice the concurrency


def export_dir(artifacts: str, plan: BenchPlan, concurrency: int) -> str:
    """Where AIPerf writes one concurrency's export (a sweep: one folder per concurrency)."""
    return f"{artifacts}/concurrency_{concurrency}" if len(plan.concurrencies) > 1 else artifacts


def row_of(concurrency: int, doc: dict[str, Any]) -> BenchRow:
    """One concurrency's figures from AIPerf's profile_export_aiperf.json."""

    def avg(key: str) -> float:
        return float((doc.get(key) or {}).get("avg") or 0)

    def pcts(key: str) -> dict[str, float]:
        metric = doc.get(key) or {}
        return {p: round(float(metric.get(p) or 0), 3) for p in PERCENTILES}

    completed = int(avg("completed_request_count") or avg("request_count"))
    errors = sum(int(e.get("count", 0)) for e in doc.get("error_summary") or [] if isinstance(e, dict))
    return {
        "concurrency": concurrency, "requests": completed, "errors": errors,
        "output_tokens": int(avg("total_output_tokens") or avg("total_usage_completion_tokens")),
        "output_tokens_s": round(avg("output_token_throughput"), 2), "requests_s": round(avg("request_throughput"), 3),
        **{name: pcts(metric) for name, metric in AIPERF_METRICS.items()},  # type: ignore[typeddict-item]
    }  # fmt: skip


def row_of_records(concurrency: int, records: list[dict[str, Any]]) -> BenchRow:
    """One concurrency's counts from AIPerf's per-request records (profile_export.jsonl), for a run
    where AIPerf exported no figures: it does not when every request failed."""
    failed = [r["error"] for r in records if r.get("error")]
    zero = {p: 0.0 for p in PERCENTILES}
    row: BenchRow = {
        "concurrency": concurrency, "requests": len(records) - len(failed), "errors": len(failed), "output_tokens": 0,
        "output_tokens_s": 0.0, "requests_s": 0.0, "ttft": zero, "itl": zero, "e2e": zero,
    }  # fmt: skip
    if failed:
        row["first_error"] = str(failed[0].get("message") or failed[0].get("type") or failed[0])[:300]
    return row


def verdict(rows: list[BenchRow]) -> str:
    """Why the run does not count ("" when it does): a failed request, or no generated tokens."""
    problems = []
    for r in rows:
        if r["errors"]:
            said = f" ({r['first_error']})" if r.get("first_error") else ""
            problems.append(f"{r['errors']} failed request(s) at concurrency {r['concurrency']}{said}")
        if not r["requests"]:
            problems.append(f"no request completed at concurrency {r['concurrency']}")
        elif not r["output_tokens"]:
            problems.append(f"zero generated tokens at concurrency {r['concurrency']}")
    return "; ".join(problems)


def new_id(existing: list[str], now: float | None = None) -> str:
    base = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now if now is not None else time.time()))
    return base if base not in existing else f"{base}-{len([e for e in existing if e.startswith(base)])}"


def _ms(p: dict[str, float]) -> str:
    return " / ".join(f"{p[k]:.1f}" for k in PERCENTILES)


def table(rows: list[BenchRow]) -> str:
    lines = [
        "| concurrency | requests | errors | output tok/s | requests/s | TTFT ms p50/p90/p99 | ITL ms p50/p90/p99 "
        "| end-to-end ms p50/p90/p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['concurrency']} | {r['requests']} | {r['errors']} | {r['output_tokens_s']:.1f} | "
                     f"{r['requests_s']:.2f} | {_ms(r['ttft'])} | {_ms(r['itl'])} | {_ms(r['e2e'])} |")  # fmt: skip
    return "\n".join(lines)


def compare(a: BenchResult, b: BenchResult) -> str:
    """Two runs side by side, per concurrency both measured: throughput and p50 latencies, B against A."""
    theirs = {r["concurrency"]: r for r in b["rows"]}
    lines = [
        f"A: {a['id']} ({a['url']})   B: {b['id']} ({b['url']})",
        "| concurrency | output tok/s A | B | B/A | TTFT p50 ms A | B | ITL p50 ms A | B | end-to-end p50 ms A | B |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in a["rows"]:
        o = theirs.get(r["concurrency"])
        if o is None:
            continue
        ratio = f"{o['output_tokens_s'] / r['output_tokens_s']:.2f}x" if r["output_tokens_s"] else "-"
        lines.append(
            f"| {r['concurrency']} | {r['output_tokens_s']:.1f} | {o['output_tokens_s']:.1f} | {ratio} | "
            f"{r['ttft']['p50']:.1f} | {o['ttft']['p50']:.1f} | {r['itl']['p50']:.1f} | {o['itl']['p50']:.1f} | "
            f"{r['e2e']['p50']:.1f} | {o['e2e']['p50']:.1f} |"
        )
    if len(lines) == 3:
        lines.append("(no concurrency measured in both runs)")
    return "\n".join(lines)
