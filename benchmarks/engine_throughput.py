"""How fast is going_modular.engine? Side by side, in one run, on the same data and model.

    python benchmarks/engine_throughput.py [--device auto|cpu|cuda] [--repeats 5]

Part 1, engine vs. the original course's loop. The reference loop below is written the way
the original course writes its engine: `.item()` on every batch (on a GPU each one makes the
CPU wait), softmax + argmax for accuracy, metrics averaged over batches. Both loops train
TinyVGG for one epoch and test it, from the same starting weights, on the same DataLoader.
Rows: the engine with the reference's settings (measures the loop alone), and the engine
with its options (channels_last on the CPU; bf16 autocast + channels_last on CUDA).

Part 2, engine.train against pure compute. One epoch of engine.train (DataLoader, metrics,
progress bar) against the same forward/backward/step and test forwards on the same batches
pre-loaded as tensors on the device: the gap is what the data pipeline and the bookkeeping
cost. Shown for the plain ImageFolder pipeline (decode every JPEG every epoch) and for the
decode-once cache (create_dataloaders(cache=True)).

Each configuration gets a warm-up epoch, then --repeats timed epochs; the configurations are
interleaved within each repeat (the machine may be shared). Reported: the median, with the
ratio as the median of per-round ratios, and, in brackets, the best (fastest) epoch of each.
"""
from __future__ import annotations

import argparse
import atexit
import copy
import os
import shutil
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from going_modular import data_setup, engine
from going_modular.model_builder import TinyVGG

REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- the original course's loop
def reference_train_step(model, dataloader, loss_fn, optimizer, device):
    model.train()
    train_loss, train_acc = 0, 0
    for batch, (X, y) in enumerate(dataloader):
        X, y = X.to(device), y.to(device)
        y_pred = model(X)
        loss = loss_fn(y_pred, y)
        train_loss += loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        y_pred_class = torch.argmax(torch.softmax(y_pred, dim=1), dim=1)
        train_acc += (y_pred_class == y).sum().item() / len(y_pred)
    return train_loss / len(dataloader), train_acc / len(dataloader)


def reference_test_step(model, dataloader, loss_fn, device):
    model.eval()
    test_loss, test_acc = 0, 0
    with torch.inference_mode():
        for batch, (X, y) in enumerate(dataloader):
            X, y = X.to(device), y.to(device)
            test_pred_logits = model(X)
            loss = loss_fn(test_pred_logits, y)
            test_loss += loss.item()
            test_pred_labels = test_pred_logits.argmax(dim=1)
            test_acc += (test_pred_labels == y).sum().item() / len(test_pred_labels)
    return test_loss / len(dataloader), test_acc / len(dataloader)


