"""VideoMAE (Tong et al., NeurIPS 2022) in one file, built from timm layers.

- ``VideoMAE``: masked autoencoder. Tubelet ``Conv3d`` patch embedding, fixed sin-cos position
  table, a ViT encoder that sees only the visible tokens, a narrow 4-block decoder that fills in
  mask tokens, and the per-patch normalised-pixel MSE on the masked tokens only.
- ``VideoClassifier``: the same encoder (no final norm) + mean pooling + LayerNorm + linear head,
  with stochastic depth; ``load_encoder`` takes a ``pretrain.py`` checkpoint.

Token order everywhere: time-major, then row, then column (official VideoMAE, Hugging Face
``VideoMAEForPreTraining`` and ``pmg_dali.tube_mask``). Videos are (B, C, T, H, W), ImageNet-normalised.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# VideoMAE's widths and depths. Decoder: 4 blocks at half the encoder width for S and B (official).
# vit_tiny has no official VideoMAE recipe; we give it the ViT-S decoder (192 wide, 3 heads) because a
# 96-wide decoder would have to predict 1536 pixel values per token through a 96-d bottleneck.
SIZES = {
    "vit_tiny": dict(embed_dim=192, depth=12, num_heads=3, decoder_embed_dim=192, decoder_num_heads=3),
    "vit_small": dict(embed_dim=384, depth=12, num_heads=6, decoder_embed_dim=192, decoder_num_heads=3),
    "vit_base": dict(embed_dim=768, depth=12, num_heads=12, decoder_embed_dim=384, decoder_num_heads=6),
}


@dataclass
class VideoMAEConfig:
    img_size: int = 224
    num_frames: int = 16
    patch_size: int = 16
    tubelet_size: int = 2
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    decoder_embed_dim: int = 384
    decoder_depth: int = 4
    decoder_num_heads: int = 6
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.0
    norm_pix_loss: bool = True          # per-patch normalised pixel target (VideoMAE default)

    def __post_init__(self):
        if self.img_size % self.patch_size:
            raise ValueError(f"`img_size` must be a multiple of `patch_size` ({self.patch_size}), "
                             f"but got {self.img_size}")
        if self.num_frames % self.tubelet_size:
            raise ValueError(f"`num_frames` must be a multiple of `tubelet_size` ({self.tubelet_size}), "
                             f"but got {self.num_frames}")
        for width, heads in (("embed_dim", "num_heads"), ("decoder_embed_dim", "decoder_num_heads")):
            if getattr(self, width) % getattr(self, heads):
                raise ValueError(f"`{width}` must be a multiple of `{heads}` ({getattr(self, heads)}), "
                                 f"but got {getattr(self, width)}")

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T', H', W')."""
        s = self.img_size // self.patch_size
        return (self.num_frames // self.tubelet_size, s, s)

    @property
    def num_patches(self) -> int:
        return math.prod(self.grid)

    @classmethod
    def from_name(cls, name: str, **overrides) -> "VideoMAEConfig":
        """Preset ``name`` (a key of SIZES) with ``overrides`` (``None`` values are ignored)."""
        if name not in SIZES:
            raise ValueError(f"`model` must be one of {tuple(SIZES)}, but got {name!r}")
        return cls(**{**SIZES[name], **{k: v for k, v in overrides.items() if v is not None}})


def sincos_table(num_tokens: int, dim: int) -> torch.Tensor:
    """(1, N, D) fixed 1-D sinusoid table over the flattened token index (as official VideoMAE):
    column 2i is sin(n / 10000^(2i/D)), column 2i+1 is cos of the same angle."""
    pos = torch.arange(num_tokens, dtype=torch.float64)[:, None]
    freq = torch.pow(10000.0, -2 * (torch.arange(dim) // 2) / dim).double()
    angle = pos * freq
    table = torch.where(torch.arange(dim) % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float()[None]


def patchify(video: torch.Tensor, patch_size: int, tubelet_size: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, N, tubelet * patch * patch, C); token order (t, h, w), pixel order (t, y, x)."""
    B, C, T, H, W = video.shape
    t, h, w = T // tubelet_size, H // patch_size, W // patch_size
    x = video.reshape(B, C, t, tubelet_size, h, patch_size, w, patch_size)
    return x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(B, t * h * w, -1, C)


def unpatchify(patches: torch.Tensor, grid: tuple[int, int, int], patch_size: int,
               tubelet_size: int) -> torch.Tensor:
    """Inverse of :func:`patchify`: (B, N, tubelet * patch * patch, C) -> (B, C, T, H, W)."""
    B, _, _, C = patches.shape
    t, h, w = grid
    x = patches.reshape(B, t, h, w, tubelet_size, patch_size, patch_size, C)
    return x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(B, C, t * tubelet_size, h * patch_size, w * patch_size)


def normalize_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """VideoMAE's target: each patch and channel standardised over its pixels (unbiased std)."""
    mean = patches.mean(dim=-2, keepdim=True)
    return (patches - mean) / (patches.var(dim=-2, unbiased=True, keepdim=True).sqrt() + eps)


class TubeletEmbed(nn.Module):
    """(B, C, T, H, W) -> (B, N, D) with one Conv3d of kernel = stride = (tubelet, patch, patch)."""

    def __init__(self, cfg: VideoMAEConfig):
        super().__init__()
        k = (cfg.tubelet_size, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(cfg.in_chans, cfg.embed_dim, kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def _blocks(dim: int, depth: int, num_heads: int, mlp_ratio: float, drop_path: float) -> nn.ModuleList:
    rates = torch.linspace(0, drop_path, depth).tolist()
    return nn.ModuleList(Block(dim, num_heads, mlp_ratio, qkv_bias=True, drop_path=r,
                               norm_layer=nn.LayerNorm) for r in rates)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class VideoEncoder(nn.Module):
    """Patch embedding + fixed position table + ViT blocks (+ final LayerNorm if ``final_norm``).

    ``forward(video, mask)``: video (B, C, T, H, W); mask (B, N) bool, True = masked (dropped), the
    same count in every row; returns the visible tokens (B, N_vis, D) in token order.
    """

    def __init__(self, cfg: VideoMAEConfig, final_norm: bool = True):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = TubeletEmbed(cfg)
        self.register_buffer("pos_embed", sincos_table(cfg.num_patches, cfg.embed_dim), persistent=False)
        self.blocks = _blocks(cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio, cfg.drop_path_rate)
        self.norm = nn.LayerNorm(cfg.embed_dim) if final_norm else nn.Identity()

    def forward(self, video: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.patch_embed(video) + self.pos_embed.to(video.dtype)
        if mask is not None:
            x = x[~mask].reshape(x.shape[0], -1, x.shape[-1])
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def check_mask(mask: torch.Tensor, batch_size: int, num_patches: int) -> None:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"`mask` must be a bool tensor, but got {getattr(mask, 'dtype', type(mask))}")
    if tuple(mask.shape) != (batch_size, num_patches):
        raise ValueError(f"`mask` must have shape (B, N) = {(batch_size, num_patches)}, "
                         f"but got {tuple(mask.shape)}")
    counts = mask.sum(1)
    if bool((counts != counts[0]).any()):
        raise ValueError("`mask` must mask the same number of tokens in every row, "
                         f"but got counts {counts.tolist()}")


class VideoMAE(nn.Module):
    """VideoMAE pre-training model. ``forward(video, mask) -> (loss, pred)``.

    video: (B, C, T, H, W) normalised with ``mean`` / ``std``; mask: (B, N) bool, True = masked.
    pred: (B, N_masked, tubelet * patch * patch * C) for the masked tokens in token order, in the
    target space (per-patch normalised pixels if ``cfg.norm_pix_loss``, else [0, 1] pixels).
    """

    def __init__(self, cfg: VideoMAEConfig, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.cfg = cfg
        self.encoder = VideoEncoder(cfg, final_norm=True)
        self.encoder_to_decoder = nn.Linear(cfg.embed_dim, cfg.decoder_embed_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_embed_dim))
        self.register_buffer("decoder_pos_embed", sincos_table(cfg.num_patches, cfg.decoder_embed_dim),
                             persistent=False)
        self.decoder_blocks = _blocks(cfg.decoder_embed_dim, cfg.decoder_depth, cfg.decoder_num_heads,
                                      cfg.mlp_ratio, 0.0)
        self.decoder_norm = nn.LayerNorm(cfg.decoder_embed_dim)
        self.decoder_head = nn.Linear(cfg.decoder_embed_dim, cfg.in_chans * cfg.tubelet_size * cfg.patch_size ** 2)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1, 1), persistent=False)
        self.apply(_init_weights)
        trunc_normal_(self.mask_token, std=0.02)

    def decode(self, x_vis: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Visible encoder tokens (B, N_vis, D) -> predictions for the masked tokens (B, N_masked, P)."""
        B = x_vis.shape[0]
        pos = self.decoder_pos_embed.to(x_vis.dtype).expand(B, -1, -1)
        x_vis = self.encoder_to_decoder(x_vis) + pos[~mask].reshape(B, -1, pos.shape[-1])
        pos_masked = pos[mask].reshape(B, -1, pos.shape[-1])
        x = torch.cat([x_vis, self.mask_token.to(x_vis.dtype) + pos_masked], dim=1)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_head(self.decoder_norm(x[:, -pos_masked.shape[1]:]))

    def target(self, video: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Regression target for the masked tokens (B, N_masked, P), computed in float32."""
        pixels = video.float() * self.std + self.mean         # undo the ImageNet normalisation
        patches = patchify(pixels, self.cfg.patch_size, self.cfg.tubelet_size)
        if self.cfg.norm_pix_loss:
            patches = normalize_patches(patches)
        patches = patches.flatten(2)                         # (B, N, (t y x) c)
        return patches[mask].reshape(video.shape[0], -1, patches.shape[-1])

    @torch.no_grad()
    def flat_loss(self, target: torch.Tensor) -> torch.Tensor:
        """The loss of the trivial prediction of :meth:`target` (B, N_masked, D): every hidden patch flat,
        each channel at its own mean (with ``norm_pix_loss`` the target's mean is 0, so this is about
        (n - 1) / n for n pixels per patch channel). A model learns beyond it only when its loss falls below."""
        channels = target.reshape(*target.shape[:2], -1, self.cfg.in_chans)      # (B, N_masked, t*y*x, C)
        return (channels - channels.mean(dim=-2, keepdim=True)).square().mean()

    def forward(self, video: torch.Tensor, mask: torch.Tensor, with_flat: bool = False):
        """``(loss, pred)``; with ``with_flat`` also :meth:`flat_loss` of the batch, from the same target."""
        check_mask(mask, video.shape[0], self.cfg.num_patches)
        pred = self.decode(self.encoder(video, mask), mask)
        target = self.target(video, mask)
        loss = F.mse_loss(pred.float(), target)
        return (loss, pred, self.flat_loss(target)) if with_flat else (loss, pred)

    def pixels(self, video: torch.Tensor) -> torch.Tensor:
        """Normalised (B, C, T, H, W) -> float pixels in [0, 1]."""
        return (video.float() * self.std + self.mean).clamp(0, 1)

    @torch.no_grad()
    def reconstruction(self, video: torch.Tensor, mask: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Clip 0 of a batch and its ``forward`` prediction as three rows, original / masked (hidden patches
        grey) / reconstructed: float (3, C, T, H, W) in [0, 1]. With ``norm_pix_loss`` the predicted patches
        are un-normalised with the original patch's mean and std, as VideoMAE's visualisation does."""
        cfg = self.cfg
        patches = patchify(self.pixels(video[:1]), cfg.patch_size, cfg.tubelet_size)[0]     # (N, P, C)
        m = mask[0]
        guess = pred[0].float().reshape(-1, *patches.shape[1:])
        if cfg.norm_pix_loss:
            target = patches[m]
            scale = target.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6
            guess = guess * scale + target.mean(dim=-2, keepdim=True)
        masked, recon = patches.clone(), patches.clone()
        masked[m], recon[m] = 0.5, guess.clamp(0, 1)
        return torch.stack([unpatchify(p[None], cfg.grid, cfg.patch_size, cfg.tubelet_size)[0]
                            for p in (patches, masked, recon)])


def _strip_prefixes(key: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        key = key[len(prefix):] if key.startswith(prefix) else key
    return key


class VideoClassifier(nn.Module):
    """Encoder (no final norm) + mean pooling over tokens + LayerNorm + dropout + linear head.

    ``forward(video) -> logits (B, num_classes)``; video (B, C, T, H, W) normalised.
    """

    def __init__(self, cfg: VideoMAEConfig, num_classes: int, head_drop: float = 0.0,
                 init_scale: float = 0.001):
        super().__init__()
        self.cfg = cfg
        self.encoder = VideoEncoder(cfg, final_norm=False)
        self.fc_norm = nn.LayerNorm(cfg.embed_dim)
        self.head_drop = nn.Dropout(head_drop)
        self.head = nn.Linear(cfg.embed_dim, num_classes)
        self.apply(_init_weights)
        trunc_normal_(self.head.weight, std=0.02)
        with torch.no_grad():
            self.head.weight.mul_(init_scale)

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        return self.fc_norm(self.encoder(video).mean(dim=1))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_drop(features))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(video))

    def load_encoder(self, checkpoint: dict) -> tuple[list[str], list[str]]:
        """Load the encoder of a ``pretrain.py`` checkpoint (or a VideoMAE state dict).

        Keys are taken from ``checkpoint["model"]`` if present; ``module.`` (DDP) and ``_orig_mod.``
        (torch.compile) prefixes are stripped; only ``encoder.*`` keys are used (decoder keys are
        ignored). Returns (missing, unexpected) encoder keys; the pre-training encoder's final
        ``norm.*`` shows up as unexpected (mean pooling uses the fresh ``fc_norm``, as official).
        """
        state = checkpoint.get("model", checkpoint)
        state = {_strip_prefixes(k, ("module.", "_orig_mod.")): v for k, v in state.items()}
        encoder = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
        if not encoder:
            raise ValueError("`checkpoint` holds no `encoder.*` weights; is it a pretrain.py checkpoint?")
        result = self.encoder.load_state_dict(encoder, strict=False)
        return list(result.missing_keys), list(result.unexpected_keys)

    def param_groups(self, lr: float, weight_decay: float, layer_decay: float,
                     linear_probe: bool = False) -> list[dict]:
        """AdamW groups with layer-wise lr decay: patch embedding = layer 0, block i = layer i + 1,
        fc_norm / head = layer depth + 1 (scale 1); lr scale = layer_decay ** (depth + 1 - layer).
        No weight decay on biases and norms. ``linear_probe``: only fc_norm and head are trained."""
        depth = self.cfg.depth
        groups: dict[tuple[int, bool], dict] = {}
        for name, p in self.named_parameters():
            if linear_probe and name.startswith("encoder."):
                p.requires_grad_(False)
            if not p.requires_grad:
                continue
            if name.startswith("encoder.blocks."):
                layer = int(name.split(".")[2]) + 1
            elif name.startswith("encoder."):
                layer = 0
            else:
                layer = depth + 1
            decay = p.ndim > 1
            group = groups.setdefault((layer, decay), dict(
                params=[], weight_decay=weight_decay if decay else 0.0,
                lr_scale=layer_decay ** (depth + 1 - layer)))
            group["params"].append(p)
        for g in groups.values():
            g["lr"] = lr * g["lr_scale"]
        return list(groups.values())
