"""The fused Triton renderer against the reference renderer (the specification).

The ``test_parity_*`` tests run on CUDA (marked ``gpu``) and, with ``TRITON_INTERPRET=1``, on CPU
through Triton's interpreter at tiny sizes: ``test_parity_suite_runs_in_the_interpreter`` starts them
in a subprocess with that variable set, so CPU CI checks the kernel too without touching how Triton
behaves in this process. Every output buffer is poisoned first, so unwritten pixels fail.
"""
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

triton = pytest.importorskip("triton")

from pmg_dali import TRANSFORMS, PMGConfig, PseudoMotion  # noqa: E402
from pmg_dali.fused import NUM_PARAMS, augment_fused, parameter_tables, render_fused  # noqa: E402
from pmg_dali.rules import column, identity_color  # noqa: E402
from pmg_dali.render import augment, render  # noqa: E402
from test_cpu_render import CASES, WILD, random_images  # noqa: E402  (shared cases, same folder)

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
DEVICE = "cpu" if INTERPRET else "cuda"
# Tiny in the interpreter (it runs every Triton op through NumPy); odd, non-square, several blocks
# with a partial last one on the GPU.
B, T, SIZE, BLOCK = (3, 2, (10, 13), (8, 16)) if INTERPRET else (5, 4, (37, 29), (16, 32))
parity = (lambda f: f) if INTERPRET else pytest.mark.gpu


def images_for(b, size=SIZE, dtype=torch.uint8, seed=0):
    return random_images(b, size, dtype, seed)


def check_parity(cfg, images, seed=0, **kw):
    """Fused (poisoned output buffer) vs reference on CPU, on one random program of ``cfg``; images
    (B, 3, H, W) through render, real clips (B, 3, T, H, W) through augment."""
    reference, fused = (augment, augment_fused) if images.ndim == 5 else (render, render_fused)
    program = PseudoMotion(cfg).sample(images.shape[0], generator=torch.Generator().manual_seed(seed))
    expect = reference(images, program, cfg)
    poison = torch.full_like(expect, 123 if cfg.dtype == torch.uint8 else float("nan"), device=DEVICE)
    out = fused(images.to(DEVICE), program, cfg, out=poison, block=kw.pop("block", BLOCK), **kw)
    assert out is poison and out.dtype == cfg.dtype and out.shape == expect.shape
    out = out.cpu()
    if cfg.dtype == torch.uint8:
        assert (out.int() - expect.int()).abs().max() <= 1
        assert (out != expect).float().mean() < 0.01
    else:
        rtol = {torch.float32: 0.0, torch.float16: 2 ** -10, torch.bfloat16: 2 ** -7}[cfg.dtype]
        bad = ~torch.isclose(out.float(), expect.float(), atol=2e-4, rtol=rtol)     # NaN (poison) too
        assert not bad.any(), (f"{int(bad.sum())} of {bad.numel()} values differ; first at {bad.nonzero()[:8].tolist()}"
                               f": fused {out[bad][:8].tolist()}, reference {expect[bad][:8].tolist()}")


def config(transforms, **kw):
    return PMGConfig(transforms=transforms, num_frames=T, size=SIZE, **kw)


@parity
@pytest.mark.parametrize("name,options", CASES, ids=[c[0] for c in CASES])
def test_parity_every_transform(name, options):
    check_parity(config((name,), **options, **WILD), images_for(B))


DTYPES = [torch.uint8, torch.float32, torch.float16, torch.bfloat16]
# Every layout x dtype pair on the GPU; in the interpreter each dtype once, layouts alternating.
LAYOUT_DTYPE = ([(layout, dtype) for layout in ("BCTHW", "BTCHW") for dtype in DTYPES] if not INTERPRET
                else [(("BCTHW", "BTCHW")[i % 2], dtype) for i, dtype in enumerate(DTYPES)])


@parity
@pytest.mark.parametrize("layout,dtype", LAYOUT_DTYPE)
def test_parity_layouts_and_dtypes(layout, dtype):
    cfg = config(TRANSFORMS, layout=layout, dtype=dtype, mixup="frame", mixup_per_frame=dtype == torch.float16)
    check_parity(cfg, images_for(B))


@parity
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_parity_padding_modes_far_outside(padding_mode):
    cfg = config(("affine", "perspective", "cutmix"), padding_mode=padding_mode, mixup="frame",
                 normalize=False, **WILD)
    check_parity(cfg, images_for(B, seed=1), seed=1)


@parity
@pytest.mark.parametrize("source", ["uint8 planes", "uint8 resized", "float32", "float16 resized"])
def test_parity_sources(source):
    """Packed uint8 words (the other tests), uint8 planes, and float / resized sources."""
    cfg = config(TRANSFORMS, mixup="videomix")
    dtype = torch.uint8 if "uint8" in source else getattr(torch, source.split()[0])
    size = (SIZE[0] + 7, SIZE[1] - 3) if "resized" in source else SIZE
    check_parity(cfg, images_for(B, size, dtype), pack=source != "uint8 planes")


