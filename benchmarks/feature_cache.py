"""Feature caching vs. recomputing a frozen backbone every epoch: side by side, in one run.

    python benchmarks/feature_cache.py [--device auto|cpu|cuda] [--epochs 5] [--data offline|real]

Both loops train the same new head (Dropout + Linear(1280, 3), seeded) on top of the same frozen
EfficientNet backbone (offline: EfficientNet-Lite0; with the torchvision B0 weights cached or
--data real: EfficientNet-B0), on the same 10 % pizza/steak/sushi images prepared with the
weights' own transforms (no augmentation), with the same seed, batch size and epochs:

- naive: `engine.train(nn.Sequential(FrozenBackbone(backbone), head), train_images, test_images, ...)`
  runs every image through the backbone in every epoch (train and test);
- cached: `feature_dataloaders(backbone, train_images, test_images, ...)` runs the backbone once,
  then `engine.train(head, train_features, test_features, ...)` trains on the stored features.

Printed: each loop's epoch time (median over epochs; the cached loop's extraction pass is shown
separately), the epoch-time ratio, the end-to-end ratio for all epochs (extraction included), and
both loops' final test accuracy and loss. The two compute the same thing, so the accuracies must
agree (the script fails if the test losses differ by more than 1e-4).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

from course.data import food_images
from course.weights import get_weights
from going_modular import data_setup, engine
from going_modular.features import FrozenBackbone, backbone_and_head, feature_dataloaders
from going_modular.runtime import get_device, set_seeds


def timed_train(model, train_loader, test_loader, head, epochs, device, seed):
    """engine.train with a fresh Adam on `head`, returning (results, per-epoch seconds)."""
    set_seeds(seed)  # the head's Dropout draws the same masks in both loops
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
    stamps = [time.perf_counter()]

    def on_epoch_end(epoch, metrics):
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    results = engine.train(model, train_loader, test_loader, optimizer, nn.CrossEntropyLoss(), epochs, device,
                           on_epoch_end=on_epoch_end, progress=False, verbose=False)
    return results, [b - a for a, b in zip(stamps, stamps[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data", choices=("offline", "real"), default="offline")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: PyTorch's)")
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error(f"--epochs {args.epochs}: need at least 1 epoch")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    print(f"device: {device}, threads: {torch.get_num_threads()}, epochs: {args.epochs}, batch size: {args.batch_size}")

    weights = get_weights("efficientnet_b0", data=args.data)
    root = food_images(args.data, subset="10%")
    train_images, test_images, class_names = data_setup.create_dataloaders(
        root / "train", root / "test", weights.transforms(), args.batch_size, 0, seed=args.seed, cache=True)

    set_seeds(args.seed)
    model = weights.build().to(device)
    backbone, _ = backbone_and_head(model)
    head = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(1280, len(class_names))).to(device)
    naive_head, cached_head = copy.deepcopy(head), copy.deepcopy(head)  # the same starting weights

    # Naive: the frozen backbone runs over every image, every epoch.
    naive_model = nn.Sequential(FrozenBackbone(backbone), naive_head)
    naive, naive_epochs = timed_train(naive_model, train_images, test_images, naive_head, args.epochs, device,
                                      args.seed)

    # Cached: the backbone runs once, the head trains on the stored features.
    start = time.perf_counter()
    train_features, test_features = feature_dataloaders(backbone, train_images, test_images, device,
                                                        batch_size=args.batch_size, seed=args.seed)
    extract_s = time.perf_counter() - start
    cached, cached_epochs = timed_train(cached_head, train_features, test_features, cached_head, args.epochs,
                                        device, args.seed)

    naive_epoch, cached_epoch = statistics.median(naive_epochs), statistics.median(cached_epochs)
    naive_total, cached_total = sum(naive_epochs), extract_s + sum(cached_epochs)
    print(f"\n{len(train_images.dataset)} train + {len(test_images.dataset)} test images, "
          f"{weights.name} backbone at {tuple(train_images.dataset[0][0].shape)}")
    print(f"naive  (backbone every epoch): {naive_epoch:8.3f} s/epoch   total {naive_total:7.2f} s")
    print(f"cached (features once):        {cached_epoch:8.3f} s/epoch   total {cached_total:7.2f} s "
          f"(extraction {extract_s:.2f} s, once)")
    print(f"epoch-time ratio: {naive_epoch / cached_epoch:,.0f}x; end to end over {args.epochs} epochs, "
          f"extraction included: {naive_total / cached_total:.2f}x")
    print(f"final test accuracy: naive {naive['test_acc'][-1]:.4f}, cached {cached['test_acc'][-1]:.4f}; "
          f"test loss: naive {naive['test_loss'][-1]:.6f}, cached {cached['test_loss'][-1]:.6f}")
    gap = max(abs(a - b) for a, b in zip(naive["test_loss"], cached["test_loss"]))
    if gap > 1e-4:
        raise SystemExit(f"The two loops disagree: test losses differ by up to {gap:.2e} (expected < 1e-4).")
    print(f"the two loops agree: test losses within {gap:.1e} at every epoch")


if __name__ == "__main__":
    main()
