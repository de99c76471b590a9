"""going_modular/vit.py against torchvision's VisionTransformer and PyTorch's TransformerEncoderLayer (no network)."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from going_modular import vit

SMALL = {"image_size": 32, "patch_size": 8, "num_layers": 2, "num_heads": 2, "hidden_dim": 16, "mlp_dim": 32}


def ours_like(tv_config: dict, num_classes: int, **kwargs) -> vit.ViT:
    """Our ViT with the sizes of a torchvision VisionTransformer configuration."""
    return vit.ViT(img_size=tv_config["image_size"], patch_size=tv_config["patch_size"], num_classes=num_classes,
                   embedding_dim=tv_config["hidden_dim"], depth=tv_config["num_layers"],
                   num_heads=tv_config["num_heads"], mlp_size=tv_config["mlp_dim"], **kwargs)


def randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter non-trivial values (torchvision zeroes the head and the class token)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return model


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("variant, patch, builder, expected", [
    ("ViT-Base", 16, "vit_b_16", 86_567_656),
    ("ViT-Large", 16, "vit_l_16", 304_326_632),
    ("ViT-Huge", 14, "vit_h_14", 632_045_800),
])
def test_parameter_counts_match_torchvision(variant, patch, builder, expected):
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        ours = vit.vit_from_table(variant, patch_size=patch, num_classes=1000)
        theirs = getattr(torchvision.models, builder)(weights=None)
    assert count(ours) == count(theirs) == expected
    paper = {"ViT-Base": 86e6, "ViT-Large": 307e6, "ViT-Huge": 632e6}[variant]
    assert abs(count(ours) - paper) / paper < 0.01  # Table 1, within 1 %


def test_vit_b_16_for_three_classes_has_the_original_courses_count():
    with torch.device("meta"):
        assert count(vit.vit_b_16(num_classes=3)) == 85_800_963


def test_vit_b_16_costs_what_torchvision_lists():
    """Lesson 08, section 8.1: one 224 px image through our ViT-B/16 is torchvision's 17.56 G multiply-adds.

    FlopCounterMode counts a multiply-add as 2 FLOPs; torchvision's `_ops` counts it as one.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = vit.vit_b_16(num_classes=1000).eval()
        with FlopCounterMode(display=False) as counter:
            model(torch.empty(1, 3, 224, 224))
    listed = torchvision.models.ViT_B_16_Weights.IMAGENET1K_V1.meta["_ops"]  # 17.564
    assert counter.get_total_flops() / 2 / 1e9 == pytest.approx(listed, rel=1e-3)


def test_vit_b_16_logits_match_torchvision_with_copied_weights():
    torch.manual_seed(0)
    theirs = randomised(torchvision.models.vit_b_16(weights=None)).eval()
    ours = vit.load_torchvision_vit(vit.vit_b_16(num_classes=1000), theirs.state_dict()).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected, actual = theirs(x), ours(x)
    assert actual.shape == (2, 1000)
    assert (actual - expected).abs().max().item() <= 1e-5
    assert expected.abs().max().item() > 0.1  # the comparison is not between two zero vectors


def test_gradients_match_torchvision_on_a_small_configuration():
    theirs = randomised(torchvision.models.VisionTransformer(num_classes=5, **SMALL))
    ours = vit.load_torchvision_vit(ours_like(SMALL, 5, mlp_dropout=0.0, embedding_dropout=0.0), theirs.state_dict())
    theirs.train(), ours.train()  # dropout is 0 in both: train mode exercises the training code path
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2), requires_grad=True)
    x_ours = x.detach().clone().requires_grad_(True)
    target = torch.tensor([0, 1, 2, 3])
    nn.functional.cross_entropy(theirs(x), target).backward()
    nn.functional.cross_entropy(ours(x_ours), target).backward()
    names = vit._torchvision_names(SMALL["num_layers"])
    their_params = dict(theirs.named_parameters())
    checked = 0
    for our_name, parameter in ours.named_parameters():
        their_grad = their_params[names[our_name]].grad
        assert parameter.grad is not None and their_grad is not None, our_name
        torch.testing.assert_close(parameter.grad, their_grad, atol=1e-5, rtol=1e-4, msg=our_name)
        checked += 1
    assert checked == len(their_params)
    torch.testing.assert_close(x_ours.grad, x.grad, atol=1e-6, rtol=1e-4)


