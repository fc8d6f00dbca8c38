"""Pictures: the track overlay and the method figure say what their inputs say."""

import matplotlib
import numpy as np

from sgi2v_lite.config import get_preset
from sgi2v_lite.viz import draw_tracks, method_figure, track_colour

matplotlib.use("Agg")


def test_draw_tracks_enlarges_small_frames_and_edges_the_dots():
    frames = np.full((3, 64, 64, 3), (230, 25, 75), np.uint8)  # a frame in track 0's own colour
    boxes = np.array([[[10, 10, 30, 30], [20, 10, 40, 30], [30, 10, 50, 30]]], float)  # (N, F, 4)
    drawn = draw_tracks(frames, boxes)
    assert drawn.shape == (3, 192, 192, 3)  # 64 px frames enlarged x3, the drawing stays thin
    last = drawn[2]
    dark = last.astype(int).sum(-1) < 100  # the dark edges: visible on an object of the track's colour
    assert dark.any()
    assert (last == track_colour(0)).all(-1).any()
    assert draw_tracks(frames, boxes, min_size=0).shape == frames.shape  # the CLI's video keeps its size
    centre = (np.array([40, 20]) * 3).astype(int)  # frame 2's centre, enlarged: a dot with a dark edge
    assert dark[centre[1] - 6 : centre[1] + 7, centre[0] - 6 : centre[0] + 7].any()


def test_method_figure_is_drawn_from_the_settings():
    for name in ("toy", "reference"):
        config = get_preset(name)
        figure = method_figure(config)
        texts = " ".join(t.get_text() for t in figure.axes[0].texts)
        steps = config.optimised_steps
        assert f"{config.num_inference_steps} Euler steps" in texts
        assert f"optimised: steps {steps[0]}..{steps[-1]}" in texts
        assert f"{config.iterations} AdamW iterations" in texts and f"d_s = {config.lowpass_cutoff:g}" in texts
        shaded = [p for p in figure.axes[0].patches if p.get_facecolor()[:3] == matplotlib.colors.to_rgb("#f4a259")]
        assert len(shaded) == len(steps)
    assert "up_blocks.2.attentions.1 (+1)" in " ".join(
        t.get_text() for t in method_figure(get_preset("reference")).axes[0].texts
    )
