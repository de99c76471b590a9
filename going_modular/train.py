# Written by notebooks/05_going_modular.ipynb: edit the notebook, not this file.
"""Train an image classifier from the command line.

    python -m going_modular.train --epochs 5 --output models/tinyvgg.pth
    torchrun --nproc_per_node=2 -m going_modular.train --epochs 5 --output models/tinyvgg.pth

After every epoch the checkpoint at --output is replaced atomically, so an interrupted run
keeps its last finished epoch; --resume continues it up to --epochs epochs in total.

With a validation set (--val-fraction, 0.2 by default) the epoch with the lowest validation loss
is also kept, in <output>_best.pth, and the test set is left alone unless --final-test asks to
evaluate that epoch on it, once, at the end.
"""
from __future__ import annotations

import itertools
import sys
import warnings
from dataclasses import asdict, fields
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torchvision import transforms

from going_modular import data_setup, engine, model_builder, utils
from going_modular.config import TrainConfig, build_parser, make_scheduler  # noqa: F401  (also importable from here)
from going_modular.distributed import init_distributed, unwrap  # advanced: several processes (section 17)
from going_modular.runtime import get_device, set_seeds


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, check them, and train; returns the exit status (argparse exits with 2 on bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    output = Path(config.output)
    if output.suffix not in (".pth", ".pt"):
        parser.error(f"--output {output} should end with .pth or .pt, e.g. --output {output.with_suffix('.pth')}")
    if not config.val_fraction and (config.patience or config.lr_schedule == "plateau" or config.final_test):
        what = (f"--patience {config.patience}" if config.patience else "--lr-schedule plateau"
                if config.lr_schedule == "plateau" else "--final-test")
        parser.error(f"{what} needs a validation set, but --val-fraction is 0; hold out one (e.g. --val-fraction "
                     "0.2): choosing epochs on the test set would make its score optimistic")
    for path in (output, best_path(output)):
        if not args.dry_run and path.exists() and not (args.resume or args.overwrite):
            parser.error(f"{'--output ' if path == output else ''}{path} already exists; add --resume to continue it, "
                         "--overwrite to replace it, or choose another --output")
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


def best_path(output: str | Path) -> Path:
    """Where a run with a validation set keeps its best epoch: beside --output, with "_best" added."""
    output = Path(output)
    return output.with_name(f"{output.stem}_best{output.suffix}")


def _best_so_far(history: dict) -> tuple[float, int]:
    """(lowest validation loss, its epoch number) in a checkpoint's history; (inf, 0) without one."""
    losses = history.get("val_loss", [])
    if not losses:
        return float("inf"), 0
    i = min(range(len(losses)), key=losses.__getitem__)
    return losses[i], history["epochs"][i]


def _run(parser, args, config, output, rank, world_size, device) -> int:
    """Build data, model and optimizer (resuming if asked), then train, saving after every epoch."""
    say = print if rank == 0 else (lambda *a, **k: None)  # only the first process prints
    say("config:\n" + "\n".join(f"  {k}: {v}" for k, v in asdict(config).items()))
    say(f"device: {device} | processes: {world_size}")
    set_seeds(config.seed)
    size = config.image_size
    transform = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor()])
    try:
        loaders = data_setup.create_dataloaders(
            config.train_dir, config.test_dir, transform, config.batch_size, config.num_workers,
            seed=config.seed, cache=config.cache, distributed=world_size > 1, val_fraction=config.val_fraction,
            pin_memory=device.type == "cuda")  # page-locked memory only helps copies to a GPU
        train_dataloader, *val_dataloader, test_dataloader, class_names = loaders  # 4 values with validation
        val_dataloader = val_dataloader[0] if val_dataloader else None
        model = model_builder.MODELS[config.model](
            len(class_names), hidden_units=config.hidden_units, image_size=size).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        start_epoch, history = 0, {}
        best = {"loss": float("inf"), "epoch": 0, "state": None}  # the epoch with the lowest validation loss
        if args.resume:
            checkpoint = utils.load_checkpoint(output, model, map_location=device)
            if checkpoint.class_names != class_names:
                raise ValueError(f"{output} was trained on classes {checkpoint.class_names}, "
                                 f"but --train-dir has {class_names}")
            if checkpoint.config.get("val_fraction", 0.0) != config.val_fraction:
                raise ValueError(f"{output} was trained with --val-fraction {checkpoint.config.get('val_fraction', 0.0)}"
                                 f", not {config.val_fraction}; resume with the same, or the split would change")
            optimizer.load_state_dict(checkpoint.optimizer_state)
            start_epoch, history = checkpoint.epoch, checkpoint.history
            best["loss"], best["epoch"] = _best_so_far(history)
            if best_path(output).exists():
                saved_best = model_builder.MODELS[config.model](
                    len(class_names), hidden_units=config.hidden_units, image_size=size)
                best["state"] = utils.load_checkpoint(best_path(output), saved_best, map_location=device).model.state_dict()
        for group in optimizer.param_groups:  # the schedule starts from --lr, then replays the epochs done
            group["lr"] = group["initial_lr"] = config.lr
        scheduler = make_scheduler(config.lr_schedule, optimizer, config.epochs)
        with warnings.catch_warnings():  # replaying the epochs done steps the schedule before optimizer.step()
            warnings.simplefilter("ignore", UserWarning)
            for val_loss in history.get("val_loss", [None] * start_epoch) if scheduler else []:
                engine.step_scheduler(scheduler, val_loss)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    if world_size > 1:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    epochs = config.epochs - start_epoch
    if args.dry_run:
        train_dataloader = list(itertools.islice(train_dataloader, 1))
        test_dataloader = list(itertools.islice(test_dataloader, 1))
        if val_dataloader is not None:
            val_dataloader = list(itertools.islice(val_dataloader, 1))
        epochs = 1
        say(f"dry run: one train batch and one {'validation' if val_dataloader else 'test'} batch"
            + (" (and one test batch)" if config.final_test else "") + "; no checkpoint is written")
    elif epochs <= 0:
        say(f"{output} has trained {start_epoch} epochs already; raise --epochs to train more")
        return 0
    elif config.patience and best["epoch"] and start_epoch - best["epoch"] >= config.patience:
        say(f"{output} stopped early already: no lower validation loss in the {start_epoch - best['epoch']} "
            f"epochs after epoch {best['epoch']}; its best epoch is in {best_path(output)}")
        return 0

    def save(epoch: int, metrics: dict[str, float]) -> None:
        """After every epoch: the last epoch at --output (to resume), the best one on validation beside it."""
        write = rank == 0 and not args.dry_run
        if write:
            utils.save_checkpoint(output, model, config, class_names, epoch=epoch + 1, optimizer=optimizer)
            print(f"saved {output} (epoch {epoch + 1})")
        if "val_loss" in metrics and metrics["val_loss"] < best["loss"]:
            best.update(loss=metrics["val_loss"], epoch=epoch + 1,
                        state={k: v.detach().clone() for k, v in unwrap(model).state_dict().items()})
            if write:
                utils.save_checkpoint(best_path(output), model, config, class_names, epoch=epoch + 1)
                print(f"saved {best_path(output)} (best so far: epoch {epoch + 1})")

    loss_fn, options = torch.nn.CrossEntropyLoss(), dict(amp=None if config.amp == "none" else config.amp,
                                                         channels_last=config.channels_last)
    try:
        engine.train(model, train_dataloader, None if val_dataloader else test_dataloader, optimizer, loss_fn,
                     epochs, device, start_epoch=start_epoch, on_epoch_end=save, progress=rank == 0,
                     verbose=rank == 0, val_dataloader=val_dataloader, patience=config.patience,
                     scheduler=scheduler, **options)
    except KeyboardInterrupt:
        if rank == 0:
            print(f"\ninterrupted: {output} holds the last finished epoch; continue with --resume",
                  file=sys.stderr)
        return 130
    if config.final_test and best["state"] is not None:  # the test set, once, on the epoch chosen on validation
        unwrap(model).load_state_dict(best["state"])
        test_loss, test_acc = engine.test_step(model, test_dataloader, loss_fn, device, **options)
        say(f"Test (once, best epoch {best['epoch']} on validation): test_loss: {test_loss:.4f} | "
            f"test_acc: {test_acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
