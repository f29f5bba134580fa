"""Which recipe variant fits an image's TensorRT-LLM (GLM-5 is native from 1.3.0rc8). Pure."""

from __future__ import annotations

from glm5_hpc.domain.image_fit import fit, serves_glm5_natively, version_key


def test_versions_order_as_releases_do() -> None:
    keys = [version_key(v) for v in ("1.2.0", "1.3.0rc3", "1.3.0rc8", "1.3.0rc10", "1.3.0", "1.3.0.post1", "1.4.0rc1")]
    assert all(k is not None for k in keys) and keys == sorted(keys)  # type: ignore[type-var]
    assert version_key("not a version") is None
    assert [serves_glm5_natively(v) for v in ("1.3.0rc3", "1.3.0rc7", "1.3.0rc8", "1.3.0rc9", "1.3.0", None)] == [
        False, False, True, True, True, False,
    ]  # fmt: skip


def test_each_variant_against_old_and_new_images() -> None:
    assert fit("stock", "1.3.0rc9", "img").state == "ok"
    refused = fit("stock", "1.3.0rc3", "nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc3")
    assert refused.state == "refused"
    assert refused.message == (
        "recipe.variant stock needs TensorRT-LLM >= 1.3.0rc8 (GLM-5 served natively), but "
        "nvcr.io/nvidia/tensorrt-llm/release:1.3.0rc3 has TensorRT-LLM 1.3.0rc3: set container.image to a release "
        ">= 1.3.0rc8, or recipe.variant: source-build"
    )
    assert (
        fit("stock", None, "img").message.startswith("recipe.variant stock needs")
        and "has no TensorRT-LLM" in fit("stock", None, "img").message
    )
    assert fit("source-build", "1.3.0rc3", "img").state == "ok"
    advice = fit("source-build", "1.3.0", "img")
    assert advice.state == "advice" and "recipe.variant: stock would skip the source build" in advice.message
