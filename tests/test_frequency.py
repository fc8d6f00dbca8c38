import math

import pytest
import torch

from sgi2v_lite.frequency import butterworth_lowpass, mix_frequencies, split_frequencies


def test_butterworth_is_one_at_the_centre_and_half_at_the_cutoff():
    mask = butterworth_lowpass(72, 128, cutoff=0.5, order=4)
    assert mask.shape == (72, 128)
    assert mask[36, 64] == 1  # d = 0: the zero frequency after fftshift
    # d = 0.5 along the width: 2w/W - 1 = 0.5 -> w = 96
    assert math.isclose(float(mask[36, 96]), 0.5, rel_tol=1e-6)
    assert math.isclose(float(mask[18, 64]), 0.5, rel_tol=1e-6)  # and along the height: h = 18
    assert float(mask[0, 0]) < 0.01  # the corners (highest frequencies) are cut


def test_higher_order_is_sharper():
    soft, sharp = butterworth_lowpass(64, 64, 0.5, 1), butterworth_lowpass(64, 64, 0.5, 8)
    assert sharp[32, 40] > soft[32, 40] and sharp[32, 60] < soft[32, 60]


def test_mix_with_zero_cutoff_returns_the_original():
    optimised, original = torch.randn(1, 3, 4, 16, 24), torch.randn(1, 3, 4, 16, 24)
    torch.testing.assert_close(mix_frequencies(optimised, original, cutoff=0.0), original, atol=1e-5, rtol=1e-5)


def test_mix_tends_to_the_optimised_latent_as_the_cutoff_grows():
    optimised, original = torch.randn(2, 4, 16, 24), torch.randn(2, 4, 16, 24)
    distances = [float((mix_frequencies(optimised, original, c) - optimised).norm()) for c in (0.25, 0.5, 1, 2, 50)]
    assert all(a > b for a, b in zip(distances, distances[1:]))
    torch.testing.assert_close(mix_frequencies(optimised, original, cutoff=50.0), optimised, atol=1e-4, rtol=1e-4)


def test_mix_keeps_low_frequencies_of_one_and_high_of_the_other():
    h = w = 32
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    smooth = torch.cos(2 * math.pi * x / w)[None].float()  # lowest frequency
    checker = ((-1.0) ** (x + y))[None].float()  # highest frequency
    mixed = mix_frequencies(optimised=smooth, original=checker, cutoff=0.5)
    torch.testing.assert_close(mixed, smooth + checker, atol=1e-3, rtol=1e-3)
    mixed = mix_frequencies(optimised=checker, original=smooth, cutoff=0.5)
    assert mixed.abs().max() < 1e-2  # both discarded


def test_split_is_exact_and_spatial_only():
    latent = torch.randn(1, 5, 4, 12, 20)
    low, high = split_frequencies(latent, butterworth_lowpass(12, 20))
    torch.testing.assert_close(low + high, latent)
    # frames are filtered independently: changing frame 3 leaves frame 0's low part unchanged
    other = latent.clone()
    other[:, 3] += 10 * torch.randn(4, 12, 20)
    low_other, _ = split_frequencies(other, butterworth_lowpass(12, 20))
    torch.testing.assert_close(low_other[:, 0], low[:, 0])


def test_bad_arguments():
    with pytest.raises(ValueError, match="cutoff"):
        butterworth_lowpass(8, 8, cutoff=-1)
    with pytest.raises(ValueError, match="shapes differ"):
        mix_frequencies(torch.zeros(1, 4, 4), torch.zeros(1, 4, 5))
