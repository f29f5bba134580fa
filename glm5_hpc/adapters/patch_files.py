"""Apply TextPatch records to files on disk, verify them, report one outcome each. Stdlib only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from glm5_hpc.adapters.files import write_atomic
from glm5_hpc.domain.patching import PatchState, TextPatch, apply, classify, drift_message, verified
from glm5_hpc.errors import PatchDriftError


@dataclass(frozen=True)
class PatchOutcome:
    patch: str
    file: str
    state: str  # PatchState value before the run
    changed: bool

    def line(self) -> str:
        verb = "applied" if self.changed else self.state
        return f"{self.patch}: {verb} ({self.file})"


def apply_patches(root: Path, patches: tuple[TextPatch, ...], check: bool = False) -> list[PatchOutcome]:
    """Classify every patch first; raise on any drift before writing anything."""
    texts: dict[Path, str] = {}
    states: list[tuple[TextPatch, Path, PatchState]] = []
    for patch in patches:
        file = root / patch.path
        if file not in texts:
            try:
                texts[file] = file.read_text()
            except FileNotFoundError:
                raise PatchDriftError(f"patch {patch.name!r}: {file} does not exist; is {root} the right source tree?") from None
        state = classify(patch, texts[file])
        if state is PatchState.DRIFT:
            raise PatchDriftError(drift_message(patch, str(file), texts[file]))
        states.append((patch, file, state))
    outcomes = []
    for patch, file, state in states:
        changed = state is PatchState.NEEDED and not check
        if changed:
            texts[file] = apply(patch, texts[file])
        outcomes.append(PatchOutcome(patch.name, str(file), state.value, changed))
    if check:
        return outcomes
    for file, text in texts.items():
        if any(o.changed and o.file == str(file) for o in outcomes):
            write_atomic(file, text.encode())
    # The recipe's Verify step, against what is now on disk.
    for patch, file, _ in states:
        if not verified(patch, file.read_text()):
            raise PatchDriftError(f"patch {patch.name!r}: verification failed in {file} after writing; check it by hand")
    return outcomes
