"""probe: features of a known video, PCA pictures, nearest-neighbour correspondence; and the
sampler pieces the notebooks call by hand (prepare, the x0 estimate in the callback)."""

import math

import numpy as np
import pytest
import torch

from sgi2v_lite import probe
from sgi2v_lite.sampler import generate, prepare


def test_pca_uses_one_basis_for_all_frames():
    # frame 1 is frame 0 shifted by 2 columns: with one basis the same token gets the same colour
    torch.manual_seed(0)
    frame0 = torch.randn(16, 6, 6)
    frame1 = torch.roll(frame0, shifts=2, dims=-1)
    colours = probe.pca_rgb(torch.stack([frame0, frame1]))
    assert colours.shape == (2, 6, 6, 3) and colours.min() >= 0 and colours.max() <= 1
    np.testing.assert_allclose(np.roll(colours[0], 2, axis=1), colours[1], atol=1e-5)


def test_match_object_recovers_a_known_shift():
    torch.manual_seed(0)
    base = torch.randn(8, 12, 12)
    frames = torch.stack(
        [base, torch.roll(base, shifts=(1, 3), dims=(-2, -1)), torch.roll(base, shifts=(-2, 0), dims=(-2, -1))]
    )
    displacement = probe.match_object(frames, (3, 3, 7, 7))  # (F, 2) cells, (x, y)
    np.testing.assert_array_equal(displacement, [[0, 0], [3, 1], [0, -2]])


def test_tracking_error_is_zero_for_features_that_move_with_the_object():
    torch.manual_seed(0)
    base = torch.randn(8, 16, 16)
    features = {"layer": torch.stack([torch.roll(base, shifts=2 * f, dims=-1) for f in range(3)])}
    cell = 4
    boxes = np.array([[16 + 8 * f, 16, 40 + 8 * f, 40] for f in range(3)], dtype=float)  # 2 cells a frame
    np.testing.assert_allclose(probe.tracking_error(features, boxes, cell, (16, 16)), [0, 0])
    wrong = boxes.copy()
    wrong[:, [0, 2]] = boxes[0, [0, 2]]  # ground truth says "still": an error of 8 and 16 px
    np.testing.assert_allclose(probe.tracking_error(features, wrong, cell, (16, 16)), [8, 16])


