"""The generated part of a toy model's card: TRAINING.md (data, architecture, training) and the loss
curves, training_loss.png, from a training run's log and the pipeline it saved.

    python -m sgi2v_lite.toy.card DIR            # after `python -m sgi2v_lite.toy.train --out DIR`
    python -m sgi2v_lite.toy.card --check DIR    # before it: would the card replace someone's text?

`make toy-model` runs the check, the training and then this. The settings come from the log's
"settings" records (what the run used: `train.Hyperparameters`, seed, threads), step counts and
losses from its stage records, the architecture and parameter counts from the saved modules:
nothing here restates a setting, and train.py, which only trains, does not import this module.

Only TRAINING.md and training_loss.png are written. The folder's README.md, where the shipped
model's measured findings live, is written by hand and by no code, so retraining never replaces a
result; and a TRAINING.md that does not start with this module's `MARK` is someone's text, refused
rather than replaced (`check_writable`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from itertools import pairwise
from pathlib import Path

import numpy as np

from .train import LOG_NAME, NUM_FRAMES, Hyperparameters
from .world import CAMERA_SHARES, FAST_SHARE, FAST_SPEED, SHAPES, TOY_SIZE

CARD_NAME = "TRAINING.md"
PLOT_NAME = "training_loss.png"
MARK = "<!-- Written by sgi2v_lite/toy/card.py at every training run: edits are lost; findings go in README.md -->"
LOSS_WINDOW = 400  # the card's UNet loss: the mean of the batches logged over this many last steps

MOTION_WORDS = {
    "linear": "at constant velocity",
    "varied": "at constant velocity, some (`--motion varied`: 3 in 10 of the moving objects each) "
    "along an arc or speeding up or slowing down",
    "fast": f"at constant velocity, some (`--motion fast`: {FAST_SHARE * 10:g} in 10 of the moving objects) at "
    f"{FAST_SPEED[0] * TOY_SIZE / 128:g} to {FAST_SPEED[1] * TOY_SIZE / 128:g} px a frame, "
    "the speeds of the evaluation's targets",
}


def read_log(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def motion_line(records: list[dict]) -> str:
    """The card's words for the UNet's clips, from the log's "data" records (step, motion); a log
    without them (older runs) was linear throughout. E.g. "at constant velocity" or "at constant
    velocity (steps 0..2199), then ... (from step 2200)"."""
    stretches = [(r["step"], r["motion"]) for r in records if r.get("stage") == "data"]
    if not stretches or stretches[0][0] > 0:
        stretches.insert(0, (0, "linear"))
    merged = [stretches[0]]
    for step, motion in stretches[1:]:
        if motion != merged[-1][1]:  # a resume with the same motion continues the stretch
            merged.append((step, motion))
    if len(merged) == 1:
        return MOTION_WORDS[merged[0][1]]
    parts = [f"{MOTION_WORDS[motion]} (steps {step}..{end - 1})" for (step, motion), (end, _) in pairwise(merged)]
    parts.append(f"{MOTION_WORDS[merged[-1][1]]} (from step {merged[-1][0]})")
    return ", then ".join(parts)


def settings_of(records: list[dict], stage: str) -> dict | None:
    """The "settings" record in force when `stage` last trained: the last one logged before that
    stage's last record. None where the log has none (runs from before the record)."""
    last = max((i for i, r in enumerate(records) if r.get("stage") == stage), default=len(records))
    return next((r for r in reversed(records[:last]) if r.get("stage") == "settings"), None)


def hyperparameters(settings: dict | None) -> Hyperparameters:
    """A "settings" record's `train.Hyperparameters`; without one, train.py's current defaults."""
    names = {field.name for field in dataclasses.fields(Hyperparameters)}
    return Hyperparameters(**{k: v for k, v in (settings or {}).items() if k in names})


def _number(x: float) -> str:
    """3e-4 rather than 0.0003; 0.998 as it is."""
    if x == 0 or abs(x) >= 0.01:
        return f"{x:g}"
    mantissa, exponent = f"{x:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _schedule(peak: float, warmup: int, hp: Hyperparameters) -> str:
    return f"lr {_number(peak)} ({warmup}-step warm-up, cosine to {hp.lr_floor:g} x)"


