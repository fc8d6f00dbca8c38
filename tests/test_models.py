import pytest
import torch

from sgi2v_lite.errors import InputError
from sgi2v_lite.models import default_feature_layers, is_untrained, load_pipeline


def test_a_saved_folder_loads_back_through_from_pretrained(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "saved")
    loaded = load_pipeline(str(tmp_path / "saved"))
    for name, tensor in tiny_pipe.unet.state_dict().items():
        torch.testing.assert_close(loaded.unet.state_dict()[name], tensor)
    assert type(loaded.scheduler) is type(tiny_pipe.scheduler)
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    assert loaded.scheduler.config.use_karras_sigmas


def test_hub_models_fail_clearly_without_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="could not load model 'stabilityai/stable-video-diffusion-img2vid'"):
        load_pipeline("svd")


def test_unknown_model():
    with pytest.raises(InputError, match="unknown model 'svd3'"):
        load_pipeline("svd3")


def test_toy_placeholder_is_labelled_untrained():
    from sgi2v_lite.models import TOY_MODEL_DIR

    if (TOY_MODEL_DIR / "model_index.json").is_file():
        pytest.skip("trained toy weights are shipped")
    with pytest.warns(UserWarning, match="UNTRAINED"):
        pipe = load_pipeline("toy")
    assert is_untrained(pipe)
    assert default_feature_layers(pipe.unet) == (
        "up_blocks.1.attentions.1.transformer_blocks.0.attn1",
    )
