"""going_modular/gan.py (lesson 10): one CycleGAN generator class for two weight layouts, and the DCGAN."""
import hashlib

import pytest
import torch
from torch import nn

from course.weights import VINTAGIFY_PARAMS, VINTAGIFY_SHA256, vintagify_file
from going_modular.gan import (DCGANDiscriminator, DCGANGenerator, DigestMismatch, ResnetGenerator,
                               gan_step, has_affine_norms, load_generator, rename_blocks, train_gan_epoch)


def book_generator() -> nn.Sequential:
    """An oracle for the book's key layout, built the way the book's ResNetGenerator is
    (Deep Learning with PyTorch, p1ch2/3_cyclegan.ipynb): `model.N` layers, residual blocks
    holding `conv_block`, InstanceNorm without affine parameters, so no norm keys at all."""
    class Block(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.conv_block = nn.Sequential(
                nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(True),
                nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim))

        def forward(self, x):
            return x + self.conv_block(x)

    layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, 64, 7), nn.InstanceNorm2d(64), nn.ReLU(True)]
    for i in range(2):
        m = 2 ** i
        layers += [nn.Conv2d(64 * m, 128 * m, 3, stride=2, padding=1), nn.InstanceNorm2d(128 * m), nn.ReLU(True)]
    layers += [Block(256) for _ in range(9)]
    for i in range(2):
        m = 2 ** (2 - i)
        layers += [nn.ConvTranspose2d(64 * m, 32 * m, 3, stride=2, padding=1, output_padding=1),
                   nn.InstanceNorm2d(32 * m), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(64, 3, 7), nn.Tanh()]
    holder = nn.Module()
    holder.model = nn.Sequential(*layers)
    return holder


@pytest.fixture(scope="module")
def vintage():
    return load_generator(vintagify_file(), sha256=VINTAGIFY_SHA256)


def test_the_vintage_file_has_the_published_size_and_affine_norms(vintage):
    assert sum(p.numel() for p in vintage.parameters()) == VINTAGIFY_PARAMS == 11_388_675
    assert vintage.affine is True and not vintage.training


def test_the_vintage_generator_keeps_the_image_size_and_tanh_range(vintage):
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    with torch.inference_mode():
        y = vintage(x)
    assert y.shape == x.shape and torch.isfinite(y).all() and y.abs().max() <= 1


def test_a_book_layout_file_loads_into_the_same_class(tmp_path):
    torch.manual_seed(0)
    book = book_generator().eval()
    state = book.state_dict()
    assert "model.10.conv_block.1.weight" in state and not has_affine_norms(state)
    path = tmp_path / "horse2zebra_like.pth"
    torch.save(state, path)
    ours = load_generator(path, git_blob=hashlib.sha1(b"blob %d\0" % path.stat().st_size + path.read_bytes()).hexdigest())
    assert ours.affine is False
    assert sum(p.numel() for p in ours.parameters()) == 11_378_179 == VINTAGIFY_PARAMS - 10_496
    x = torch.rand(1, 3, 24, 24)
    with torch.inference_mode():
        assert torch.allclose(ours(x), book.model(x), atol=1e-6)


def test_a_vintagify_layout_file_loads_too(tmp_path):
    torch.manual_seed(1)
    source = ResnetGenerator(affine=True)
    state = rename_blocks(source.state_dict(), to="block")
    assert "model.10.block.2.weight" in state and not any("conv_block" in k for k in state)
    path = tmp_path / "vintage_like.pth"
    torch.save(state, path)
    loaded = load_generator(path)
    assert loaded.affine is True
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), source.state_dict().values()))


