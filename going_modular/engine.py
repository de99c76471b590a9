# Written by notebooks/05_going_modular.ipynb: edit the notebook, not this file.
"""Train and test a PyTorch model: one epoch at a time (train_step, test_step) or many (train).

Metrics are weighted by samples, not batches, so a short last batch counts for what it holds.
Each batch's loss and number of correct predictions stay on the device and are added up once
per epoch: reading a GPU number on the host (`.item()`, `.tolist()`) makes the CPU wait for
the GPU, so every line that does it says so.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, Iterable

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

AMP_CHOICES = (None, "bf16", "fp16")


def _autocast(device: torch.device, amp: str | None):
    """The one mixed-precision switch: a no-op context, or autocast to bf16/fp16."""
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp={amp!r} is not one of {AMP_CHOICES}. Use None (float32), 'bf16' or 'fp16'.")
    if amp is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def _summarize(losses: list, sizes: list[int], correct: torch.Tensor, epoch: int, split: str) -> tuple[float, float]:
    """Add up one epoch's batches (over all processes), read the sums on the host once, check them."""
    device = correct.device
    losses = torch.stack(losses).float() if losses else torch.zeros(0, device=device)
    n = torch.tensor(sizes, dtype=torch.float32).to(device, non_blocking=True)
    not_finite = ~torch.isfinite(losses)
    sums = torch.stack([(losses * n).sum(), correct.float(), n.sum(), not_finite.sum().float()])
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(sums)  # every process now holds the sums over all processes
    loss_sum, correct_sum, total, bad = sums.tolist()  # CPU-GPU sync point (once per epoch)
    if bad:
        where = not_finite.nonzero()  # CPU-GPU sync point (only on this error path)
        batch = f"batch {int(where[0]) + 1}" if len(where) else "a batch of another process"
        raise FloatingPointError(
            f"The {split} loss became NaN or infinite at epoch {epoch + 1}, {batch}. "
            "Lower the learning rate, check the inputs for NaNs, or train without amp='fp16'."
        )
    if total == 0:
        raise ValueError(f"The {split} dataloader yielded no batches; check that its dataset is not empty.")
    return loss_sum / total, correct_sum / total


def _run_epoch(model, dataloader, loss_fn, device, amp, channels_last, epoch, optimizer=None, scaler=None):
    """The loop train_step and test_step share; returns (mean loss, accuracy) over samples."""
    losses, sizes = [], []  # each batch's mean loss (kept on the device) and its number of samples
    correct = torch.zeros((), dtype=torch.long, device=device)
    for X, y in dataloader:
        X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            X = X.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp):
            y_logits = model(X)
            loss = loss_fn(y_logits, y)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)  # with fp16 a CPU-GPU sync point (it checks for inf gradients); else just step
            scaler.update()
        losses.append(loss.detach())
        sizes.append(len(y))
        correct += (y_logits.argmax(dim=1) == y).sum()  # argmax of logits = argmax of softmax
    return _summarize(losses, sizes, correct, epoch, "train" if optimizer is not None else "test")


def train_step(model: nn.Module, dataloader: Iterable, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
               device: torch.device | str, *, amp: str | None = None, scaler: torch.amp.GradScaler | None = None,
               channels_last: bool = False, epoch: int = 0) -> tuple[float, float]:
    """Train `model` for one epoch over `dataloader`.

    Args:
        model: Model already on `device`.
        dataloader: Yields (X, y) batches.
        loss_fn: Loss with mean reduction, e.g. nn.CrossEntropyLoss().
        optimizer: Optimizer over the model's parameters.
        device: Where to compute.
        amp: None (float32), "bf16" or "fp16" mixed precision.
        scaler: GradScaler for amp="fp16"; made here when None.
        channels_last: Feed images as channels-last (often faster convolutions).
        epoch: Epoch index, used in error messages.

    Returns:
        (train_loss, train_acc): means over samples; accuracy in [0, 1].
    """
    device = torch.device(device)
    if scaler is None:
        scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")  # only fp16 needs loss scaling
    model.train()
    return _run_epoch(model, dataloader, loss_fn, device, amp, channels_last, epoch, optimizer, scaler)