def _steps(count: int) -> str:
    return f"{count} step{'s' * (count != 1)}"


def _tuple(value):
    return tuple(value) if isinstance(value, list | tuple) else value


def check_writable(out: Path) -> Path:
    """`out`/TRAINING.md if it is this module's to write: absent, or starting with `MARK`. Anything
    else there is someone's text: FileExistsError, rather than replacing it."""
    path = Path(out) / CARD_NAME
    if path.exists() and not path.read_text().startswith(MARK):
        raise FileExistsError(
            f"{path} was not written by sgi2v_lite/toy/card.py (its first line is not the generated mark) and "
            "would be replaced: move it away (measured findings belong in README.md, which no code writes)"
        )
    return path


def write_card(out: Path, pipe) -> Path:
    """`out`/TRAINING.md from `out`/training_log.jsonl and `pipe`, the pipeline saved there: data,
    architecture, parameter counts, training. Returns its path."""
    from ..attention import default_feature_layers

    path = check_writable(out)
    records = read_log(Path(out) / LOG_NAME)
    vae_settings, decoder_settings, unet_settings = (settings_of(records, s) for s in ("vae", "decoder", "unet"))
    vae_hp, decoder_hp, unet_hp = (hyperparameters(s) for s in (vae_settings, decoder_settings, unet_settings))
    vae_done = next((r for r in records if r.get("stage") == "vae-done"), {})
    done = next((r for r in records if r.get("stage") == "done"), {})
    last = {
        stage: max((r for r in records if r.get("stage") == stage), key=lambda r: r["step"], default={})
        for stage in ("vae", "unet")
    }
    unet_losses = [
        r["loss"]
        for r in records
        if r.get("stage") == "unet" and r["step"] >= last["unet"].get("step", 0) - LOSS_WINDOW
    ]
    resume = next((r for r in records if r.get("stage") == "resume"), None)
    decoder = ""
    stage_1b = [i for i, r in enumerate(records) if r.get("stage") in ("decoder-start", "decoder-done")]
    decoder_done = records[stage_1b[-1]] if stage_1b and records[stage_1b[-1]]["stage"] == "decoder-done" else None
    if decoder_done is not None:  # stage 1b ran (`--decoder-steps`), in one sitting or both: count them all
        start = records[stage_1b[0]]["psnr_by_frame"]
        steps = sum(
            1 + max((r["step"] for r in records[begin:end] if r.get("stage") == "decoder"), default=-1)
            for begin, end in zip(stage_1b[::2], stage_1b[1::2], strict=False)
        )
        by_frame = " / ".join(f"{v:.1f}" for v in decoder_done["psnr_by_frame"])
        before = " / ".join(f"{v:.1f}" for v in start)
        decoder = (
            f"\n- Decoder alone (stage 1b, `--decoder-steps`): {_steps(steps)} of "
            f"{decoder_hp.batch_clips} whole {TOY_SIZE} x {TOY_SIZE} clips,\n"
            f"  the encoder frozen (the latents do not change), AdamW "
            f"{_schedule(decoder_hp.decoder_lr, decoder_hp.decoder_warmup, decoder_hp)},\n"
            f"  weight decay {decoder_hp.vae_weight_decay:g}, MSE + {decoder_hp.l1_weight:g} L1; "
            "held-out PSNR by frame "
            f"{by_frame} dB\n  (before it: {before})."
        )
    total_minutes = done.get("total_minutes", float("nan"))
    sittings = ""
    if resume is not None:  # minutes restart with each sitting: add the first sitting's
        first_sitting = [r for r in records[: records.index(resume)] if r.get("stage") == "checkpoint"]
        total_minutes += first_sitting[-1]["minutes"]
    if resume is not None and last["unet"].get("step", -1) + 1 <= resume["step"]:  # no UNet step after the resume
        decoder_after = decoder_done is not None and records.index(decoder_done) > records.index(resume)
        second = "trained the decoder alone" if decoder_after else "trained nothing"
        sittings = (
            f"\n- Trained in two sittings: the second (`--resume`) kept the UNet and image encoder of "
            f"step {resume['step']}\n  and {second}."
        )
    elif resume is not None:
        sittings = (
            f"\n- Trained in two sittings: the second (`--resume`) continued the UNet from the checkpoint at step"
            f"\n  {resume['step']} (EMA weights, a fresh optimiser with a new {unet_hp.unet_warmup}-step warm-up, "
            f"the cosine schedule of the\n  new total) on the clips of the later steps."
        )

    logged = [r for r in records if r.get("stage") == "settings"]
    latest = logged[-1] if logged else {}
    run = ""
    stages = [("the VAE", vae_settings), ("the UNet", unet_settings)]
    if decoder_done is not None:
        stages.insert(1, ("the decoder alone", decoder_settings))
    missing = [name for name, found in stages if found is None]
    if missing:  # a sitting from before the settings record
        which = "" if len(missing) == len(stages) else f" of {' and '.join(missing)}"
        run += f"\n- Settings{which} not logged (a log from before its settings record): shown are train.py's defaults."
    if "seed" in latest:
        run += f"\n- Seed {latest['seed']}; every stage clips gradients to norm {unet_hp.max_grad_norm:g}."
    recipe = {field.name for field in dataclasses.fields(Hyperparameters)} | {"seed"}
    if len({json.dumps({k: r.get(k) for k in sorted(recipe)}) for r in logged}) > 1:
        run += "\n- The sittings' settings differ (the log's settings records): each stage above gives its own."
    machine = ""
    if "threads" in latest:
        machine = f" at {latest['threads']} thread{'s' * (latest['threads'] != 1)} on a {latest['cpus']}-CPU machine"

    def count(module) -> str:
        return f"{sum(p.numel() for p in module.parameters()) / 1e6:.2f} M"

    size_mb = sum(f.stat().st_size for f in Path(out).rglob("*.safetensors")) / 2**20
    unet, vae, encoder = pipe.unet.config, pipe.vae.config, pipe.image_encoder.config  # the saved modules' own
    layers = f"{unet.layers_per_block} layer{'s' if unet.layers_per_block > 1 else ''}"
    hooked_names = default_feature_layers(pipe.unet)
    hooked = " and ".join(f"`{name}`" for name in hooked_names)
    block = int(hooked_names[0].split(".")[1])  # up_blocks.<block>...: its grid, halved from the latent's
    grid = unet.sample_size // 2 ** (len(pipe.unet.up_blocks) - 1 - block)
    card = f"""{MARK}
# {Path(out).resolve().name}: data, architecture and training

*Written by `sgi2v_lite/toy/card.py` after every training run (`make toy-model`), from
`{LOG_NAME}` and the saved weights: rewritten whole each time, so edits here are lost. What
the model does, measured, goes in [README.md](README.md), which no code writes.*

A `StableVideoDiffusionPipeline` at toy size, trained from scratch by `sgi2v_lite/toy/train.py` on the
procedural videos of `sgi2v_lite/toy/world.py`.

## Data
Freshly generated clips, never repeated: {TOY_SIZE} x {TOY_SIZE} pixels, {NUM_FRAMES} frames; 1 to 3 shapes
({", ".join(SHAPES)}) {motion_line(records)}, bouncing off the borders, over a smooth textured
background; {100 * (1 - CAMERA_SHARES[0]):g} % of clips with camera pan, zoom in or zoom out. \
Motion bucket id = mean object
displacement (0 still .. 255 for {4 * TOY_SIZE / 128:g} px a frame); fps {unet_hp.fps}; noise augmentation \
log-normal ({unet_hp.noise_aug_log_mean:g}, {unet_hp.noise_aug_log_std:g}).
Evaluation scenes come from a disjoint seed range.

## Architecture
| part | configuration | parameters |
|---|---|---|
| UNet | blocks {_tuple(unet.block_out_channels)}, down {_tuple(unet.down_block_types)}, {layers} per block, \
heads {_tuple(unet.num_attention_heads)}, latent {unet.out_channels} x {unet.sample_size} x {unet.sample_size} \
| {count(pipe.unet)} |
| VAE | blocks {_tuple(vae.block_out_channels)} (x{2 ** (len(vae.block_out_channels) - 1)}), \
{vae.latent_channels} latent channels, scaling factor {vae.scaling_factor:.4f} | {count(pipe.vae)} |
| image encoder | CLIP ViT, hidden {encoder.hidden_size}, {encoder.num_hidden_layers} layers, \
{encoder.image_size} px input, projection {encoder.projection_dim} | {count(pipe.image_encoder)} |

The middle-resolution up block, `up_blocks[{block}]` ({grid} x {grid}), plays the role of SVD's `up_blocks[2]`:
SG-I2V hooks {hooked}. Weights stored in float16:
{size_mb:.1f} MB in all.

## Training
- VAE: {_steps(last["vae"].get("step", -1) + 1)} of {vae_hp.batch_clips} clips cut to {vae_hp.vae_crop} x \
{vae_hp.vae_crop} crops, AdamW
  {_schedule(vae_hp.vae_lr, vae_hp.vae_warmup, vae_hp)}, weight decay {vae_hp.vae_weight_decay:g},
  MSE + {vae_hp.l1_weight:g} L1 + {_number(vae_hp.kl_weight)} KL on the posterior mode; held-out PSNR \
{vae_done.get("psnr_db", float("nan")):.1f} dB.{decoder}
- UNet and image encoder together: {_steps(last["unet"].get("step", -1) + 1)} of {unet_hp.batch_clips} clips, \
AdamW
  {_schedule(unet_hp.unet_lr, unet_hp.unet_warmup, unet_hp)}, weight decay {unet_hp.unet_weight_decay:g},
  SVD's objective (EDM preconditioning, v-prediction, log-normal sigma ({unet_hp.sigma_log_mean:g}, \
{unet_hp.sigma_log_std:g})), conditioning
  dropout {100 * unet_hp.conditioning_dropout:g} %, EMA {unet_hp.ema_decay:g} (saved); loss over the last \
{LOSS_WINDOW} steps {np.mean(unet_losses) if unet_losses else float("nan"):.3f} (the mean of the
  batches logged every {unet_hp.log_every} steps; one batch's loss swings with its sampled sigmas, the last \
was {last["unet"].get("loss", float("nan")):.3f}).{run}
- Total {total_minutes:.0f} minutes{machine}.
  Loss curves: `{PLOT_NAME}`; the log: `{LOG_NAME}`.{sittings}
"""
    path.write_text(card)
    return path


