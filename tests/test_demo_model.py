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
    return net, settings, app_model.FoodVisionMini(path, batch=1)


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


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    bomb = tmp_path / "bomb.png"  # announces 20,000 x 20,000 pixels, holds almost none
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20_000, 20_000, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    with pytest.raises(app_model.BadImage, match=r"bomb.png has more than 179 MP.*at most 40 MP"):
        app_model.load_image(bomb)


def test_the_batcher_answers_each_request_with_its_own_row_in_fewer_calls():
    import threading
    import time

    calls = []

    def slow_model(batch):  # (B, 1, 1, 1) -> (B, 2): each row identifies its image
        calls.append(len(batch))
        time.sleep(0.05)  # while the model works, the other requests gather
        return np.concatenate([batch.reshape(-1, 1), -batch.reshape(-1, 1)], axis=1)

    batcher = app_model.Batcher(slow_model, max_batch=16)
    answers = {}

    def request(i):
        answers[i] = batcher(np.full((1, 1, 1, 1), float(i), dtype=np.float32))

    threads = [threading.Thread(target=request, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(answers) == list(range(12))
    for i, answer in answers.items():
        np.testing.assert_array_equal(answer, [[i, -i]])
    assert sum(calls) == 12 and len(calls) < 12, f"the model was called once per request: {calls}"
    assert max(calls) <= 16


def test_a_model_error_reaches_every_waiting_request():
    def broken(batch):
        raise RuntimeError("the model failed")

    batcher = app_model.Batcher(broken, max_batch=4)
    with pytest.raises(RuntimeError, match="the model failed"):
        batcher(np.zeros((1, 3, 2, 2), dtype=np.float32))


def test_batched_and_one_at_a_time_predictions_agree(tiny, tmp_path):
    import concurrent.futures

    net, settings, single = tiny
    batched = app_model.FoodVisionMini(single.model_file, threads=2, batch=8)
    rng = np.random.default_rng(2)
    paths = []
    for i in range(10):
        paths.append(tmp_path / f"photo_{i}.png")
        Image.fromarray(rng.integers(0, 256, (80 + i, 90, 3), dtype=np.uint8)).save(paths[-1])
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        together = list(pool.map(lambda p: batched.predict(p)[0], paths))
    for path, probabilities in zip(paths, together):
        alone = single.predict(path)[0]
        np.testing.assert_allclose(list(probabilities.values()), list(alone.values()), atol=1e-5)
