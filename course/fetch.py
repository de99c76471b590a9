"""`python -m course fetch`: download every real dataset and weight file the course can use, verified.

For instructors preparing an offline classroom: run it once on a machine with internet, then
copy the repository's `data/` folder and the torch hub cache (`~/.cache/torch/hub`, see
`torch.hub.get_dir()`) to the classroom machines. Each asset lands exactly where the lessons look
first (DESIGN §5: local cache -> download -> stand-in), so `DATA = "real"` then works offline, and
lessons 06-09 pick torchvision's real weights up from the cache even with `DATA = "offline"`.

    python -m course fetch --list                    # what there is, where it goes, how it is checked
    python -m course fetch                           # all of it (Food-101 alone is about 5 GB)
    python -m course fetch --only efficientnet_b0,pizza_steak_sushi

Verification: the datasets go through the course's one download helper with their pins
(SHA-256 for FashionMNIST, git blob ids for the pizza_steak_sushi zips; torchvision's MD5 for
Food-101), torchvision's weights through torch.hub with torchvision's own check (the SHA-256
prefix in the file name). The book's horse2zebra generator and horse photo (lesson 10, from
Deep Learning with PyTorch's code repository at one commit) go through the download helper
with git blob ids, into data/dlwpt_p1ch2/. An asset already in the cache is not downloaded again.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch


@dataclass(frozen=True)
class Asset:
    """One thing to fetch: `fetch(root)` downloads and verifies it (or finds it cached) and says where."""

    name: str
    kind: str  # "dataset" or "weights"
    size: str  # roughly, for --list
    used_by: str
    fetch: Callable[[Path], str]


def _digits(root: Path) -> str:
    from course.data import digits

    digits("real", root=root)
    return f"{root / 'FashionMNIST'}"


def _food(subset: str) -> Callable[[Path], str]:
    def fetch(root: Path) -> str:
        from course.data import food_images

        return str(food_images("real", subset=subset, root=root))
    return fetch


def _food101(root: Path) -> str:
    from torchvision.datasets import Food101

    Food101(str(root), split="train", download=True)  # torchvision checks the archive's MD5
    return str(root / "food-101")


# The download address of each weight file: torchvision's own, unless a test points it elsewhere.
WEIGHT_URLS: dict[str, str] = {}


def weight_url(arch: str) -> str:
    from course.weights import _torchvision

    return WEIGHT_URLS.get(arch) or _torchvision(arch)[0].url


def _weights(arch: str) -> Callable[[Path], str]:
    def fetch(root: Path) -> str:
        from course.weights import hub_checkpoint

        url = weight_url(arch)
        target = hub_checkpoint(url)
        if target.is_file():
            return f"{target} (already cached)"
        match = torch.hub.HASH_REGEX.search(target.name)  # torchvision names files <arch>-<sha256 prefix>.pth
        if match is None:
            raise ValueError(f"{url} does not end in -<sha256 prefix>.pth, so it cannot be verified.")
        target.parent.mkdir(parents=True, exist_ok=True)
        # torch.hub writes to a temporary file, checks the SHA-256 prefix, and only then renames it
        torch.hub.download_url_to_file(url, str(target), hash_prefix=match.group(1), progress=False)
        return str(target)
    return fetch


def _book(which: str) -> Callable[[Path], str]:
    """One of the book's chapter-2 files (lesson 10), downloaded through the one helper, git-blob pinned."""
    def fetch(root: Path) -> str:
        from course import weights

        path, how = weights.book_file(getattr(weights, which), root)
        return f"{path} (already cached)" if how.startswith("from the local cache") else str(path)
    return fetch


ASSETS: dict[str, Asset] = {a.name: a for a in (
    Asset("fashion_mnist", "dataset", "30 MB", "lesson 03", _digits),
    Asset("pizza_steak_sushi", "dataset", "16 MB", "lessons 04-09", _food("10%")),
    Asset("pizza_steak_sushi_20_percent", "dataset", "30 MB", "lessons 07, 09", _food("20%")),
    Asset("food101", "dataset", "5 GB", "lesson 09 (FoodVision Big)", _food101),
    Asset("efficientnet_b0", "weights", "21 MB", "lessons 06, 07", _weights("efficientnet_b0")),
    Asset("efficientnet_b2", "weights", "36 MB", "lessons 07, 09", _weights("efficientnet_b2")),
    Asset("vit_b_16", "weights", "330 MB", "lessons 08, 09", _weights("vit_b_16")),
    Asset("horse2zebra", "weights", "46 MB", "lesson 10 (the book's CycleGAN)", _book("HORSE2ZEBRA")),
    Asset("horse_jpg", "dataset", "<1 MB", "lesson 10 (the book's horse photo)", _book("HORSE_JPG")),
)}


def select(only: str | None) -> list[Asset]:
    """The assets named in `only` (comma-separated), or all of them."""
    if not only:
        return list(ASSETS.values())
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in ASSETS]
    if unknown:
        raise SystemExit(f"fetch: unknown asset(s) {', '.join(unknown)}. Choose from: {', '.join(ASSETS)} "
                         "(see `python -m course fetch --list`).")
    return [ASSETS[n] for n in names]


def fetch(assets: list[Asset], root: Path) -> int:
    """Fetch each asset; print one line per asset; return 0 when every one is there and verified."""
    failures = 0
    for asset in assets:
        try:
            where = asset.fetch(root)
        except Exception as error:  # noqa: BLE001 - report every asset, then fail
            failures += 1
            print(f"FAILED {asset.name}: {type(error).__name__}: {error}")
            continue
        print(f"ok     {asset.name}: {where}")
    print(f"{len(assets) - failures} of {len(assets)} assets ready" + (f", {failures} failed" if failures else ""))
    return 1 if failures else 0


def add_parser(sub) -> None:
    """Register `fetch` on `python -m course`'s subparsers."""
    from course.data import DATA_ROOT

    p = sub.add_parser("fetch", help="instructors: download every real dataset and weight file, verified",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--only", help=f"comma-separated assets: {', '.join(ASSETS)}")
    p.add_argument("--list", action="store_true", help="list the assets and exit")
    p.add_argument("--root", type=Path, default=DATA_ROOT, help="the data folder the lessons read")
    p.set_defaults(handler=command_fetch)


def command_fetch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    assets = select(args.only)
    if args.list:
        print(f"datasets go under {args.root}; torchvision's weights under {Path(torch.hub.get_dir()) / 'checkpoints'}; "
              f"the book's files (lesson 10) under {args.root / 'dlwpt_p1ch2'}")
        for a in assets:
            print(f"{a.name:30} {a.kind:8} {a.size:>7}  {a.used_by}")
        return 0
    return fetch(assets, args.root)
