"""`glm5_hpc render`: what a submission would write, through the same path as `submit`."""

from __future__ import annotations

from glm5_hpc.adapters.resources import load_profile
from glm5_hpc.app.deploy import prepare


def render_preview(profile_name: str, name: str | None) -> dict[str, str]:
    profile = load_profile(profile_name)
    prepared = prepare(profile, name or profile.name, "RUN_ID")
    chain = " -> ".join(f"{s.stage}" + (f" (afterok {s.after})" if s.after else "") for s in prepared.plan)
    header = f"# chain: {chain}" + (f"\n# build-wheel skipped: {prepared.skipped_build}" if prepared.skipped_build else "")
    return {"plan": header, **prepared.rendered}
