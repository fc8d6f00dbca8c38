import numpy as np
import pytest
import torch

from sgi2v_lite.config import PRESETS, SVD_FEATURE_LAYERS, get_preset, scaled_steps
from sgi2v_lite.errors import InputError
from sgi2v_lite.frequency import mix_frequencies
from sgi2v_lite.sampler import generate, guidance_scales


def run(pipe, image, tracks, config, **kwargs):
    return generate(pipe, image, tracks, config, progress=False, **kwargs)


def test_same_seed_same_frames(tiny_pipe, tiny_image, tiny_tracks, tiny_config):
    first = run(tiny_pipe, tiny_image, tiny_tracks, tiny_config)
    second = run(tiny_pipe, tiny_image, tiny_tracks, tiny_config)
    assert first.frames.shape == (4, 32, 32, 3) and first.frames.dtype == np.uint8
    np.testing.assert_array_equal(first.frames, second.frames)
    other_seed = run(tiny_pipe, tiny_image, tiny_tracks, tiny_config.replace(seed=1))
    assert not np.array_equal(first.frames, other_seed.frames)


def test_guidance_changes_the_video_and_no_guidance_is_plain_svd(tiny_pipe, tiny_image, tiny_tracks, tiny_config):
    guided = run(tiny_pipe, tiny_image, tiny_tracks, tiny_config)
    unguided = run(tiny_pipe, tiny_image, tiny_tracks, tiny_config.replace(guidance=False))
    no_tracks = run(tiny_pipe, tiny_image, None, tiny_config)
    zero_iterations = run(tiny_pipe, tiny_image, tiny_tracks, tiny_config.replace(iterations=0))
    assert not torch.equal(guided.latents, unguided.latents)
    torch.testing.assert_close(unguided.latents, no_tracks.latents)
    torch.testing.assert_close(unguided.latents, zero_iterations.latents)


def test_callback_sees_every_step_and_the_optimisation(tiny_pipe, tiny_image, tiny_tracks, tiny_config):
    steps = []
    run(tiny_pipe, tiny_image, tiny_tracks, tiny_config, callback=steps.append)
    assert [s["step"] for s in steps] == [0, 1, 2, 3]
    assert [s["optimised"] for s in steps] == [False, True, True, False]
    first = steps[1]
    assert len(first["losses"]) == tiny_config.iterations
    assert first["losses"][-1] < first["losses"][0]  # AdamW lowers the loss
    assert set(first["features"]) == set(tiny_config.feature_layers or first["features"])
    assert first["latents_optimised"].shape == first["latents"].shape == (1, 4, 4, 16, 16)
    # the mix keeps the optimised latent's low frequencies and the original's high ones
    expected = mix_frequencies(first["latents_optimised"], first["latents"], 0.5, 4)
    torch.testing.assert_close(first["latents_mixed"], expected)
    # the scheduler starts from the mixed latent: the sigma of step i is the scheduler's
    assert steps[0]["sigma"] > steps[1]["sigma"] > steps[3]["sigma"] > 0


def test_frequency_mix_can_be_switched_off(tiny_pipe, tiny_image, tiny_tracks, tiny_config):
    steps = []
    run(tiny_pipe, tiny_image, tiny_tracks, tiny_config.replace(frequency_mix=False), callback=steps.append)
    assert torch.equal(steps[1]["latents_mixed"], steps[1]["latents_optimised"])


def test_naive_features_and_record_step_features(tiny_pipe, tiny_image, tiny_tracks, tiny_config):
    steps = []
    naive = run(
        tiny_pipe,
        tiny_image,
        tiny_tracks,
        tiny_config.replace(feature_kind="naive"),
        callback=steps.append,
        record_step_features=True,
    )
    aligned = run(tiny_pipe, tiny_image, tiny_tracks, tiny_config)
    assert not torch.equal(naive.latents, aligned.latents)
    assert all(set(s["step_features"]) == set(steps[1]["features"]) for s in steps)


def test_boxes_are_rescaled_to_the_generation_size(tiny_pipe, tiny_tracks, tiny_config):
    from PIL import Image

    # an image of another size and aspect: the tracks are in its pixels, the video is 32 x 32
    tracks = tiny_tracks.rescaled((200, 100))
    result = run(tiny_pipe, Image.new("L", (200, 100), 128), tracks, tiny_config)
    assert result.frames.shape[1:3] == (32, 32)
    np.testing.assert_allclose(result.boxes_px[0, 0], [4, 4, 12, 12])
    np.testing.assert_allclose(result.boxes_px[1], np.tile([20, 20, 28, 28], (4, 1)))  # the anchor stays


