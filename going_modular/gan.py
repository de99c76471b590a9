# Written by notebooks/10_pytorch_generative_networks.ipynb: edit the notebook, not this file.
"""Networks that fake it: a pretrained CycleGAN generator and a small DCGAN trained from scratch.

The CycleGAN ResNet generator (lesson 10, section 2) loads two weight files with one class:

    generator = load_generator(path, sha256=...)  # affine norms or not, `block` or `conv_block` names
    fake = generator(batch)                       # (B, 3, H, W) -> (B, 3, H, W) in [-1, 1]

The DCGAN (section 3) turns noise into 28x28 digits, judged by a discriminator:

    G, D = DCGANGenerator(latent_dim=64, width=32), DCGANDiscriminator(width=32)
    history = train_gan_epoch(G, D, loader, opt_g, opt_d, device)
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from going_modular.download import git_blob_of, sha256_of

BLOCK_NAMES = ("conv_block", "block")  # the book's name for a residual block's layers, vintagify's


class DigestMismatch(RuntimeError):
    """A weights file is not the file it was pinned as; nothing was loaded from it."""


# --------------------------------------------------------------------------- CycleGAN generator
class ResidualBlock(nn.Module):
    """x + f(x), where f is pad, 3x3 conv, norm, ReLU, pad, 3x3 conv, norm: the shape stays (B, C, H, W)."""

    def __init__(self, dim: int, affine: bool = False):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3), nn.InstanceNorm2d(dim, affine=affine),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3), nn.InstanceNorm2d(dim, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """The CycleGAN generator of Zhu et al. (2017) in the layout of *Deep Learning with PyTorch*, ch. 2.

    Args:
        affine: InstanceNorm with a learned scale and shift per channel (vintagify's weights) or
            without (the book's horse2zebra weights).
        width: channels after the first convolution (64 in both files).
        n_blocks: residual blocks (9 in both files).
    """

    def __init__(self, affine: bool = False, width: int = 64, n_blocks: int = 9):
        super().__init__()
        norm = lambda channels: nn.InstanceNorm2d(channels, affine=affine)  # noqa: E731
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, width, kernel_size=7), norm(width), nn.ReLU(inplace=True)]
        for c in (width, 2 * width):      # two stride-2 convolutions: (B, 64, H, W) -> (B, 256, H/4, W/4)
            layers += [nn.Conv2d(c, 2 * c, kernel_size=3, stride=2, padding=1), norm(2 * c), nn.ReLU(inplace=True)]
        layers += [ResidualBlock(4 * width, affine) for _ in range(n_blocks)]  # (B, 256, H/4, W/4)
        for c in (4 * width, 2 * width):  # two transposed convolutions: back to (B, 64, H, W)
            layers += [nn.ConvTranspose2d(c, c // 2, kernel_size=3, stride=2, padding=1, output_padding=1),
                       norm(c // 2), nn.ReLU(inplace=True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, 3, kernel_size=7), nn.Tanh()]  # (B, 3, H, W) in [-1, 1]
        self.model = nn.Sequential(*layers)
        self.affine = affine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        return self.model(x)


def check_images(x: torch.Tensor) -> None:
    """Refuse what ResnetGenerator cannot take, naming what it expected."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a tensor of shape (B, 3, H, W), got a {type(x).__name__}. "
                        "Turn an image into one with a transform (ToTensor) and .unsqueeze(0).")
    if x.ndim != 4 or x.shape[1] != 3:
        fix = " For one image, add the batch dimension: image.unsqueeze(0)." if x.ndim == 3 else ""
        raise ValueError(f"expected a batch of RGB images of shape (B, 3, H, W), got shape {tuple(x.shape)}.{fix}")
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point tensor, got dtype {x.dtype}. Use ToTensor() or x.float() / 255.")
    h, w = x.shape[-2:]
    if h % 4 or w % 4 or h < 8 or w < 8:
        raise ValueError(f"expected height and width that are multiples of 4 and at least 8 (two stride-2 "
                         f"convolutions halve them twice, the transposed ones double them back), got {h}x{w}. "
                         "Resize or crop, e.g. to 256x256.")


def rename_blocks(state_dict: dict, to: str = "conv_block") -> dict:
    """The same tensors with each residual block's layers renamed `to` ("conv_block" or "block").

    The book names them `model.10.conv_block.1.weight`, vintagify `model.10.block.1.weight`;
    every other key is the same in both files.
    """
    if to not in BLOCK_NAMES:
        raise ValueError(f"to={to!r} is not one of {', '.join(BLOCK_NAMES)}.")
    pattern = re.compile(r"^(model\.\d+\.)(?:conv_block|block)\.")
    return {pattern.sub(rf"\g<1>{to}.", key): value for key, value in state_dict.items()}


def has_affine_norms(state_dict: dict) -> bool:
    """True when the file has InstanceNorm scales: 1-D `weight` tensors (every convolution's is 4-D)."""
    return any(key.endswith(".weight") and value.ndim == 1 for key, value in state_dict.items())


def _verify(path: Path, sha256: str | None, git_blob: str | None) -> None:
    pins = []  # the digests come from the course's one download helper (lesson 03's download.py)
    if sha256 is not None:
        pins.append(("SHA-256", sha256.lower(), sha256_of(path)))
    if git_blob is not None:
        pins.append(("git blob id", git_blob.lower(), git_blob_of(path)))
    for what, expected, actual in pins:
        if actual != expected:
            raise DigestMismatch(f"{path} has {what} {actual}, expected {expected}: it is not the pinned weights "
                                 "file (corrupt, truncated or replaced), so it was not loaded. Reinstall or "
                                 "re-download it.")


def load_generator(path: str | Path, *, sha256: str | None = None, git_blob: str | None = None,
                   map_location: str | torch.device = "cpu") -> ResnetGenerator:
    """A ResnetGenerator in eval mode with the weights in `path`, after checking its pins.

    The layout is read from the file: InstanceNorm scales present -> affine=True; residual
    blocks named `block` are renamed `conv_block`. `weights_only=True` reads tensors only, and
    `map_location` moves tensors saved on a GPU to where they can be loaded.

    Raises:
        DigestMismatch: the file does not match `sha256` or `git_blob`.
        RuntimeError: the tensors do not fit the generator (a different network's file).
    """
    path = Path(path)
    _verify(path, sha256, git_blob)
    state_dict = torch.load(path, map_location=map_location, weights_only=True)
    state_dict = rename_blocks(state_dict, to="conv_block")
    generator = ResnetGenerator(affine=has_affine_norms(state_dict))
    generator.load_state_dict(state_dict)
    return generator.eval()


# --------------------------------------------------------------------------- DCGAN for 28x28 digits
class DCGANGenerator(nn.Module):
    """Noise (B, latent_dim) -> images (B, 1, 28, 28) in [-1, 1]: a linear layer, then two transposed convs."""

    def __init__(self, latent_dim: int = 64, width: int = 32):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = nn.Sequential(
            nn.Linear(latent_dim, 2 * width * 7 * 7, bias=False), nn.Unflatten(1, (2 * width, 7, 7)),
            nn.BatchNorm2d(2 * width), nn.ReLU(),                                    # (B, 2w, 7, 7)
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(),                                        # (B, w, 14, 14)
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1), nn.Tanh(),          # (B, 1, 28, 28)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected noise of shape (B, {self.latent_dim}), got {tuple(z.shape)}. "
                             f"Draw it with torch.randn(B, {self.latent_dim}).")
        return self.net(z)


