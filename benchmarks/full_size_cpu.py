"""The real SVD's code paths without its weights: SVD's full-size architecture with random weights,
run on this CPU in float32 and float16. Prints two markdown tables.

    python benchmarks/full_size_cpu.py [--folder DIR] [--skip-fp16-run]

1. End to end: `save_random_svd` writes the full-size pipeline to DIR in float16 (4.3 GB; kept for
   the next run), then `python -m sgi2v_lite generate --model DIR` makes a guided video at 64 x 64
   px, 4 frames, 3 denoising steps, 1 optimised step of 1 iteration, with `--dtype float32` and
   `--dtype float16`: wall time (load included), the CLI's own generation time, peak RSS.
2. fp16 gradients at full size: the latent gradient of one optimisation pass (`latent_gradient`,
   the sampler's own) in float16, with the package's loss scaling and without, against float32:
   relative L2 error and the share of elements that are non-zero in float32 but zero in float16.

About 10 minutes and 15 GB of memory on the project's 2-core machine (float16 runs about 10x
slower than float32 on a CPU). Random weights: the frames are noise; what is measured is that the
path runs, its cost, and the numerics.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRACKS = {
    "image_size": [64, 64],
    "tracks": [{"box": [8, 8, 32, 32], "path": [[20, 20], [44, 30]]}, {"box": [40, 40, 60, 60], "path": [[50, 50]]}],
}
SMALL = "--height 64 --width 64 --frames 4 --steps 3 --set optimised_steps=[1] --set iterations=1 --quiet".split()


def peak_rss_run(command: list[str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run `command` in a wrapper process that reports its children's peak RSS: (run, seconds, GB)."""
    wrapper = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print('peak_rss_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
    )
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    return run, seconds, int(run.stdout.split("peak_rss_kb")[-1]) / 2**20


def gradient_worker(folder: str) -> None:
    """Table 2's rows, printed as JSON: float32 vs float16 (scaled, unscaled) latent gradients."""
    import warnings

    import torch
    from PIL import Image

    from sgi2v_lite.config import get_preset
    from sgi2v_lite.models import load_pipeline
    from sgi2v_lite.sampler import latent_gradient, prepare
    from sgi2v_lite.tracks import parse_tracks

    warnings.filterwarnings("ignore")
    image, tracks = Image.open(ROOT / "data/examples/shapes.png"), parse_tracks(TRACKS)
    config = get_preset("reference").replace(
        height=64, width=64, num_frames=4, num_inference_steps=3, optimised_steps=(1,)
    )
    gradients = {}
    for dtype in (torch.float32, torch.float16):
        pipe = load_pipeline(folder, device="cpu", dtype=dtype)
        run = prepare(pipe, image, tracks, config)
        latents = run.latents / run.scheduler.sigmas[0] * run.scheduler.sigmas[1]  # noise at step 1's sigma
        for scale in (None,) if dtype == torch.float32 else (None, 1.0):
            started = time.perf_counter()
            loss, gradient = latent_gradient(
                pipe.unet,
                run.scheduler,
                latents,
                run.scheduler.timesteps[1],
                run.cond,
                run.box_cells,
                run.valid,
                run.config,
                loss_scale=scale,
            )
            gradients[(str(dtype), scale)] = (float(loss), gradient, time.perf_counter() - started)
        del pipe
    _, reference, _ = gradients.pop(("torch.float32", None))
    rows = []
    for (dtype, scale), (_, gradient, seconds) in gradients.items():
        lost = ((gradient == 0) & (reference != 0)).float().mean()
        rows.append(
            dict(
                dtype=dtype,
                scaling="none (scale 1)" if scale == 1.0 else "LossScaler (2^24 first)",
                error=float((gradient - reference).norm() / reference.norm()),
                lost=float(lost),
                mean_abs=float(reference.abs().mean()),
                seconds=seconds,
            )
        )
    print(json.dumps(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--folder", help="where the random full-size pipeline is (or is saved; default: a temporary folder)"
    )
    parser.add_argument("--skip-fp16-run", action="store_true", help="table 1 in float32 only (saves ~4 minutes)")
    parser.add_argument("--gradient-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.gradient_worker:
        return gradient_worker(args.gradient_worker)

    folder = Path(args.folder or tempfile.mkdtemp(prefix="svd-random-"))
    if not (folder / "model_index.json").is_file():
        build = "import sys; from sgi2v_lite.models import save_random_svd; print(save_random_svd(sys.argv[1]))"
        started = time.perf_counter()
        counts = subprocess.run([sys.executable, "-c", build, str(folder)], capture_output=True, text=True, check=True)
        print(
            f"saved a random full-size SVD to {folder} in {time.perf_counter() - started:.0f} s: "
            f"{counts.stdout.strip().splitlines()[-1]} parameters"
        )
    tracks = folder / "tracks.json"
    tracks.write_text(json.dumps(TRACKS))

    print("\n| dtype | wall time, load included (s) | generation (s, the CLI's) | peak RSS (GB) | frames |")
    print("|---|---|---|---|---|")
    for dtype in ("float32",) if args.skip_fp16_run else ("float32", "float16"):
        out = folder / f"video_{dtype}.npz"
        image = ROOT / "data/examples/shapes.png"
        command = [sys.executable, "-m", "sgi2v_lite", "generate", "--model", str(folder), "--image", str(image)]
        command += ["--tracks", str(tracks), "--out", str(out), "--dtype", dtype, *SMALL]
        run, seconds, peak = peak_rss_run(command)
        if run.returncode:
            print(f"| {dtype} | failed: {run.stderr.strip().splitlines()[-1]} | | | |")
            continue
        line = next(line for line in run.stdout.splitlines() if line.startswith("wrote"))
        generation = line.rsplit(",", 1)[-1].strip()
        frames = line.split(": ", 1)[1].split(",")[0]
        print(f"| {dtype} | {seconds:.0f} | {generation.removesuffix(' s')} | {peak:.1f} | {frames} |")

    run, seconds, peak = peak_rss_run([sys.executable, __file__, "--gradient-worker", str(folder)])
    rows = json.loads(run.stdout.splitlines()[-2])
    print(
        f"\nfp16 latent gradient of one optimisation pass at full size (64 x 64 px, 4 frames, step 1 of 3; "
        f"mean |gradient| in float32 {rows[0]['mean_abs']:.1e}; {seconds:.0f} s, peak RSS {peak:.1f} GB)\n"
    )
    print("| dtype | loss scaling | relative error vs float32 | zero where float32 is not | pass (s) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['dtype'].removeprefix('torch.')} | {row['scaling']} | {row['error']:.4f} | {row['lost']:.2%} "
            f"| {row['seconds']:.0f} |"
        )


if __name__ == "__main__":
    main()