def test_per_frame_guidance_scale_is_linear():
    config = get_preset("reference")
    scales = guidance_scales(config, "cpu", torch.float32).flatten()
    torch.testing.assert_close(scales, torch.linspace(1.0, 3.0, 14))


def test_presets():
    reference = PRESETS["reference"]
    assert (reference.height, reference.width, reference.num_frames, reference.num_inference_steps) == (
        576,
        1024,
        14,
        50,
    )
    assert reference.optimised_steps == tuple(range(5, 21)) and reference.iterations == 5
    assert (reference.learning_rate, reference.weight_decay) == (0.21, 0.01)
    assert reference.feature_layers == SVD_FEATURE_LAYERS
    assert (reference.lowpass_cutoff, reference.lowpass_order, reference.seed) == (0.5, 4, 817)
    assert (reference.fps, reference.motion_bucket_id, reference.noise_aug_strength) == (7, 127, 0.02)
    assert scaled_steps(5, 20, 50, 25) == tuple(range(2, 11))
    for preset in PRESETS.values():
        preset.replace(height=preset.height or 64, width=preset.width or 64).validate()
    with pytest.raises(InputError, match="unknown preset"):
        get_preset("fast")


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(num_inference_steps=0), "'num_inference_steps' must be a positive integer"),
        (dict(num_frames=0), "'num_frames' must be a positive integer"),
        (dict(height=100), "'height' must be a multiple of 64"),
        (dict(width=-64), "'width' must be a positive integer"),
        (dict(optimised_steps=(3, 60)), "optimised steps [60] lie outside"),
        (dict(feature_kind="plain"), "'feature_kind' must be"),
        (dict(learning_rate_scaling="linear"), "'learning_rate_scaling' must be 'constant' or 'sigma'"),
    ],
)
def test_bad_settings_are_named(change, message):
    with pytest.raises(InputError) as err:
        get_preset("reference").replace(**change).validate()
    assert message in str(err.value)


def test_unknown_setting():
    with pytest.raises(InputError, match="unknown setting"):
        get_preset("toy").replace(learnig_rate=1)


def test_a_track_whose_box_leaves_the_generation_frame_is_an_error(tiny_pipe, tiny_image, tiny_config):
    from sgi2v_lite.tracks import Track, Tracks

    outside = Tracks((64, 64), [Track(box=(70, 70, 80, 80), path=[(75, 75), (90, 90)])])
    with pytest.raises(InputError, match="no track's first box overlaps"):
        run(tiny_pipe, tiny_image, outside, tiny_config)


def test_settings_from_strings():
    config = get_preset("reference").with_settings(
        ["learning_rate=0.5", "frequency_mix=false", "optimised_steps=[2,3]", "feature_kind=naive", "iterations=3"]
    )
    assert (config.learning_rate, config.frequency_mix, config.optimised_steps) == (0.5, False, (2, 3))
    assert (config.feature_kind, config.iterations) == ("naive", 3)
    with pytest.raises(InputError, match="expected an integer like 3"):
        config.with_settings(["iterations=2.5"])


def test_gradient_checkpointing_gives_the_same_optimisation(tiny_pipe, tiny_image, tiny_tracks, tiny_config):
    """Checkpointing re-runs the hooked layers during backward; the result must not change."""
    steps_plain, steps_checkpointed = [], []
    plain = run(tiny_pipe, tiny_image, tiny_tracks, tiny_config, callback=steps_plain.append)
    checkpointed = run(
        tiny_pipe,
        tiny_image,
        tiny_tracks,
        tiny_config.replace(gradient_checkpointing=True),
        callback=steps_checkpointed.append,
    )
    tiny_pipe.unet.disable_gradient_checkpointing()
    assert steps_checkpointed[1]["losses"] == pytest.approx(steps_plain[1]["losses"], rel=1e-5)
    torch.testing.assert_close(checkpointed.latents, plain.latents, rtol=1e-4, atol=1e-4)


