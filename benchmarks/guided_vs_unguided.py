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
    generate(pipe, image, tracks, config.replace(num_inference_steps=2, optimised_steps=(1,)), progress=False)  # warm-up
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        generate(pipe, image, tracks, config, progress=False)
        times.append(time.perf_counter() - started)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": min(times), "peak_mb": peak_kb / 1024, "above_model_mb": (peak_kb - baseline_kb) / 1024}))


def flop_counts(args) -> dict:
    """FLOPs of one CFG forward (batch 2) and of one optimisation pass (truncated forward + backward)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from sgi2v_lite.attention import record_features, run_to_features
    from sgi2v_lite.config import get_preset
    from sgi2v_lite.loss import box_loss, feature_map
    from sgi2v_lite.models import load_pipeline
    from sgi2v_lite.sampler import resolve_config

    pipe = load_pipeline(args.model)
    config = resolve_config(pipe, get_preset(args.preset))
    unet = pipe.unet.requires_grad_(False)
    latent_hw = (config.height // pipe.vae_scale_factor, config.width // pipe.vae_scale_factor)
    frames = config.num_frames

    def inputs(batch):
        sample = torch.randn(batch, frames, unet.config.in_channels, *latent_hw)
        embeddings = torch.randn(batch, 1, unet.config.cross_attention_dim)
        time_ids = torch.tensor([[6.0, 127.0, 0.02]]).repeat(batch, 1)
        return sample, torch.tensor(10.0), dict(encoder_hidden_states=embeddings, added_time_ids=time_ids)

    # the counter sees attention only as matrix products: use the math backend while counting
    math_attention = sdpa_kernel(SDPBackend.MATH)
    math_attention.__enter__()
    sample, t, kwargs = inputs(2)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        unet(sample, t, **kwargs)
    cfg_forward = counter.get_total_flops()

    sample, t, kwargs = inputs(1)
    sample.requires_grad_(True)
    cells = torch.tensor([[[1, 1, 4, 4]] * frames]).numpy()
    counts = {}
    for truncate in (True, False):
        with FlopCounterMode(display=False) as counter:
            with record_features(unet, config.feature_layers, frames, latent_hw, stop_early=truncate) as recorder:
                features = run_to_features(unet, recorder, sample, t, **kwargs)
                loss = box_loss(feature_map(features, latent_hw), cells, cells[..., 0] >= 0)
                loss.backward()
        counts[truncate] = counter.get_total_flops()
    math_attention.__exit__(None, None, None)
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

    print(f"model {args.model}, preset {args.preset}: {config.num_frames} frames of {config.width}x{config.height}, "
          f"{config.num_inference_steps} steps, {len(config.optimised_steps)} optimised x {config.iterations} iterations; "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} threads, "
          f"best of {args.repeats}\n")  # fmt: skip
    print("| mode | time (s) | peak RSS (MB) | peak above loaded model (MB) | GFLOP (UNet) |")
    print("|---|---|---|---|---|")
    for mode, gflop in (("unguided", unguided_flops), ("guided", guided_flops)):
        r = results[mode]
        print(f"| {mode} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | {r['above_model_mb']:.0f} | {gflop / 1e9:.1f} |")
    ratio = results["guided"]["seconds"] / results["unguided"]["seconds"]
    print(f"| **guided / unguided** | **{ratio:.2f}x** | "
          f"{results['guided']['peak_mb'] / results['unguided']['peak_mb']:.2f}x | | "
          f"floor {guided_flops / unguided_flops:.2f}x |")  # fmt: skip
    print()
    print(f"one CFG forward (batch 2): {flops['cfg_forward'] / 1e9:.2f} GFLOP; one optimisation pass "
          f"(batch 1, forward to the last hooked block + backward): {flops['optimisation_pass'] / 1e9:.2f} GFLOP "
          f"= {flops['optimisation_pass'] / flops['cfg_forward']:.2f} CFG forwards "
          f"(untruncated: {flops['optimisation_pass_full'] / 1e9:.2f} GFLOP; floor without truncation "
          f"{untruncated_flops / unguided_flops:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
