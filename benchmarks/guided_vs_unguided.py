"""Guided vs unguided generation on a CPU model: time, peak memory, and the ratio, beside the
floor ratio that the extra passes alone imply.

    python benchmarks/guided_vs_unguided.py [--model toy|tiny-random|PATH] [--preset toy] [--repeats 2]

Each mode runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is its own; the
memory column subtracts the resident size just after the model was loaded. The floor ratio counts
FLOPs with torch's FlopCounterMode: unguided = steps x (CFG forward, batch 2); guided adds
optimised steps x iterations x (forward to the last hooked block + backward, batch 1).
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time


def worker(args) -> None:
    import torch
    from PIL import Image

    from sgi2v_lite.config import get_preset
    from sgi2v_lite.models import load_pipeline
    from sgi2v_lite.sampler import generate
    from sgi2v_lite.tracks import load_tracks

    torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.model)
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    config = get_preset(args.preset).replace(guidance=args.worker == "guided")
    image = Image.open(args.image)
    tracks = load_tracks(args.tracks)
    generate(
        pipe, image, tracks, config.replace(num_inference_steps=2, optimised_steps=(1,)), progress=False
    )  # warm-up
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        generate(pipe, image, tracks, config, progress=False)
        times.append(time.perf_counter() - started)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps({"seconds": min(times), "peak_mb": peak_kb / 1024, "above_model_mb": (peak_kb - baseline_kb) / 1024})
    )


def flop_counts(args) -> dict:
    """FLOPs of one CFG forward (batch 2, `sampler.noise_prediction`) and of one optimisation pass
    (`sampler.latent_gradient`: forward to the last hooked block + backward, and untruncated), at the
    first optimised step of a prepared run."""
    from PIL import Image
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from sgi2v_lite.config import get_preset
    from sgi2v_lite.models import load_pipeline
    from sgi2v_lite.sampler import guidance_scales, latent_gradient, noise_prediction, prepare
    from sgi2v_lite.tracks import load_tracks

    pipe = load_pipeline(args.model)
    run = prepare(pipe, Image.open(args.image), load_tracks(args.tracks), get_preset(args.preset))
    config, scheduler = run.config, run.scheduler
    timestep = scheduler.timesteps[config.optimised_steps[0]]
    targets = (run.cond, run.box_cells, run.valid)

    # the counter sees attention only as matrix products: use the math backend while counting
    with sdpa_kernel(SDPBackend.MATH):
        with FlopCounterMode(display=False) as counter:
            scales = guidance_scales(config, run.latents.device, run.latents.dtype)
            noise_prediction(pipe.unet, scheduler, run.latents, timestep, run.cond, scales)
        cfg_forward = counter.get_total_flops()
        counts = {}
        for truncate in (True, False):
            with FlopCounterMode(display=False) as counter:
                latent_gradient(
                    pipe.unet, scheduler, run.latents, timestep, *targets, config.replace(truncate_forward=truncate)
                )
            counts[truncate] = counter.get_total_flops()
    return dict(
        cfg_forward=cfg_forward,
        optimisation_pass=counts[True],
        optimisation_pass_full=counts[False],
        steps=config.num_inference_steps,
        optimised_passes=len(config.optimised_steps) * config.iterations,
        config=config,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="toy")
    parser.add_argument("--preset", default="toy")
    parser.add_argument("--image", default="data/examples/shapes.png")
    parser.add_argument("--tracks", default="data/examples/shapes.json")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", choices=["guided", "unguided"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    import torch

    results = {}
    for mode in ("unguided", "guided"):
        command = [sys.executable, __file__, "--worker", mode] + [
            f"--{k}={v}" for k, v in vars(args).items() if k != "worker" and v is not None
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results[mode] = json.loads(output.strip().splitlines()[-1])
    flops = flop_counts(args)
    config = flops["config"]
    unguided_flops = flops["steps"] * flops["cfg_forward"]
    guided_flops = unguided_flops + flops["optimised_passes"] * flops["optimisation_pass"]
    untruncated_flops = unguided_flops + flops["optimised_passes"] * flops["optimisation_pass_full"]

    print(
        f"model {args.model}, preset {args.preset}: {config.num_frames} frames of {config.width}x{config.height}, "
        f"{config.num_inference_steps} steps, "
        f"{len(config.optimised_steps)} optimised x {config.iterations} iterations; "
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} threads, "
        f"best of {args.repeats}\n"
    )
    print("| mode | time (s) | peak RSS (MB) | peak above loaded model (MB) | GFLOP (UNet) |")
    print("|---|---|---|---|---|")
    for mode, gflop in (("unguided", unguided_flops), ("guided", guided_flops)):
        r = results[mode]
        print(f"| {mode} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | {r['above_model_mb']:.0f} | {gflop / 1e9:.1f} |")
    ratio = results["guided"]["seconds"] / results["unguided"]["seconds"]
    print(
        f"| **guided / unguided** | **{ratio:.2f}x** | "
        f"{results['guided']['peak_mb'] / results['unguided']['peak_mb']:.2f}x | | "
        f"floor {guided_flops / unguided_flops:.2f}x |"
    )
    print()
    print(
        f"one CFG forward (batch 2): {flops['cfg_forward'] / 1e9:.2f} GFLOP; one optimisation pass "
        f"(batch 1, forward to the last hooked block + backward): {flops['optimisation_pass'] / 1e9:.2f} GFLOP "
        f"= {flops['optimisation_pass'] / flops['cfg_forward']:.2f} CFG forwards "
        f"(untruncated: {flops['optimisation_pass_full'] / 1e9:.2f} GFLOP; floor without truncation "
        f"{untruncated_flops / unguided_flops:.2f}x)"
    )


if __name__ == "__main__":
    main()
