"""The cost of the input guard: checking that float images are finite and in [0, 1].

    python benchmarks/bench_inputs.py                  # batch 64 at 224^2, one thread, CPU
    python benchmarks/bench_inputs.py --device cuda
    python benchmarks/bench_inputs.py --quick          # seconds (used by the tests)

Times, taking turns: the check of a float32 batch (one ``torch.aminmax`` and, on CUDA, one wait for its
result), the same call on a uint8 batch (no value check), and one render of the batch through
``PseudoMotion`` (default program, 16 frames) -- the work the check is charged against.
"""
from __future__ import annotations

import argparse

import torch
from harness import environment, timed, write_json

from pmg_dali import PMGConfig, PseudoMotion
from pmg_dali.render import check_images


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="batch 4 at 32^2")
    parser.add_argument("--json", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size, args.size, args.repeats = 4, 32, 2
    torch.set_num_threads(1)
    device = torch.device(args.device)
    g = torch.Generator(device=device).manual_seed(0)
    floats = torch.rand(args.batch_size, 3, args.size, args.size, generator=g, device=device)
    uint8 = (floats * 255).to(torch.uint8)
    gen = PseudoMotion(PMGConfig(size=args.size, dtype=torch.bfloat16))
    program = gen.sample(args.batch_size, generator=torch.Generator().manual_seed(0), device=device)
    seconds = timed({"check float32": lambda n: [check_images(floats) for _ in range(n)],
                     "check uint8": lambda n: [check_images(uint8) for _ in range(n)],
                     "render (default program)": lambda n: [gen(uint8, program=program) for _ in range(n)]},
                    device, steps=1, repeats=args.repeats, warmup=1)
    render = seconds["render (default program)"]
    print(f"batch {args.batch_size} at {args.size}^2 on {device}, one thread\n\n"
          "| step | ms | of a render |\n|---|---|---|")
    for name, s in seconds.items():
        print(f"| {name} | {1e3 * s:.3f} | {s / render:.2%} |")
    result = {"args": vars(args), "seconds": seconds, "environment": environment(device)}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
