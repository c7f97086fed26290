"""Every generation path and baseline side by side in one run, on one device: JSON, markdown, PNG.

    python benchmarks/bench_generate.py                       # CUDA if present: batch 64, 16 x 224^2
    python benchmarks/bench_generate.py --device cpu --batch_size 8 --size 112 --repeats 3
    python benchmarks/bench_generate.py --quick               # seconds, tiny clips (the tests run it)

Rows (the default program: zoom + affine, frame Mixup, normalised ``--dtype`` bf16 BCTHW; see
:mod:`pmg_dali.bench` for what each path does and how it is timed):

- pmg_dali torch: ``PseudoMotion`` with renderer ``auto`` (fused on CUDA), ``fused`` / ``cpu``,
  ``reference``; ``auto`` rendering one reused program (render only); ``PseudoMotionLoader``;
  and each of the eight transforms alone (``--no_transforms`` skips them);
- pmg_dali DALI: a pipeline with the graph helper ``pseudo_motion`` (programs drawn on the host by its
  ``fn.external_source`` feed) and ``ProgramRenderer`` fed programs per call (skipped with a note when
  DALI is missing);
- reference points: the literal recursion (``recursion="iterative"``) and kornia
  ``warp_perspective`` user code on T repeated frames;
- CPU baseline: PIL per-frame recursive PMG with frame Mixup in a DataLoader with one worker per
  core, delivered to the device (on a CPU device also pmg_dali's CPU renderer in the same DataLoader);
- floor: output bytes / the bandwidth of a measured device-to-device copy.

Writes ``<out_dir>/<name>.json`` (device, date, versions, CPU count, every setting, every row),
``<name>.md`` (the table: clips/s, x CPU baseline, fraction of the floor) and ``<name>.png`` (bars,
log-scale axis). ``<name>`` defaults to ``generate_<cuda|cpu>``.
"""
from __future__ import annotations

import argparse
import json
import os

from harness import add_arguments, resolve, run_generate, table

COLOURS = {"floor": "#999999", "pmg_dali torch": "#1f77b4", "per transform": "#9ecae1", "pmg_dali DALI": "#2ca02c",
           "reference points": "#ff7f0e", "CPU baseline": "#d62728"}


def plot(result: dict, path: str) -> None:
    """Horizontal bars of clips/s per path on a log axis, coloured by group (matplotlib, Agg)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"][::-1]
    e, s = result["environment"], result["settings"]
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.6))
    bars = ax.barh([r["path"] for r in rows], [r["clips_per_s"] for r in rows],
                   color=[COLOURS.get(r["group"], "#555555") for r in rows])
    ax.bar_label(bars, labels=[f"{r['clips_per_s']:,.0f}" for r in rows], padding=3, fontsize=7)
    base = [r["clips_per_s"] for r in rows if r["path"] == "cpu_baseline"]
    if base:
        ax.axvline(base[0], color=COLOURS["CPU baseline"], linestyle="--", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlim(right=ax.get_xlim()[1] * 4)
    ax.set_xlabel("clips / s (log scale)")
    ax.set_title(f"{e['device']}, {e['date']}: batch {s['batch_size']}, {s['num_frames']} x {s['size']}$^2$, "
                 f"{s['dtype']}", fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for g, c in COLOURS.items() if any(r["group"] == g for r in rows)]
    ax.legend(handles, [g for g in COLOURS if any(r["group"] == g for r in rows)], fontsize=7, loc="lower right")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = add_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--out_dir", default="benchmarks/results", help="where the JSON / markdown / PNG go")
    parser.add_argument("--name", default=None, help="file stem (default generate_<device type>)")
    parser.add_argument("--no_plot", action="store_true")
    args = resolve(parser.parse_args(argv), cpu_size=(64, 16, 224))
    out_dir, name, no_plot = args.__dict__.pop("out_dir"), args.__dict__.pop("name"), args.__dict__.pop("no_plot")
    name = name or f"generate_{args.device.split(':')[0]}"
    result = run_generate(args)
    text = table(result)
    print(text)
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, name)
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=2, default=str)
    with open(stem + ".md", "w") as f:
        f.write(text)
    if not no_plot:
        plot(result, stem + ".png")
    print(f"wrote {stem}.json, {stem}.md" + ("" if no_plot else f", {stem}.png"))
    return result


if __name__ == "__main__":
    main()