def plot_log(log_path: Path, png_path: Path) -> None:
    """Loss curves of the stages from the JSON-lines log, as a PNG beside it; stage 1b's (the decoder
    alone, whole clips) continues the VAE's curve, on the steps after it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for axis, stage, key, title in (
        (axes[0], "vae", "mse", "VAE reconstruction MSE"),
        (axes[1], "unet", "loss", "UNet diffusion loss (EDM, v)"),
    ):
        points = [(r["step"], r[key]) for r in records if r.get("stage") == stage]
        if points:
            steps, values = zip(*points, strict=True)
            axis.plot(steps, values, lw=0.8, label="VAE (32 px crops)" if stage == "vae" else None)
            axis.set_yscale("log")
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("step")
    decoder, offset, last = [], 1 + max((r["step"] for r in records if r.get("stage") == "vae"), default=-1), 0
    for r in records:  # stage 1b, in one sitting or more: each continues the curve where the last ended
        if r.get("stage") == "decoder-start":
            offset, last = offset + last, 0
        elif r.get("stage") == "decoder":
            decoder.append((offset + r["step"], r["mse"]))
            last = r["step"] + 1
    if decoder:
        axes[0].plot(*zip(*decoder, strict=True), lw=0.8, label="decoder alone (stage 1b, whole clips)")
        axes[0].set_yscale("log")
        axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(png_path, dpi=90)
    plt.close(figure)


def main(argv=None) -> None:
    import torch

    from ..models import load_pipeline

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help=f"a folder train.py saved: the pipeline and its {LOG_NAME}")
    parser.add_argument("--check", action="store_true", help=f"only check that {CARD_NAME} may be written")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    try:
        check_writable(folder)
    except FileExistsError as err:
        parser.error(str(err))
    if args.check:
        return
    plot_log(folder / LOG_NAME, folder / PLOT_NAME)
    print(write_card(folder, load_pipeline(args.folder, device="cpu", dtype=torch.float32)))


if __name__ == "__main__":
    main()
