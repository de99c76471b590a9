"""going_modular/deploy.py (lesson 09): latency percentiles, ONNX export, int8 quantization, evaluation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms._presets import ImageClassification

from going_modular import deploy


def tiny_cnn(classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(), nn.Conv2d(8, 16, 3, stride=2),
                         nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes)).eval()


def test_measure_latency_times_every_run_after_warmup_and_restores_threads():
    calls = []
    before = torch.get_num_threads()
    latency = deploy.measure_latency(lambda: calls.append(torch.get_num_threads()), warmup=3, runs=7, threads=1)
    assert len(calls) == 10 and set(calls) == {1}
    assert torch.get_num_threads() == before
    assert 0 < latency.p50 <= latency.p95 and latency.runs == 7 and latency.threads == 1
    assert latency.per_second == pytest.approx(1 / latency.p50)
    with pytest.raises(ValueError, match="runs=0"):
        deploy.measure_latency(lambda: None, runs=0)


def test_measure_latency_percentiles_follow_the_times(monkeypatch):
    durations = iter([0.001] * 9 + [0.05])

    class Clock:
        now = 0.0

        @classmethod
        def perf_counter(cls):
            return cls.now

    def slow():
        Clock.now += next(durations)

    monkeypatch.setattr(deploy, "time", Clock)
    latency = deploy.measure_latency(slow, warmup=0, runs=10)
    assert latency.p50 == pytest.approx(0.001) and latency.p95 > 0.02 and latency.mean == pytest.approx(0.0059)


def test_export_onnx_matches_pytorch_at_any_batch_size_and_keeps_metadata(tmp_path):
    import onnxruntime  # noqa: F401

    model = tiny_cnn()
    path = deploy.export_onnx(model, tmp_path / "tiny.onnx", image_size=32, metadata={"class_names": ["a", "b", "c"]})
    assert not list(tmp_path.glob("*.data")), "the weights belong inside the one file"
    assert deploy.read_metadata(path) == {"class_names": ["a", "b", "c"]}
    session = deploy.onnx_session(path, threads=1)
    for batch in (1, 4):
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            expected = model(x).numpy()
        np.testing.assert_allclose(session.run(None, {"image": x.numpy()})[0], expected, atol=1e-5)


def test_quantize_int8_shrinks_keeps_metadata_and_stays_close(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU6(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU6(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 3)).eval()
    fp32 = deploy.export_onnx(model, tmp_path / "fp32.onnx", image_size=32, metadata={"int8": False})
    calibration = [torch.rand(8, 3, 32, 32).numpy() for _ in range(4)]
    int8 = deploy.quantize_int8(fp32, tmp_path / "int8.onnx", calibration)
    assert deploy.read_metadata(int8) == {"int8": True}
    assert deploy.size_mb(int8) < deploy.size_mb(fp32)
    x = torch.rand(16, 3, 32, 32)
    with torch.no_grad():
        expected = model(x).numpy()
    got = deploy.onnx_session(int8).run(None, {"image": x.numpy()})[0]
    assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max() + 1e-3


def test_evaluate_onnx_weights_by_samples(tmp_path):
    model = tiny_cnn()
    path = deploy.export_onnx(model, tmp_path / "tiny.onnx", image_size=16)
    x, y = torch.randn(10, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    with torch.no_grad():
        logits = model(x)
    loss, acc = deploy.evaluate_onnx(deploy.onnx_session(path), DataLoader(TensorDataset(x, y), batch_size=4))
    assert loss == pytest.approx(float(nn.functional.cross_entropy(logits, y)), rel=1e-5)
    assert acc == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    with pytest.raises(ValueError, match="no batches"):
        deploy.evaluate_onnx(deploy.onnx_session(path), [])


def test_preprocessing_round_trips_through_preset():
    preset = ImageClassification(crop_size=260, resize_size=292, mean=(0.5,) * 3, std=(0.5,) * 3,
                                 interpolation=InterpolationMode.BICUBIC)
    settings = deploy.preprocessing_of(preset)
    assert settings == {"resize": 292, "crop": 260, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic"}
    again = deploy.preset(settings)
    assert (again.crop_size, again.resize_size, again.interpolation) == (preset.crop_size, preset.resize_size,
                                                                         preset.interpolation)
    with pytest.raises(TypeError, match="weights.transforms"):
        deploy.preprocessing_of(nn.Identity())


def test_count_parameters():
    assert deploy.count_parameters(nn.Linear(4, 3)) == 15
