"""Building blocks every method shares: stream encoders, the text-as-query fusion block,
projection heads, the regression head, and the width checks.

These are HSCL's encoders (docs/METHODS.md, HSCL §1-§4), reused by every method so that methods
differ in their losses and heads, not in their feature extractors. Each block takes the switches
of HSCL's `faithful` mode that live in it (HSCL §7: random [CLS], unmasked text self-attention,
the cross-attention residual, ReLU at the end of projections); they are off unless asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from mmsa_core.models.text_encoder import build_text_encoder, resolve_text_encoder

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig



# ---------------------------------------------------------------------------------------------
# helpers


def sinusoidal_positions(length: int, width: int, device: torch.device) -> torch.Tensor:
    """(length, width) fixed sin/cos table (Vaswani et al.); odd widths drop the last cos column."""
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)  # (L, 1)
    freq = torch.exp(torch.arange(0, width, 2, device=device, dtype=torch.float32)
                     * (-math.log(10000.0) / width))  # (ceil(W/2),)
    table = torch.zeros(length, width, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : width // 2]
    return table


class ProjectionHead(nn.Sequential):
    """FC_m: Dropout -> Linear(d -> P) [-> ReLU in faithful mode, quirk 5]."""

    def __init__(self, width: int, proj_dim: int, dropout: float, relu: bool):
        layers: list[nn.Module] = [nn.Dropout(dropout), nn.Linear(width, proj_dim)]
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)


def regression_head(width: int, dropout: float, hidden: int = 128) -> nn.Sequential:
    """ŷ = MLP(x): Dropout -> Linear(d -> 128) -> tanh -> Linear(128 -> 128) -> tanh -> Linear(128 -> 1)
    (HSCL's head, HSCL §4; the other methods reuse it)."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(width, hidden), nn.Tanh(),
                         nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))


# ---------------------------------------------------------------------------------------------
# acoustic / visual encoder


