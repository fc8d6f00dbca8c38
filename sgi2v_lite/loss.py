"""The SG-I2V loss: features inside each box should follow the box (SG-I2V Sec. 3.3, spec step 2).

For each box b and frame j >= 1, the aligned features inside box b at frame j should equal the
features inside box b at frame 0 (the target, detached, resized to box b's size at frame j). The
squared error, averaged over channels, is weighted by a Gaussian centred on the box:

    L = sum_{j>=1, b, cells} w * err  /  sum_{j>=1, b, cells} w

A box that leaves the grid at frame j is handled as the reference implementation does: the target
is resized to the *whole* box and the Gaussian is built on the whole box (peak 1 at its centre),
then both are cropped to the part of the box that lies on the grid. Content that has left the
frame is not squeezed into what remains.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

HEATMAP_SIGMA = 0.4  # the Gaussian's sigma, as a fraction of half the box's height and width


def feature_map(features: dict[str, torch.Tensor], latent_hw: tuple[int, int]) -> torch.Tensor:
    """Upsample each recorded layer (F, C_l, h_l, w_l) bilinearly to the latent grid (H, W) and
    concatenate along channels: (F, sum C_l, H, W), float32. At SVD's M2-3 layers: (14, 1280, 72, 128)."""
    maps = [
        F.interpolate(layer.float(), size=tuple(latent_hw), mode="bilinear", align_corners=False)
        for layer in features.values()
    ]
    return torch.cat(maps, dim=1)


def gaussian_weights(height: int, width: int, sigma: float = HEATMAP_SIGMA, device=None) -> torch.Tensor:
    """Weights (h, w) over a whole box of h x w cells: a Gaussian centred on the box with
    sigma_y = sigma * (h / 2) and sigma_x = sigma * (w / 2), divided by its maximum so that the
    peak is 1 for every box size (an even-sized box has no centre cell: its four middle cells get 1)."""
    ys = torch.arange(height, device=device, dtype=torch.float32) - (height - 1) / 2  # (h,)
    xs = torch.arange(width, device=device, dtype=torch.float32) - (width - 1) / 2  # (w,)
    sigma_y, sigma_x = sigma * height / 2, sigma * width / 2
    weights = torch.exp(-(ys[:, None] ** 2) / (2 * sigma_y**2) - xs[None, :] ** 2 / (2 * sigma_x**2))
    return weights / weights.max()


def visible_part(cells, grid_hw: tuple[int, int]) -> tuple[slice, slice, slice, slice]:
    """The part of a box (x0, y0, x1, y1) of integer cells, exclusive ends, that lies on a grid of
    (H, W) cells: (rows, cols) slices into the grid, then (rows, cols) slices into the box itself."""
    x0, y0, x1, y1 = (int(v) for v in cells)
    grid_h, grid_w = grid_hw
    gy0, gy1, gx0, gx1 = max(y0, 0), min(y1, grid_h), max(x0, 0), min(x1, grid_w)
    return slice(gy0, gy1), slice(gx0, gx1), slice(gy0 - y0, gy1 - y0), slice(gx0 - x0, gx1 - x0)


def has_targets(valid: np.ndarray) -> bool:
    """True if some track has its frame-0 box and at least one later box on the grid: only then is
    the loss a function of the latent (the reference takes no optimiser step otherwise)."""
    valid = np.asarray(valid, dtype=bool)
    return bool((valid[:, :1] & valid[:, 1:]).any()) if valid.size else False


def box_loss(
    features: torch.Tensor, box_cells: np.ndarray, valid: np.ndarray, heatmap_sigma: float = HEATMAP_SIGMA
) -> torch.Tensor:
    """Gaussian-weighted box loss.

    features:  (F, C, H, W) feature map on the latent grid (see `feature_map`).
    box_cells: (N, F, 4) integer cells (x0, y0, x1, y1), exclusive ends, *not* clipped to the grid
               (see `tracks.boxes_to_grid`); frame 0's box lies on the grid.
    valid:     (N, F) False where the box lies wholly outside the grid: that frame is skipped
               (and the whole track if its frame-0 box is outside: it has no target).
    Returns a scalar; 0 (still attached to `features`) when no box has a valid frame j >= 1."""
    grid_hw = tuple(features.shape[-2:])
    weighted_error = weight_sum = features.new_zeros(())
    terms = 0  # (box, frame) pairs that contribute
    for track_cells, track_valid in zip(box_cells, valid):
        if not track_valid[0]:
            continue
        rows, cols, _, _ = visible_part(track_cells[0], grid_hw)
        target = features[0, :, rows, cols].detach()  # (C, h0, w0)
        for frame in range(1, features.shape[0]):
            if not track_valid[frame]:
                continue
            x0, y0, x1, y1 = (int(v) for v in track_cells[frame])
            height, width = y1 - y0, x1 - x0  # the whole box, on the grid or not
            if target.shape[-2:] != (height, width):  # floor division can change a box's size by a cell
                whole_target = F.interpolate(target[None], (height, width), mode="bilinear", align_corners=False)[0]
            else:
                whole_target = target
            whole_weights = gaussian_weights(height, width, heatmap_sigma, device=features.device)  # (h, w)
            rows, cols, box_rows, box_cols = visible_part(track_cells[frame], grid_hw)
            region = features[frame, :, rows, cols]  # (C, h', w'): the visible part
            error = ((region - whole_target[:, box_rows, box_cols]) ** 2).mean(dim=0)  # (h', w')
            weights = whole_weights[box_rows, box_cols]  # (h', w')
            weighted_error = weighted_error + (weights * error).sum()
            weight_sum = weight_sum + weights.sum()
            terms += 1
    if terms == 0:
        return features.sum() * 0.0
    return weighted_error / weight_sum
