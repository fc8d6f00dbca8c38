"""Frequency post-processing: keep the optimised latent's low frequencies, the original's high ones.

SG-I2V Sec. 3.4 / spec step 4. Optimising the latent at a high learning rate moves objects but
pushes the latent out of distribution (blur, artefacts). Motion lives in the low spatial
frequencies, so after each optimised step we mix, per frame and channel, over the spatial axes only:

    new = IFFT( LPF * FFT(optimised) + (1 - LPF) * FFT(original) )

with a Butterworth low-pass on the centred spectrum,

    d^2 = (2h/H - 1)^2 + (2w/W - 1)^2,      LPF(h, w) = 1 / (1 + (d^2 / d_s^2)^n).
"""

from __future__ import annotations

import torch


def butterworth_lowpass(height: int, width: int, cutoff: float = 0.5, order: int = 4, device=None) -> torch.Tensor:
    """Butterworth low-pass mask on a centred (fftshift-ed) spectrum: (H, W) float32, 1 at the centre,
    0.5 at normalised distance d = `cutoff` (the paper's gamma, d_s), falling towards 0 beyond.
    A cut-off of 0 keeps nothing (all zeros)."""
    if cutoff < 0:
        raise ValueError(f"cutoff must be >= 0, got {cutoff}")
    if cutoff == 0:
        return torch.zeros(height, width, device=device)
    rows = 2 * torch.arange(height, device=device, dtype=torch.float32) / height - 1  # (H,)
    cols = 2 * torch.arange(width, device=device, dtype=torch.float32) / width - 1  # (W,)
    d_squared = rows[:, None] ** 2 + cols[None, :] ** 2  # (H, W)
    return 1 / (1 + (d_squared / cutoff**2) ** order)


def _centred_spectrum(x: torch.Tensor) -> torch.Tensor:
    """2-D FFT over the last two (spatial) axes, zero frequency moved to the centre."""
    return torch.fft.fftshift(torch.fft.fft2(x.float(), dim=(-2, -1)), dim=(-2, -1))


def _from_centred_spectrum(spectrum: torch.Tensor) -> torch.Tensor:
    return torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1)), dim=(-2, -1)).real


def log_magnitude_spectrum(x: torch.Tensor) -> torch.Tensor:
    """log(1 + |FFT|) of `x` (..., H, W) over its spatial axes, zero frequency at the centre: the
    picture of a spectrum (low frequencies in the middle, the highest at the borders)."""
    return torch.log1p(_centred_spectrum(x).abs())


def split_frequencies(x: torch.Tensor, lowpass_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split `x` (..., H, W) into (low, high) with low + high == x, using a centred mask (H, W)."""
    spectrum = _centred_spectrum(x)
    low = _from_centred_spectrum(spectrum * lowpass_mask).to(x.dtype)
    return low, x - low


def mix_frequencies(
    optimised: torch.Tensor, original: torch.Tensor, cutoff: float = 0.5, order: int = 4
) -> torch.Tensor:
    """The latent after SG-I2V's frequency mix (spec step 4).

    optimised, original: (..., H, W) latents, e.g. (B, F, C, H, W); the FFT runs over (H, W) only,
    independently for every frame and channel. Returns a tensor of `optimised`'s shape and dtype:
    `original` for cut-off 0, tending to `optimised` as the cut-off grows."""
    if optimised.shape != original.shape:
        raise ValueError(f"shapes differ: optimised {tuple(optimised.shape)} vs original {tuple(original.shape)}")
    height, width = optimised.shape[-2:]
    lowpass_mask = butterworth_lowpass(height, width, cutoff, order, device=optimised.device)  # (H, W)
    mixed = lowpass_mask * _centred_spectrum(optimised) + (1 - lowpass_mask) * _centred_spectrum(original)
    return _from_centred_spectrum(mixed).to(optimised.dtype)


def rescaling_and_rest(change: torch.Tensor, original: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Split an optimisation's change of the latent into a rescaling of the original and the rest:
    change = scale * original + rest, with `scale` the least-squares fit (the rest is orthogonal to
    the original). AdamW's decoupled weight decay multiplies the latent by (1 - lr x wd) at every
    iteration, a pure rescaling: as flat in frequency as the noise it scales. The rest is what the
    loss's gradient moved (Adam's steps). change, original: (..., H, W) -> (scale, rest)."""
    change, original = change.float(), original.float()
    scale = float((change * original).sum() / (original * original).sum())
    return scale, change - scale * original


def radial_power(x: torch.Tensor, bins: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean spectral power |FFT|^2 of `x` (..., H, W) in rings of normalised distance d from the
    centre (the `d` of the Butterworth mask), averaged over the leading axes.
    Returns (ring centres (bins,), power (bins,)): where in frequency a tensor's energy is."""
    height, width = x.shape[-2:]
    power = _centred_spectrum(x).abs().pow(2).reshape(-1, height, width).mean(0)  # (H, W)
    rows = 2 * torch.arange(height, dtype=torch.float32) / height - 1
    cols = 2 * torch.arange(width, dtype=torch.float32) / width - 1
    distance = (rows[:, None] ** 2 + cols[None, :] ** 2).sqrt()  # (H, W), 0 .. sqrt(2)
    edges = torch.linspace(0, float(distance.max()) + 1e-6, bins + 1)
    ring = torch.bucketize(distance, edges[1:-1])  # (H, W) ring index 0 .. bins-1
    totals = torch.zeros(bins).index_add_(0, ring.flatten(), power.flatten())
    counts = torch.zeros(bins).index_add_(0, ring.flatten(), torch.ones(height * width))
    return (edges[:-1] + edges[1:]) / 2, totals / counts.clamp(min=1)
