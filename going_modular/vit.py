# Written by notebooks/08_pytorch_paper_replicating.ipynb: edit the notebook, not this file.
"""The Vision Transformer of "An Image is Worth 16x16 Words" (Dosovitskiy et al., 2020), piece by piece.

    from going_modular.vit import ViT, vit_b_16
    model = ViT(img_size=224, patch_size=16, num_classes=3)  # ViT-Base/16 (Table 1), 3 classes
    model = vit_b_16(num_classes=1000)                       # the same, sized like torchvision's

The pieces follow the paper's four equations:

    eq. 1  PatchEmbedding + class token + position embedding   (B, C, H, W) -> (B, N + 1, D)
    eq. 2  MultiheadSelfAttentionBlock: x + MSA(LN(x))          (B, N + 1, D) -> same
    eq. 3  MLPBlock: x + MLP(LN(x))                             (B, N + 1, D) -> same
    eq. 4  LN of the class token, then the head                 (B, N + 1, D) -> (B, num_classes)

`forward_features` runs eq. 1-3 and the final LayerNorm, `forward_head` eq. 4, so transfer
learning cuts the model where timm does. The names `heads`, `image_size`, `patch_size` and
`hidden_dim` are torchvision's, so code written for torchvision's `vit_b_16` (for example
`model.heads = nn.Linear(model.hidden_dim, 3)`) works on this ViT unchanged, and
`load_torchvision_vit` copies a torchvision ViT's weights into it.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from going_modular.model_builder import CourseModel

# Table 1 of the paper: layers, hidden size D, MLP size, heads (and the parameter count it quotes).
TABLE_1 = {
    "ViT-Base": {"depth": 12, "embedding_dim": 768, "mlp_size": 3072, "num_heads": 12},  # 86M
    "ViT-Large": {"depth": 24, "embedding_dim": 1024, "mlp_size": 4096, "num_heads": 16},  # 307M
    "ViT-Huge": {"depth": 32, "embedding_dim": 1280, "mlp_size": 5120, "num_heads": 16},  # 632M
}


class PatchEmbedding(nn.Module):
    """Equation 1's patch embedding: cut the image into P x P patches and project each to D numbers.

    A Conv2d whose kernel and stride are both the patch size sees every patch exactly once, so
    it is the same as flattening each patch and multiplying it by one (C*P*P, D) matrix.

    Args:
        in_channels: Colour channels of the images (3 for RGB).
        patch_size: Side P of the square patches.
        embedding_dim: Size D of each patch's embedding.
    """

    def __init__(self, in_channels: int = 3, patch_size: int = 16, embedding_dim: int = 768):
        super().__init__()
        self.patch_size = patch_size
        self.patcher = nn.Conv2d(in_channels, embedding_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"Image size {height}x{width} is not divisible by the patch size {self.patch_size}: "
                f"resize or crop the images to a multiple of {self.patch_size} (e.g. 224 for patch 16)."
            )
        x = self.patcher(x)  # (B, C, H, W) -> (B, D, H/P, W/P)
        x = x.flatten(2)  # -> (B, D, N) with N = HW/P^2
        return x.transpose(1, 2)  # -> (B, N, D): one row per patch


class MultiheadSelfAttentionBlock(nn.Module):
    """Equation 2: x + MSA(LN(x)), multi-head self-attention with a pre-LayerNorm and a residual.

    The attention itself is `F.scaled_dot_product_attention`, so PyTorch can pick a fused kernel
    (flash or memory-efficient attention) where one applies.

    Args:
        embedding_dim: Size D of each token.
        num_heads: Number of attention heads; must divide D.
        attn_dropout: Dropout on the attention weights while training.
        dropout: Dropout on the block's output before the residual add while training.
    """

    def __init__(self, embedding_dim: int = 768, num_heads: int = 12, attn_dropout: float = 0.0,
                 dropout: float = 0.0):
        super().__init__()
        if embedding_dim % num_heads:
            raise ValueError(f"embedding_dim={embedding_dim} is not divisible by num_heads={num_heads}: "
                             "pick a number of heads that divides the embedding size (e.g. 768 and 12).")
        self.num_heads = num_heads
        self.attn_dropout = attn_dropout
        self.norm = nn.LayerNorm(embedding_dim, eps=1e-6)
        self.qkv = nn.Linear(embedding_dim, 3 * embedding_dim)  # queries, keys and values in one matmul
        self.proj = nn.Linear(embedding_dim, embedding_dim)
        self.dropout = nn.Dropout(dropout)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """MSA(x) alone, without the LayerNorm and the residual."""
        batch, tokens, dim = x.shape
        qkv = self.qkv(x)  # (B, N, D) -> (B, N, 3D)
        qkv = qkv.view(batch, tokens, 3, self.num_heads, dim // self.num_heads)  # -> (B, N, 3, h, D/h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, h, N, D/h)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(batch, tokens, dim)  # (B, h, N, D/h) -> (B, N, D)
        return self.proj(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.attention(self.norm(x)))


class MLPBlock(nn.Module):
    """Equation 3: x + MLP(LN(x)), with MLP = Linear -> GELU -> Dropout -> Linear -> Dropout.

    Args:
        embedding_dim: Size D of each token.
        mlp_size: Hidden size of the MLP (4 D in Table 1).
        dropout: Dropout after each Linear while training (0.1 in the paper's Table 3).
    """

    def __init__(self, embedding_dim: int = 768, mlp_size: int = 3072, dropout: float = 0.1):
        super().__init__()
        self.norm = nn.LayerNorm(embedding_dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(embedding_dim, mlp_size),  # (B, N, D) -> (B, N, mlp_size)
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_size, embedding_dim),  # -> (B, N, D)
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(x))


class TransformerEncoderBlock(nn.Module):
    """One layer of the Transformer encoder: equation 2 then equation 3.

    Args:
        embedding_dim: Size D of each token.
        num_heads: Number of attention heads.
        mlp_size: Hidden size of the MLP.
        mlp_dropout: Dropout in the MLP and after the attention.
        attn_dropout: Dropout on the attention weights.
    """

    def __init__(self, embedding_dim: int = 768, num_heads: int = 12, mlp_size: int = 3072,
                 mlp_dropout: float = 0.1, attn_dropout: float = 0.0):
        super().__init__()
        self.msa = MultiheadSelfAttentionBlock(embedding_dim, num_heads, attn_dropout, dropout=mlp_dropout)
        self.mlp = MLPBlock(embedding_dim, mlp_size, mlp_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.msa(x))  # (B, N, D) -> (B, N, D)


class ViT(CourseModel):
    """A Vision Transformer, configurable in every size of the paper's Table 1.

    The defaults are ViT-Base/16 at 224 px: 12 layers, D = 768, MLP 3072, 12 heads.

    Args:
        img_size: Side of the square input images; must be a multiple of `patch_size`.
        in_channels: Colour channels of the images.
        patch_size: Side of the square patches.
        num_classes: Outputs of the head.
        embedding_dim: Hidden size D.
        depth: Number of Transformer encoder layers.
        num_heads: Attention heads per layer.
        mlp_size: Hidden size of each MLP.
        attn_dropout: Dropout on the attention weights.
        mlp_dropout: Dropout in the MLPs and after the attention.
        embedding_dropout: Dropout on the embedded patches (after adding the position embedding).
        name: Label for experiment tables; defaults to "ViT".

    Raises:
        ValueError: `img_size` is not a multiple of `patch_size`, or `num_heads` does not divide D.
    """

    def __init__(self, img_size: int = 224, in_channels: int = 3, patch_size: int = 16, num_classes: int = 1000,
                 embedding_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_size: int = 3072,
                 attn_dropout: float = 0.0, mlp_dropout: float = 0.1, embedding_dropout: float = 0.1,
                 name: str | None = None):
        super().__init__(name or "ViT")
        if img_size % patch_size:
            raise ValueError(
                f"img_size={img_size} is not divisible by patch_size={patch_size}: the patches must tile the "
                f"image. Use an image size that is a multiple of {patch_size} (e.g. {img_size // patch_size * patch_size})."
            )
        self.image_size, self.patch_size, self.in_channels = img_size, patch_size, in_channels
        self.hidden_dim = embedding_dim
        self.num_patches = (img_size // patch_size) ** 2
        self.patch_embedding = PatchEmbedding(in_channels, patch_size, embedding_dim)
        self.class_token = nn.Parameter(torch.zeros(1, 1, embedding_dim))
        self.pos_embedding = nn.Parameter(torch.empty(1, self.num_patches + 1, embedding_dim))
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.blocks = nn.Sequential(*[
            TransformerEncoderBlock(embedding_dim, num_heads, mlp_size, mlp_dropout, attn_dropout)
            for _ in range(depth)
        ])
        self.norm = nn.LayerNorm(embedding_dim, eps=1e-6)
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(embedding_dim, num_classes)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as torchvision does: small position embeddings, Xavier linears, a zero head."""
        nn.init.normal_(self.pos_embedding, std=0.02)
        nn.init.zeros_(self.class_token)
        conv = self.patch_embedding.patcher
        nn.init.trunc_normal_(conv.weight, std=math.sqrt(1 / (conv.in_channels * conv.kernel_size[0] ** 2)))
        nn.init.zeros_(conv.bias)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.normal_(module.bias, std=1e-6)
        for module in self.heads.modules():
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.weight)
                nn.init.zeros_(module.bias)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4:
            raise ValueError(f"Expected a batch of images (B, C, H, W), got a tensor of shape {tuple(x.shape)}. "
                             "Add a batch dimension with x.unsqueeze(0) for a single image.")
        channels, height, width = x.shape[1:]
        if channels != self.in_channels:
            raise ValueError(f"Expected {self.in_channels} colour channels, got {channels} (input shape "
                             f"{tuple(x.shape)}). Convert the images (e.g. image.convert('RGB')) or build the "
                             f"ViT with in_channels={channels}.")
        if (height, width) != (self.image_size, self.image_size):
            raise ValueError(f"Expected images of {self.image_size}x{self.image_size} pixels, got {height}x{width}. "
                             f"Resize them (e.g. transforms.Resize(({self.image_size}, {self.image_size}))) or build "
                             f"the ViT with img_size={height} (the position embedding has one slot per patch).")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Equations 1-3 and the final LayerNorm: images (B, C, H, W) -> tokens (B, N + 1, D)."""
        self._check_input(x)
        x = self.patch_embedding(x)  # (B, C, H, W) -> (B, N, D)
        class_token = self.class_token.expand(x.shape[0], -1, -1)  # (1, 1, D) -> (B, 1, D)
        x = torch.cat((class_token, x), dim=1)  # -> (B, N + 1, D)
        x = self.embedding_dropout(x + self.pos_embedding)  # same shape: one position vector per token
        x = self.blocks(x)  # -> (B, N + 1, D)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Equation 4: the class token's final state -> the head. `pre_logits=True` stops before the head."""
        x = x[:, 0]  # (B, N + 1, D) -> (B, D)
        return x if pre_logits else self.heads(x)  # -> (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def vit_from_table(variant: str = "ViT-Base", *, patch_size: int = 16, img_size: int = 224,
                   num_classes: int = 1000, **kwargs) -> ViT:
    """A ViT sized as one row of Table 1 ("ViT-Base", "ViT-Large" or "ViT-Huge")."""
    if variant not in TABLE_1:
        raise ValueError(f"variant={variant!r} is not one of {', '.join(TABLE_1)}.")
    return ViT(img_size=img_size, patch_size=patch_size, num_classes=num_classes, **TABLE_1[variant], **kwargs)


