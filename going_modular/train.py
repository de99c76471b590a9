# Written by notebooks/05_going_modular.ipynb: edit the notebook, not this file.
"""Train an image classifier from the command line.

    python -m going_modular.train --epochs 5 --output models/tinyvgg.pth
    torchrun --nproc_per_node=2 -m going_modular.train --epochs 5 --output models/tinyvgg.pth

After every epoch the checkpoint at --output is replaced atomically, so an interrupted run
keeps its last finished epoch; --resume continues it up to --epochs epochs in total.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torchvision import transforms

from going_modular import data_setup, engine, model_builder, utils
from going_modular.runtime import DEVICE_CHOICES, get_device, set_seeds


@dataclass
class TrainConfig:
    """Everything that shapes a run; printed at the start and saved in every checkpoint."""

    train_dir: str = "data/pizza_steak_sushi/train"
    test_dir: str = "data/pizza_steak_sushi/test"
    model: str = "tinyvgg"
    epochs: int = 5
    batch_size: int = 32
    lr: float = 0.001
    hidden_units: int = 10
    image_size: int = 64
    device: str = "auto"
    seed: int = 42
    num_workers: int = data_setup.NUM_WORKERS
    amp: str = "none"
    channels_last: bool = False
    cache: bool = False
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


def _positive_float(text: str) -> float:
    """An argparse type for numbers greater than 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line; each flag's default is TrainConfig's."""
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m going_modular.train", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--train-dir", default=d.train_dir, help="ImageFolder of training images")
    p.add_argument("--test-dir", default=d.test_dir, help="ImageFolder of test images")
    p.add_argument("--model", default=d.model, choices=sorted(model_builder.MODELS), help="architecture")
    p.add_argument("--epochs", type=_at_least(1), default=d.epochs, help="epochs in total (also when resuming)")
    p.add_argument("--batch-size", type=_at_least(1), default=d.batch_size, help="images per batch and process")
    p.add_argument("--lr", type=_positive_float, default=d.lr, help="Adam learning rate")
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


def init_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """Join the process group when torchrun started several processes; return (rank, world size, device)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1, device
    if device.type == "cuda":
        local_rank, gpus = int(os.environ["LOCAL_RANK"]), torch.cuda.device_count()
        if local_rank >= gpus:
            raise RuntimeError(
                f"torchrun started process {local_rank} on a machine with {gpus} GPU(s); DDP on CUDA uses "
                f"one GPU per process. Use --nproc_per_node={gpus} or fewer, or --device cpu (gloo)."
            )
        device = torch.device("cuda", local_rank)  # one GPU per process
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world_size, device


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, check them, and train; returns the exit status (argparse exits with 2 on bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    output = Path(config.output)
    if output.suffix not in (".pth", ".pt"):
        parser.error(f"--output {output} should end with .pth or .pt, e.g. --output {output.with_suffix('.pth')}")
    if not args.dry_run and output.exists() and not (args.resume or args.overwrite):
        parser.error(f"--output {output} already exists; add --resume to continue it, --overwrite to replace it, "
                     "or choose another --output")
    if args.resume and not output.exists():
        parser.error(f"--resume: there is no checkpoint at {output} to continue; leave out --resume to start one")
    try:
        device = get_device(config.device)
    except (ValueError, RuntimeError) as err:
        parser.error(str(err))
    try:
        rank, world_size, device = init_distributed(device)
    except RuntimeError as err:  # more processes than GPUs
        parser.error(str(err))
    try:
        return _run(parser, args, config, output, rank, world_size, device)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _run(parser, args, config, output, rank, world_size, device) -> int:
    """Build data, model and optimizer (resuming if asked), then train, saving after every epoch."""
    say = print if rank == 0 else (lambda *a, **k: None)  # only the first process prints
    say("config:\n" + "\n".join(f"  {k}: {v}" for k, v in asdict(config).items()))
    say(f"device: {device} | processes: {world_size}")
    set_seeds(config.seed)
    size = config.image_size
    transform = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor()])
    try:
        train_dataloader, test_dataloader, class_names = data_setup.create_dataloaders(
            config.train_dir, config.test_dir, transform, config.batch_size, config.num_workers,
            seed=config.seed, cache=config.cache, distributed=world_size > 1,
            pin_memory=device.type == "cuda")  # page-locked memory only helps copies to a GPU
        model = model_builder.MODELS[config.model](
            len(class_names), hidden_units=config.hidden_units, image_size=size).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        start_epoch = 0
        if args.resume:
            checkpoint = utils.load_checkpoint(output, model, map_location=device)
            if checkpoint.class_names != class_names:
                raise ValueError(f"{output} was trained on classes {checkpoint.class_names}, "
                                 f"but --train-dir has {class_names}")
            optimizer.load_state_dict(checkpoint.optimizer_state)
            start_epoch = checkpoint.epoch
    except (OSError, ValueError) as err:
        parser.error(str(err))
    if world_size > 1:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    epochs = config.epochs - start_epoch
    if args.dry_run:
        train_dataloader = list(itertools.islice(train_dataloader, 1))
        test_dataloader = list(itertools.islice(test_dataloader, 1))
        epochs = 1
        say("dry run: one train batch and one test batch; no checkpoint is written")
    elif epochs <= 0:
        say(f"{output} has trained {start_epoch} epochs already; raise --epochs to train more")
        return 0

    def save(epoch: int, metrics: dict[str, float]) -> None:
        if rank == 0:
            utils.save_checkpoint(output, model, config, class_names, epoch=epoch + 1, optimizer=optimizer)
            print(f"saved {output} (epoch {epoch + 1})")

    try:
        engine.train(model, train_dataloader, test_dataloader, optimizer, torch.nn.CrossEntropyLoss(), epochs,
                     device, amp=None if config.amp == "none" else config.amp, channels_last=config.channels_last,
                     start_epoch=start_epoch, on_epoch_end=None if args.dry_run else save,
                     progress=rank == 0, verbose=rank == 0)
    except KeyboardInterrupt:
        if rank == 0:
            print(f"\ninterrupted: {output} holds the last finished epoch; continue with --resume",
                  file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
