"""Text patches as data, and the states a patch target can be in. Stdlib only.

The recipe's own snippets print "SKIP" for both "already applied" and "upstream changed", and the
flashinfer one prints "OK" while changing nothing. Here each outcome is distinct, and drift (no
known text present) is an error that names the file and the patch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from enum import StrEnum


class PatchState(StrEnum):
    NEEDED = "needed"  # the old text is present once: apply
    APPLIED = "already applied"  # our new text is present
    DRIFT = "drift"  # none of the known texts: the source changed under us


@dataclass(frozen=True)
class TextPatch:
    name: str
    path: str  # relative to the tree the patch applies to
    old: str
    new: str
    why: str
    verify: str = ""  # what the recipe's Verify step looks for, for the drift message


def classify(patch: TextPatch, text: str) -> PatchState:
    if patch.new in text and patch.old not in text:
        return PatchState.APPLIED
    if text.count(patch.old) == 1:
        return PatchState.NEEDED
    return PatchState.DRIFT


def drift_message(patch: TextPatch, file: str, text: str) -> str:
    found = text.count(patch.old)
    detail = f"the old text occurs {found} times" if found > 1 else "neither the old nor the new text is present"
    return (
        f"patch {patch.name!r} cannot be applied to {file}: {detail}. The upstream source changed; "
        f"check {patch.verify or 'the file'} by hand and update the patch record. Why it exists: {patch.why}"
    )


def apply(patch: TextPatch, text: str) -> str:
    """Return the patched text; only valid in state NEEDED."""
    return text.replace(patch.old, patch.new, 1)


def verified(patch: TextPatch, text: str) -> bool:
    """The recipe's Verify step: the new text is present and the old one is gone."""
    return classify(patch, text) is PatchState.APPLIED


def digest(patches: tuple[TextPatch, ...]) -> str:
    """Content hash of a patch set; part of the wheel cache key."""
    blob = json.dumps([asdict(p) for p in patches], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()