class StreamEncoder(nn.Module):
    """Transformer over raw frames (width = feature width, no input projection) with a [CLS]."""

    def __init__(self, width: int, heads: int, ffn: int, layers: int, dropout: float, random_cls: bool):
        super().__init__()
        self.width = width
        self.random_cls = random_cls  # quirk 2: a fresh random [CLS] every forward pass
        self.cls = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, ffn, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, frames: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (N, L, d), valid (N, L) bool -> states E_m (N, 1+L, d), key padding mask (N, 1+L)."""
        n = frames.shape[0]
        cls = torch.randn(n, 1, self.width, device=frames.device) if self.random_cls \
            else self.cls.expand(n, 1, self.width)
        x = torch.cat([cls.to(frames.dtype), frames], dim=1) * math.sqrt(self.width)  # (N, 1+L, d)
        x = self.dropout(x + sinusoidal_positions(x.shape[1], self.width, x.device))
        pad = torch.cat([torch.zeros(n, 1, dtype=torch.bool, device=valid.device), ~valid], dim=1)
        return self.encoder(x, src_key_padding_mask=pad), pad  # (N, 1+L, d)


# ---------------------------------------------------------------------------------------------
# fusion block (docs/METHODS.md, HSCL §3)


class FusionBlock(nn.Module):
    """Text queries one stream: self-attn -> cross-attn (k = v = E_m, kdim = d_m) -> FFN.

    The feed-forward is ``ffn_mult * d_t`` wide: 1 (the default) is the authors'
    ``BimodalFusionLayer`` (fc1, fc2 both d_t x d_t; docs/METHODS.md, HSCL §3), 4 a standard Transformer layer.

    Every method reads only the fused state at the text [CLS] (row 0), so `first_row` computes
    that row alone: keys and values over every position, the query, cross-attention and FFN for one.
    That is most of the block's work saved (L_t - 1 of L_t rows) with the same function and gradients;
    `forward` keeps the whole (N, L_t, d_t) output for anything that needs every row.
    """

    def __init__(self, text_width: int, stream_width: int, heads: int, dropout: float, faithful: bool,
                 ffn_mult: int = 1):
        super().__init__()
        self.faithful = faithful
        self.self_attn = nn.MultiheadAttention(text_width, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(text_width, heads, dropout=dropout, batch_first=True,
                                                kdim=stream_width, vdim=stream_width)
        ffn = ffn_mult * text_width
        self.ffn = nn.Sequential(nn.Linear(text_width, ffn), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(ffn, text_width))
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(text_width) for _ in range(3))
        self.drop1, self.drop2, self.drop3 = (nn.Dropout(dropout) for _ in range(3))

    def forward(self, e_t: torch.Tensor, text_pad: torch.Tensor, e_m: torch.Tensor,
                stream_pad: torch.Tensor) -> torch.Tensor:
        """e_t (N, L_t, d_t), e_m (N, 1+L_m, d_m), pads True = padding -> Y_mt (N, L_t, d_t)."""
        self_mask = None if self.faithful else text_pad  # quirk 3: the code ignores text padding
        h_t = self.norm1(e_t + self.drop1(self.self_attn(e_t, e_t, e_t, key_padding_mask=self_mask,
                                                         need_weights=False)[0]))
        cross = self.cross_attn(h_t, e_m, e_m, key_padding_mask=stream_pad, need_weights=False)[0]
        residual = e_t if self.faithful else h_t  # quirk 4: the code adds the original text input
        f_mt = self.norm2(residual + self.drop2(cross))
        return self.norm3(f_mt + self.drop3(self.ffn(f_mt)))

    def first_row(self, e_t: torch.Tensor, text_pad: torch.Tensor, e_m: torch.Tensor,
                  stream_pad: torch.Tensor) -> torch.Tensor:
        """``forward(...)[:, 0]`` -> R_mt (N, d_t), computing row 0 only.

        In training, every dropout draws its noise at the shape (and memory layout) the whole block
        would give it and keeps row 0, so on the CPU a seed gives the masks, and the numbers, of
        `forward` (tests/core/test_model.py checks both modes against it; on CUDA, whose fused dropout
        draws otherwise, the masks differ but follow the same law). Those draws are the price of
        keeping recorded numbers: about 15 % of a batch-128 step at the authors' shapes on the CPU.
        """
        n, length, _ = e_t.shape
        self_mask = None if self.faithful else text_pad
        q_t = e_t[:, :1]  # (N, 1, d_t)
        attn = _attend_first(self.self_attn, q_t, e_t, self_mask, length)
        h_t = self.norm1(q_t + _dropout_first(self.drop1, attn, (length, n), transposed=True))
        cross = _attend_first(self.cross_attn, h_t, e_m, stream_pad, length)
        residual = q_t if self.faithful else h_t
        f_mt = self.norm2(residual + _dropout_first(self.drop2, cross, (length, n), transposed=True))
        lin1, act, drop, lin2 = self.ffn
        hidden = _dropout_first(drop, act(lin1(f_mt)), (n, length))
        out = self.norm3(f_mt + _dropout_first(self.drop3, lin2(hidden), (n, length)))
        return out[:, 0]


def _dropout_first(drop: nn.Module, row: torch.Tensor, full: tuple[int, int], transposed: bool = False
                   ) -> torch.Tensor:
    """Dropout of row 0 (N, 1, d) with the noise F.dropout would draw for the whole (N, L, d) tensor.

    `full` = the leading sizes of that tensor in memory order: (L, N) for an attention output
    (MultiheadAttention returns a transposed view), (N, L) for a contiguous one.
    """
    p = float(drop.p)
    if not drop.training or p == 0.0:
        return row
    if p == 1.0:
        return row * 0.0
    noise = row.new_empty(*full, row.shape[-1]).bernoulli_(1.0 - p)
    noise = noise.transpose(0, 1) if transposed else noise  # (N, L, d) as the whole block sees it
    return row * noise[:, :1].div(1.0 - p)


def _attend_first(mha: nn.MultiheadAttention, query: torch.Tensor, kv: torch.Tensor,
                  key_pad: torch.Tensor | None, query_len: int) -> torch.Tensor:
    """`mha(query, kv, kv)` (batch first) for one query row (N, 1, E), keys never projected.

    With one query, each head's key and value projections fold into the query and the output
    (W_k, W_v: (H, d, kdim)):  score_j = (q_h W_k,h) · x_j (+ q_h · b_k,h, the same for every j, which the
    softmax cancels);  out_h = W_v,h (Σ_j w_j x_j) + (Σ_j w_j) b_v,h.  That is O(H · kdim) per key instead
    of projecting every key to E (O(E · kdim)): the same function, rounded in another order.
    The attention dropout draws (N, H, query_len, S) noise and keeps row 0, like `_dropout_first`.
    """
    n, s, kdim = kv.shape
    e, h = mha.embed_dim, mha.num_heads
    d = e // h
    b_q, _, b_v = mha.in_proj_bias.chunk(3)
    if mha._qkv_same_embed_dim:
        w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
    else:
        w_q, w_k, w_v = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
    q = nn.functional.linear(query[:, 0], w_q, b_q) * (1.0 / math.sqrt(d))  # (N, E)
    q_k = torch.bmm(q.view(n, h, d).transpose(0, 1), w_k.view(h, d, kdim))  # (H, N, kdim)
    scores = torch.bmm(q_k.transpose(0, 1), kv.transpose(1, 2))  # (N, H, S)
    if key_pad is not None:
        scores = scores.masked_fill(key_pad[:, None, :], float("-inf"))
    weights = scores.softmax(-1)
    p = float(mha.dropout)
    if mha.training and p > 0.0:
        noise = weights.new_empty(n, h, query_len, s).bernoulli_(1.0 - p)
        weights = weights * noise[:, :, 0].div(1.0 - p)
    context = torch.bmm(weights, kv)  # (N, H, kdim): Σ_j w_j x_j per head
    out = torch.bmm(context.transpose(0, 1), w_v.view(h, d, kdim).transpose(1, 2))  # (H, N, d)
    out = out.transpose(0, 1) + weights.sum(-1, keepdim=True) * b_v.view(h, d)  # (N, H, d)
    return mha.out_proj(out.reshape(n, 1, e))


def check_widths(cfg: "RunConfig", *, text_dim: int, audio_dim: int, vision_dim: int,
                 fusion: bool = True) -> None:
    """Raise one ValueError naming every head count that does not divide its width."""
    problems = []
    if fusion and text_dim % cfg.fusion_heads:
        problems.append(f"fusion_heads={cfg.fusion_heads} does not divide the text width {text_dim} "
                        f"of encoder {cfg.text_encoder!r}")
    if "a" in cfg.modalities and audio_dim % cfg.audio_heads:
        problems.append(f"audio_heads={cfg.audio_heads} does not divide the acoustic width {audio_dim}")
    if "v" in cfg.modalities and vision_dim % cfg.vision_heads:
        problems.append(f"vision_heads={cfg.vision_heads} does not divide the visual width {vision_dim}")
    if problems:
        raise ValueError("model configuration does not fit the data: " + "; ".join(problems))


# ---------------------------------------------------------------------------------------------
# the shared unimodal encoders, as one module


@dataclass
class Encoded:
    """What `SharedEncoders` computes for a batch (pads: True = padding)."""

    tokens: torch.Tensor  # E_t (N, L_t, d_t)
    text_pad: torch.Tensor  # (N, L_t)
    streams: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # m -> (E_m, pad)
    pooled: dict[str, torch.Tensor] = field(default_factory=dict)  # "t","a","v" -> R_m ([CLS] states)


class SharedEncoders(nn.Module):
    """The text encoder and one `StreamEncoder` per non-text modality of `cfg.modalities`.

    The common front end of the methods other than HSCL (whose model builds the same blocks in its
    own order, so that its initial weights stay those of its recorded numbers).
    """

    def __init__(self, cfg: "RunConfig", *, audio_dim: int, vision_dim: int, random_cls: bool = False):
        super().__init__()
        self.modalities = cfg.modalities
        self.text_encoder = build_text_encoder(resolve_text_encoder(cfg.text_encoder))
        self.text_dim = int(self.text_encoder.config.hidden_size)
        check_widths(cfg, text_dim=self.text_dim, audio_dim=audio_dim, vision_dim=vision_dim,
                     fusion=False)
        shapes = {"a": (audio_dim, cfg.audio_heads, cfg.audio_ffn),
                  "v": (vision_dim, cfg.vision_heads, cfg.vision_ffn)}
        self.widths = {"t": self.text_dim, "a": audio_dim, "v": vision_dim}
        self.streams = nn.ModuleDict({
            m: StreamEncoder(*shapes[m], cfg.av_layers, cfg.dropout, random_cls=random_cls)
            for m in self.stream_names})

    @property
    def stream_names(self) -> tuple[str, ...]:
        return tuple(m for m in ("a", "v") if m in self.modalities)

    def forward(self, batch) -> Encoded:
        """`batch`: a `mmsa_core.data.batching.Batch` (on the model's device)."""
        e_t = self.text_encoder(input_ids=batch.text_ids, attention_mask=batch.text_mask,
                                token_type_ids=batch.text_type).last_hidden_state
        out = Encoded(tokens=e_t, text_pad=batch.text_mask == 0, pooled={"t": e_t[:, 0]})
        inputs = {"a": (batch.audio, batch.audio_mask), "v": (batch.vision, batch.vision_mask)}
        for m in self.stream_names:
            e_m, pad = self.streams[m](*inputs[m])
            out.streams[m] = (e_m, pad)
            out.pooled[m] = e_m[:, 0]
        return out