# --------------------------------------------------------------------------- data
def food_folder(data: str | None) -> tuple[Path, str]:
    """The drawn pizza/steak/sushi ImageFolder (course.food), or random-ish JPEGs if that is missing."""
    if data:
        return Path(data), f"{data} (given)"
    try:
        from course.food import make_food_images
    except ImportError:
        make_food_images = None
    if make_food_images is not None:
        root = make_food_images(REPO / "data" / "pizza_steak_sushi_drawn", subset="10%")
        return root, f"{root.relative_to(REPO)} (drawn by course.food)"
    root = Path(tempfile.mkdtemp(prefix="food_random_"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    rng = np.random.default_rng(0)
    for split, count in (("train", 75), ("test", 25)):
        for k, label in enumerate(("pizza", "steak", "sushi")):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                base = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
                base[..., k] = 200  # a class colour under smooth noise
                image = Image.fromarray(base).resize((256, 256), Image.BICUBIC)
                image.save(root / split / label / f"{label}_{i}.jpg", quality=85)
    return root, f"{root} (random JPEGs; course.food not found)"


# --------------------------------------------------------------------------- timing
def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def compare(configs: dict, device: torch.device, repeats: int) -> dict[str, list[float]]:
    """Warm each config up once, then time `repeats` rounds with the configs interleaved (rotated)."""
    for fn in configs.values():
        fn()
    times = {name: [] for name in configs}
    names = list(configs)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(timed(configs[name], device))
    return times


def epoch_runner(kind, model0, train_dl, test_dl, device, amp=None, channels_last=False):
    """A function running one train+test epoch of `kind`, each time from the same starting weights."""
    loss_fn = nn.CrossEntropyLoss()

    def fresh():
        model = copy.deepcopy(model0).to(device)
        return model, torch.optim.Adam(model.parameters(), lr=1e-3)

    def reference():
        model, optimizer = fresh()
        reference_train_step(model, train_dl, loss_fn, optimizer, device)
        reference_test_step(model, test_dl, loss_fn, device)

    def ours():
        model, optimizer = fresh()
        engine.train(model, train_dl, test_dl, optimizer, loss_fn, 1, device, amp=amp,
                     channels_last=channels_last, progress=False, verbose=False)

    def pure():  # the same arithmetic on pre-loaded device batches; no metrics, no loader
        model, optimizer = fresh()
        if channels_last:
            model.to(memory_format=torch.channels_last)
        autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if amp == "bf16" else nullcontext())
        model.train()
        for X, y in train_batches:
            with autocast:
                loss = loss_fn(model(X), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.inference_mode(), autocast:
            for X, _ in test_batches:
                model(X)

    if kind == "pure":
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        train_batches = [(X.to(device).contiguous(memory_format=fmt), y.to(device)) for X, y in train_dl]
        test_batches = [(X.to(device).contiguous(memory_format=fmt), y.to(device)) for X, y in test_dl]
    return {"reference": reference, "engine": ours, "pure": pure}[kind]


def median(values):
    return statistics.median(values)


def report_part1(device, model0, train_dl, test_dl, n_images, repeats, options):
    configs = {
        "reference loop (original course)": epoch_runner("reference", model0, train_dl, test_dl, device),
        "engine, same settings": epoch_runner("engine", model0, train_dl, test_dl, device),
        f"engine, {options['label']}": epoch_runner("engine", model0, train_dl, test_dl, device,
                                                    amp=options["amp"], channels_last=True),
    }
    times = compare(configs, device, repeats)
    ref = times["reference loop (original course)"]
    print(f"\n[{device.type}] part 1: one train+test epoch, {n_images} images, median of {repeats}")
    print(f"  {'loop':<42} {'images/s':>9} {'vs reference':>13} {'(best of: images/s, ratio)':>27}")
    for name, t in times.items():
        ratio = median([a / b for a, b in zip(ref, t)])  # paired: same round, same machine load
        print(f"  {name:<42} {n_images / median(t):>9.0f} {ratio:>12.2f}x "
              f"{n_images / min(t):>17.0f} {min(ref) / min(t):>8.2f}x")
    return median([a / b for a, b in zip(ref, times[f"engine, {options['label']}"])])


def report_part2(device, model0, folder, batch_size, n_images, repeats, options):
    size = 64
    transform = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor()])
    start = time.perf_counter()
    cached = data_setup.create_dataloaders(folder / "train", folder / "test", transform, batch_size, 0,
                                           seed=0, cache=True)
    cache_s = time.perf_counter() - start
    plain = data_setup.create_dataloaders(folder / "train", folder / "test", transform, batch_size, 0, seed=0)
    kw = dict(amp=options["amp"], channels_last=True)
    configs = {
        "pure compute (batches pre-loaded on device)": epoch_runner("pure", model0, *cached[:2], device, **kw),
        "engine.train, ImageFolder (decode each epoch)": epoch_runner("engine", model0, *plain[:2], device, **kw),
        "engine.train, cache=True (decode once)": epoch_runner("engine", model0, *cached[:2], device, **kw),
    }
    times = compare(configs, device, repeats)
    pure = times["pure compute (batches pre-loaded on device)"]
    print(f"\n[{device.type}] part 2: epoch time against pure compute ({options['label']}), "
          f"TinyVGG on {size} px food data, median of {repeats}")
    print(f"  (building the decode-once cache took {cache_s:.2f} s, once)")
    print(f"  {'':<46} {'epoch s':>8} {'vs pure':>8} {'(best of: epoch s, ratio)':>26}")
    for name, t in times.items():
        ratio = median([b / a for a, b in zip(pure, t)])
        print(f"  {name:<46} {median(t):>8.3f} {ratio:>7.2f}x {min(t):>17.3f} {min(t) / min(pure):>7.2f}x")
    return median([b / a for a, b in zip(pure, times["engine.train, cache=True (decode once)"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: the CPU, and CUDA too when there is a GPU")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per configuration")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden-units", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: PyTorch's choice); 1 is steadier on a shared machine")
    parser.add_argument("--data", default=None, help="an ImageFolder root with train/ and test/ (default: drawn food)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch.cuda.is_available() is False; use --device cpu or auto")
    devices = {"auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []), "cpu": ["cpu"],
               "cuda": ["cuda"]}[args.device]

    if args.threads:
        torch.set_num_threads(args.threads)
    folder, source = food_folder(args.data)
    transform = transforms.Compose([transforms.Resize((64, 64)), transforms.ToTensor()])
    train_dl, test_dl, class_names = data_setup.create_dataloaders(
        folder / "train", folder / "test", transform, args.batch_size, 0, seed=0, cache=True)
    n_images = len(train_dl.dataset) + len(test_dl.dataset)
    print(f"data: {source}: {len(train_dl.dataset)} train + {len(test_dl.dataset)} test images, "
          f"{len(class_names)} classes, resized to 64 px, batch size {args.batch_size}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no CUDA"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > (os.cpu_count() or 1) - 0.5:
        print(f"note: load average {load:.1f} on {os.cpu_count()} cores: other work shares this CPU, so timings "
              "are noisy; the paired ratios and --threads 1 hold up best")
    torch.manual_seed(0)
    model0 = TinyVGG(3, args.hidden_units, len(class_names))

    summary = []
    for name in devices:
        device = torch.device(name)
        options = {"amp": None, "label": "channels_last"} if name == "cpu" else \
                  {"amp": "bf16", "label": "bf16 + channels_last"}
        speedup = report_part1(device, model0, train_dl, test_dl, n_images, args.repeats, options)
        overhead = report_part2(device, model0, folder, args.batch_size, n_images, args.repeats, options)
        goal = 1.05 if name == "cpu" else 1.5
        summary.append(f"  {name}: engine vs reference {speedup:.2f}x (goal >= {goal}x: "
                       f"{'met' if speedup >= goal else 'NOT met'}); engine.train with cache vs pure compute "
                       f"{overhead:.2f}x (goal <= 1.15x: {'met' if overhead <= 1.15 else 'NOT met'})")
    print("\nsummary:\n" + "\n".join(summary))


if __name__ == "__main__":
    main()
