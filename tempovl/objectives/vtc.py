"""Video-text contrastive learning (HiTeA appendix C.3, eq. 9) with MoCo memory queues and momentum encoders.

The in-batch keys are the *online* features of every rank, all-gathered with gradient
(:func:`tempovl.engine.distributed.all_gather_with_grad`), so a loss computed per rank over the gathered
batch gives the gradients of the loss over the global batch. The queues add negatives: features of
earlier batches from the momentum encoders (no gradient), as in MoCo / ALBEF. With ``alpha > 0`` the
targets are distilled from the momentum features (ALBEF's momentum distillation).

Momentum copies are built with :func:`make_momentum_copy`: their weights are *buffers*, not parameters,
so no optimiser sees them, no gradient reaches them, parameter counts leave them out, and they are still
saved in the state dict (resume is exact).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from tempovl.engine.distributed import all_gather_with_grad, get_rank


def make_momentum_copy(module: nn.Module) -> nn.Module:
    """A deep copy of `module` whose parameters are turned into buffers (never trained by gradient)."""
    twin = copy.deepcopy(module)
    for sub in twin.modules():
        for name, param in list(sub._parameters.items()):
            if param is None:
                continue
            del sub._parameters[name]
            sub.register_buffer(name, param.detach().clone().requires_grad_(False))
    return twin


def momentum_pairs(online: nn.Module, twin: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(online parameter, momentum buffer) pairs matched by name."""
    buffers = dict(twin.named_buffers())
    pairs = []
    for name, param in online.named_parameters():
        if name not in buffers:
            raise KeyError(f"momentum copy has no buffer {name!r}")
        pairs.append((param, buffers[name]))
    return pairs


