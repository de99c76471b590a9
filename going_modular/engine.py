# Written by notebooks/05_going_modular.ipynb: edit the notebook, not this file.
"""Train and test a PyTorch model: one epoch at a time (train_step, test_step) or many (train).

Metrics are weighted by samples. Batch sums stay on the device and are read once per epoch:
reading a GPU number on the host (`.item()`, `.tolist()`) makes the CPU wait for the GPU.
"""
from typing import Callable, Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from going_modular.distributed import all_reduce_sum, unwrap  # advanced: several processes, section 17
from going_modular.mixed_precision import AMP_CHOICES, autocast, grad_scaler  # noqa: F401 (advanced: section 16)


def _summarize(losses: list, sizes: list[int], correct: torch.Tensor, epoch: int, split: str) -> tuple[float, float]:
    """Add up one epoch's batches (over all processes), read the sums on the host once, check them."""
    device = correct.device
    losses = torch.stack(losses).float() if losses else torch.zeros(0, device=device)
    n = torch.tensor(sizes, dtype=torch.float32).to(device, non_blocking=True)
    not_finite = ~torch.isfinite(losses)
    sums = torch.stack([(losses * n).sum(), correct.float(), n.sum(), not_finite.sum().float()])
    loss_sum, correct_sum, total, bad = all_reduce_sum(sums).tolist()  # CPU-GPU sync point (once per epoch)
    if bad:
        where = not_finite.nonzero()  # CPU-GPU sync point (only on this error path)
        batch = f"batch {int(where[0]) + 1}" if len(where) else "a batch of another process"
        raise FloatingPointError(f"The {split} loss became NaN or infinite at epoch {epoch + 1}, {batch}. Lower "
                                 "the learning rate, check the inputs for NaNs, or train without amp='fp16'.")
    if total == 0:
        raise ValueError(f"The {split} dataloader yielded no batches; check that its dataset is not empty.")
    return loss_sum / total, correct_sum / total


def _run_epoch(model, dataloader, loss_fn, device, amp, channels_last, epoch, optimizer=None, scaler=None):
    """The loop train_step and test_step share; returns (mean loss, accuracy) over samples."""
    losses, sizes = [], []  # each batch's mean loss (kept on the device) and its number of samples
    correct = torch.zeros((), dtype=torch.long, device=device)
    for X, y in dataloader:
        X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)  # overlaps with pinned memory
        X = X.contiguous(memory_format=torch.channels_last) if channels_last else X  # a layout, not a shape
        with autocast(device, amp):  # amp=None: a context that does nothing
            y_logits = model(X)
            loss = loss_fn(y_logits, y)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()  # scaler disabled (no fp16): plain loss.backward()
            scaler.step(optimizer)  # with fp16 a CPU-GPU sync point (it checks for inf gradients); else just step
            scaler.update()
        losses.append(loss.detach())
        sizes.append(len(y))
        correct += (y_logits.argmax(dim=1) == y).sum()  # argmax of logits = argmax of softmax
    return _summarize(losses, sizes, correct, epoch, "train" if optimizer is not None else "test")


def train_step(model: nn.Module, dataloader: Iterable, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
               device: torch.device | str, *, amp: str | None = None, scaler: torch.amp.GradScaler | None = None,
               channels_last: bool = False, epoch: int = 0) -> tuple[float, float]:
    """Train `model` (already on `device`) for one epoch; returns (train_loss, train_acc), means over samples.

    Options: `amp` None/"bf16"/"fp16" mixed precision and its `scaler` (made here when None),
    `channels_last` images, the `epoch` index for error messages.
    """
    device = torch.device(device)
    scaler = grad_scaler(device, amp) if scaler is None else scaler
    model.train()
    return _run_epoch(model, dataloader, loss_fn, device, amp, channels_last, epoch, optimizer, scaler)


def test_step(model: nn.Module, dataloader: Iterable, loss_fn: nn.Module, device: torch.device | str, *,
              amp: str | None = None, channels_last: bool = False, epoch: int = 0) -> tuple[float, float]:
    """Evaluate `model` for one epoch (eval mode, no gradients); returns (test_loss, test_acc)."""
    device = torch.device(device)
    model.eval()
    with torch.inference_mode():
        return _run_epoch(model, dataloader, loss_fn, device, amp, channels_last, epoch)


def train(model: nn.Module, train_dataloader: Iterable, test_dataloader: Iterable, optimizer: torch.optim.Optimizer,
          loss_fn: nn.Module, epochs: int, device: torch.device | str, *, amp: str | None = None,
          channels_last: bool = False, start_epoch: int = 0, progress: bool = True, verbose: bool = True,
          on_epoch_end: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, list[float]]:
    """Train and test `model` (already on `device`) for `epochs` epochs: the original course's signature.

    Options: `amp`, `channels_last` as in train_step; `start_epoch`, the first epoch's index when
    resuming; `progress` (a tqdm bar); `verbose` (a line per epoch); `on_epoch_end(epoch, metrics)`.

    Returns:
        {"train_loss": [...], "train_acc": [...], "test_loss": [...], "test_acc": [...]}, a float per epoch,
        accuracies in [0, 1], over all processes under torchrun; a CourseModel's `history` gets them too.
    """
    device = torch.device(device)
    parameter = next(model.parameters(), None)
    if parameter is not None and parameter.device.type != device.type:
        raise ValueError(f"The model is on {parameter.device} but device={device}; call model.to(device) first.")
    scaler = grad_scaler(device, amp)  # also rejects a bad amp, before the first batch
    if channels_last:
        model.to(memory_format=torch.channels_last)
    history = getattr(unwrap(model), "history", None)
    results: dict[str, list[float]] = {"train_loss": [], "train_acc": [], "test_loss": [], "test_acc": []}
    options = dict(amp=amp, channels_last=channels_last)

    for epoch in tqdm(range(start_epoch, start_epoch + epochs), desc="epochs", disable=not progress):
        if hasattr(getattr(train_dataloader, "sampler", None), "set_epoch"):
            train_dataloader.sampler.set_epoch(epoch)  # a new, reproducible shuffle every epoch
        train_loss, train_acc = train_step(model, train_dataloader, loss_fn, optimizer, device,
                                           scaler=scaler, epoch=epoch, **options)
        test_loss, test_acc = test_step(model, test_dataloader, loss_fn, device, epoch=epoch, **options)
        metrics = {"train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc}
        if verbose:
            print(f"Epoch: {epoch + 1} | " + " | ".join(f"{k}: {v:.4f}" for k, v in metrics.items()))
        for key, value in metrics.items():
            results[key].append(value)
        if isinstance(history, dict):
            for key, value in {"epochs": epoch + 1, **metrics}.items():
                history.setdefault(key, []).append(value)
        if on_epoch_end is not None:
            on_epoch_end(epoch, metrics)
    return results
