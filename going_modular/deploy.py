# Written by notebooks/09_pytorch_model_deployment.ipynb: edit the notebook, not this file.
"""Measure a model the way deployment sees it, and export it to run without PyTorch.

    latency = measure_latency(lambda: model(image), threads=1)    # p50 / p95 after warm-up
    export_onnx(model, "model.onnx", image_size=260, metadata={...})
    quantize_int8("model.onnx", "model_int8.onnx", calibration_batches)
    session = onnx_session("model_int8.onnx", threads=1)
    test_loss, test_acc = evaluate_onnx(session, test_dataloader)

`build_foodvision_mini` is the whole recipe the lesson teaches (frozen backbone, trained head,
ONNX, int8) in one call, for a fresh clone or a test that needs the app's model file.
"""
from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

METADATA_KEY = "foodvision"  # the ONNX metadata entry holding the app's settings (JSON)


@dataclass(frozen=True)
class Latency:
    """Seconds per call over repeated runs: the median, the 95th percentile and the mean."""

    p50: float
    p95: float
    mean: float
    runs: int
    threads: int

    @property
    def per_second(self) -> float:
        """Calls per second at the median latency (1 / p50)."""
        return 1.0 / self.p50

    def __str__(self) -> str:
        return (f"p50 {self.p50 * 1000:.1f} ms, p95 {self.p95 * 1000:.1f} ms "
                f"({self.per_second:.0f}/s at p50; {self.runs} runs, {self.threads} thread(s))")


def measure_latency(fn: Callable[[], object], *, warmup: int = 5, runs: int = 30,
                    threads: int | None = None) -> Latency:
    """Time `fn()` `runs` times after `warmup` untimed calls.

    Args:
        fn: What one prediction costs, e.g. `lambda: model(image)` or `lambda: predict(path)`.
        warmup: Calls before timing (first calls allocate memory, pick kernels, fill caches).
        runs: Timed calls; p50/p95 are taken over these.
        threads: PyTorch's intra-op thread count while timing (restored afterwards); None keeps
            the current one. For onnxruntime, set threads on the session (`onnx_session`).

    Raises:
        ValueError: `runs` < 1 or `warmup` < 0.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs={runs} and warmup={warmup}: need runs >= 1 and warmup >= 0.")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    p50, p95 = np.percentile(times, [50, 95])
    return Latency(float(p50), float(p95), statistics.fmean(times), runs, threads or before)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def size_mb(path: str | Path) -> float:
    """Size of a file in MB (2**20 bytes, as the original course counts)."""
    return Path(path).stat().st_size / 2**20


def _atomic_bytes(data: bytes, path: Path) -> None:
    """Write `data` to `path` through a temporary file in the same folder (no half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_onnx(model: nn.Module, path: str | Path, *, image_size: int, metadata: dict | None = None) -> Path:
    """Export an image classifier to one self-contained ONNX file (weights inside, batch size free).

    Args:
        model: Maps (B, 3, image_size, image_size) float images to (B, classes) logits.
        path: The .onnx file to write (atomically).
        image_size: Height and width of the example input used to trace the model.
        metadata: JSON-serialisable settings stored in the file under `METADATA_KEY`
            (class names, preprocessing, where the weights came from); read back with `read_metadata`.

    Returns:
        The path written. Its input is called "image", its output "logits".
    """
    import onnx

    path = Path(path)
    model = model.eval().cpu()
    example = torch.zeros(1, 3, image_size, image_size)
    batch = torch.export.Dim("batch", min=1, max=1024)
    with tempfile.TemporaryDirectory() as tmp:
        program = torch.onnx.export(model, (example,), dynamo=True, input_names=["image"],
                                    output_names=["logits"], dynamic_shapes=({0: batch},), verbose=False)
        program.save(str(Path(tmp) / "model.onnx"))  # may put the weights beside it in a .data file
        proto = onnx.load(str(Path(tmp) / "model.onnx"))  # reads them back in
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata or {})
    _atomic_bytes(proto.SerializeToString(), path)  # one file: weights included
    return path


def quantize_int8(source: str | Path, target: str | Path, calibration: Iterable[np.ndarray]) -> Path:
    """Static int8 quantization with onnxruntime: int8 weights (per channel) and uint8 activations.

    Args:
        source: A float32 ONNX file from `export_onnx`.
        target: The int8 file to write; it keeps the source's metadata, with "int8": true.
        calibration: Batches of preprocessed images (float32 arrays (B, 3, H, W)) like those the
            model will see; their activation ranges fix the int8 scales.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Reader(CalibrationDataReader):
        """Hands the calibration images over 8 at a time (onnxruntime keeps every activation until the end)."""

        def __init__(self, batches: Iterable[np.ndarray]):
            self.chunks = (batch[i:i + 8] for batch in batches for i in range(0, len(batch), 8))

        def get_next(self) -> dict | None:
            chunk = next(self.chunks, None)
            return None if chunk is None else {"image": np.ascontiguousarray(chunk, dtype=np.float32)}

    target = Path(target)
    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(source), str(prepared))  # shape inference and graph clean-up first
        quantize_static(str(prepared), str(quantized), _Reader(calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
        proto = onnx.load(str(quantized))
    del proto.metadata_props[:]
    for key, value in read_metadata(source, raw=True).items():
        if key == METADATA_KEY:
            value = json.dumps({**json.loads(value), "int8": True})  # the app shows which model it runs
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    _atomic_bytes(proto.SerializeToString(), target)
    return target


def read_metadata(path: str | Path, *, raw: bool = False) -> dict:
    """The settings `export_onnx` stored in an ONNX file (raw=True: every metadata entry as text)."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return props if raw else json.loads(props.get(METADATA_KEY, "{}"))