def test_every_parameter_gets_a_gradient_and_output_is_finite():
    model = vit.ViT(img_size=32, patch_size=8, num_classes=3, embedding_dim=24, depth=2, num_heads=3, mlp_size=48)
    randomised(model)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    out.sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_encoder_block_matches_transformer_encoder_layer():
    torch.manual_seed(0)
    dim, heads, mlp = 32, 4, 64
    ours = randomised(vit.TransformerEncoderBlock(dim, heads, mlp)).eval()
    theirs = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=mlp, dropout=0.1, activation="gelu",
                                        layer_norm_eps=1e-6, batch_first=True, norm_first=True).eval()
    with torch.no_grad():
        pairs = [(theirs.norm1, ours.msa.norm), (theirs.norm2, ours.mlp.norm), (theirs.self_attn.out_proj, ours.msa.proj),
                 (theirs.linear1, ours.mlp.mlp[0]), (theirs.linear2, ours.mlp.mlp[3])]
        for their_layer, our_layer in pairs:
            their_layer.weight.copy_(our_layer.weight)
            their_layer.bias.copy_(our_layer.bias)
        theirs.self_attn.in_proj_weight.copy_(ours.msa.qkv.weight)
        theirs.self_attn.in_proj_bias.copy_(ours.msa.qkv.bias)
        x = torch.randn(3, 10, dim)
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)
    assert count(ours) == count(theirs)


def test_patch_embedding_is_flatten_then_matmul():
    embed = vit.PatchEmbedding(in_channels=3, patch_size=4, embedding_dim=8)
    x = torch.randn(2, 3, 8, 12)
    out = embed(x)
    assert out.shape == (2, 6, 8)
    patches = x.unfold(2, 4, 4).unfold(3, 4, 4)  # (2, 3, 2, 3, 4, 4)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(2, 6, 3 * 16)
    expected = patches @ embed.patcher.weight.reshape(8, -1).T + embed.patcher.bias
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_forward_is_forward_features_then_forward_head():
    model = vit.ViT(img_size=32, patch_size=8, num_classes=3, embedding_dim=24, depth=1, num_heads=3,
                    mlp_size=48).eval()
    randomised(model)
    x = torch.randn(2, 3, 32, 32)
    tokens = model.forward_features(x)
    assert tokens.shape == (2, 17, 24)
    assert model.forward_head(tokens, pre_logits=True).shape == (2, 24)
    torch.testing.assert_close(model.forward_head(tokens), model(x))
    model.heads = nn.Identity()  # torchvision's way to get features
    torch.testing.assert_close(model(x), tokens[:, 0])


def test_image_size_not_divisible_by_patch_size_is_refused():
    with pytest.raises(ValueError, match=r"img_size=100 is not divisible by patch_size=16.*e\.g\. 96"):
        vit.ViT(img_size=100, patch_size=16)
    with pytest.raises(ValueError, match=r"Image size 30x32 is not divisible by the patch size 8"):
        vit.PatchEmbedding(patch_size=8)(torch.randn(1, 3, 30, 32))


def test_wrong_channels_and_wrong_image_size_are_refused():
    model = vit.ViT(img_size=32, patch_size=8, num_classes=3, embedding_dim=16, depth=1, num_heads=2, mlp_size=32)
    with pytest.raises(ValueError, match=r"Expected 3 colour channels, got 1"):
        model(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"Expected images of 32x32 pixels, got 64x64"):
        model(torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match=r"Expected a batch of images \(B, C, H, W\), got .*\(3, 32, 32\)"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match=r"embedding_dim=16 is not divisible by num_heads=3"):
        vit.ViT(img_size=32, patch_size=8, embedding_dim=16, num_heads=3)


def test_loading_a_torchvision_model_of_another_configuration_is_refused():
    theirs = torchvision.models.VisionTransformer(num_classes=5, **SMALL)
    with pytest.raises(ValueError, match=r"heads.head.weight has shape \(5, 16\) but our heads.head.weight has \(3, 16\)"):
        vit.load_torchvision_vit(ours_like(SMALL, 3), theirs.state_dict())
    deeper = ours_like({**SMALL, "num_layers": 3}, 5)
    with pytest.raises(ValueError, match=r"does not fit this ViT \(depth 3\): missing"):
        vit.load_torchvision_vit(deeper, theirs.state_dict())