def test_rename_blocks_touches_only_the_block_names():
    state = {"model.1.weight": 1, "model.10.block.1.weight": 2, "model.18.conv_block.6.bias": 3, "model.26.bias": 4}
    assert rename_blocks(state, to="conv_block") == {"model.1.weight": 1, "model.10.conv_block.1.weight": 2,
                                                     "model.18.conv_block.6.bias": 3, "model.26.bias": 4}
    assert rename_blocks(rename_blocks(state, to="block"), to="conv_block") == rename_blocks(state, to="conv_block")
    with pytest.raises(ValueError, match=r"to='blocks' is not one of conv_block, block"):
        rename_blocks(state, to="blocks")


def test_a_digest_mismatch_is_refused_with_both_digests(tmp_path):
    path = tmp_path / "G_A2B_epoch33.pth"
    torch.save(ResnetGenerator(affine=True).state_dict(), path)
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DigestMismatch, match=rf"SHA-256 {actual}, expected {VINTAGIFY_SHA256}: it is not the pinned"):
        load_generator(path, sha256=VINTAGIFY_SHA256)
    with pytest.raises(DigestMismatch, match=r"git blob id [0-9a-f]{40}, expected ce10268a"):
        load_generator(path, git_blob="ce10268a67fba8227bd42a071e17eef1b358fa2b")


def test_a_different_networks_file_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(RuntimeError, match="Missing key"):
        load_generator(path)


@pytest.mark.parametrize("bad, error, message", [
    (torch.rand(3, 32, 32), ValueError, r"expected a batch of RGB images of shape \(B, 3, H, W\), got shape \(3, 32, 32\).*unsqueeze\(0\)"),
    (torch.rand(1, 1, 32, 32), ValueError, r"shape \(B, 3, H, W\), got shape \(1, 1, 32, 32\)"),
    (torch.rand(1, 3, 30, 32), ValueError, r"multiples of 4 and at least 8.*got 30x32"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), TypeError, r"expected a floating-point tensor, got dtype torch.uint8"),
    ([[0.0]], TypeError, r"expected a tensor of shape \(B, 3, H, W\), got a list"),
])
def test_wrong_inputs_name_what_was_expected(bad, error, message):
    generator = ResnetGenerator(width=8, n_blocks=1)
    with pytest.raises(error, match=message):
        generator(bad)


def test_dcgan_shapes_and_errors():
    G, D = DCGANGenerator(latent_dim=16, width=8), DCGANDiscriminator(width=8)
    fake = G(torch.randn(5, 16))
    assert fake.shape == (5, 1, 28, 28) and fake.abs().max() <= 1
    assert D(fake).shape == (5,)
    with pytest.raises(ValueError, match=r"expected noise of shape \(B, 16\), got \(5, 64\)"):
        G(torch.randn(5, 64))
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 1, 28, 28\), got \(5, 3, 28, 28\)"):
        D(torch.rand(5, 3, 28, 28))


def test_one_round_of_the_game_trains_both_players():
    torch.manual_seed(0)
    G, D = DCGANGenerator(latent_dim=16, width=8), DCGANDiscriminator(width=8)
    before_g = [p.detach().clone() for p in G.parameters()]
    before_d = [p.detach().clone() for p in D.parameters()]
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    out = gan_step(G, D, torch.rand(8, 1, 28, 28) * 2 - 1, opt_g, opt_d)
    assert out.shape == (4,) and torch.isfinite(out).all() and (0 <= out[2:]).all() and (out[2:] <= 1).all()
    assert all(not torch.equal(a, b) for a, b in zip(before_g, G.parameters()))  # every parameter moved
    assert all(not torch.equal(a, b) for a, b in zip(before_d, D.parameters()))


def test_an_epoch_returns_one_value_per_step():
    torch.manual_seed(0)
    G, D = DCGANGenerator(latent_dim=16, width=8), DCGANDiscriminator(width=8)
    loader = [(torch.rand(4, 1, 28, 28) * 2 - 1, torch.zeros(4)) for _ in range(3)]
    history = train_gan_epoch(G, D, loader, torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters()), "cpu")
    assert set(history) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(len(v) == 3 for v in history.values())
