"""Lesson 09's modules: latency.py (percentiles), onnx_export.py (export, metadata, evaluation),
quantize.py (static int8), foodvision.py (the trained feature extractor) and deploy.py (the recipe in one call)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms._presets import ImageClassification

from going_modular import deploy, foodvision, latency, onnx_export, quantize


def tiny_cnn(classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(), nn.Conv2d(8, 16, 3, stride=2),
                         nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes)).eval()


def test_measure_latency_times_every_run_after_warmup_and_restores_threads():
    calls = []
    before = torch.get_num_threads()
    timing = latency.measure_latency(lambda: calls.append(torch.get_num_threads()), warmup=3, runs=7, threads=1)
    assert len(calls) == 10 and set(calls) == {1}
    assert torch.get_num_threads() == before
    assert 0 < timing.p50 <= timing.p95 and timing.runs == 7 and timing.threads == 1 and len(timing.times) == 7
    assert timing.per_second == pytest.approx(1 / timing.p50)
    with pytest.raises(ValueError, match="runs=0"):
        latency.measure_latency(lambda: None, runs=0)


def test_measure_latency_percentiles_follow_the_times(monkeypatch):
    durations = iter([0.001] * 9 + [0.05])

    class Clock:
        now = 0.0

        @classmethod
        def perf_counter(cls):
            return cls.now

    def slow():
        Clock.now += next(durations)

    monkeypatch.setattr(latency, "time", Clock)
    timing = latency.measure_latency(slow, warmup=0, runs=10)
    assert timing.p50 == pytest.approx(0.001) and timing.p95 > 0.02 and timing.mean == pytest.approx(0.0059)


def test_export_onnx_matches_pytorch_at_any_batch_size_and_keeps_metadata(tmp_path):
    import onnxruntime  # noqa: F401

    model = tiny_cnn()
    path = onnx_export.export_onnx(model, tmp_path / "tiny.onnx", image_size=32, metadata={"class_names": ["a", "b", "c"]})
    assert not list(tmp_path.glob("*.data")), "the weights belong inside the one file"
    assert onnx_export.read_metadata(path) == {"class_names": ["a", "b", "c"]}
    session = onnx_export.onnx_session(path, threads=1)
    for batch in (1, 4):
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            expected = model(x).numpy()
        np.testing.assert_allclose(session.run(None, {"image": x.numpy()})[0], expected, atol=1e-5)


def test_quantize_int8_shrinks_keeps_metadata_and_stays_close(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU6(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU6(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 3)).eval()
    fp32 = onnx_export.export_onnx(model, tmp_path / "fp32.onnx", image_size=32, metadata={"int8": False})
    calibration = [torch.rand(8, 3, 32, 32).numpy() for _ in range(4)]
    int8 = quantize.quantize_int8(fp32, tmp_path / "int8.onnx", calibration)
    assert onnx_export.read_metadata(int8) == {"int8": True}
    assert latency.size_mb(int8) < latency.size_mb(fp32)
    x = torch.rand(16, 3, 32, 32)
    with torch.no_grad():
        expected = model(x).numpy()
    got = onnx_export.onnx_session(int8).run(None, {"image": x.numpy()})[0]
    assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max() + 1e-3


def test_evaluate_onnx_weights_by_samples(tmp_path):
    model = tiny_cnn()
    path = onnx_export.export_onnx(model, tmp_path / "tiny.onnx", image_size=16)
    x, y = torch.randn(10, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    with torch.no_grad():
        logits = model(x)
    loss, acc = onnx_export.evaluate_onnx(onnx_export.onnx_session(path), DataLoader(TensorDataset(x, y), batch_size=4))
    assert loss == pytest.approx(float(nn.functional.cross_entropy(logits, y)), rel=1e-5)
    assert acc == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    with pytest.raises(ValueError, match="no batches"):
        onnx_export.evaluate_onnx(onnx_export.onnx_session(path), [])


def test_preprocessing_round_trips_through_preset():
    preset = ImageClassification(crop_size=260, resize_size=292, mean=(0.5,) * 3, std=(0.5,) * 3,
                                 interpolation=InterpolationMode.BICUBIC)
    settings = foodvision.preprocessing_of(preset)
    assert settings == {"resize": 292, "crop": 260, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic"}
    again = foodvision.preset(settings)
    assert (again.crop_size, again.resize_size, again.interpolation) == (preset.crop_size, preset.resize_size,
                                                                         preset.interpolation)
    with pytest.raises(TypeError, match="weights.transforms"):
        foodvision.preprocessing_of(nn.Identity())


def test_count_parameters():
    assert latency.count_parameters(nn.Linear(4, 3)) == 15


def test_compare_latency_alternates_rounds_and_gives_one_speedup_per_round(monkeypatch):
    order = []

    class Clock:
        now = 0.0

        @classmethod
        def perf_counter(cls):
            return cls.now

    def work(name, seconds):
        def fn():
            order.append(name)
            Clock.now += seconds
        return fn

    monkeypatch.setattr(latency, "time", Clock)
    base, fast, speedups = latency.compare_latency(work("base", 0.004), work("fast", 0.001), rounds=3, runs=2, warmup=1)
    assert order == (["base"] * 3 + ["fast"] * 3) * 3, "each round times the baseline, then the candidate"
    assert speedups == pytest.approx([4.0] * 3) and base.runs == fast.runs == 6
    assert base.p50 == pytest.approx(0.004) and fast.p50 == pytest.approx(0.001)
    with pytest.raises(ValueError, match="rounds=0"):
        latency.compare_latency(work("a", 0), work("b", 0), rounds=0)


def test_written_onnx_files_get_the_mode_the_umask_gives(tmp_path):
    import os

    old = os.umask(0o027)
    try:
        path = onnx_export.export_onnx(tiny_cnn(), tmp_path / "tiny.onnx", image_size=16)
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.onnx"], "no temporary file is left behind"


class TinyEfficientNet(nn.Module):
    """torchvision's EfficientNet layout (features, avgpool, classifier), a few hundred parameters."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(8, 1000))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class TinyWeights:
    """Shaped like course.weights' objects: .build(), .transforms(), .name, .source."""

    name, source = "tiny", "made in the test"

    def build(self) -> nn.Module:
        torch.manual_seed(0)
        return TinyEfficientNet().eval()

    def transforms(self):
        return ImageClassification(crop_size=32, resize_size=36, mean=(0.5,) * 3, std=(0.5,) * 3,
                                   interpolation=InterpolationMode.BILINEAR)


