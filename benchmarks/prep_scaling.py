"""Prep time against checkpoint size: an empty checkpoint directory against one with several sparse
50 GB weight shards. Prep must never read weights, so the two should take the same time.

    .venv/bin/python benchmarks/prep_scaling.py [--shards 8] [--shard-gb 50] [--repeat 20]

Prints one row per checkpoint: median and max wall time of `prep` (apply on fresh configs) and of
`prep --check` on the prepared directory, each over --repeat runs, and the ratio to the empty case.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from glm5_hpc.app.prep import prep_model
from glm5_hpc.domain.model_prep import Edits

CHECKPOINT = Path(__file__).resolve().parent.parent / "standin" / "checkpoint" / "GLM-5-nvfp4-v1"


def make_checkpoint(root: Path, shards: int, shard_gb: int) -> Path:
    model = root / "GLM-5-nvfp4-v1"
    shutil.copytree(CHECKPOINT, model)
    for i in range(shards):
        with open(model / f"model-{i + 1:05d}-of-{shards:05d}.safetensors", "wb") as f:
            f.truncate(shard_gb << 30)  # sparse: takes no disk space, but stat() says 50 GB
    return model


def timed(fn: object, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return times


def measure(model: Path, repeat: int) -> tuple[list[float], list[float]]:
    apply = []
    for _ in range(repeat):
        for name in ("config.json", "tokenizer_config.json"):
            shutil.copy(CHECKPOINT / name, model / name)
            (model / f"{name}.orig").unlink(missing_ok=True)
        t0 = time.perf_counter()
        prep_model(model, Edits())
        apply.append(time.perf_counter() - t0)
    check = timed(lambda: prep_model(model, Edits(), "check"), repeat)
    return apply, check


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--shard-gb", type=int, default=50)
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, shards in (("empty (configs only)", 0), (f"{args.shards} x {args.shard_gb} GB sparse shards", args.shards)):
            root = Path(tmp) / str(shards)
            root.mkdir()
            model = make_checkpoint(root, shards, args.shard_gb)
            size_gb = sum(f.stat().st_size for f in model.iterdir()) / 2**30
            rows.append((label, size_gb, *measure(model, args.repeat)))
    base_apply = statistics.median(rows[0][2])
    base_check = statistics.median(rows[0][3])
    print(f"{'checkpoint':34} {'size':>9} {'prep median':>12} {'prep max':>9} {'check median':>13} {'ratio':>6}")
    for label, size, apply, check in rows:
        print(
            f"{label:34} {size:>7.0f}GB {statistics.median(apply) * 1e3:>10.2f}ms {max(apply) * 1e3:>7.2f}ms "
            f"{statistics.median(check) * 1e3:>11.2f}ms {statistics.median(apply) / base_apply:>5.2f}x"
            f"{'' if label.startswith('empty') else f'  (check {statistics.median(check) / base_check:.2f}x)'}"
        )


if __name__ == "__main__":
    main()