def test_first_frame_can_be_held_fixed(tiny_pipe, tiny_image, tiny_tracks, tiny_config):
    """optimise_first_frame=False: frame 0's latent (the anchor) leaves the optimisation unchanged,
    the other frames still move; by default all frames move (the paper)."""
    held, free = [], []
    config = tiny_config.replace(weight_decay=0.0)  # only the loss's gradient moves the latent
    run(tiny_pipe, tiny_image, tiny_tracks, config.replace(optimise_first_frame=False), callback=held.append)
    run(tiny_pipe, tiny_image, tiny_tracks, config.replace(optimise_first_frame=True), callback=free.append)
    for steps in (held, free):
        assert steps[1]["latents_optimised"].shape == steps[1]["latents"].shape
    torch.testing.assert_close(held[1]["latents_optimised"][:, 0], held[1]["latents"][:, 0], rtol=0, atol=0)
    assert not torch.equal(held[1]["latents_optimised"][:, 1:], held[1]["latents"][:, 1:])
    assert not torch.equal(free[1]["latents_optimised"][:, 0], free[1]["latents"][:, 0])


@pytest.mark.parametrize("scaling", ["constant", "sigma"])
def test_learning_rate_scaling(tiny_pipe, tiny_image, tiny_tracks, tiny_config, scaling):
    """Adam's first step moves each element with a gradient by about the learning rate (|m / sqrt(v)| = 1):
    learning_rate itself ("constant"), or learning_rate x the step's sigma ("sigma")."""
    lr = {"constant": 1.0, "sigma": 0.01}[scaling]  # moves far above float32's resolution at |z| ~ 1000
    config = tiny_config.replace(iterations=1, weight_decay=0.0, learning_rate=lr, learning_rate_scaling=scaling)
    steps = []
    run(tiny_pipe, tiny_image, tiny_tracks, config, callback=steps.append)
    for info in (steps[1], steps[2]):
        moved = (info["latents_optimised"] - info["latents"]).abs().max().item()
        expected = lr * (info["sigma"] if scaling == "sigma" else 1.0)
        assert moved == pytest.approx(expected, rel=0.03)  # below lr where |grad| nears Adam's eps (1e-8)
    assert steps[1]["sigma"] > 2 * steps[2]["sigma"]  # so the two scalings are told apart


def test_a_weight_decay_that_would_flip_the_latent_is_refused(tiny_pipe, tiny_image, tiny_tracks, tiny_config):
    """AdamW multiplies the latent by (1 - lr x wd) per iteration: at lr x wd >= 1 the video would be
    silently wrong, so the sampler names the step and the product before it starts."""
    from sgi2v_lite.errors import InputError

    config = tiny_config.replace(learning_rate=150.0, learning_rate_scaling="constant", weight_decay=0.01)
    with pytest.raises(
        InputError, match=r"optimised step 1 \(sigma [0-9.]+\): learning rate 150 x weight_decay 0.01 = 1.50"
    ):
        run(tiny_pipe, tiny_image, tiny_tracks, config)
    run(tiny_pipe, tiny_image, tiny_tracks, config.replace(weight_decay=0.005))  # 0.75: allowed
    run(tiny_pipe, tiny_image, tiny_tracks, config.replace(iterations=0))  # nothing optimised: nothing to refuse


def test_a_step_with_no_box_to_follow_leaves_the_latent_alone(tiny_pipe, tiny_image, tiny_config):
    """Every later box has left the image: the loss is constant, and as in the reference no AdamW
    step is taken (its weight decay alone would otherwise shrink the latent)."""
    from sgi2v_lite.tracks import parse_tracks

    gone = parse_tracks({"image_size": [64, 64], "tracks": [{"box": [8, 8, 24, 24], "path": [[16, 16], [1000, 16]]}]})
    steps = []
    run(tiny_pipe, tiny_image, gone, tiny_config.replace(weight_decay=0.1), callback=steps.append)
    optimised = [s for s in steps if s["optimised"]]
    assert optimised and all(s["losses"] == [0.0] * tiny_config.iterations for s in optimised)
    for s in optimised:
        torch.testing.assert_close(s["latents_optimised"], s["latents"], rtol=0, atol=0)


def test_heatmap_sigma_is_a_setting(tiny_pipe, tiny_image, tiny_tracks, tiny_config):
    wide, default = [], []
    run(tiny_pipe, tiny_image, tiny_tracks, tiny_config.replace(heatmap_sigma=2.0), callback=wide.append)
    run(tiny_pipe, tiny_image, tiny_tracks, tiny_config, callback=default.append)
    assert wide[1]["losses"][0] != default[1]["losses"][0]
    with pytest.raises(InputError, match="heatmap_sigma"):
        tiny_config.replace(heatmap_sigma=0.0).validate(size_multiple=8)