def onnx_session(path: str | Path, threads: int = 1):
    """An onnxruntime CPU session for `path` with `threads` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def evaluate_onnx(session, dataloader: Iterable) -> tuple[float, float]:
    """Test loss (cross-entropy) and accuracy of an onnxruntime session, weighted by samples."""
    loss_sum, correct, total = 0.0, 0, 0
    for X, y in dataloader:
        logits = torch.from_numpy(session.run(None, {"image": X.numpy()})[0])  # (B, classes)
        loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(dim=1) == y).sum())
        total += len(y)
    if total == 0:
        raise ValueError("The dataloader yielded no batches; check that its dataset is not empty.")
    return loss_sum / total, correct / total


class _PreLogits(nn.Module):
    """A timm-style model (`forward_features`, `forward_head`) up to its head: images -> (B, D) features."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)  # (B, D)


def split_for_features(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(backbone, head) of a pretrained classifier: lesson 06's `backbone_and_head`, plus the course's ViT.

    The course's own ViT (`going_modular.vit`, the offline ViT stand-in) has timm's
    `forward_features` / `forward_head` instead of torchvision's layout; its backbone stops
    before `heads`. `head(backbone(x))` equals `model(x)` either way.
    """
    from going_modular.features import backbone_and_head

    if all(hasattr(model, name) for name in ("forward_features", "forward_head", "heads")):
        return _PreLogits(model), model.heads
    return backbone_and_head(model)


def preprocessing_of(transform: nn.Module) -> dict:
    """The settings of a torchvision `ImageClassification` preset, as plain JSON for the app."""
    missing = [name for name in ("crop_size", "resize_size", "mean", "std", "interpolation") if not hasattr(transform, name)]
    if missing:
        raise TypeError(f"{type(transform).__name__} has no {', '.join(missing)}: pass weights.transforms() "
                        "(a torchvision ImageClassification preset).")
    return {"resize": int(transform.resize_size[0]), "crop": int(transform.crop_size[0]),
            "mean": [float(v) for v in transform.mean], "std": [float(v) for v in transform.std],
            "interpolation": transform.interpolation.value}


def build_foodvision_mini(weights, image_folder: str | Path, output: str | Path, *, epochs: int = 10,
                          seed: int = 42, quantize: bool = True, image_size: int | None = None) -> Path:
    """The lesson's recipe in one call: frozen pretrained backbone, trained 3-class head, ONNX (int8).

    Args:
        weights: What `course.weights.get_weights(...)` returns (`.build()`, `.transforms()`, `.name`, `.source`).
        image_folder: A folder with train/ and test/ ImageFolders (e.g. `course.data.food_images(...)`).
        output: The .onnx file to write.
        epochs: Epochs of head training on cached features.
        seed: Seed for the head and the shuffling.
        quantize: Write the static-int8 model (calibrated on training images) instead of float32.
        image_size: Input size to export at (a smaller one is faster); None keeps the preset's crop.

    Returns:
        The path written.
    """
    from going_modular import data_setup, engine
    from going_modular.features import feature_dataloaders
    from going_modular.runtime import set_seeds

    transform = weights.transforms()
    settings = preprocessing_of(transform)
    if image_size is not None:
        settings["resize"] = round(settings["resize"] * image_size / settings["crop"])
        settings["crop"] = image_size
        transform = preset(settings)
    image_folder = Path(image_folder)
    train_dl, test_dl, class_names = data_setup.create_dataloaders(
        image_folder / "train", image_folder / "test", transform, batch_size=32, num_workers=0, seed=seed)
    set_seeds(seed)
    model = weights.build()
    backbone, head = split_for_features(model)
    last = [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
    new_head = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(last.in_features, len(class_names)))
    feat_train, feat_test = feature_dataloaders(backbone, train_dl, test_dl, "cpu", seed=seed)
    engine.train(new_head, feat_train, feat_test, torch.optim.Adam(new_head.parameters(), lr=1e-3),
                 nn.CrossEntropyLoss(), epochs, "cpu", progress=False, verbose=False)
    classifier = nn.Sequential(backbone, new_head).eval()
    metadata = {"class_names": class_names, "preprocessing": settings, "model": weights.name,
                "weights": weights.source, "int8": quantize}
    output = Path(output)
    if not quantize:
        return export_onnx(classifier, output, image_size=settings["crop"], metadata=metadata)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(classifier, Path(tmp) / "fp32.onnx", image_size=settings["crop"], metadata=metadata)
        calibration = (X.numpy() for X, _ in train_dl)
        return quantize_int8(fp32, output, calibration)


def preset(settings: dict) -> nn.Module:
    """A torchvision ImageClassification preset from `preprocessing_of`'s settings."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms._presets import ImageClassification

    return ImageClassification(crop_size=settings["crop"], resize_size=settings["resize"], mean=settings["mean"],
                               std=settings["std"], interpolation=InterpolationMode(settings["interpolation"]))
