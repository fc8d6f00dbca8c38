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


def frame_strip(frames: np.ndarray, every: int = 1, gap: int = 2) -> np.ndarray:
    """Frames side by side, (H, k*W + gaps, 3) uint8, white gaps: a video on one line of a README."""
    chosen = list(np.asarray(frames)[::every])
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
