"""Training under autocast: bf16 where the CPU has it, float32 (with a warning) where not.

A CPU computes bf16 natively only with AVX512-BF16 or AMX (fcnseg.runtime asks oneDNN); on
an AVX2-only CPU ``amp="bf16"`` falls back to float32, so a bf16 run there exercises nothing
of bf16. Each path is therefore tested as itself: the fallback by hiding native bf16, the bf16
path by claiming it (autocast emulates bf16 on any CPU, only slower), and the real thing
where the CPU has it.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from tiny_runs import tiny_config

from fcnseg import runtime
from fcnseg.errors import FcnsegError
from fcnseg.runtime import amp_dtype, native_precisions
from fcnseg.train import fit
from fcnseg.train import loop as loop_module
from fcnseg.train.log import read_log

NATIVE_BF16 = "bf16" in native_precisions("cpu")


def losses(folder: Path) -> dict[int, float]:
    return {e["iteration"]: e["loss"] for e in read_log(folder) if "loss" in e}


@pytest.fixture
def conv_dtypes(monkeypatch: pytest.MonkeyPatch) -> list[torch.dtype]:
    """The dtypes of the convolutions' outputs in the training steps (the trunk and score
    layers, where autocast acts); the scores handed to the loss must be float32 in every
    mode (the deconvolutions run in float32 under CPU autocast: fcnseg.models.upsample)."""
    dtypes: list[torch.dtype] = []
    real_loss = loop_module.pixel_loss

    def recording_loss(scores, *args, **kwargs):
        assert scores.dtype == torch.float32
        return real_loss(scores, *args, **kwargs)

    in_step = []
    real_step = loop_module.train_step

    def recording_step(*args, **kwargs):
        in_step.append(True)
        try:
            return real_step(*args, **kwargs)
        finally:
            in_step.pop()

    def record_conv(module, inputs, output):
        if in_step and type(module) is torch.nn.Conv2d:
            dtypes.append(output.dtype)

    monkeypatch.setattr(loop_module, "pixel_loss", recording_loss)
    monkeypatch.setattr(loop_module, "train_step", recording_step)
    handle = torch.nn.modules.module.register_module_forward_hook(record_conv)
    yield dtypes
    handle.remove()


def claim_native(monkeypatch: pytest.MonkeyPatch, precisions: set[str]) -> None:
    monkeypatch.setattr(runtime, "_cpu_native", lambda: frozenset(precisions))


def run_bf16(folder: Path, tiny_data):
    train, val = tiny_data
    return fit(
        tiny_config(amp="bf16", max_iter=2), folder, train_set=train, val_set=val, progress=False
    )


@pytest.mark.skipif(
    not NATIVE_BF16,
    reason="needs a CPU with native bf16 (AVX512-BF16 or AMX); this one has none, and there "
    "amp=bf16 runs in float32 (test_without_native_bf16_the_run_is_the_float32_run)",
)
def test_native_bf16_trains_under_bf16_autocast(tmp_path: Path, tiny_data, conv_dtypes) -> None:
    result = run_bf16(tmp_path, tiny_data)
    assert conv_dtypes and set(conv_dtypes) == {torch.bfloat16}
    assert all(math.isfinite(loss) for loss in losses(tmp_path).values())
    assert result.model.score_fr.weight.dtype == torch.float32  # autocast, not a bf16 model


def test_bf16_autocast_trains_where_bf16_is_claimed(
    tmp_path: Path, tiny_data, conv_dtypes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bf16 path itself, on any CPU: autocast emulates bf16 where it is not native."""
    claim_native(monkeypatch, {"fp32", "bf16"})
    train, val = tiny_data
    result = run_bf16(tmp_path / "bf16", tiny_data)
    assert conv_dtypes and set(conv_dtypes) == {torch.bfloat16}
    assert result.model.score_fr.weight.dtype == torch.float32  # autocast, not a bf16 model
    bf16 = losses(tmp_path / "bf16")
    assert sorted(bf16) == [1, 2] and all(math.isfinite(loss) for loss in bf16.values())
    # the same run in float32 from the same weights and data: the zero-initialised score layer
    # makes step 1's loss log(6) in both; step 2's agrees to bf16's precision
    fit(tiny_config(max_iter=2), tmp_path / "fp32", train_set=train, val_set=val, progress=False)
    fp32 = losses(tmp_path / "fp32")
    assert bf16[1] == pytest.approx(math.log(6), rel=1e-6) == fp32[1]
    assert bf16[2] == pytest.approx(fp32[2], rel=1e-3)


def test_without_native_bf16_the_run_is_the_float32_run(
    tmp_path: Path, tiny_data, conv_dtypes, monkeypatch: pytest.MonkeyPatch
) -> None:
    claim_native(monkeypatch, {"fp32"})
    train, val = tiny_data
    with pytest.warns(UserWarning, match="bf16 is not native on this cpu; running in float32"):
        fallback = run_bf16(tmp_path / "bf16", tiny_data)
    assert conv_dtypes and set(conv_dtypes) == {torch.float32}
    plain = fit(
        tiny_config(max_iter=2), tmp_path / "fp32", train_set=train, val_set=val, progress=False
    )
    # the same computation in the same process: bit for bit
    assert losses(tmp_path / "bf16") == losses(tmp_path / "fp32")
    for name, tensor in plain.model.state_dict().items():
        torch.testing.assert_close(fallback.model.state_dict()[name], tensor, rtol=0, atol=0)


def test_fp16_autocast_needs_cuda() -> None:
    with pytest.raises(FcnsegError, match="fp16 needs a CUDA device"):
        amp_dtype("fp16", torch.device("cpu"))
