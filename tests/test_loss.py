import math

import numpy as np
import torch

from sgi2v_lite.loss import box_loss, feature_map, gaussian_weights


def test_gaussian_weights_peak_and_width():
    weights = gaussian_weights(5, 9)
    assert weights.shape == (5, 9)
    assert weights[2, 4] == 1 and weights.max() == 1
    # one column from the centre of a 9-wide box: sigma_x = 0.4 * 4.5 = 1.8
    assert math.isclose(float(weights[2, 5]), math.exp(-1 / (2 * 1.8**2)), rel_tol=1e-6)
    assert math.isclose(float(weights[3, 4]), math.exp(-1 / (2 * 1.0**2)), rel_tol=1e-6)  # sigma_y = 0.4 * 2.5
    assert torch.equal(gaussian_weights(1, 1), torch.ones(1, 1))


def test_loss_is_zero_for_identical_frames():
    features = torch.randn(1, 6, 8, 8).repeat(4, 1, 1, 1)
    cells = np.array([[[1, 1, 4, 5]] * 4, [[3, 2, 8, 8]] * 4])
    assert box_loss(features, cells, np.ones((2, 4), bool)) == 0


def test_loss_is_zero_when_content_follows_the_box():
    frame0 = torch.randn(6, 8, 8)
    features = torch.stack([torch.roll(frame0, shifts=(k, 2 * k), dims=(1, 2)) for k in range(3)])
    cells = np.array([[[0, 0, 3, 3], [2, 1, 5, 4], [4, 2, 7, 5]]])  # moves (+2, +1) cells a frame
    assert box_loss(features, cells, np.ones((1, 3), bool)) < 1e-12
    # ...and positive when the box moves but the content does not
    assert box_loss(features[:1].repeat(3, 1, 1, 1), cells, np.ones((1, 3), bool)) > 0.1


def test_loss_matches_a_hand_computed_case():
    features = torch.zeros(2, 1, 4, 4)
    features[0, 0, 0, 0:3] = torch.tensor([5.0, 6.0, 7.0])  # target: box (0, 0, 3, 1) at frame 0
    features[1, 0, 2, 1:4] = torch.tensor([6.0, 6.0, 9.0])  # box (1, 2, 4, 3) at frame 1
    cells = np.array([[[0, 0, 3, 1], [1, 2, 4, 3]]])
    # squared errors [1, 0, 4]; a 3-wide box has sigma_x = 0.4 * 1.5 = 0.6, so edge weights e^(-1/0.72)
    edge = math.exp(-1 / (2 * 0.6**2))
    expected = (edge * 1 + 1.0 * 0 + edge * 4) / (2 * edge + 1)
    assert math.isclose(float(box_loss(features, cells, np.ones((1, 2), bool))), expected, rel_tol=1e-6)


def test_error_is_averaged_over_channels():
    features = torch.zeros(2, 2, 4, 4)
    features[1, 0], features[1, 1] = 1.0, 3.0
    cells = np.array([[[0, 0, 2, 2], [0, 0, 2, 2]]])
    assert math.isclose(float(box_loss(features, cells, np.ones((1, 2), bool))), (1 + 9) / 2)


def test_invalid_frames_are_skipped_and_clipped_boxes_resized():
    features = torch.randn(3, 4, 8, 8)
    cells = np.array([[[0, 0, 4, 4], [4, 4, 8, 8], [6, 6, 8, 8]]])  # frame 2 clipped to 2 x 2
    only_frame_1 = box_loss(features, cells, np.array([[True, True, False]]))
    assert torch.isfinite(only_frame_1)
    target = features[0, :, 0:4, 0:4]
    error = ((features[1, :, 4:8, 4:8] - target) ** 2).mean(0)
    weights = gaussian_weights(4, 4)
    torch.testing.assert_close(only_frame_1, (weights * error).sum() / weights.sum())
    assert torch.isfinite(box_loss(features, cells, np.ones((1, 3), bool)))
    # nothing valid after frame 0: zero, still differentiable
    features.requires_grad_(True)
    nothing = box_loss(features, cells, np.array([[True, False, False]]))
    assert nothing == 0 and nothing.requires_grad


def test_gradient_flows_to_frames_after_0_only():
    features = torch.randn(3, 2, 6, 6, requires_grad=True)
    cells = np.array([[[0, 0, 3, 3], [1, 1, 4, 4], [2, 2, 5, 5]]])
    box_loss(features, cells, np.ones((1, 3), bool)).backward()
    assert features.grad[0].abs().sum() == 0  # the target is detached
    assert features.grad[1].abs().sum() > 0 and features.grad[2].abs().sum() > 0


def test_feature_map_upsamples_and_concatenates():
    features = {"a": torch.randn(3, 5, 4, 8), "b": torch.randn(3, 7, 2, 4)}
    fmap = feature_map(features, (8, 16))
    assert fmap.shape == (3, 12, 8, 16)
    # a constant layer stays constant after bilinear upsampling
    const = feature_map({"c": torch.full((2, 1, 3, 3), 2.5)}, (9, 9))
    assert torch.allclose(const, torch.full_like(const, 2.5))
