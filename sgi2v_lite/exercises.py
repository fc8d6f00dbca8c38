"""Checks for the notebooks' exercises: `check("name", your_function)`.

Each exercise asks for one small function the package already has (so the check compares with the
package, or with the formula written out here). A function that still returns None (the stub in
the notebook) is "not attempted": the check says where the solution is and does not fail, so the
notebook still runs top to bottom. A wrong answer raises an AssertionError that says what differs.
Solutions: `notebooks/solutions/<name>.py` (load one into a cell with `%load solutions/<name>.py`).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _latent_shape(fn):
    for height, width, frames in ((576, 1024, 14), (128, 128, 8), (320, 512, 25)):
        got = fn(height, width, frames)
        if got is None:
            return None
        expected = (frames, 4, height // 8, width // 8)
        assert tuple(got) == expected, f"for {height}x{width}, {frames} frames: expected {expected}, got {tuple(got)}"
    return True


def _x0_from_v(fn):
    generator = torch.Generator().manual_seed(0)
    latents, v = torch.randn(2, 3, 4, 5, generator=generator).unbind(0)
    for sigma in (0.05, 1.0, 30.0):
        got = fn(latents, v, sigma)
        if got is None:
            return None
        expected = latents / (sigma**2 + 1) - sigma / math.sqrt(sigma**2 + 1) * v
        assert got.shape == latents.shape, f"shape {tuple(got.shape)}, expected {tuple(latents.shape)}"
        error = (got - expected).abs().max().item()
        assert error < 1e-4, (
            f"at sigma={sigma} the estimate is off by up to {error:.3g}: "
            "c_skip = 1/(sigma^2+1), c_out = -sigma/sqrt(sigma^2+1)"
        )
    return True


def _aligned_attention(fn):
    generator = torch.Generator().manual_seed(0)
    frames, heads, tokens, dim = 4, 2, 6, 8
    q, k, v = torch.randn(3, frames, heads, tokens, dim, generator=generator).unbind(0)
    got = fn(q, k, v)
    if got is None:
        return None
    assert got.shape == q.shape, f"shape {tuple(got.shape)}, expected {tuple(q.shape)} (frames, heads, tokens, dim)"
    weights = torch.softmax(q @ k[:1].transpose(-1, -2) / math.sqrt(dim), dim=-1)  # (F, heads, n, n)
    expected = weights @ v[:1]
    naive = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dim), dim=-1) @ v
    if torch.allclose(got, naive, atol=1e-5):
        raise AssertionError("this is the naive attention (each frame's own K and V): use frame 0's K_0 and V_0")
    error = (got - expected).abs().max().item()
    assert error < 1e-5, f"off by up to {error:.3g}: softmax(Q_j K_0^T / sqrt(d)) V_0 for every frame j"
    assert torch.allclose(got[0], naive[0], atol=1e-5), "frame 0's aligned features should equal its own attention"
    return True


def _gaussian_weights(fn):
    from .loss import gaussian_weights

    for height, width in ((5, 7), (4, 4), (1, 3), (9, 2)):
        got = fn(height, width)
        if got is None:
            return None
        got = torch.as_tensor(got, dtype=torch.float32)
        expected = gaussian_weights(height, width)
        assert got.shape == expected.shape, (
            f"for a {height}x{width} box: shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
        )
        error = (got - expected).abs().max().item()
        assert error < 1e-5, (
            f"for a {height}x{width} box off by up to {error:.3g}: sigma = 0.4 x half the side, "
            "divided by the maximum (peak 1 for even sides too)"
        )
    return True


def _butterworth(fn):
    from .frequency import butterworth_lowpass

    for height, width, cutoff, order in ((8, 8, 0.5, 4), (9, 16, 0.25, 2), (32, 32, 1.0, 1)):
        got = fn(height, width, cutoff, order)
        if got is None:
            return None
        got = torch.as_tensor(got, dtype=torch.float32)
        expected = butterworth_lowpass(height, width, cutoff, order)
        assert got.shape == expected.shape, f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
        error = (got - expected).abs().max().item()
        assert error < 1e-5, (
            f"for {height}x{width}, d_s={cutoff}, n={order}: off by up to {error:.3g}. Is the "
            "centre (d = 0) at index (H/2, W/2), with d^2 = (2h/H - 1)^2 + (2w/W - 1)^2?"
        )
    return True


def _objmc(fn):
    rng = np.random.default_rng(0)
    target = rng.uniform(0, 128, (8, 2))
    tracked = target + rng.normal(0, 3, (8, 2))
    got = fn(tracked, target)
    if got is None:
        return None
    expected = np.linalg.norm(tracked[1:] - target[1:], axis=-1).mean()
    with_frame0 = np.linalg.norm(tracked - target, axis=-1).mean()
    if abs(float(got) - with_frame0) < 1e-6:
        raise AssertionError("frame 0 is given (the first box), so ObjMC averages over frames 1..F-1 only")
    assert abs(float(got) - expected) < 1e-6, (
        f"expected {expected:.4f}, got {float(got):.4f}: the mean Euclidean distance per frame"
    )
    return True


def _one_box_loss(fn):
    from .loss import box_loss, gaussian_weights

    generator = torch.Generator().manual_seed(0)
    features = torch.randn(3, 5, 10, 12, generator=generator, requires_grad=True)  # (F, C, H, W)
    box0, boxj = (2, 1, 6, 4), (5, 4, 9, 7)  # (x0, y0, x1, y1) cells, the same size, inside the grid
    weights = gaussian_weights(3, 4)
    got = fn(features, box0, boxj, 2, weights)
    if got is None:
        return None
    cells = np.array([[box0, box0, boxj]])  # one track; frame 1 (skipped below) and frame 2
    expected = box_loss(features, cells, np.array([[True, False, True]]))
    plain = (features[2, :, 4:7, 5:9] - features[0, :, 1:4, 2:6]).pow(2).mean()
    if abs(float(got) - float(plain)) < 1e-6:
        raise AssertionError("this is the plain mean: weight each cell's error by the Gaussian, divide by their sum")
    assert abs(float(got) - float(expected)) < 1e-5, (
        f"expected {float(expected):.5f}, got {float(got):.5f}: sum(w * mean over channels of the squared "
        "difference) / sum(w), frame j's box against frame 0's"
    )
    got.backward()
    assert features.grad[0].abs().max() == 0, "frame 0 is the target: detach it (sg); only frame j gets a gradient"
    return True


def _frequency_mix(fn):
    from .frequency import butterworth_lowpass, mix_frequencies

    generator = torch.Generator().manual_seed(0)
    optimised, original = torch.randn(2, 16, 20, generator=generator).unbind(0)  # (H, W) each
    mask = butterworth_lowpass(16, 20, 0.5, 4)
    got = fn(optimised, original, mask)
    if got is None:
        return None
    expected = mix_frequencies(optimised, original, 0.5, 4)
    unshifted = torch.fft.ifft2(mask * torch.fft.fft2(optimised) + (1 - mask) * torch.fft.fft2(original)).real
    assert got.shape == expected.shape, f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
    if torch.allclose(got.real.float(), unshifted, atol=1e-4):
        raise AssertionError("the mask is centred (zero frequency in the middle): fftshift the spectrum before masking")
    error = (got.real.float() - expected).abs().max().item()
    assert error < 1e-4, f"off by up to {error:.3g}: IFFT(mask * FFT(optimised) + (1 - mask) * FFT(original)), real"
    return True


EXERCISES = {
    "latent_shape": (_latent_shape, "01"),
    "x0_from_v": (_x0_from_v, "01"),
    "aligned_attention": (_aligned_attention, "02"),
    "gaussian_weights": (_gaussian_weights, "03"),
    "one_box_loss": (_one_box_loss, "03"),
    "butterworth": (_butterworth, "04"),
    "frequency_mix": (_frequency_mix, "04"),
    "objmc": (_objmc, "06"),
}


def check(name: str, fn) -> bool:
    """Check exercise `name` with your function: True if right, False if not attempted (it still
    returns None); raises AssertionError saying what is wrong otherwise."""
    test, _ = EXERCISES[name]
    if test(fn) is None:
        print(f"Not attempted yet: fill in the function above, or load the solution with  %load solutions/{name}.py")
        return False
    print(f"Correct: {name}")
    return True


def experiment_verdict(mine: dict, unguided: dict, integrity_share: float = 0.9) -> bool:
    """The open experiment of notebook 06: do your settings move objects nearer their targets than
    SVD alone (ObjMC below the unguided row's) while keeping them whole (shape IoU at least
    `integrity_share` of the unguided row's)? `mine`, `unguided`: rows of `toy.evaluate.evaluate`.
    Prints both checks; True when both hold."""
    nearer = mine["objmc"] < unguided["objmc"]
    whole = mine["shape_iou"] >= integrity_share * unguided["shape_iou"]
    print(
        f"ObjMC {mine['objmc']:.2f} px against unguided {unguided['objmc']:.2f}: "
        f"{'nearer the targets' if nearer else 'not nearer'}\n"
        f"shape IoU {mine['shape_iou']:.3f} against unguided {unguided['shape_iou']:.3f} "
        f"(needs {integrity_share * unguided['shape_iou']:.3f}): {'whole' if whole else 'broken'}\n"
        + ("Both: a setting worth a larger N_SCENES." if nearer and whole else "Not both yet: try another setting.")
    )
    return nearer and whole
