# Written by notebooks/09_pytorch_model_deployment.ipynb: edit the notebook, not this file.
"""Static int8 quantization of an ONNX model with onnxruntime, calibrated on images like those it will see.

    int8_path = quantize_int8("model.onnx", "model_int8.onnx", calibration_batches(train_dataloader, images=32))
"""
from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from going_modular.onnx_export import METADATA_KEY, _atomic_bytes, read_metadata


def calibration_batches(dataloader, images: int = 32) -> list[np.ndarray]:
    """The first `images` images of a DataLoader (rounded up to whole batches), as float32 arrays."""
    batches = itertools.islice(dataloader, -(-images // dataloader.batch_size))  # ceil(images / batch size)
    return [X.numpy() for X, _ in batches]


def quantize_int8(source: str | Path, target: str | Path, calibration: Iterable[np.ndarray]) -> Path:
    """Static int8 quantization with onnxruntime: int8 weights (per channel) and uint8 activations.

    Args:
        source: A float32 ONNX file from `onnx_export.export_onnx`.
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
