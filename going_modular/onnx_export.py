# Written by notebooks/09_pytorch_model_deployment.ipynb: edit the notebook, not this file.
"""Export a PyTorch image classifier to ONNX and run it with onnxruntime, without PyTorch.

    path = export_onnx(model, "model.onnx", image_size=260, metadata={"class_names": [...]})
    session = onnx_session(path, threads=1)
    logits = session.run(None, {"image": batch})[0]          # batch: float32 (B, 3, 260, 260)
    val_loss, val_acc = evaluate_onnx(session, val_dataloader)
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from going_modular.atomic import _umask

METADATA_KEY = "foodvision"  # the ONNX metadata entry holding the app's settings (JSON)


def _atomic_bytes(data: bytes, path: Path) -> None:
    """Write `data` to `path` through a temporary file in the same folder (no half-written file).

    The file gets the mode open() would give it (0644 with the usual umask), as `atomic.atomic_save`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0600)
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
    batch = torch.export.Dim("batch", min=1, max=1024)  # any batch size from 1 to 1024
    with tempfile.TemporaryDirectory() as tmp:
        program = torch.onnx.export(model, (example,), dynamo=True, input_names=["image"],
                                    output_names=["logits"], dynamic_shapes=({0: batch},), verbose=False)
        program.save(str(Path(tmp) / "model.onnx"))  # may put the weights beside it in a .data file
        proto = onnx.load(str(Path(tmp) / "model.onnx"))  # reads them back in
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata or {})
    _atomic_bytes(proto.SerializeToString(), path)  # one file: weights included
    return path


def read_metadata(path: str | Path, *, raw: bool = False) -> dict:
    """The settings `export_onnx` stored in an ONNX file (raw=True: every metadata entry as text)."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return props if raw else json.loads(props.get(METADATA_KEY, "{}"))


def onnx_session(path: str | Path, threads: int = 1):
    """An onnxruntime CPU session for `path` with `threads` intra-op threads (threads that share one call)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def evaluate_onnx(session, dataloader: Iterable) -> tuple[float, float]:
    """Loss (cross-entropy) and accuracy of an onnxruntime session on a DataLoader, weighted by samples."""
    loss_sum, correct, total = 0.0, 0, 0
    for X, y in dataloader:
        logits = torch.from_numpy(session.run(None, {"image": X.numpy()})[0])  # (B, classes)
        loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(dim=1) == y).sum())
        total += len(y)
    if total == 0:
        raise ValueError("The dataloader yielded no batches; check that its dataset is not empty.")
    return loss_sum / total, correct / total
