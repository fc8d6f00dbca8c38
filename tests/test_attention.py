import pytest
import torch
import torch.nn.functional as F
from conftest import unet_inputs

from sgi2v_lite.attention import (
    default_feature_layers,
    last_hooked_block,
    record_features,
    run_to_features,
    spatial_self_attention_layers,
)
from sgi2v_lite.config import SVD_FEATURE_LAYERS
from sgi2v_lite.loss import box_loss, feature_map
from sgi2v_lite.models import SVD_UNET_CONFIG

FRAMES = 3


@pytest.fixture
def unet(tiny_pipe):
    return tiny_pipe.unet


@pytest.fixture
def layers(unet):
    return default_feature_layers(unet)


def latent_hw(unet):
    return (unet.config.sample_size, unet.config.sample_size)


def test_spatial_layers_exclude_temporal_attention(unet):
    names = spatial_self_attention_layers(unet)
    assert names and all(".transformer_blocks." in n and n.endswith("attn1") for n in names)
    assert not any("temporal" in n for n in names)


@pytest.mark.parametrize("kind", ["aligned", "naive"])
def test_processor_leaves_unet_output_unchanged(unet, layers, kind):
    sample, t, kwargs = unet_inputs(unet, batch=2, frames=FRAMES)
    with torch.no_grad():
        expected = unet(sample, t, **kwargs).sample
        with record_features(unet, layers, FRAMES, latent_hw(unet), kind=kind) as recorder:
            hooked = unet(sample, t, **kwargs).sample
        assert set(recorder.features) == set(layers)
        after = unet(sample, t, **kwargs).sample
    torch.testing.assert_close(hooked, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(after, expected)  # processors restored on exit


def test_processors_are_restored_after_an_error(unet, layers):
    before = dict(unet.attn_processors)
    with pytest.raises(RuntimeError):
        with record_features(unet, layers, FRAMES, latent_hw(unet)):
            raise RuntimeError("boom")
    assert {k: type(v) for k, v in unet.attn_processors.items()} == {k: type(v) for k, v in before.items()}


def _layer_inputs(unet, layer, sample, t, kwargs):
    """The hidden states entering `layer` (B*F, h*w, C), captured with a forward pre-hook."""
    captured = {}
    module = dict(unet.named_modules())[layer]

    def capture(module, args, kwargs):
        captured.setdefault("x", args[0] if args else kwargs["hidden_states"])

    handle = module.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        with torch.no_grad():
            unet(sample, t, **kwargs)
    finally:
        handle.remove()
    return module, captured["x"]


def _heads(attn, x):
    return x.view(x.shape[0], x.shape[1], attn.heads, -1).transpose(1, 2)


def test_aligned_features_are_convex_combinations_of_frame_0_values(unet, layers):
    sample, t, kwargs = unet_inputs(unet, batch=1, frames=FRAMES)
    layer = layers[0]
    attn, hidden = _layer_inputs(unet, layer, sample, t, kwargs)
    with torch.no_grad(), record_features(unet, [layer], FRAMES, latent_hw(unet)) as recorder:
        unet(sample, t, **kwargs)
    recorded = recorder.features[layer]  # (F, C, h, w)
    query, key, value = (_heads(attn, proj(hidden)) for proj in (attn.to_q, attn.to_k, attn.to_v))
    weights = torch.softmax(query @ key[:1].transpose(-1, -2) * attn.scale, dim=-1)  # (F, heads, hw, hw)
    assert (weights >= 0).all() and torch.allclose(weights.sum(-1), torch.ones(()))
    expected = (weights @ value[:1]).transpose(1, 2).flatten(2)  # (F, hw, C): weights x frame 0's values
    torch.testing.assert_close(recorded.flatten(2).transpose(1, 2), expected, rtol=1e-4, atol=1e-5)
    # hence every channel stays inside the range of frame 0's values
    v0 = value[0].transpose(0, 1).flatten(1)  # (hw, C)
    feats = recorded.flatten(2).transpose(1, 2)  # (F, hw, C)
    assert (feats >= v0.min(0).values - 1e-5).all() and (feats <= v0.max(0).values + 1e-5).all()


def test_naive_features_are_the_layers_own_attention(unet, layers):
    sample, t, kwargs = unet_inputs(unet, batch=1, frames=FRAMES)
    layer = layers[0]
    attn, hidden = _layer_inputs(unet, layer, sample, t, kwargs)
    with torch.no_grad(), record_features(unet, [layer], FRAMES, latent_hw(unet), kind="naive") as recorder:
        unet(sample, t, **kwargs)
    query, key, value = (_heads(attn, proj(hidden)) for proj in (attn.to_q, attn.to_k, attn.to_v))
    expected = F.scaled_dot_product_attention(query, key, value).transpose(1, 2).flatten(2)
    torch.testing.assert_close(recorder.features[layer].flatten(2).transpose(1, 2), expected, rtol=1e-4, atol=1e-5)
    # frame 0 attends to itself either way, so aligned and naive agree on frame 0 only
    with torch.no_grad(), record_features(unet, [layer], FRAMES, latent_hw(unet), kind="aligned") as aligned:
        unet(sample, t, **kwargs)
    torch.testing.assert_close(aligned.features[layer][0], recorder.features[layer][0], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(aligned.features[layer][1:], recorder.features[layer][1:], atol=1e-3)


def test_with_cfg_only_the_conditional_half_is_recorded(unet, layers):
    sample, t, kwargs = unet_inputs(unet, batch=2, frames=FRAMES)
    with torch.no_grad(), record_features(unet, layers, FRAMES, latent_hw(unet)) as both:
        unet(sample, t, **kwargs)
    cond_kwargs = {k: v[1:] for k, v in kwargs.items()}
    with torch.no_grad(), record_features(unet, layers, FRAMES, latent_hw(unet)) as cond:
        unet(sample[1:], t, **cond_kwargs)
    for layer in layers:
        assert both.features[layer].shape[0] == FRAMES
        torch.testing.assert_close(both.features[layer], cond.features[layer], rtol=1e-4, atol=1e-5)


def _loss_and_grad(unet, layers, stop_early, kind="aligned"):
    sample, t, kwargs = unet_inputs(unet, batch=1, frames=FRAMES)
    sample.requires_grad_(True)
    size = latent_hw(unet)
    with record_features(unet, layers, FRAMES, size, kind=kind, stop_early=stop_early) as recorder:
        features = run_to_features(unet, recorder, sample, t, **kwargs)
        box_cells = torch.tensor([[[4, 4, 12, 12], [8, 6, 16, 14], [12, 8, 20, 16]]]).numpy()
        valid = box_cells[..., 0] >= 0
        loss = box_loss(feature_map(features, size), box_cells, valid)
        loss.backward()
    return features, loss.detach(), sample.grad


def test_gradients_reach_the_latent(unet, layers):
    _, loss, grad = _loss_and_grad(unet, layers, stop_early=True)
    assert loss > 0 and grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    # the latent channels (first 4 of 8) of every frame receive a gradient
    assert (grad[0, :, :4].abs().flatten(1).sum(1) > 0).all()


def test_truncated_forward_equals_full_forward(unet, layers):
    full_features, full_loss, full_grad = _loss_and_grad(unet, layers, stop_early=False)
    cut_features, cut_loss, cut_grad = _loss_and_grad(unet, layers, stop_early=True)
    for layer in layers:
        torch.testing.assert_close(cut_features[layer], full_features[layer])
    torch.testing.assert_close(cut_loss, full_loss)
    torch.testing.assert_close(cut_grad, full_grad)


def test_truncated_forward_really_stops(unet, layers):
    """The last up block's later modules never run when the forward stops early."""
    calls = []
    handle = unet.conv_out.register_forward_hook(lambda *a: calls.append(1))
    sample, t, kwargs = unet_inputs(unet, frames=FRAMES)
    with torch.no_grad(), record_features(unet, layers, FRAMES, latent_hw(unet), stop_early=True) as recorder:
        run_to_features(unet, recorder, sample, t, **kwargs)
    handle.remove()
    assert calls == [] and set(recorder.features) == set(layers)


def test_unknown_layer_names_list_the_available_ones(unet):
    with pytest.raises(ValueError, match="available: down_blocks.0"):
        with record_features(unet, ["up_blocks.9.attn1"], FRAMES, latent_hw(unet)):
            pass
    temporal = [n for n, _ in unet.named_modules() if n.endswith("temporal_transformer_blocks.0.attn1")][0]
    with pytest.raises(ValueError, match="not a spatial self-attention layer"):
        with record_features(unet, [temporal], FRAMES, latent_hw(unet)):
            pass


def test_full_size_svd_unet_has_the_reference_layers():
    """SVD's published UNet config, built on the meta device (no memory, no download)."""
    from accelerate import init_empty_weights
    from diffusers import UNetSpatioTemporalConditionModel

    with init_empty_weights():
        svd_unet = UNetSpatioTemporalConditionModel(**SVD_UNET_CONFIG)
    available = spatial_self_attention_layers(svd_unet)
    assert len(available) == 16
    modules = dict(svd_unet.named_modules())
    for name in SVD_FEATURE_LAYERS:
        assert name in available
        attn = modules[name]
        assert attn.to_q.in_features == 640 and attn.heads == 10  # the paper's M2-3: 640 channels, 10 heads
    assert default_feature_layers(svd_unet) == SVD_FEATURE_LAYERS
    assert last_hooked_block(svd_unet, SVD_FEATURE_LAYERS) == "up_blocks.2"