def test_step(model: nn.Module, dataloader: Iterable, loss_fn: nn.Module, device: torch.device | str, *,
              amp: str | None = None, channels_last: bool = False, epoch: int = 0) -> tuple[float, float]:
    """Evaluate `model` for one epoch over `dataloader` (eval mode, no gradients).

    Returns:
        (test_loss, test_acc): means over samples; accuracy in [0, 1].
    """
    device = torch.device(device)
    model.eval()
    with torch.inference_mode():
        return _run_epoch(model, dataloader, loss_fn, device, amp, channels_last, epoch)


def train(
    model: nn.Module,
    train_dataloader: Iterable,
    test_dataloader: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    epochs: int,
    device: torch.device | str,
    *,
    amp: str | None = None,
    channels_last: bool = False,
    start_epoch: int = 0,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> dict[str, list[float]]:
    """Train and test `model` for `epochs` epochs.

    Under torch.distributed (torchrun), every process reports the metrics of all processes.

    Args:
        model: Model already on `device` (or a DistributedDataParallel wrapping one).
        train_dataloader: Training batches; a DistributedSampler in it gets `set_epoch` each epoch.
        test_dataloader: Testing batches.
        optimizer: Optimizer over the model's parameters.
        loss_fn: Loss with mean reduction.
        epochs: How many epochs to run now.
        device: Where to compute.
        amp: None (float32), "bf16" or "fp16" mixed precision.
        channels_last: Use the channels-last memory format for the model and the images.
        start_epoch: Index of the first epoch (when resuming): numbers the printout and the hook.
        on_epoch_end: Called as `on_epoch_end(epoch, metrics)` after each epoch, with the
            0-based epoch index and {"train_loss": ..., "train_acc": ..., "test_loss": ..., "test_acc": ...}.
        progress: Show a tqdm progress bar over epochs.
        verbose: Print one line of metrics per epoch.

    Returns:
        {"train_loss": [...], "train_acc": [...], "test_loss": [...], "test_acc": [...]}, one float
        per epoch; accuracies in [0, 1]. A model with a `history` dict (CourseModel) also gets them there.
    """
    device = torch.device(device)
    _autocast(device, amp)  # reject a bad amp before the first batch
    parameter = next(model.parameters(), None)
    if parameter is not None and parameter.device.type != device.type:
        raise ValueError(f"The model is on {parameter.device} but device={device}; call model.to(device) first.")
    if channels_last:
        model.to(memory_format=torch.channels_last)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    history = getattr(getattr(model, "module", model), "history", None)  # unwrap DistributedDataParallel
    results: dict[str, list[float]] = {"train_loss": [], "train_acc": [], "test_loss": [], "test_acc": []}
    options = dict(amp=amp, channels_last=channels_last)

    for epoch in tqdm(range(start_epoch, start_epoch + epochs), desc="epochs", disable=not progress):
        sampler = getattr(train_dataloader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)  # a new shuffle for every epoch under DistributedSampler
        train_loss, train_acc = train_step(model, train_dataloader, loss_fn, optimizer, device,
                                           scaler=scaler, epoch=epoch, **options)
        test_loss, test_acc = test_step(model, test_dataloader, loss_fn, device, epoch=epoch, **options)
        metrics = {"train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc}
        if verbose:
            print(f"Epoch: {epoch + 1} | " + " | ".join(f"{k}: {v:.4f}" for k, v in metrics.items()))
        for key, value in metrics.items():
            results[key].append(value)
        if isinstance(history, dict):
            history.setdefault("epochs", []).append(epoch + 1)
            for key, value in metrics.items():
                history.setdefault(key, []).append(value)
        if on_epoch_end is not None:
            on_epoch_end(epoch, metrics)
    return results