@parity
def test_parity_small_blocks_and_batch_one():
    """Several programs per frame, a partial last block, and a clip mixed with itself."""
    check_parity(config(TRANSFORMS, mixup="frame", dtype=torch.bfloat16), images_for(1), block=(4, 8))


@parity
def test_parity_larger_batch():
    b = 8 if INTERPRET else 96
    check_parity(config(TRANSFORMS, mixup="frame", dtype=torch.bfloat16, **WILD), images_for(b), seed=2)


VIDEO_CASES = [  # real clips: source kind, clip size and dtype, config
    ("packed words", SIZE, torch.uint8, dict(mixup="frame", mixup_per_frame=True, layout="BTCHW",
                                              dtype=torch.bfloat16)),
    ("uint8 planes", SIZE, torch.uint8, dict(mixup="videomix", dtype=torch.uint8, padding_mode="border", **WILD)),
    ("float resized", (SIZE[0] + 5, SIZE[1] + 2), torch.float32, dict(mixup="frame", padding_mode="reflection",
                                                                       normalize=False, **WILD)),
]


@parity
@pytest.mark.parametrize("source,size,dtype,options", VIDEO_CASES, ids=[c[0] for c in VIDEO_CASES])
def test_parity_augment_real_clips(source, size, dtype, options):
    """augment_fused vs the reference augment: every frame sampled from the clip's own frame t (a
    different random frame per t), cutmix from the partner's frame t, mixing with its clip."""
    g = torch.Generator().manual_seed(3)
    video = torch.randint(0, 256, (B, 3, T, *size), dtype=torch.uint8, generator=g)
    video = video if dtype == torch.uint8 else video.to(dtype) / 255
    check_parity(config(TRANSFORMS, **options), video, seed=4, pack=source != "uint8 planes")


@pytest.mark.gpu
@pytest.mark.skipif(INTERPRET, reason="2.2 GB output: GPU only")
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
@pytest.mark.skipif(INTERPRET, reason="full size: GPU only")
def test_default_program_at_full_size():
    """The benchmark's program: zoom + affine, frame Mixup, normalised bf16 BCTHW, 16 x 224^2."""
    cfg = PMGConfig(dtype=torch.bfloat16)
    check_parity(cfg, images_for(8, cfg.size), block=(16, 32))


@pytest.mark.gpu
def test_module_auto_uses_fused_on_cuda():
    gen = PseudoMotion(config(("zoom", "affine")))
    assert gen.render_function(torch.device("cuda")) is render_fused
    images = images_for(B)
    program = gen.sample(B, generator=torch.Generator().manual_seed(0))
    expect = PseudoMotion(gen.config, renderer="reference")(images, program=program)
    for where in ("cpu", "cuda"):   # tables built on the host and copied, or built on the GPU
        torch.testing.assert_close(gen(images.cuda(), program=program.to(where)).cpu(), expect, atol=2e-4, rtol=0)


@pytest.mark.slow
@pytest.mark.skipif(INTERPRET, reason="starts the interpreter run itself")
def test_parity_suite_runs_in_the_interpreter():
    """CPU CI coverage of the kernel: the parity tests above, through Triton's interpreter."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "test_parity_",
                          str(Path(__file__).resolve())], cwd=root, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    expected = len(CASES) + 4 + 3 + 4 + 2 + len(VIDEO_CASES)
    assert f"{expected} passed" in run.stdout, run.stdout[-2000:]


@pytest.mark.skipif(INTERPRET, reason="compiles for the GPU")
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


def test_iterative_recursion_is_the_reference():
    cfg = config(("zoom", "fade"), recursion="iterative")
    images = images_for(2)
    program = PseudoMotion(cfg).sample(2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(render_fused(images, program, cfg), render(images, program, cfg))


def test_errors():
    cfg = config(("zoom",))
    images = images_for(2)
    program = PseudoMotion(cfg).sample(2, generator=torch.Generator().manual_seed(0))
    if not INTERPRET:
        with pytest.raises(RuntimeError, match="`render_fused` needs CUDA images"):
            render_fused(images, program, cfg)
    with pytest.raises(ValueError, match=r"`block` must be \(rows, columns\), powers of two up to 1024, "
                                         r"but got \(16, 100\)"):
        render_fused(images, program, cfg, block=(16, 100))
    with pytest.raises(TypeError, match="`program` must be a MotionProgram"):
        render_fused(images, "zoom", cfg)
    with pytest.raises(ValueError, match="one image per clip"):
        render_fused(images_for(3), program, cfg)
    with pytest.raises(ValueError, match=rf"`out` must be a contiguous torch.float32 tensor of shape \(2, 3, {T}, "):
        render_fused(images, program, cfg, out=torch.empty(2, 3, T, *SIZE, dtype=torch.float16))
    with pytest.raises(TypeError, match="`out` must be a torch.Tensor or None"):
        render_fused(images, program, cfg, out=np.zeros(3))
    with pytest.raises(ValueError, match="`renderer` must be one of .*, but got 'triton'"):
        PseudoMotion(cfg, renderer="triton")