@torch.no_grad()
def momentum_update(online: nn.Module, twin: nn.Module, momentum: float) -> None:
    """twin <- momentum * twin + (1 - momentum) * online, for every parameter of `online`."""
    pairs = momentum_pairs(online, twin)
    if not pairs:
        return
    params = [p.detach() for p, _ in pairs]
    bufs = [b for _, b in pairs]
    torch._foreach_lerp_(bufs, params, 1.0 - momentum)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather `x (B, ...)` from every rank (identity in a single process), without gradient."""
    return all_gather_with_grad(x.detach())


class FeatureQueue(nn.Module):
    """A ring buffer of (video, text) feature pairs and their pair ids (-1 = matches nothing).

    ``enqueue`` writes the newest rows at ``ptr`` (wrapping around) and advances it: the oldest rows are
    the ones dequeued. Rows start as random unit vectors (MoCo), i.e. random negatives.
    """

    def __init__(self, dim: int, size: int):
        super().__init__()
        self.size = size
        self.register_buffer("video", F.normalize(torch.randn(size, dim), dim=-1))
        self.register_buffer("text", F.normalize(torch.randn(size, dim), dim=-1))
        self.register_buffer("ids", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(
        self, video_feat: torch.Tensor, text_feat: torch.Tensor, ids: torch.Tensor | None = None
    ) -> None:
        """Append `video_feat`/`text_feat (B, D)` of every rank (gathered) and their ids (B,)."""
        video_feat, text_feat = gather_no_grad(video_feat), gather_no_grad(text_feat)
        if ids is None:
            ids = torch.full((video_feat.shape[0],), -1, dtype=torch.long, device=video_feat.device)
        else:
            ids = gather_no_grad(ids)
        n = video_feat.shape[0]
        if n >= self.size:  # keep only the newest `size` rows
            video_feat, text_feat, ids, n = (
                video_feat[-self.size :],
                text_feat[-self.size :],
                ids[-self.size :],
                self.size,
            )
        slots = (self.ptr + torch.arange(n, device=self.ptr.device)) % self.size
        self.video[slots] = video_feat.to(self.video.dtype)
        self.text[slots] = text_feat.to(self.text.dtype)
        self.ids[slots] = ids.to(self.ids.device)
        self.ptr.fill_(int((self.ptr + n) % self.size))


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """mean over rows of -sum_j targets_ij log softmax(logits)_ij; logits/targets (B, N)."""
    return -(F.log_softmax(logits.float(), dim=-1) * targets).sum(dim=-1).mean()


class VTCLoss(nn.Module):
    """Symmetric InfoNCE between normalised video and text features, learnable temperature (init 0.07).

    forward(video_feat (B, E), text_feat (B, E), [video_feat_m, text_feat_m (B, E)], [pair_ids (B,)])
    returns ``vtc_loss`` and, for VTM's hard-negative sampling, the detached local similarities
    ``sim_v2t``/``sim_t2v`` (B, B) and ``pos_mask`` (B, B) (True where text j belongs to video i).
    ``pair_ids`` (non-negative) marks captions of the same video as positives of each other.
    """

    def __init__(self, embed_dim: int, queue_size: int = 0, temp: float = 0.07, alpha: float = 0.0):
        super().__init__()
        self.temp = nn.Parameter(torch.tensor(float(temp)))
        self.alpha = alpha
        self.queue = FeatureQueue(embed_dim, queue_size) if queue_size > 0 else None

    def forward(
        self,
        video_feat: torch.Tensor,
        text_feat: torch.Tensor,
        video_feat_m: torch.Tensor | None = None,
        text_feat_m: torch.Tensor | None = None,
        pair_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        b = video_feat.shape[0]
        temp = self.temp.clamp(0.001, 0.5)
        offset = get_rank() * b
        local_ids = pair_ids if pair_ids is not None else offset + torch.arange(b, device=video_feat.device)
        all_ids = gather_no_grad(local_ids)  # (W*B,)
        video_keys = all_gather_with_grad(video_feat)  # (W*B, E), gradient flows back to every rank
        text_keys = all_gather_with_grad(text_feat)
        if self.queue is not None:
            video_keys = torch.cat([video_keys, self.queue.video.clone().detach()], dim=0)  # (W*B + Q, E)
            text_keys = torch.cat([text_keys, self.queue.text.clone().detach()], dim=0)
            all_ids = torch.cat([all_ids, self.queue.ids.clone()], dim=0)
        pos = local_ids[:, None] == all_ids[None, :]  # (B, N)
        targets = pos.float() / pos.float().sum(dim=1, keepdim=True)

        sim_v2t = video_feat @ text_keys.t() / temp  # (B, N)
        sim_t2v = text_feat @ video_keys.t() / temp
        targets_v2t = targets_t2v = targets
        if self.alpha > 0 and video_feat_m is not None and text_feat_m is not None:
            with torch.no_grad():
                video_keys_m, text_keys_m = gather_no_grad(video_feat_m), gather_no_grad(text_feat_m)
                if self.queue is not None:
                    video_keys_m = torch.cat([video_keys_m, self.queue.video], dim=0)
                    text_keys_m = torch.cat([text_keys_m, self.queue.text], dim=0)
                soft_v2t = F.softmax(video_feat_m @ text_keys_m.t() / temp, dim=1)
                soft_t2v = F.softmax(text_feat_m @ video_keys_m.t() / temp, dim=1)
                targets_v2t = self.alpha * soft_v2t + (1 - self.alpha) * targets
                targets_t2v = self.alpha * soft_t2v + (1 - self.alpha) * targets
        loss = (soft_cross_entropy(sim_v2t, targets_v2t) + soft_cross_entropy(sim_t2v, targets_t2v)) / 2

        if self.queue is not None and self.training:
            keys_v = video_feat_m if video_feat_m is not None else video_feat
            keys_t = text_feat_m if text_feat_m is not None else text_feat
            self.queue.enqueue(keys_v.detach(), keys_t.detach(), pair_ids)
        local = slice(offset, offset + b)
        return {
            "vtc_loss": loss,
            "sim_v2t": sim_v2t[:, local].detach(),  # (B, B) this rank's block
            "sim_t2v": sim_t2v[:, local].detach(),
            "pos_mask": pos[:, local],
            "vtc_temp": temp.detach(),
        }
