"""The benchmark's picture: output tokens/s against end-to-end latency, one point per concurrency
(matplotlib, imported only here)."""

from __future__ import annotations

from pathlib import Path

from glm5_hpc.domain.bench import BenchResult


def draw(result: BenchResult, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    x = [r["e2e"]["p50"] / 1000 for r in rows]
    y = [r["output_tokens_s"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    ax.plot(x, y, marker="o")
    for r, xi, yi in zip(rows, x, y, strict=True):
        ax.annotate(f"c={r['concurrency']}", (xi, yi), textcoords="offset points", xytext=(6, -10))
    plan = result["plan"]
    ax.set_title(f"bench {result['id']}: {plan['input_len']} in / {plan['output_len']} out tokens", fontsize=10)
    ax.set_xlabel("end-to-end latency p50 (s)")
    ax.set_ylabel("output tokens/s")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return str(path)
