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


def _run_epoch(model, dataloader, loss_fn, device, amp, channels_last, epoch, optimizer=None, scaler=None,
               split="train"):
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
    return _summarize(losses, sizes, correct, epoch, split)


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
    return _run_epoch(model, dataloader, loss_fn, device, amp, channels_last, epoch, optimizer, scaler, "train")


def test_step(model: nn.Module, dataloader: Iterable, loss_fn: nn.Module, device: torch.device | str, *,
              amp: str | None = None, channels_last: bool = False, epoch: int = 0,
              split: str = "test") -> tuple[float, float]:
    """Evaluate `model` for one epoch (eval mode, no gradients); returns (loss, accuracy).

    `split` ("test" or "validation") only names the data in error messages.
    """
    device = torch.device(device)
    model.eval()
    with torch.inference_mode():
        return _run_epoch(model, dataloader, loss_fn, device, amp, channels_last, epoch, split=split)


def step_scheduler(scheduler, val_loss: float | None) -> None:
    """Step a learning-rate scheduler once per epoch; ReduceLROnPlateau watches the validation loss."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        if val_loss is None:
            raise ValueError("ReduceLROnPlateau needs a val_dataloader: it lowers the learning rate when the "
                             "validation loss stops falling. Pass val_dataloader=..., or use a fixed schedule.")
        scheduler.step(val_loss)
    else:
        scheduler.step()


def train(model: nn.Module, train_dataloader: Iterable, test_dataloader: Iterable, optimizer: torch.optim.Optimizer,
          loss_fn: nn.Module, epochs: int, device: torch.device | str, *, amp: str | None = None,
          channels_last: bool = False, start_epoch: int = 0, progress: bool = True, verbose: bool = True,
          on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
          val_dataloader: Iterable | None = None, patience: int | None = None,
          scheduler: torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None = None,
          ) -> dict[str, list[float]]:
    """Train and test `model` (already on `device`) for `epochs` epochs: the original course's signature.

    Options: `amp`, `channels_last` as in train_step; `start_epoch`, the first epoch's index when
    resuming; `progress` (a tqdm bar); `verbose` (a line per epoch); `on_epoch_end(epoch, metrics)`.

    Validation (the way to choose epochs and settings without looking at the test set):
        val_dataloader: Evaluated after every epoch ("val_loss", "val_acc"). With a validation set,
            `test_dataloader` may be None, so the test set is left alone until the very end.
        patience: Early stopping: stop when the validation loss has not improved for this many
            epochs, then restore the weights of the best epoch. Needs `val_dataloader`.
        scheduler: A learning-rate scheduler, stepped once per epoch (ReduceLROnPlateau is given the
            validation loss); the learning rate of each epoch is recorded as "lr".

    Returns:
        {"train_loss": [...], "train_acc": [...], "test_loss": [...], "test_acc": [...]}, a float per epoch,
        accuracies in [0, 1], over all processes under torchrun; a CourseModel's `history` gets them too.
        With `val_dataloader` also "val_loss" and "val_acc"; with `scheduler` also "lr"; the test keys
        are left out when `test_dataloader` is None.
    """
    device = torch.device(device)
    parameter = next(model.parameters(), None)
    if parameter is not None and parameter.device.type != device.type:
        raise ValueError(f"The model is on {parameter.device} but device={device}; call model.to(device) first.")
    if test_dataloader is None and val_dataloader is None:
        raise ValueError("test_dataloader is None and there is no val_dataloader: pass at least one to evaluate on.")
    if patience is not None and (val_dataloader is None or not isinstance(patience, int) or patience < 1):
        raise ValueError(f"patience={patience!r}: early stopping needs a whole number of epochs >= 1 and a "
                         "val_dataloader (stopping on the test set would choose the epoch on the test set).")
    scaler = grad_scaler(device, amp)  # also rejects a bad amp, before the first batch
    if channels_last:
        model.to(memory_format=torch.channels_last)
    history = getattr(unwrap(model), "history", None)
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and val_dataloader is None:
        step_scheduler(scheduler, None)  # raises: fail before the first batch, not after the first epoch
    keys = ["train_loss", "train_acc"] + ["val_loss", "val_acc"] * (val_dataloader is not None) \
        + ["test_loss", "test_acc"] * (test_dataloader is not None) + ["lr"] * (scheduler is not None)
    results: dict[str, list[float]] = {key: [] for key in keys}
    options = dict(amp=amp, channels_last=channels_last)
    best_loss, best_epoch, best_state = float("inf"), None, None

    for epoch in tqdm(range(start_epoch, start_epoch + epochs), desc="epochs", disable=not progress):
        if hasattr(getattr(train_dataloader, "sampler", None), "set_epoch"):
            train_dataloader.sampler.set_epoch(epoch)  # a new, reproducible shuffle every epoch
        lr = optimizer.param_groups[0]["lr"]  # the rate this epoch trains with
        train_loss, train_acc = train_step(model, train_dataloader, loss_fn, optimizer, device,
                                           scaler=scaler, epoch=epoch, **options)
        metrics = {"train_loss": train_loss, "train_acc": train_acc}
        if val_dataloader is not None:
            metrics["val_loss"], metrics["val_acc"] = test_step(model, val_dataloader, loss_fn, device, epoch=epoch,
                                                                split="validation", **options)
        if test_dataloader is not None:
            metrics["test_loss"], metrics["test_acc"] = test_step(model, test_dataloader, loss_fn, device,
                                                                  epoch=epoch, **options)
        if scheduler is not None:
            metrics["lr"] = lr
            step_scheduler(scheduler, metrics.get("val_loss"))
        if verbose:
            print(f"Epoch: {epoch + 1} | " + " | ".join(f"{k}: {v:.4g}" if k == "lr" else f"{k}: {v:.4f}"
                                                        for k, v in metrics.items()))
        for key, value in metrics.items():
            results[key].append(value)
        if isinstance(history, dict):
            for key, value in {"epochs": epoch + 1, **metrics}.items():
                history.setdefault(key, []).append(value)
        if on_epoch_end is not None:
            on_epoch_end(epoch, metrics)
        if patience is not None:
            if metrics["val_loss"] < best_loss:  # a copy of the best weights so far, restored at the end
                best_loss, best_epoch = metrics["val_loss"], epoch
                best_state = {k: v.detach().clone() for k, v in unwrap(model).state_dict().items()}
            elif epoch - best_epoch >= patience:
                if verbose:
                    print(f"Early stop: validation loss has not improved for {patience} epochs.")
                break
    if best_state is not None:
        unwrap(model).load_state_dict(best_state)
        if verbose:
            print(f"Restored the weights of epoch {best_epoch + 1} (lowest validation loss, {best_loss:.4f}).")
    return results
