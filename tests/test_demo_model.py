"""demos/foodvision_mini/model.py: NumPy preprocessing against torchvision's preset (the oracle), and
the upload checks, on a tiny ONNX model made here (no lesson run needed)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms._presets import ImageClassification

from going_modular import deploy

DEMO = Path(__file__).resolve().parents[1] / "demos" / "foodvision_mini"
sys.path.insert(0, str(DEMO))
import model as app_model  # noqa: E402  (the app's model.py)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    settings = {"resize": 73, "crop": 64, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                "interpolation": "bicubic"}
    path = deploy.export_onnx(net, tmp_path_factory.mktemp("m") / "tiny.onnx", image_size=64, metadata={
        "class_names": ["pizza", "steak", "sushi"], "preprocessing": settings, "model": "tiny", "int8": False})
    return net, settings, app_model.FoodVisionMini(path)


@pytest.mark.parametrize("size", [(300, 200), (200, 300), (64, 64), (1000, 999)])
def test_preprocess_matches_torchvision_preset(tiny, size):
    _, settings, model = tiny
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    preset = ImageClassification(crop_size=64, resize_size=73, mean=settings["mean"], std=settings["std"],
                                 interpolation=InterpolationMode.BICUBIC)
    np.testing.assert_allclose(model.preprocess(image), preset(image).unsqueeze(0).numpy(), atol=1e-5)


def test_predict_gives_probabilities_equal_to_pytorch(tiny, tmp_path):
    net, settings, model = tiny
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(path)
    probabilities, seconds = model.predict(path)
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(model.preprocess(Image.open(path).convert("RGB")))), 1)[0]
    assert list(probabilities) == ["pizza", "steak", "sushi"] and seconds > 0
    np.testing.assert_allclose(list(probabilities.values()), expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("size, message", [((1, 1), "only 1 x 1 pixels"), ((20_000, 10), "a strip rather than a photo"),
                                           ((7000, 7000), "(49 MP); this app takes at most 40 MP")])
def test_check_size_refuses_with_the_limit_in_the_message(size, message):
    with pytest.raises(app_model.BadImage, match=message.replace("(", r"\(").replace(")", r"\)")):
        app_model.check_size(*size)
    app_model.check_size(640, 480)  # a normal photo passes


def test_sixteen_bit_grey_is_rescaled_not_clipped(tmp_path):
    grey = np.tile(np.arange(0, 256, dtype=np.uint16), (32, 1)) * 257  # 0..65535
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I;16")
    rgb = np.asarray(app_model.load_image(tmp_path / "grey16.png"))
    assert rgb.shape == (32, 256, 3)
    np.testing.assert_array_equal(rgb[0, :, 0], np.arange(256))


def test_large_jpeg_is_drafted_down(tmp_path):
    Image.new("RGB", (6000, 4000), (180, 40, 40)).save(tmp_path / "big.jpg", quality=80)
    image = app_model.load_image(tmp_path / "big.jpg", draft_size=584)
    assert image.size == (1500, 1000)  # decoded at 1/4 scale: both sides still >= 584
    assert app_model.load_image(tmp_path / "big.jpg").size == (6000, 4000)


def test_missing_model_file_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m course run --only 09"):
        app_model.FoodVisionMini(tmp_path / "nothing.onnx")