def test_video_features_differ_by_kind_except_at_frame_0(tiny_pipe, tiny_config):
    rng = np.random.default_rng(1)
    video = rng.uniform(0, 255, (3, 32, 32, 3)).astype(np.uint8)
    features = probe.video_features(tiny_pipe, video, 1, tiny_config)
    assert set(features) == {"naive", "aligned"}
    name = next(iter(features["aligned"]))
    assert features["aligned"][name].shape[0] == 3
    torch.testing.assert_close(features["aligned"][name][0], features["naive"][name][0], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(features["aligned"][name][1], features["naive"][name][1], atol=1e-3)


def test_run_features_keep_the_chosen_steps_and_the_same_video(tiny_pipe, tiny_image, tiny_tracks, tiny_config):
    from sgi2v_lite.attention import spatial_self_attention_layers

    layers = spatial_self_attention_layers(tiny_pipe.unet)
    config = tiny_config.replace(guidance=False)
    frames, features = probe.run_features(tiny_pipe, tiny_image, None, config, steps=[0, 2], layers=layers)
    plain = generate(tiny_pipe, tiny_image, None, config, progress=False)
    np.testing.assert_array_equal(frames, plain.frames)  # recording does not change the video
    assert set(features) == {"naive", "aligned"} and sorted(features["aligned"]) == [0, 2]
    assert set(features["aligned"][0]) == set(layers) and all(
        f.dtype == torch.float16 for f in features["aligned"][0].values()
    )
    # a guided run: its video is the guided one, and at an optimised step its features differ from
    # the unguided run's (the optimisation changed the latent they come from); before it they agree
    guided_frames, guided = probe.run_features(tiny_pipe, tiny_image, tiny_tracks, tiny_config, steps=[0, 2])
    np.testing.assert_array_equal(
        guided_frames, generate(tiny_pipe, tiny_image, tiny_tracks, tiny_config, progress=False).frames
    )
    layer = next(iter(guided["aligned"][0]))  # the run's own feature layer
    assert 0 not in tiny_config.optimised_steps and 2 in tiny_config.optimised_steps
    torch.testing.assert_close(guided["aligned"][0][layer], features["aligned"][0][layer])
    assert (guided["aligned"][2][layer].float() - features["aligned"][2][layer].float()).abs().max() > 1e-3


def test_loss_features_are_what_the_optimisation_sees(tiny_pipe, tiny_image, tiny_tracks, tiny_config):
    from sgi2v_lite.loss import box_loss, feature_map

    losses = {}
    entering = {}

    def keep(info):
        entering[info["step"]] = info["latents"]
        if info["optimised"]:
            losses[info["step"]] = info["losses"][0]

    generate(tiny_pipe, tiny_image, tiny_tracks, tiny_config, callback=keep, progress=False)
    run = prepare(tiny_pipe, tiny_image, tiny_tracks, tiny_config)
    step = tiny_config.optimised_steps[0]
    features = feature_map(probe.loss_features(tiny_pipe, run, entering[step], step), run.latent_hw)
    # the first iteration's loss at the first optimised step is the loss of the entering latent
    assert box_loss(features, run.box_cells, run.valid).item() == pytest.approx(losses[step], rel=1e-4)


def test_callback_gives_the_x0_estimate(tiny_pipe, tiny_image, tiny_config):
    steps = []
    generate(tiny_pipe, tiny_image, None, tiny_config.replace(guidance=False), callback=steps.append, progress=False)
    for info in steps:
        sigma = info["sigma"]
        expected = info["latents"] / (sigma**2 + 1) - sigma / math.sqrt(sigma**2 + 1) * info["noise_pred"]
        torch.testing.assert_close(info["denoised"], expected, atol=1e-4, rtol=1e-4)


def test_prepare_is_generate_steps_1_to_4(tiny_pipe, tiny_image, tiny_tracks, tiny_config):
    run = prepare(tiny_pipe, tiny_image, tiny_tracks, tiny_config)
    assert run.guided and run.config.height == 32 and run.box_cells.shape == (2, run.config.num_frames, 4)
    first = []
    generate(tiny_pipe, tiny_image, tiny_tracks, tiny_config, callback=first.append, progress=False)
    torch.testing.assert_close(first[0]["latents"], run.latents)  # the same initial noise
    assert not prepare(tiny_pipe, tiny_image, None, tiny_config).guided


def test_feature_bytes_is_what_run_features_keeps(tiny_pipe, tiny_image, tiny_config):
    from sgi2v_lite.attention import spatial_self_attention_layers

    layers = spatial_self_attention_layers(tiny_pipe.unet)
    from sgi2v_lite.sampler import resolve_config

    config = resolve_config(tiny_pipe, tiny_config.replace(height=48, width=80))  # a grid that is not square
    _, kept = probe.run_features(tiny_pipe, tiny_image, None, config, steps=[1], layers=layers)
    for kind in probe.KINDS:
        stored = sum(f.numel() * f.element_size() for f in kept[kind][1].values())
        latent_hw = (48 // tiny_pipe.vae_scale_factor, 80 // tiny_pipe.vae_scale_factor)
        assert probe.feature_bytes(tiny_pipe.unet, layers, config.num_frames, latent_hw) == stored


def test_a_step_of_svds_features_takes_1_4_gb_at_576_by_1024():
    """Notebook 02's figure: all 16 spatial self-attention layers, 14 frames, both kinds, float16."""
    from diffusers import UNetSpatioTemporalConditionModel

    from sgi2v_lite.attention import spatial_self_attention_layers
    from sgi2v_lite.models import SVD_UNET_CONFIG

    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel(**SVD_UNET_CONFIG)
    layers = spatial_self_attention_layers(unet)
    step = len(probe.KINDS) * probe.feature_bytes(unet, layers, 14, (72, 128))
    assert len(layers) == 16 and round(step / 2**30, 1) == 1.4


def test_steps_within_keeps_every_step_that_fits_spread_evenly():
    assert probe.steps_within(4.0, 2**20, 25, every=2) == list(range(0, 25, 2))
    # 10 steps of 1.36 GiB in 4 GiB: 2 fit, the first and the last kept step
    assert probe.steps_within(4.0, int(1.36 * 2**30), 50, every=5) == [0, 45]
    assert probe.steps_within(6.0, int(1.36 * 2**30), 50, every=5) == [0, 15, 30, 45]  # notebook 02 on SVD
    assert probe.steps_within(0.1, 2**30, 50, every=5) == [0]