@pytest.fixture()
def tiny_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 10), ("test", 4)):
        for index, name in enumerate(("pizza", "steak", "sushi")):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 80, (40, 40, 3), dtype=np.uint8)
                pixels[..., index] += 170  # each class has its own colour
                Image.fromarray(pixels).save(tmp_path / split / name / f"{name}_{i}.jpg")
    return tmp_path


def test_train_feature_extractor_trains_a_new_head_on_a_frozen_backbone_and_leaves_the_test_set(tiny_folder):
    trained = foodvision.train_feature_extractor(TinyWeights(), tiny_folder, epochs=3, val_fraction=0.2)
    assert trained.class_names == ["pizza", "steak", "sushi"]
    assert "val_acc" in trained.results and "test_acc" not in trained.results, "the test set is for the end"
    assert len(trained.val_dataloader.dataset) == 6 and len(trained.train_dataloader.dataset) == 24
    head = trained.model[1]
    assert isinstance(head[-1], nn.Linear) and head[-1].out_features == 3
    assert latency.count_parameters(trained.model) == 8 * 3 * 9 + 8 + 8 * 3 + 3, "the old 1000-class head is gone"
    assert trained.settings["crop"] == 32
    small = foodvision.train_feature_extractor(TinyWeights(), tiny_folder, epochs=1, image_size=24)
    assert small.settings["crop"] == 24 and small.settings["resize"] == 27


def test_build_foodvision_mini_writes_one_int8_file_the_app_can_read(tiny_folder, tmp_path):
    path = deploy.build_foodvision_mini(TinyWeights(), tiny_folder, tmp_path / "out" / "model.onnx", epochs=2)
    meta = onnx_export.read_metadata(path)
    assert meta["int8"] is True and meta["class_names"] == ["pizza", "steak", "sushi"] and meta["model"] == "tiny"
    assert meta["preprocessing"]["crop"] == 32
    logits = onnx_export.onnx_session(path).run(None, {"image": np.zeros((2, 3, 32, 32), np.float32)})[0]
    assert logits.shape == (2, 3)
