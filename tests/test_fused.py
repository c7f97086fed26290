"""The fused Triton renderer's own checks: what the conformance suite (tests/test_conformance.py, which
holds its parity with the reference on CUDA and through Triton's interpreter) cannot reach -- outputs
beyond int32 offsets and the default program at full size on a GPU, compilation for an H100 without one,
its parameter tables, and its own argument errors.
"""
import dataclasses

import numpy as np
import pytest
import torch

triton = pytest.importorskip("triton")

from pmg_dali import TRANSFORMS, PMGConfig, PseudoMotion  # noqa: E402
from pmg_dali.engines import engine  # noqa: E402
from pmg_dali.fused import NUM_PARAMS, parameter_tables, render_fused  # noqa: E402
from pmg_dali.render import render  # noqa: E402
from pmg_dali.rules import column, identity_color  # noqa: E402

T, SIZE = 2, (10, 13)


def images_for(b, size=SIZE, seed=0):
    """(b, 3, *size) uint8 noise (the hardest case for interpolation)."""
    return torch.randint(0, 256, (b, 3, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def config(transforms, **kw):
    return PMGConfig(transforms=transforms, num_frames=T, size=SIZE, **kw)


@pytest.mark.gpu
def test_output_beyond_int32_offsets():
    """More than 2^31 output elements: the last clip lands where int32 offsets would wrap."""
    cfg = PMGConfig(transforms=("affine",), mixup=None, dtype=torch.uint8)
    b = 2 ** 31 // (3 * cfg.num_frames * 224 * 224) + 2
    images = images_for(b, (224, 224)).cuda()
    program = PseudoMotion(cfg).sample(b, generator=torch.Generator().manual_seed(0))
    out = render_fused(images, program, cfg)
    last = dataclasses.replace(program, **{k: v[-1:] for k, v in program.tensors().items()})
    expect = render(images[-1:].cpu(), last, cfg)
    assert out.numel() > 2 ** 31
    assert (out[-1:].cpu().int() - expect.int()).abs().max() <= 1


@pytest.mark.gpu
def test_default_program_at_full_size():
    """The benchmark's program: zoom + affine, frame Mixup, normalised bf16 BCTHW, 16 x 224^2, at the
    default tile, within the engine's tolerance of the reference."""
    cfg = PMGConfig(dtype=torch.bfloat16)
    images = images_for(8, cfg.size)
    program = PseudoMotion(cfg).sample(8, generator=torch.Generator().manual_seed(0))
    out, expect = render_fused(images.cuda(), program, cfg).cpu().float(), render(images, program, cfg).float()
    atol = engine("fused").tolerance.atol / min(cfg.std)
    torch.testing.assert_close(out, expect, atol=atol, rtol=2 ** -7)


@pytest.mark.gpu
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_far_outside_at_several_tiles_on_a_gpu(padding_mode):
    """Strong affine + perspective motions with cutmix and frame Mixup leaving a 37 x 29 frame, 4 frames,
    several 16 x 32 tiles with partial last ones, every padding mode, float32 output: each value within the
    engine's tolerance. (On an H200 border padding once put 6 values of one clip's last pixel 0.18 off,
    which Triton's interpreter does not reproduce: every differing position is reported.)"""
    wild = dict(affine_degrees=25.0, affine_translate=0.2, perspective_distortion=0.1, cutmix_speed=(0.1, 0.2))
    cfg = PMGConfig(transforms=("affine", "perspective", "cutmix"), num_frames=4, size=(37, 29), mixup="frame",
                    padding_mode=padding_mode, normalize=False, **wild)
    images = images_for(5, (37, 29), seed=1)
    program = PseudoMotion(cfg).sample(5, generator=torch.Generator().manual_seed(1))
    out = render_fused(images.cuda(), program, cfg, block=(16, 32)).cpu()
    expect = render(images, program, cfg)
    bad = ~((out - expect).abs() <= engine("fused").tolerance.atol)          # NaN fails
    where = [tuple(i) for i in bad.nonzero().tolist()]
    assert not where, (f"{len(where)} of {bad.numel()} values differ (clip, channel, frame, y, x): " + "; ".join(
        f"{w}: fused {float(out[w]):.6f}, reference {float(expect[w]):.6f}" for w in where))


@pytest.mark.parametrize("out_type,constants", [
    ("bf16", dict(PAD=0, SOURCE=0, HAS_PASTE=False, MIX=1, PER_FRAME=False, OUT_U8=False, NORMALIZE=True)),  # default
    ("u8", dict(PAD=2, SOURCE=1, HAS_PASTE=True, MIX=2, PER_FRAME=False, OUT_U8=True, NORMALIZE=False)),
    ("fp16", dict(PAD=1, SOURCE=2, HAS_PASTE=True, MIX=0, PER_FRAME=False, OUT_U8=False, NORMALIZE=False)),
    ("bf16", dict(PAD=0, SOURCE=0, HAS_PASTE=True, MIX=1, PER_FRAME=True, OUT_U8=False, NORMALIZE=True))])   # video
def test_kernel_compiles_for_h100_without_a_gpu(out_type, constants):
    """What the interpreter cannot check: Triton lowers the kernel to PTX and ptxas to sm_90 SASS."""
    from pmg_dali.fused import BLOCK as DEFAULT_BLOCK
    from pmg_dali.fused import NUM_WARPS, _render_kernel
    try:
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
    except ImportError:
        pytest.skip("this Triton has no ASTSource / GPUTarget")
    pointers = dict(out_ptr=f"*{out_type}", src_ptr={0: "*i32", 1: "*u8", 2: "*fp32"}[constants["SOURCE"]],
                    par_ptr="*fp32", idx_ptr="*i32")
    floats = {"scale", "gain0", "gain1", "gain2", "shift0", "shift1", "shift2"}
    constants = {**constants, "BLOCK_H": DEFAULT_BLOCK[0], "BLOCK_W": DEFAULT_BLOCK[1]}   # the default tile
    signature = {name: pointers.get(name, "constexpr" if name in constants else "fp32" if name in floats else "i32")
                 for name in _render_kernel.arg_names}
    kernel = triton.compile(ASTSource(_render_kernel, signature, constexprs=constants),
                            target=GPUTarget("cuda", 90, 32), options=dict(num_warps=NUM_WARPS))
    assert "ld.global" in kernel.asm["ptx"] and len(kernel.asm["cubin"]) > 1000


def test_parameter_tables_against_numpy():
    cfg = config(TRANSFORMS, mixup="frame", mixup_per_frame=True)
    program = PseudoMotion(cfg).sample(4, generator=torch.Generator().manual_seed(0))
    params, index = parameter_tables(program)
    assert params.shape == (4, T, NUM_PARAMS) and params.dtype == torch.float32
    inv = np.linalg.inv(program.homography.double().numpy()).reshape(4, T, 9)
    np.testing.assert_allclose(params[..., column('inverse')].numpy(), inv, rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(params[..., column('color')].numpy(), program.color.reshape(4, T, 12).numpy())
    paste_inv = np.linalg.inv(program.paste_homography.double().numpy()).reshape(4, T, 9)
    np.testing.assert_allclose(params[..., column('paste_inverse')].numpy(), paste_inv, rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(params[..., column('paste_box')].numpy(), program.paste_box.numpy())
    np.testing.assert_array_equal(params[..., column('mix_lambda')][..., 0].numpy(), program.mix_lambda.numpy())
    assert torch.equal(params[..., column('plain_color')][..., 0], identity_color(program.color).float())
    assert torch.equal(index, torch.stack([program.paste_index, program.mix_index], -1).int())


def test_errors():
    """The kernel's own arguments (the arguments every engine shares: tests/test_conformance.py)."""
    cfg = config(("zoom",))
    images = images_for(2)
    program = PseudoMotion(cfg).sample(2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(RuntimeError, match="`render_fused` needs CUDA images"):
        render_fused(images, program, cfg)
    with pytest.raises(ValueError, match=r"`block` must be \(rows, columns\), powers of two up to 1024, "
                                         r"but got \(16, 100\)"):
        render_fused(images, program, cfg, block=(16, 100))
