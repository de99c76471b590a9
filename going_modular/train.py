# Written by notebooks/05_going_modular.ipynb: edit the notebook, not this file.
"""Train an image classifier from the command line.

    python -m going_modular.train --epochs 5 --output models/tinyvgg.pth
    torchrun --nproc_per_node=2 -m going_modular.train --epochs 5 --output models/tinyvgg.pth

After every epoch the checkpoint at --output is replaced atomically, so an interrupted run
keeps its last finished epoch; --resume continues it up to --epochs epochs in total.
"""
from __future__ import annotations

import itertools
import sys
from dataclasses import asdict, fields
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torchvision import transforms

from going_modular import data_setup, engine, model_builder, utils
from going_modular.config import TrainConfig, build_parser  # noqa: F401  (the flags; also importable from here)
from going_modular.distributed import init_distributed  # advanced: several processes (section 17)
from going_modular.runtime import get_device, set_seeds


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
