"""Time to healthy, GPU-hours held and redeploy cost: glm5_hpc's chain against what users do by
hand, on the local cluster, with the same stand-in stage scripts and durations.

    .venv/bin/python benchmarks/chain_vs_recipe.py [--trials 3]

Three flows per trial, one after another, each serving on the same GPU node:
- glm5_hpc: `submit --rebuild --wait` (prep-model -> build-wheel -> serve, all three run);
- hand chain: the same rendered stage scripts submitted with plain `sbatch --dependency=afterok`,
  then NVIDIA's wait_server.sh loop (`curl /health`, sleep 10 s);
- manual recipe: one allocation holding the serve job's 8 GPUs through prep, clone, build and
  serve (the recipe's `srun --gres=gpu:8 --pty bash`), then the same curl loop.
A ground-truth poller (GET /health every 5 ms) marks when each server first answers. Stage times
come from sacct (1 s resolution). Then `redeploy` with unchanged inputs against `redeploy --from
build-wheel`. GPU-hours are also given scaled to the recipe's durations: the stand-in's build
replaced by 25 min, its load and warmup by 2 min.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_bench import (
    AnswerPoller,
    JobTimes,
    bench_env,
    bench_profile,
    curl_loop,
    glm5,
    sacct_times,
    sbatch,
    stage_jobs,
    wait_gone,
)

PORT = 18990
BUILD_S, WARMUP_S = 25 * 60, 120  # the recipe's build (20-30 min) and load + warmup (~2 min)
STAGES = ("prep-model", "build-wheel", "serve")


@dataclass
class Trial:
    flow: str
    to_healthy: float  # from the first command to "healthy" known to the user
    answered: float  # from the first command to the server's first 200
    start_latency: list[float]  # per job: start - max(submit, predecessor's end)
    stage_run: float  # the stages' own run time: jobs before serve, plus serve's start -> first answer
    gpu_s: float  # GPU-seconds held until healthy known
    gpu_s_scaled: float


def measure(
    flow: str, t0: float, t1: float, answer: float, jobs: list[JobTimes], standin_build_s: float, standin_warm_s: float
) -> Trial:
    latency, prev_end = [], None
    for j in jobs:
        latency.append(j.start - max(j.submit, prev_end or j.submit))
        prev_end = j.end
    *before, serve = jobs
    stage_run = sum(j.elapsed for j in before) + (answer - serve.start)
    gpu_s = sum(j.gpus * ((min(j.end, t1) if j.end else t1) - j.start) for j in jobs)
    build_gpus = jobs[-2].gpus if len(jobs) == 3 else serve.gpus  # the manual flow builds on the serve GPUs
    scaled = gpu_s + build_gpus * (BUILD_S - standin_build_s) + serve.gpus * (WARMUP_S - standin_warm_s)
    return Trial(flow, t1 - t0, answer - t0, latency, stage_run, gpu_s, scaled)


def run_dir(state: Path, name: str) -> Path:
    return Path(json.loads((state / "deployments" / f"{name}.json").read_text())["runs"][-1]["run_dir"])


def ours(profile: Path, name: str, state: Path, durations: tuple[float, float]) -> Trial:
    env = bench_env(state)
    poller = AnswerPoller(PORT)
    poller.start()
    t0 = time.time()
    glm5("submit", "--profile", str(profile), "--name", name, "--rebuild", "--wait", "--timeout", "600", env=env)
    t1 = time.time()
    ids = stage_jobs(name, env)
    glm5("cancel", name, env=env)
    wait_gone(list(ids.values()), PORT)
    assert poller.first_ok is not None
    times = sacct_times([ids[s] for s in STAGES])
    return measure("glm5_hpc", t0, t1, poller.first_ok, [times[ids[s]] for s in STAGES], *durations)


def hand(scripts: Path, res: dict[str, dict[str, Any]], manual: bool, logs: Path, durations: tuple[float, float]) -> Trial:
    poller = AnswerPoller(PORT)
    poller.start()

    def flags(stage: str) -> list[str]:
        r = res[stage]
        gres = [f"--gres=gpu:{r['gpu_type']}:{r['gpus']}"] if r.get("gpus") else []
        return [
            "-p",
            r["partition"],
            "-c",
            str(r["cpus"]),
            f"--mem={r['mem']}",
            "-t",
            r["time"],
            "-o",
            str(logs / "%j.out"),
            *gres,
            *(["--nodelist", r["nodelist"]] if r.get("nodelist") else []),
        ]

    serve_env = f"--export=ALL,GLM5_SERVE_PORT={PORT}"
    t0 = time.time()
    if manual:
        steps = " && ".join(f"bash {scripts / f'{s}.sh'}" for s in STAGES)
        ids = [sbatch(*flags("serve"), serve_env, "-J", "manual-recipe", "--wrap", steps)]
    else:
        ids = [sbatch(*flags("prep-model"), "-J", "hand-prep", "--wrap", f"bash {scripts / 'prep-model.sh'}")]
        for stage, extra in (("build-wheel", []), ("serve", [serve_env])):
            after = [f"--dependency=afterok:{ids[-1]}", "--kill-on-invalid-dep=yes"]
            ids.append(sbatch(*flags(stage), *extra, "-J", f"hand-{stage}", *after, "--wrap", f"bash {scripts / f'{stage}.sh'}"))
    t1 = curl_loop(PORT)
    subprocess.run(["scancel", *ids], check=True)
    wait_gone(ids, PORT)
    assert poller.first_ok is not None
    times = sacct_times(ids)
    flow = "manual recipe" if manual else "hand chain"
    return measure(flow, t0, t1, poller.first_ok, [times[i] for i in ids], *durations)


def redeploy(name: str, state: Path, *flags: str) -> tuple[float, int]:
    """Wall time of `redeploy NAME FLAGS --wait`, and how many jobs it submitted."""
    env = bench_env(state)
    t0 = time.time()
    out = glm5("redeploy", name, *flags, "--wait", "--timeout", "600", env=env)
    elapsed = time.time() - t0
    line = next(ln for ln in out.splitlines() if ln.startswith("submitted deployment"))
    return elapsed, line.count("=") - line.count("=skipped")


def median_of(trials: list[Trial], value: Callable[[Trial], float]) -> float:
    return statistics.median(value(t) for t in trials)


def fmt_trials(trials: list[Trial]) -> str:
    head = ("| flow | time to healthy | server answered | Slurm start latency per job | stages' own run time "
            "| overhead beyond the stages | of which Slurm | of which detection | rest |")  # fmt: skip
    rows = [head, "|---" * 9 + "|"]
    for flow in ("glm5_hpc", "hand chain", "manual recipe"):
        ts = [t for t in trials if t.flow == flow]
        lat = " / ".join(f"{statistics.median(t.start_latency[k] for t in ts):.0f} s" for k in range(len(ts[0].start_latency)))
        over = median_of(ts, lambda t: t.to_healthy - t.stage_run)
        slurm = median_of(ts, lambda t: sum(t.start_latency))
        detect = median_of(ts, lambda t: t.to_healthy - t.answered)
        cells = [flow, f"{median_of(ts, lambda t: t.to_healthy):.1f} s", f"{median_of(ts, lambda t: t.answered):.1f} s", lat,
                 f"{median_of(ts, lambda t: t.stage_run):.1f} s", f"{over:.1f} s", f"{slurm:.1f} s", f"{detect:.2f} s",
                 f"{over - slurm - detect:.1f} s"]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def fmt_gpu(trials: list[Trial]) -> str:
    rows = ["| flow | GPU-hours held until healthy (stand-in) | scaled: 25 min build, 2 min warmup | ratio to glm5_hpc |",
            "|---|---|---|---|"]  # fmt: skip
    base = statistics.median(t.gpu_s_scaled for t in trials if t.flow == "glm5_hpc")
    for flow in ("glm5_hpc", "hand chain", "manual recipe"):
        ts = [t for t in trials if t.flow == flow]
        raw, scaled = statistics.median(t.gpu_s for t in ts), statistics.median(t.gpu_s_scaled for t in ts)
        rows.append(f"| {flow} | {raw / 3600:.4f} | {scaled / 3600:.2f} | {scaled / base:.1f}x |")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="glm5-bench-") as tmp:
        root = Path(tmp)
        profile = bench_profile(root, PORT)
        doc = yaml.safe_load(profile.read_text())
        stand = doc["container"]["env"]
        durations = (
            float(stand["GLM5_STANDIN_BUILD_S"]),
            float(stand["GLM5_STANDIN_LOAD_S"]) + 64 * float(stand["GLM5_STANDIN_WARMUP_STEP_S"]),
        )
        state, logs = root / "state", root / "hand-logs"
        logs.mkdir()
        trials: list[Trial] = []
        for i in range(args.trials):
            trials.append(ours(profile, f"bench{i}", state, durations))
            scripts = run_dir(state, f"bench{i}") / "scripts"  # the very scripts glm5_hpc ran
            trials.append(hand(scripts, doc["stages"], False, logs, durations))
            trials.append(hand(scripts, doc["stages"], True, logs, durations))
            print(f"trial {i + 1}: " + ", ".join(f"{t.flow} {t.to_healthy:.1f} s" for t in trials[-3:]), file=sys.stderr)
        print("## Time to healthy (median of", args.trials, "trials)\n")
        print(fmt_trials(trials))
        print("\n## GPU-hours held per deployment until healthy\n")
        print(fmt_gpu(trials))
        env = bench_env(state)
        glm5("submit", "--profile", str(profile), "--name", "rd", "--wait", "--timeout", "600", env=env)
        same, forced = [], []
        for _ in range(args.trials):
            same.append(redeploy("rd", state))
            forced.append(redeploy("rd", state, "--from", "build-wheel"))
        glm5("cancel", "rd", env=env)
        s, f = statistics.median(t for t, _ in same), statistics.median(t for t, _ in forced)
        print("\n## Redeploy\n")
        print("| redeploy | jobs submitted | time to healthy | scaled: 25 min build, 2 min warmup |\n|---|---|---|---|")
        print(f"| unchanged inputs | {same[0][1]} (serve) | {s:.1f} s | {(s - durations[1] + WARMUP_S) / 60:.1f} min |")
        scaled_f = f - durations[0] - durations[1] + BUILD_S + WARMUP_S
        jobs = f"{forced[0][1]} (build-wheel, serve)"
        print(f"| forced rebuild (`--from build-wheel`) | {jobs} | {f:.1f} s | {scaled_f / 60:.1f} min |")
        print(f"\nforced rebuild / unchanged: {f / s:.1f}x measured, {scaled_f / (s - durations[1] + WARMUP_S):.1f}x scaled")


if __name__ == "__main__":
    main()