def vit_b_16(num_classes: int = 1000, **kwargs) -> ViT:
    """ViT-Base/16 at 224 px, the configuration of torchvision's `vit_b_16`."""
    return vit_from_table("ViT-Base", patch_size=16, num_classes=num_classes, **kwargs)


def _torchvision_names(depth: int, has_pre_logits: bool = False) -> dict[str, str]:
    """Our parameter names -> torchvision VisionTransformer's."""
    names = {
        "class_token": "class_token",
        "patch_embedding.patcher.weight": "conv_proj.weight",
        "patch_embedding.patcher.bias": "conv_proj.bias",
        "pos_embedding": "encoder.pos_embedding",
        "norm.weight": "encoder.ln.weight",
        "norm.bias": "encoder.ln.bias",
        "heads.head.weight": "heads.head.weight",
        "heads.head.bias": "heads.head.bias",
    }
    for i in range(depth):
        ours, theirs = f"blocks.{i}.", f"encoder.layers.encoder_layer_{i}."
        for kind in ("weight", "bias"):
            names[f"{ours}msa.norm.{kind}"] = f"{theirs}ln_1.{kind}"
            names[f"{ours}msa.qkv.{kind}"] = f"{theirs}self_attention.in_proj_{kind}"
            names[f"{ours}msa.proj.{kind}"] = f"{theirs}self_attention.out_proj.{kind}"
            names[f"{ours}mlp.norm.{kind}"] = f"{theirs}ln_2.{kind}"
            names[f"{ours}mlp.mlp.0.{kind}"] = f"{theirs}mlp.0.{kind}"
            names[f"{ours}mlp.mlp.3.{kind}"] = f"{theirs}mlp.3.{kind}"
    return names


