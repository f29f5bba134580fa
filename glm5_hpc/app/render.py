"""`glm5_hpc render`: what a submission would write, through the same path as `submit`."""

from __future__ import annotations

from glm5_hpc.adapters.resources import load_profile
from glm5_hpc.app.submit import prepare

STAGE_FILES = {
    "prep-model": ("prep-model.sh",),
    "build-wheel": ("build-wheel.sh", "container.env", "env.sh"),
    "serve": ("serve.sh", "serve-container.sh", "serve-config.yaml", "container.env", "env.sh"),
}


def render_preview(profile_name: str, name: str | None, stage: str | None = None) -> dict[str, str]:
    """The plan and the files a submit would write; with `stage`, only that stage's files."""
    profile = load_profile(profile_name)
    prepared = prepare(profile, name or profile.name, "RUN_ID")
    chain = " -> ".join(s.stage + (f" (afterok {s.after})" if s.after else "") for s in prepared.plan if not s.skipped)
    skipped = "".join(f"\n# {s.stage} skipped: {s.skipped}" for s in prepared.plan if s.skipped)
    header = f"# chain: {chain}{skipped}"
    files = prepared.rendered
    if stage is not None:
        files = {f: files[f] for f in STAGE_FILES[stage] if f in files}
        if not files:
            header += f"\n# {stage}: not part of this chain"
    return {"plan": header, **files}
