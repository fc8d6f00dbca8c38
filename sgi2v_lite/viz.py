"""Pictures: boxes and trajectories drawn over frames, and frame strips.

Colours are fixed per track (track n always gets `track_colour(n)`), so a box, its path and its
dots match across the widget, the overlays and the notebooks' plots.
"""

from __future__ import annotations

import numpy as np

PALETTE = [
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
]  # fmt: skip


def track_colour(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


def draw_tracks(frames: np.ndarray, boxes_px: np.ndarray, line_width: int = 1, min_size: int = 192) -> np.ndarray:
    """Frames (F, H, W, 3) uint8 with each track drawn on them: its box at that frame, its whole
    centre path as a thin line, and the centres up to that frame as dots; on enlarged frames each
    with a dark edge so that it shows on an object of its own colour.

    boxes_px: (N, F, 4) pixels (x0, y0, x1, y1) of these frames (see `GenerationResult.boxes_px`).
    Frames lower than `min_size` are first enlarged by the smallest whole factor that reaches it,
    each pixel a block, so that the drawing stays thin beside a 64 px toy frame's content
    (`min_size=0` keeps the frames' size, as the CLI's video does)."""
    from PIL import Image, ImageDraw

    frames = np.asarray(frames)
    factor = max(1, -(-min_size // frames.shape[1]))  # ceil
    frames = frames.repeat(factor, axis=1).repeat(factor, axis=2)
    boxes_px = np.asarray(boxes_px, dtype=np.float64) * factor
    centres = np.stack([(boxes_px[..., 0] + boxes_px[..., 2]) / 2, (boxes_px[..., 1] + boxes_px[..., 3]) / 2], -1)
    edge, radius, width = (20, 20, 20), 1.5 * min(factor, 2), line_width * min(factor, 2)
    drawn = []
    for frame_index, frame in enumerate(frames):
        image = Image.fromarray(frame)
        draw = ImageDraw.Draw(image)
        for n in range(len(boxes_px)):
            colour = track_colour(n)
            path = [tuple(p) for p in centres[n]]
            box = list(boxes_px[n, frame_index])
            # the dark edge first, the colour on top; on frames kept at a small size (factor 1) the
            # edge would triple every line's width, so there the colour is drawn alone
            for fill, extra in ((edge, 1), (colour, 0)) if factor > 1 else ((colour, 0),):
                if len(path) > 1:
                    draw.line(path, fill=fill, width=width + 2 * extra)
                for x, y in path[: frame_index + 1]:
                    r = radius + extra
                    draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
                draw.rectangle(
                    [box[0] - extra, box[1] - extra, box[2] + extra, box[3] + extra],
                    outline=fill,
                    width=width + 2 * extra,
                )
        drawn.append(np.asarray(image))
    return np.stack(drawn)


def frame_strip(frames: np.ndarray, every: int = 1, gap: int = 2, min_height: int = 0) -> np.ndarray:
    """Frames side by side, (H', k*W' + gaps, 3) uint8, white gaps: a video on one line of a README.

    Frames lower than `min_height` are enlarged by the smallest whole factor that reaches it, each
    pixel a block (a 64 px toy frame stays readable; no interpolation invents detail)."""
    chosen = list(np.asarray(frames)[::every])
    factor = max(1, -(-min_height // chosen[0].shape[0]))  # ceil
    chosen = [frame.repeat(factor, axis=0).repeat(factor, axis=1) for frame in chosen]
    height = chosen[0].shape[0]
    spacer = np.full((height, gap, 3), 255, np.uint8)
    pieces = []
    for frame in chosen:
        pieces += [frame, spacer]
    return np.concatenate(pieces[:-1], axis=1)


def save_png(path, image: np.ndarray) -> None:
    from pathlib import Path

    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path)


# ------------------------------------------------------------------- notebook pictures (matplotlib)
def upsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of (..., h, w, c): a feature grid at the size of its frame."""
    return np.asarray(image).repeat(factor, axis=-3).repeat(factor, axis=-2)


def plot_rows(rows: dict, every: int = 1, height: float = 1.3, titles=None):
    """One row of frames per entry of `rows` (label -> (F, H, W, 3) uint8 or float in [0, 1]),
    frames left to right: the notebooks' way to compare videos. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    rows = {label: np.asarray(frames)[::every] for label, frames in rows.items()}
    columns = max(len(frames) for frames in rows.values())
    figure, axes = plt.subplots(len(rows), columns, figsize=(height * columns, height * len(rows) + 0.3), squeeze=False)
    for r, (label, frames) in enumerate(rows.items()):
        for c in range(columns):
            axis = axes[r, c]
            axis.set_xticks([])
            axis.set_yticks([])
            if c < len(frames):
                axis.imshow(frames[c], interpolation="nearest")
            else:
                axis.axis("off")
            if r == 0:
                axis.set_title(titles[c] if titles else f"frame {c * every}", fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    figure.tight_layout()
    return figure


def show_video(frames: np.ndarray, fps: float = 7, width: int = 256, title: str | None = None) -> None:
    """Play frames (F, H, W, 3) in the notebook (mediapy, with imageio-ffmpeg's ffmpeg)."""
    import mediapy

    from .video import use_bundled_ffmpeg

    use_bundled_ffmpeg()
    frames = np.asarray(frames)
    height = round(width * frames.shape[1] / frames.shape[2])
    mediapy.show_video(frames, fps=fps, width=width, height=height, title=title, codec="gif")


def method_figure(config, num_frames: int | None = None):
    """The whole method in one figure, drawn from `config` (an `SGI2VConfig`): the denoising loop
    with its optimised steps, and what one optimised step does (SG-I2V Sec. 3.2-3.4): the hooked
    layer with frame 0's keys and values, the box loss, AdamW on the latent, the frequency mix,
    then the usual denoising step. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    steps, optimised = config.num_inference_steps, config.optimised_steps
    layers = [name.split(".transformer_blocks")[0] for name in config.feature_layers or ()]
    layer = (layers[0] + (f" (+{len(layers) - 1})" if len(layers) > 1 else "")) if layers else "the hooked layer"
    figure, axis = plt.subplots(figsize=(12, 4.6))
    axis.set_xlim(0, 12)
    axis.set_ylim(0, 4.6)
    axis.axis("off")

    def box(x, y, w, h, text, colour="#eef3fb", size=8):
        axis.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.04", fc=colour, ec="0.3", lw=0.8))
        axis.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)

    def arrow(start, end, text=None):
        axis.annotate("", end, start, arrowprops=dict(arrowstyle="->", color="0.25", lw=1))
        if text:
            axis.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.12, text, ha="center", fontsize=7)

    # the loop: one cell per denoising step, the optimised ones shaded
    axis.text(
        0.2, 4.35, f"the denoising loop: {steps} Euler steps from pure noise (σ = 700) to the clean latent", fontsize=9
    )
    width = 9.6 / steps
    for i in range(steps):
        shaded = i in optimised
        axis.add_patch(plt.Rectangle((0.2 + i * width, 3.7), width * 0.9, 0.45, fc="#f4a259" if shaded else "0.88"))
    axis.text(
        0.2 + optimised[0] * width, 3.55, f"optimised: steps {optimised[0]}..{optimised[-1]}", fontsize=8, va="top"
    )
    box(10.1, 3.65, 1.7, 0.55, "VAE decode\n→ video", "#e8f5e9")
    arrow((9.85, 3.92), (10.1, 3.92))
    # one optimised step, zoomed
    zoom = 0.2 + optimised[len(optimised) // 2] * width
    axis.plot([zoom, 0.2], [3.7, 3.05], color="#f4a259", lw=0.8, ls="--")
    axis.plot([zoom + width, 11.8], [3.7, 3.05], color="#f4a259", lw=0.8, ls="--")
    axis.add_patch(plt.Rectangle((0.15, 0.1), 11.7, 2.95, fc="#fff7ef", ec="#f4a259", lw=1))
    axis.text(
        0.3, 2.82, f"one optimised step, {config.iterations} AdamW iterations on the latent z_t itself", fontsize=9
    )
    box(0.35, 1.6, 1.2, 0.8, "noisy latent\nz_t", "#fff")
    box(1.95, 1.6, 2.1, 0.8, f"UNet (conditional,\ntruncated) up to\n{layer}", size=7)
    box(4.45, 1.6, 2.05, 0.8, "attn1: Q_j with frame 0's\nK_0, V_0 → aligned\nfeatures (Sec. 3.2)", "#e3f2fd", size=7)
    box(6.9, 1.6, 2.0, 0.8, "box loss: features in\neach box at frame j vs\nframe 0's (Sec. 3.3)", "#fde2e4", size=7)
    box(
        9.3,
        1.6,
        2.35,
        0.8,
        f"AdamW step on z_t\n(lr {config.learning_rate:g}"
        + (" x σ" if config.learning_rate_scaling == "sigma" else "")
        + ")",
        "#fde2e4",
        size=7,
    )
    for a, b in ((1.55, 1.95), (4.05, 4.45), (6.5, 6.9), (8.9, 9.3)):
        arrow((a, 2.0), (b, 2.0))
    axis.annotate(
        "",
        (0.95, 2.42),
        (10.45, 2.42),
        arrowprops=dict(arrowstyle="->", color="0.25", lw=1, connectionstyle="arc3,rad=0.06"),
    )
    axis.text(5.7, 2.5, "repeat: the loss's gradient w.r.t. z_t", ha="center", fontsize=7)
    mix = "off" if not config.frequency_mix else f"d_s = {config.lowpass_cutoff:g}"
    box(
        5.0,
        0.3,
        3.3,
        0.8,
        f"frequency mix ({mix}, Sec. 3.4): low frequencies\nof the optimised z_t, high ones of the\noriginal z_t",
        "#e8f5e9",
        size=7,
    )
    box(8.8, 0.3, 2.85, 0.8, "denoising step: UNet with CFG,\nEuler → z_(t-1), the next step", "0.93", size=7)
    arrow((10.45, 1.6), (6.65, 1.1))
    arrow((8.3, 0.7), (8.8, 0.7))
    frozen = "frame 0 held fixed" if not config.optimise_first_frame else "all frames optimised"
    axis.text(0.35, 0.55, f"the UNet never changes;\n{frozen}", fontsize=7, va="center")
    figure.tight_layout()
    return figure
