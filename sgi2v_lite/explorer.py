"""A researcher's feature explorer: click a point on frame 0 and see where its content goes.

SG-I2V Sec. 3.2 (its Fig. 2) in your hands. For one cell of frame 0, every frame shows the cosine
similarity of its features to that cell's feature, and the best match, naive features beside
first-frame-aligned ones, at any recorded denoising step and layer, in the unguided run and in the
guided one (what the optimisation changed in the features is the mechanism). A second view shows
the PCA colours of every frame, with ONE basis over all steps and runs of a layer and kind, so
that a colour means the same feature across steps and runs.

    runs = {name: probe.run_features(pipe, image, tracks_or_None, config, steps, layers)}
    FeatureExplorer(runs, layer=config.feature_layers[0])

The computations are `probe.similarity_maps` and `probe.pca_rgb_across`; this module only draws.
Clicks arrive as ipycanvas mouse events (`select` does the same from code).
"""

from __future__ import annotations

import functools
import io

import ipywidgets as widgets
import numpy as np
from ipycanvas import Canvas

from . import probe

VIEWS = ("similarity", "PCA")


def _figure_png(figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


class FeatureExplorer(widgets.VBox):
    """runs: name -> (frames (F, H, W, 3) uint8, kind -> step -> layer -> (F, C, h, w)), e.g. from
    `probe.run_features`; every run holds the same kinds, steps and layers. `layer`: the one shown
    first (default: the first). After a click (or `select`), `cell` is the chosen cell (x, y) of
    the layer's grid, `maps` kind -> (F, h, w) cosine similarities, `matches` kind -> (F, 2) best
    cells (x, y), and the figure shows them."""

    def __init__(self, runs: dict, layer: str | None = None, display_size: int = 256):
        self.runs = runs
        frames, features = next(iter(runs.values()))
        self.kinds = list(features)
        self.steps = steps = sorted(features[self.kinds[0]])
        layers = list(features[self.kinds[0]][steps[0]])
        self.display_size = display_size
        self.canvas = Canvas(width=display_size, height=display_size, layout=widgets.Layout(width=f"{display_size}px"))
        self.run = widgets.ToggleButtons(options=list(runs), description="run")
        self.step = widgets.SelectionSlider(options=steps, value=steps[len(steps) // 2], description="step")
        self.layer = widgets.Dropdown(
            options=layers, value=layer or layers[0], description="layer", layout=widgets.Layout(width="520px")
        )
        self.view = widgets.ToggleButtons(options=VIEWS, description="show")
        self.figure = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.status = widgets.HTML()
        self.cell: tuple[int, int] | None = None
        self.maps: dict[str, np.ndarray] = {}
        self.matches: dict[str, np.ndarray] = {}
        self.canvas.add_class("sgi2v-explorer-canvas")
        self.canvas.on_mouse_down(self.select)
        for control in (self.run, self.step, self.layer, self.view):
            control.observe(lambda change: self.render(), names="value")
        hint = widgets.HTML("Click a point on frame 0 (left) to follow its content through the frames.")
        controls = widgets.VBox([self.run, self.step, self.layer, self.view, self.status])
        super().__init__([hint, widgets.HBox([self.canvas, controls]), self.figure])
        h, w = self.features(self.kinds[0]).shape[-2:]
        self.cell = (w // 2, h // 2)
        self.render()

    def features(self, kind: str):
        """(F, C, h, w) of the chosen run, step and layer."""
        return self.runs[self.run.value][1][kind][self.step.value][self.layer.value]

    def select(self, x: float, y: float) -> None:
        """A click at canvas pixel (x, y) on frame 0: choose the layer's cell under it and redraw."""
        h, w = self.features(self.kinds[0]).shape[-2:]
        column = int(np.clip(x / self.display_size * w, 0, w - 1))
        row = int(np.clip(y / self.display_size * h, 0, h - 1))
        self.cell = (column, row)
        self.render()

    @functools.lru_cache(maxsize=16)  # noqa: B019 (the explorer lives as long as its notebook)
    def _pca(self, kind: str, layer: str) -> dict[tuple[str, int], np.ndarray]:
        """(run, step) -> (F, h, w, 3) PCA colours, one basis over every run and step of `layer`."""
        keys = [(run, step) for run in self.runs for step in self.steps]
        colours = probe.pca_rgb_across([self.runs[run][1][kind][step][layer] for run, step in keys])
        return dict(zip(keys, colours))

    def _draw_frame0(self) -> None:
        frame0 = self.runs[self.run.value][0][0]
        h, w = self.features(self.kinds[0]).shape[-2:]
        image = np.asarray(frame0).repeat(max(1, self.display_size // frame0.shape[0]), 0)
        image = image.repeat(max(1, self.display_size // frame0.shape[1]), 1)
        self.canvas.clear()
        self.canvas.put_image_data(image, 0, 0)
        x, y = (np.array(self.cell) + 0.5) * self.display_size / np.array([w, h])
        self.canvas.stroke_style, self.canvas.line_width = "white", 2
        self.canvas.stroke_circle(float(x), float(y), 6)

    def render(self) -> None:
        """Recompute the maps for the chosen cell and redraw frame 0 and the figure."""
        import matplotlib.pyplot as plt

        frames = self.runs[self.run.value][0]
        for kind in self.kinds:
            self.maps[kind], self.matches[kind] = probe.similarity_maps(self.features(kind), self.cell)
        self._draw_frame0()
        count = len(frames)
        h, w = self.maps[self.kinds[0]].shape[-2:]
        rows = 1 + len(self.kinds)
        figure, axes = plt.subplots(rows, count, figsize=(1.4 * count + 0.8, 1.45 * rows), squeeze=False)
        plt.close(figure)  # shown through the Image widget only
        scale = np.array([frames.shape[2] / w, frames.shape[1] / h])  # cells -> frame pixels
        markers = {"naive": "x", "aligned": "+"}
        for j in range(count):
            axes[0, j].imshow(frames[j])
            axes[0, j].set_title(f"frame {j}", fontsize=8)
            for kind in self.kinds:
                x, y = (self.matches[kind][j] + 0.5) * scale - 0.5
                axes[0, j].plot(x, y, markers.get(kind, "o"), color="white", ms=7, mew=2.5)
                axes[0, j].plot(x, y, markers.get(kind, "o"), color=f"C{self.kinds.index(kind)}", ms=6, mew=1.5)
            for r, kind in enumerate(self.kinds, start=1):
                axis = axes[r, j]
                if self.view.value == "similarity":
                    shown = axis.imshow(self.maps[kind][j], cmap="RdBu_r", vmin=-1, vmax=1)
                    axis.plot(*self.matches[kind][j], markers.get(kind, "o"), color="k", ms=6, mew=1.5)
                else:
                    axis.imshow(self._pca(kind, self.layer.value)[self.run.value, self.step.value][j])
                if j == 0:
                    axis.set_ylabel(kind, fontsize=8)
        for axis in axes.flat:
            axis.set_xticks([])
            axis.set_yticks([])
        axes[0, 0].set_ylabel("video", fontsize=8)
        if self.view.value == "similarity":
            figure.colorbar(shown, ax=axes[1:, :].ravel().tolist(), shrink=0.8, label="cosine to the chosen cell")
        figure.suptitle(
            f"{self.run.value} run, step {self.step.value}, {self.layer.value}: cell {self.cell} of {w} x {h}",
            fontsize=8,
        )
        self.figure.value = _figure_png(figure)
        self.status.value = f"cell {self.cell}; best matches, last frame: " + ", ".join(
            f"{kind} {tuple(int(v) for v in self.matches[kind][-1])}" for kind in self.kinds
        )
