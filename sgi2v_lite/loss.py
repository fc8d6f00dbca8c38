"""The SG-I2V loss: features inside each box should follow the box (SG-I2V Sec. 3.3, spec step 2).

For each box b and frame j >= 1, the aligned features inside box b at frame j should equal the
features inside box b at frame 0 (the target, detached, resized to box b's size at frame j). The
squared error, averaged over channels, is weighted by a Gaussian centred on the box:

    L = sum_{j>=1, b, pixels} w * err  /  sum_{j>=1, b, pixels} w
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def feature_map(features: dict[str, torch.Tensor], latent_hw: tuple[int, int]) -> torch.Tensor:
    """Upsample each recorded layer (F, C_l, h_l, w_l) bilinearly to the latent grid (H, W) and
    concatenate along channels: (F, sum C_l, H, W), float32. At SVD's M2-3 layers: (14, 1280, 72, 128)."""
    maps = [
        F.interpolate(layer.float(), size=tuple(latent_hw), mode="bilinear", align_corners=False)
        for layer in features.values()
    ]
    return torch.cat(maps, dim=1)


def gaussian_weights(height: int, width: int, device=None) -> torch.Tensor:
    """Weights (h, w) over a box of h x w cells: a Gaussian centred on the box, peak 1, with
    sigma = 0.4 * (half the box height) vertically and 0.4 * (half the box width) horizontally."""
    ys = torch.arange(height, device=device, dtype=torch.float32) - (height - 1) / 2  # (h,)
    xs = torch.arange(width, device=device, dtype=torch.float32) - (width - 1) / 2  # (w,)
    sigma_y, sigma_x = 0.4 * height / 2, 0.4 * width / 2
    return torch.exp(-(ys[:, None] ** 2) / (2 * sigma_y**2) - xs[None, :] ** 2 / (2 * sigma_x**2))


def box_loss(features: torch.Tensor, box_cells: np.ndarray, valid: np.ndarray) -> torch.Tensor:
    """Gaussian-weighted box loss.

    features:  (F, C, H, W) feature map on the latent grid (see `feature_map`).
    box_cells: (N, F, 4) integer cells (x0, y0, x1, y1), exclusive ends (see `tracks.boxes_to_grid`).
    valid:     (N, F) False where the box lies wholly outside the grid: that frame is skipped
               (and the whole track if its frame-0 box is outside: it has no target).
    Returns a scalar; 0 (still attached to `features`) when no box has a valid frame j >= 1."""
    weighted_error = features.new_zeros(())
    weight_sum = 0.0
    for track_cells, track_valid in zip(box_cells, valid):
        if not track_valid[0]:
            continue
        x0, y0, x1, y1 = (int(v) for v in track_cells[0])
        target = features[0, :, y0:y1, x0:x1].detach()  # (C, h0, w0)
        for frame in range(1, features.shape[0]):
            if not track_valid[frame]:
                continue
            x0, y0, x1, y1 = (int(v) for v in track_cells[frame])
            region = features[frame, :, y0:y1, x0:x1]  # (C, h, w)
            if region.shape != target.shape:  # clipped at the border: resize the target to fit
                resized = F.interpolate(target[None], size=region.shape[-2:], mode="bilinear", align_corners=False)[0]
            else:
                resized = target
            error = ((region - resized) ** 2).mean(dim=0)  # (h, w)
            weights = gaussian_weights(*error.shape, device=error.device)  # (h, w)
            weighted_error = weighted_error + (weights * error).sum()
            weight_sum += float(weights.sum())
    if weight_sum == 0:
        return features.sum() * 0.0
    return weighted_error / weight_sum
