"""The recipe's checkpoint edits (Steps 1-2) as pure functions on parsed JSON.

Each returns the new document and the list of actions taken; an empty list means the file is
already prepared and must not be rewritten.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from glm5_hpc.errors import PrepError

GLM5_ARCH = "GlmMoeDsaForCausalLM"
GLM5_TYPE = "glm_moe_dsa"
V32_ARCH = "DeepseekV32ForCausalLM"
V32_TYPE = "deepseek_v32"
ROPE_THETA = 1000000
ROPE_SCALING = {"type": "none", "factor": 1.0}
TOKENIZER_OLD_CLASS = "TokenizersBackend"
TOKENIZER_CLASS = "PreTrainedTokenizerFast"


@dataclass(frozen=True)
class Edits:
    architecture: bool = True
    rope: bool = True
    tokenizer_class: bool = True
    special_tokens_key: bool = True


def prepare_config(cfg: Any, edits: Edits, file: str = "config.json") -> tuple[dict[str, Any], list[str]]:
    if not isinstance(cfg, dict):
        raise PrepError(f"{file}: expected a JSON object, found {type(cfg).__name__}")
    arch, mtype = cfg.get("architectures"), cfg.get("model_type")
    is_glm5 = arch == [GLM5_ARCH] and mtype == GLM5_TYPE
    is_prepared = arch == [V32_ARCH] and mtype == V32_TYPE
    if not (is_glm5 or is_prepared):
        raise PrepError(
            f"{file}: not a GLM-5 checkpoint config: architectures={arch!r}, model_type={mtype!r} "
            f"(expected {[GLM5_ARCH]!r}/{GLM5_TYPE!r}, or {[V32_ARCH]!r}/{V32_TYPE!r} if already prepared)"
        )
    out = copy.deepcopy(cfg)
    actions: list[str] = []
    if edits.architecture and is_glm5:
        out["architectures"] = [V32_ARCH]
        out["model_type"] = V32_TYPE
        actions.append(f"architectures -> [{V32_ARCH}], model_type -> {V32_TYPE}")
    if edits.rope:
        shipped = (cfg.get("rope_parameters") or {}).get("rope_theta") if isinstance(cfg.get("rope_parameters"), dict) else None
        if shipped is not None and shipped != ROPE_THETA:
            raise PrepError(
                f"{file}: rope_parameters.rope_theta is {shipped!r}, but the recipe sets rope_theta {ROPE_THETA}; "
                "this is not the GLM-5 checkpoint the recipe was verified on (turn model.edits.rope off to keep it)"
            )
        if out.get("rope_theta") != ROPE_THETA:
            out["rope_theta"] = ROPE_THETA
            actions.append(f"rope_theta -> {ROPE_THETA}")
        if out.get("rope_scaling") != ROPE_SCALING:
            out["rope_scaling"] = dict(ROPE_SCALING)
            actions.append(f"rope_scaling -> {ROPE_SCALING}")
    return out, actions


def prepare_tokenizer(tok: Any, edits: Edits, file: str = "tokenizer_config.json") -> tuple[dict[str, Any], list[str]]:
    """Defined behaviour for every case:
    - tokenizer_class TokenizersBackend -> PreTrainedTokenizerFast; any other class is kept.
    - extra_special_tokens (list) alone -> renamed to additional_special_tokens, same position.
    - both keys, lists -> merged into additional_special_tokens (its order first, no duplicates).
    - extra_special_tokens as a mapping (older loaders read it fine) -> kept.
    - any other type -> error naming the key.
    """
    if not isinstance(tok, dict):
        raise PrepError(f"{file}: expected a JSON object, found {type(tok).__name__}")
    out = dict(tok)
    actions: list[str] = []
    if edits.tokenizer_class and out.get("tokenizer_class") == TOKENIZER_OLD_CLASS:
        out["tokenizer_class"] = TOKENIZER_CLASS
        actions.append(f"tokenizer_class -> {TOKENIZER_CLASS}")
    if edits.special_tokens_key and "extra_special_tokens" in out:
        extra = out["extra_special_tokens"]
        if isinstance(extra, dict):
            return out, actions
        if not isinstance(extra, list):
            raise PrepError(f"{file}: extra_special_tokens must be a list or a mapping, found {type(extra).__name__}")
        if "additional_special_tokens" in out:
            have = out["additional_special_tokens"]
            if not isinstance(have, list):
                raise PrepError(f"{file}: additional_special_tokens must be a list, found {type(have).__name__}")
            merged = have + [t for t in extra if t not in have]
            out["additional_special_tokens"] = merged
            del out["extra_special_tokens"]
            actions.append("extra_special_tokens merged into additional_special_tokens")
        else:
            out = {("additional_special_tokens" if k == "extra_special_tokens" else k): v for k, v in out.items()}
            actions.append("extra_special_tokens renamed to additional_special_tokens")
    return out, actions
