"""With guidance off, `generate` is diffusers' own `StableVideoDiffusionPipeline.__call__`: the same
CLIP preprocessing (diffusers' antialiasing resize to 224 px from the image at its own size, then
the feature extractor), the same VAE branch (Lanczos resize, noise augmentation), the same noise,
schedule, per-frame CFG and decoder. Checked on a tiny random pipeline whose CLIP encoder takes
224 px, as SVD's does (diffusers always resizes to 224), in float32 on the CPU."""

import numpy as np
import pytest
import torch
from PIL import Image

from sgi2v_lite.config import get_preset
from sgi2v_lite.models import build_pipeline, tiny_random_pipeline
from sgi2v_lite.sampler import generate


@pytest.fixture(scope="module")
def pipe_224():
    """diffusers' tiny SVD test components, but a CLIP of 224 px in 56 px patches (16 tokens)."""
    tiny = tiny_random_pipeline()
    clip = dict(
        hidden_size=32,
        projection_dim=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=224,
        intermediate_size=37,
        patch_size=56,
    )
    return build_pipeline(dict(tiny.unet.config), dict(tiny.vae.config), clip, seed=0)


@pytest.fixture
def photo():
    """An image that is not the generation size (80 x 48 -> 64 x 64), so both resizes matter."""
    y, x = np.mgrid[0:48, 0:80]
    rgb = np.stack([x * 3, y * 5, (x * y) % 256], -1).astype(np.uint8)
    rgb[10:30, 20:44] = (230, 30, 30)
    return Image.fromarray(rgb)


@pytest.mark.parametrize("max_guidance_scale", [3.0, 1.0])  # with and without CFG
def test_unguided_generate_is_diffusers_pipeline(pipe_224, photo, max_guidance_scale):
    config = get_preset("toy").replace(
        height=64,
        width=64,
        num_frames=4,
        num_inference_steps=5,
        optimised_steps=(),
        guidance=False,
        seed=3,
        max_guidance_scale=max_guidance_scale,
        decode_chunk_size=2,
        motion_bucket_id=100,
        fps=6,
    )
    ours = generate(pipe_224, photo, None, config, progress=False)

    def theirs(output_type):
        return pipe_224(
            photo,
            height=64,
            width=64,
            num_frames=4,
            num_inference_steps=5,
            min_guidance_scale=1.0,
            max_guidance_scale=max_guidance_scale,
            fps=6,
            motion_bucket_id=100,
            noise_aug_strength=0.02,
            decode_chunk_size=2,
            generator=torch.Generator().manual_seed(3),
            output_type=output_type,
        ).frames

    # Latents: the same computation in the same order, so equal to float32 rounding. The
    # tolerance is 1e-5 of the latent's scale (a different resize or noise draw moves it by > 1e-2).
    latents = theirs("latent")
    scale = float(latents.abs().max())
    torch.testing.assert_close(ours.latents, latents, rtol=0, atol=1e-5 * scale)
    # Frames: diffusers' float frames in [0, 1], rounded to uint8 as the package writes them.
    frames = np.asarray(theirs("np"))[0]  # (F, H, W, 3)
    assert np.abs(ours.frames.astype(int) - np.round(frames * 255).astype(int)).max() <= 1


def test_the_clip_branch_sees_the_image_at_its_own_size(pipe_224, photo):
    """The only part that differed before: the package resized the image to the generation size
    with PIL, then to 224 px with torch's antialiased bicubic. diffusers resizes the original image
    straight to 224 px with its own Gaussian antialiasing; the embeddings must match it exactly."""
    from sgi2v_lite.sampler import clip_embedding, image_to_tensor

    ours = clip_embedding(pipe_224, image_to_tensor(photo))
    theirs = pipe_224._encode_image(photo, "cpu", 1, False)  # diffusers' own CLIP branch (test only)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
