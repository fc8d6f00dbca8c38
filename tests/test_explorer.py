"""The feature explorer, driven by the messages a browser sends (as tests/test_widget.py does for
the drawing widget): a click on frame 0 arrives as an ipycanvas ``mouse_down`` event in canvas
pixels. The features here are made by hand, so where the content went is known."""

import matplotlib
import numpy as np
import pytest
import torch

from sgi2v_lite import probe
from sgi2v_lite.explorer import FeatureExplorer

matplotlib.use("Agg")
F, C, H, W = 4, 8, 8, 8
SHIFT = (1, 2)  # (x, y) cells the "aligned" content moves per frame; the "naive" one is scrambled
LAYER = "up_blocks.1.attentions.1.transformer_blocks.0.attn1"


def moving_features(seed=0):
    """aligned: frame j is frame 0 rolled by j x SHIFT; naive: frame j is a random permutation of
    channels of that (the same content in another code, as a layer's own keys and values give)."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(C, H, W, generator=generator)
    aligned = torch.stack([base.roll((j * SHIFT[1], j * SHIFT[0]), dims=(1, 2)) for j in range(F)])
    naive = torch.stack([aligned[j][torch.randperm(C, generator=generator)] if j else aligned[0] for j in range(F)])
    return {"naive": naive, "aligned": aligned}


@pytest.fixture
def explorer():
    frames = np.zeros((F, 32, 32, 3), np.uint8)
    per_kind = moving_features()
    later = {kind: f * 2 + 1 for kind, f in per_kind.items()}
    features = {kind: {0: {LAYER: per_kind[kind]}, 5: {LAYER: later[kind]}} for kind in probe.KINDS}
    pushed = {
        kind: torch.cat([f[:1], f[1:].roll(1, dims=3)]) for kind, f in per_kind.items()
    }  # frames 1.. one cell right
    guided = {kind: {0: {LAYER: per_kind[kind]}, 5: {LAYER: pushed[kind]}} for kind in probe.KINDS}
    return FeatureExplorer({"unguided": (frames, features), "guided": (frames, guided)}, layer=LAYER, display_size=128)


def click(explorer, x, y):
    explorer.canvas._handle_custom_msg({"event": "mouse_down", "x": float(x), "y": float(y)}, [])


def test_similarity_maps_follow_content():
    maps, best = probe.similarity_maps(moving_features()["aligned"], (3, 1))
    assert maps.shape == (F, H, W) and maps[0, 1, 3] == pytest.approx(1.0, abs=1e-5)
    expected = [((3 + j * SHIFT[0]) % W, (1 + j * SHIFT[1]) % H) for j in range(F)]
    assert [tuple(b) for b in best] == expected


def test_pca_across_uses_one_basis():
    """The same features at two steps get the same colours; scaled features get other colours
    (two separate fits would give both the same picture)."""
    f = moving_features()["aligned"]
    same = probe.pca_rgb_across([f, f.clone()])
    np.testing.assert_allclose(same[0], same[1])
    scaled = probe.pca_rgb_across([f, 3 * f])
    assert np.abs(scaled[0] - scaled[1]).mean() > 0.05
    np.testing.assert_allclose(probe.pca_rgb(f), probe.pca_rgb(3 * f), atol=1e-5)


def test_a_click_chooses_the_cell_under_it_and_the_matches_follow_the_content(explorer):
    click(explorer, 3.5 * 128 / W, 1.5 * 128 / H)  # the middle of cell (3, 1)
    assert explorer.cell == (3, 1)
    expected = [((3 + j * SHIFT[0]) % W, (1 + j * SHIFT[1]) % H) for j in range(F)]
    assert [tuple(m) for m in explorer.matches["aligned"]] == expected
    assert [tuple(m) for m in explorer.matches["naive"]][1:] != expected[1:]  # scrambled channels lose it
    assert "aligned (6, 7)" in explorer.status.value.replace("np.int64", "")
    png = explorer.figure.value
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    click(explorer, 0, 0)
    assert explorer.cell == (0, 0) and explorer.figure.value != png


def test_clicks_outside_the_frame_are_clamped(explorer):
    click(explorer, 500, -20)
    assert explorer.cell == (W - 1, 0)


def test_run_step_layer_and_view_redraw(explorer):
    click(explorer, 3.5 * 16, 1.5 * 16)
    before = explorer.matches["aligned"].copy()
    explorer.run.value = "guided"
    explorer.step.value = 5  # the guided run's frames 1.. at step 5 hold the content one cell further right
    np.testing.assert_array_equal(explorer.matches["aligned"][1:, 0], (before[1:, 0] + 1) % W)
    assert tuple(explorer.matches["aligned"][0]) == tuple(before[0])
    shown = explorer.figure.value
    explorer.view.value = "PCA"
    assert explorer.figure.value != shown


def test_pca_view_compares_steps_and_runs(explorer):
    """One basis over every run and step: the unguided run's step 0 and the guided run's step 0 hold
    the same features, so they get the same colours; step 5 of the unguided run (2f + 1) does not."""
    colours = explorer._pca("aligned", LAYER)
    np.testing.assert_allclose(colours["unguided", 0], colours["guided", 0])
    assert np.abs(colours["unguided", 0] - colours["unguided", 5]).mean() > 0.05