def load_torchvision_vit(model: ViT, tv_state_dict: Mapping[str, torch.Tensor]) -> ViT:
    """Copy the weights of a torchvision `VisionTransformer` (its `state_dict()`) into our `model`.

    The two models compute the same function: torchvision's `nn.MultiheadAttention` keeps queries,
    keys and values in one `in_proj_weight`, as our `qkv` Linear does, so the mapping is a renaming.

    Args:
        model: Our ViT, configured like the torchvision model (same size, depth, classes).
        tv_state_dict: e.g. `torchvision.models.vit_b_16(weights=...).state_dict()`.

    Returns:
        `model`, with the weights loaded.

    Raises:
        ValueError: a tensor is missing, left over or has a different shape (the configs differ).
    """
    state = dict(tv_state_dict)
    for i in range(len(model.blocks)):  # torchvision < 0.13 named the MLP layers linear_1 / linear_2
        for old, new in (("linear_1", "0"), ("linear_2", "3")):
            for kind in ("weight", "bias"):
                key = f"encoder.layers.encoder_layer_{i}.mlp.{old}.{kind}"
                if key in state:
                    state[f"encoder.layers.encoder_layer_{i}.mlp.{new}.{kind}"] = state.pop(key)
    names = _torchvision_names(len(model.blocks))
    ours = model.state_dict()
    missing = [theirs for theirs in names.values() if theirs not in state]
    unused = sorted(set(state) - set(names.values()))
    if missing or unused:
        raise ValueError(f"The torchvision state dict does not fit this ViT (depth {len(model.blocks)}): missing "
                         f"{missing[:3]}{'...' if len(missing) > 3 else ''}, unused {unused[:3]}"
                         f"{'...' if len(unused) > 3 else ''}. Build our ViT with the same configuration.")
    mapped = {}
    for our_name, their_name in names.items():
        tensor = state[their_name]
        if tensor.shape != ours[our_name].shape:
            raise ValueError(f"{their_name} has shape {tuple(tensor.shape)} but our {our_name} has "
                             f"{tuple(ours[our_name].shape)}: build our ViT with the torchvision model's "
                             "image size, patch size, width, MLP size and number of classes.")
        mapped[our_name] = tensor
    model.load_state_dict(mapped)
    return model