class DCGANDiscriminator(nn.Module):
    """Images (B, 1, 28, 28) in [-1, 1] -> one logit each (B,): positive means "real"."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),                 # (B, w, 14, 14)
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2),                                   # (B, 2w, 7, 7)
            nn.Flatten(), nn.Linear(2 * width * 7 * 7, 1),                                  # (B, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"expected images of shape (B, 1, 28, 28), got {tuple(x.shape)}.")
        return self.net(x).squeeze(1)


def gan_step(G: nn.Module, D: nn.Module, real: torch.Tensor, opt_g: torch.optim.Optimizer,
             opt_d: torch.optim.Optimizer, loss_fn: nn.Module = nn.BCEWithLogitsLoss()) -> torch.Tensor:
    """One round of the game on one batch; returns (d_loss, g_loss, D(real), D(fake)) as a tensor of 4."""
    ones = torch.ones(len(real), device=real.device)
    zeros = torch.zeros(len(real), device=real.device)
    fake = G(torch.randn(len(real), G.latent_dim, device=real.device))
    # the discriminator: real -> 1, fake -> 0 (detach: this step must not change G)
    real_logits, fake_logits = D(real), D(fake.detach())
    d_loss = loss_fn(real_logits, ones) + loss_fn(fake_logits, zeros)
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    # the generator: make D say 1 for the fakes
    g_loss = loss_fn(D(fake), ones)
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    with torch.no_grad():
        probs = torch.stack([real_logits.sigmoid().mean(), fake_logits.sigmoid().mean()])
    return torch.cat([torch.stack([d_loss.detach(), g_loss.detach()]), probs])


def train_gan_epoch(G: nn.Module, D: nn.Module, loader: Iterable, opt_g: torch.optim.Optimizer,
                    opt_d: torch.optim.Optimizer, device: torch.device | str) -> dict[str, list[float]]:
    """One pass over `loader` (batches of real images, or (images, labels)); per-step d_loss, g_loss, D(real), D(fake)."""
    G.train()
    D.train()
    steps = []
    for batch in loader:
        real = (batch[0] if isinstance(batch, (tuple, list)) else batch).to(device)
        steps.append(gan_step(G, D, real, opt_g, opt_d))
    values = torch.stack(steps).cpu()  # one sync with the device per epoch
    return {name: values[:, i].tolist() for i, name in enumerate(("d_loss", "g_loss", "d_real", "d_fake"))}
