# Written by notebooks/05_going_modular.ipynb: edit the notebook, not this file.
"""The training program's settings: one dataclass (printed and saved with every run) and its command line."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from going_modular import data_setup, model_builder
from going_modular.runtime import DEVICE_CHOICES


@dataclass
class TrainConfig:
    """Everything that shapes a run; printed at the start and saved in every checkpoint."""

    train_dir: str = "data/pizza_steak_sushi/train"
    test_dir: str = "data/pizza_steak_sushi/test"
    val_fraction: float = 0.2
    model: str = "tinyvgg"
    epochs: int = 5
    patience: int | None = None
    batch_size: int = 32
    lr: float = 0.001
    lr_schedule: str = "none"
    hidden_units: int = 10
    image_size: int = 64
    device: str = "auto"
    seed: int = 42
    num_workers: int = data_setup.NUM_WORKERS
    amp: str = "none"
    channels_last: bool = False
    cache: bool = False
    final_test: bool = False
    output: str = "models/05_going_modular_tinyvgg.pth"


def _at_least(minimum: int, kind=int):
    """An argparse type that rejects values below `minimum`."""
    def parse(text: str):
        value = kind(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is below the minimum of {minimum}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _fraction(text: str) -> float:
    """An argparse type for a share in [0, 1): 0 means none."""
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1); use e.g. 0.2 for 20 %, or 0 for no validation set")
    return value


# --lr-schedule name -> what it does to the learning rate (the help text); make_scheduler builds it.
LR_SCHEDULES = {
    "none": "constant",
    "step": "divided by 10 after a half and again after three quarters of --epochs",
    "cosine": "from --lr down to 0 along a half cosine over --epochs",
    "plateau": "divided by 10 when the validation loss has not improved for 2 epochs",
}


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, epochs: int):
    """The learning-rate scheduler `--lr-schedule name` stands for (None for "none"), stepped once per epoch."""
    sched = torch.optim.lr_scheduler
    if name == "none":
        return None
    if name == "step":
        return sched.MultiStepLR(optimizer, milestones=[max(1, epochs // 2), max(2, epochs * 3 // 4)], gamma=0.1)
    if name == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "plateau":
        return sched.ReduceLROnPlateau(optimizer, factor=0.1, patience=1)
    raise ValueError(f"lr_schedule={name!r} is not one of {tuple(LR_SCHEDULES)}; pick one of those names.")


def _positive_float(text: str) -> float:
    """An argparse type for numbers greater than 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line; each flag's default is TrainConfig's."""
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m going_modular.train",
                                description="Train an image classifier from the command line.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--train-dir", default=d.train_dir, help="ImageFolder of training images")
    p.add_argument("--test-dir", default=d.test_dir,
                   help="ImageFolder of test images: evaluated with --final-test (every epoch with --val-fraction 0)")
    p.add_argument("--val-fraction", type=_fraction, default=d.val_fraction,
                   help="share of each class of --train-dir held out for validation, which chooses the best epoch "
                        "(saved beside --output as *_best.pth); 0: none, test every epoch as the original course")
    p.add_argument("--final-test", action="store_true",
                   help="after training, evaluate the best epoch on --test-dir, once; use it when you have "
                        "finished choosing runs and settings on validation")
    p.add_argument("--model", default=d.model, choices=sorted(model_builder.MODELS), help="architecture")
    p.add_argument("--epochs", type=_at_least(1), default=d.epochs, help="epochs in total (also when resuming)")
    p.add_argument("--patience", type=_at_least(1), default=d.patience,
                   help="early stopping: stop after this many epochs without a lower validation loss "
                        "(after --resume, counted from the resumed epoch); None: train all --epochs")
    p.add_argument("--batch-size", type=_at_least(1), default=d.batch_size, help="images per batch and process")
    p.add_argument("--lr", type=_positive_float, default=d.lr, help="Adam learning rate")
    p.add_argument("--lr-schedule", default=d.lr_schedule, choices=tuple(LR_SCHEDULES),
                   help="learning rate per epoch: " + "; ".join(f"{k}: {v}" for k, v in LR_SCHEDULES.items())
                   + " (a --resume lays it out over the --epochs given then)")
    p.add_argument("--hidden-units", type=_at_least(1), default=d.hidden_units, help="channels per convolution")
    p.add_argument("--image-size", type=_at_least(16), default=d.image_size, help="images are resized to this square")
    p.add_argument("--device", default=d.device, choices=DEVICE_CHOICES, help="auto takes a GPU when there is one")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for weights and shuffling")
    p.add_argument("--num-workers", type=_at_least(0), default=d.num_workers, help="DataLoader worker processes")
    p.add_argument("--amp", default=d.amp, choices=("none", "bf16", "fp16"), help="mixed precision")
    p.add_argument("--channels-last", default=d.channels_last, action=argparse.BooleanOptionalAction,
                   help="channels-last memory format (faster convolutions on many CPUs and GPUs)")
    p.add_argument("--cache", default=d.cache, action=argparse.BooleanOptionalAction,
                   help="decode every image once and keep it in memory (small datasets)")
    p.add_argument("--output", default=d.output, help="checkpoint path (.pth or .pt)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the checkpoint at --output up to --epochs (with the flags given now)")
    again.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    p.add_argument("--dry-run", action="store_true", help="run one batch to check the set-up; write nothing")
    return p
