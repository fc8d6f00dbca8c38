import pytest
import torch

from sgi2v_lite.errors import InputError
from sgi2v_lite.models import default_feature_layers, load_pipeline


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


def test_the_shipped_toy_model_is_a_real_svd_pipeline_loaded_with_from_pretrained():
    from diffusers import (AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, StableVideoDiffusionPipeline,
                           UNetSpatioTemporalConditionModel)  # fmt: skip
    from transformers import CLIPVisionModelWithProjection

    from sgi2v_lite.models import TOY_MODEL_DIR

    files = [f for f in TOY_MODEL_DIR.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= 30 * 2**20
    assert (TOY_MODEL_DIR / "README.md").is_file() and "## Evaluation" in (TOY_MODEL_DIR / "README.md").read_text()
    pipe = load_pipeline("toy")
    assert isinstance(pipe, StableVideoDiffusionPipeline)
    assert isinstance(pipe.unet, UNetSpatioTemporalConditionModel) and isinstance(pipe.vae, AutoencoderKLTemporalDecoder)
    assert isinstance(pipe.image_encoder, CLIPVisionModelWithProjection) and isinstance(pipe.scheduler, EulerDiscreteScheduler)
    assert pipe.unet.config.sample_size >= 16 and pipe.unet.config.num_frames >= 8
    assert pipe.scheduler.config.prediction_type == "v_prediction" and pipe.unet.dtype == torch.float32
    assert default_feature_layers(pipe.unet) == ("up_blocks.1.attentions.1.transformer_blocks.0.attn1",)


def test_missing_toy_weights_are_a_clear_error(monkeypatch, tmp_path):
    import sgi2v_lite.models as models

    monkeypatch.setattr(models, "TOY_MODEL_DIR", tmp_path)
    with pytest.raises(InputError, match="make toy-model"):
        load_pipeline("toy")


def test_auto_is_toy_on_a_cpu_and_can_be_overridden(monkeypatch, tiny_pipe):
    from sgi2v_lite.models import auto_model_name, preset_name_for

    monkeypatch.delenv("SGI2V_MODEL", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert auto_model_name() == "toy"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert auto_model_name() == "svd"
    monkeypatch.setenv("SGI2V_MODEL", "tiny-random")
    assert auto_model_name() == "tiny-random"
    assert preset_name_for(tiny_pipe) == "toy"


def test_load_model_gives_the_pipeline_and_its_resolved_preset(monkeypatch):
    from sgi2v_lite import load_model

    monkeypatch.setenv("SGI2V_MODEL", "tiny-random")
    pipe, config = load_model("auto")
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    assert (config.height, config.width, config.num_frames) == (size, size, pipe.unet.config.num_frames)
    assert config.feature_layers == default_feature_layers(pipe.unet) and config.num_inference_steps == 25
