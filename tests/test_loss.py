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


def test_gaussian_peak_is_1_for_even_sizes_too():
    # an even side has no centre cell: the reference divides by the maximum, so the middle cells get 1
    torch.testing.assert_close(gaussian_weights(2, 2), torch.ones(2, 2))
    weights = gaussian_weights(4, 6)
    assert weights.max() == 1 and weights[1:3, 2:4].eq(1).all()
    # the shape is the Gaussian's: one cell further out of a 6-wide box, sigma_x = 0.4 * 3
    assert math.isclose(float(weights[1, 4]), math.exp((0.5**2 - 1.5**2) / (2 * 1.2**2)), rel_tol=1e-6)
    # heatmap_sigma widens it
    assert gaussian_weights(5, 5, sigma=0.8)[2, 0] > gaussian_weights(5, 5)[2, 0]


def test_boxes_of_different_sizes_weigh_by_peak_1_weights():
    """A 2 x 2 box (error 1 everywhere) beside a 1 x 1 box (error 4): every cell of both has weight
    1, so L = (4 x 1 + 1 x 4) / (4 + 1) = 1.6. With peaks of 0.46^2 for the 2 x 2 box (the package
    before) it came to 2.62."""
    features = torch.zeros(2, 1, 6, 6)
    features[1, 0, 2:4, 2:4] = 1.0  # frame 1 inside box A: error 1
    features[1, 0, 5, 5] = 2.0  # frame 1 inside box B: error 4
    cells = np.array([[[0, 0, 2, 2], [2, 2, 4, 4]], [[4, 0, 5, 1], [5, 5, 6, 6]]])
    assert math.isclose(float(box_loss(features, cells, np.ones((2, 2), bool))), 1.6, rel_tol=1e-6)


def test_a_box_leaving_at_the_right_is_cropped_not_squeezed():
    """Grid 4 cells wide. Frame 0's box holds [5, 6, 7]; at frame 1 the 3-wide box starts at column
    2, so only its first two cells are on the grid, holding [6, 6]. The whole-box target [5, 6, 7]
    is cropped to [5, 6] (errors 1, 0) and so are the whole box's weights [e, 1, e]: the loss is
    (e x 1 + 1 x 0) / (e + 1). Squeezing the target into two cells (the package before) compared
    [6, 6] with [5.25, 6.75]."""
    features = torch.zeros(2, 1, 1, 4)
    features[0, 0, 0, 0:3] = torch.tensor([5.0, 6.0, 7.0])
    features[1, 0, 0, 2:4] = torch.tensor([6.0, 6.0])
    cells = np.array([[[0, 0, 3, 1], [2, 0, 5, 1]]])
    edge = math.exp(-1 / (2 * 0.6**2))
    expected = (edge * 1 + 1.0 * 0) / (edge + 1)
    assert math.isclose(float(box_loss(features, cells, np.ones((1, 2), bool))), expected, rel_tol=1e-6)


def test_a_box_leaving_at_the_top_left_keeps_its_whole_box_weights():
    # a 4 x 4 box at (-2, -2): its bottom-right quarter is visible, with the whole box's weights
    features = torch.randn(2, 3, 6, 6)
    cells = np.array([[[1, 1, 5, 5], [-2, -2, 2, 2]]])
    target = features[0, :, 1:5, 1:5]
    error = ((features[1, :, 0:2, 0:2] - target[:, 2:4, 2:4]) ** 2).mean(0)
    weights = gaussian_weights(4, 4)[2:4, 2:4]
    torch.testing.assert_close(
        box_loss(features, cells, np.ones((1, 2), bool)), (weights * error).sum() / weights.sum()
    )


def test_has_targets_needs_frame0_and_a_later_frame():
    from sgi2v_lite.loss import has_targets

    assert has_targets(np.array([[True, False, True]]))
    assert not has_targets(np.array([[True, False, False], [False, True, True]]))
    assert not has_targets(np.zeros((0, 3), bool))
