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


def draw_tracks(frames: np.ndarray, boxes_px: np.ndarray, line_width: int = 1) -> np.ndarray:
    """Frames (F, H, W, 3) uint8 with each track drawn on them: its box at that frame, its whole
    centre path as a thin line, and the centres up to that frame as dots.

    boxes_px: (N, F, 4) pixels (x0, y0, x1, y1) of these frames (see `GenerationResult.boxes_px`)."""
    from PIL import Image, ImageDraw

    boxes_px = np.asarray(boxes_px, dtype=np.float64)
    centres = np.stack([(boxes_px[..., 0] + boxes_px[..., 2]) / 2, (boxes_px[..., 1] + boxes_px[..., 3]) / 2], -1)
    drawn = []
    for frame_index, frame in enumerate(np.asarray(frames)):
        image = Image.fromarray(frame)
        draw = ImageDraw.Draw(image)
        for n in range(len(boxes_px)):
            colour = track_colour(n)
            path = [tuple(p) for p in centres[n]]
            if len(path) > 1:
                draw.line(path, fill=colour, width=line_width)
            for x, y in path[: frame_index + 1]:
                draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=colour)
            draw.rectangle(list(boxes_px[n, frame_index]), outline=colour, width=line_width)
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
