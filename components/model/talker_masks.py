"""The talker's attention masks: full, or the streaming (chunked) mask the reference trains half its samples on.

One packed sequence per item, right-padded:

    [BOS, t_1 .. t_T, t_eos] [SOS, u_1 .. u_N] [PAD ...]
     <- text block: Lt ->     <- speech block: N + 1 ->

Text attends causally. The speech block attends causally to itself and, to the text block, either all of it
(full mask) or, in chunk k (SOS and units 1-15 are chunk 0, then every `chunk_units` units), the first
(k + 1) * `chunk_text` text-block positions: speech can start when only a few text tokens exist. Unlike the
reference, text is causal under the full mask too, as it is at inference.
"""

from __future__ import annotations

import torch


def talker_attention_mask(
    text_lengths: torch.Tensor,
    speech_lengths: torch.Tensor,
    total: int,
    chunked: torch.Tensor,
    chunk_units: int,
    chunk_text: int,
) -> torch.Tensor:
    """(B, 1, total, total) bool, True = may attend. `text_lengths` = Lt (BOS + text + text-EOS) per item,
    `speech_lengths` = N + 1 (SOS + units), `chunked` (B,) bool selects the streaming mask per item."""
    device = text_lengths.device
    q = torch.arange(total, device=device)[None, :, None]  # (1, L, 1)
    k = torch.arange(total, device=device)[None, None, :]  # (1, 1, L)
    lt, ls = text_lengths[:, None, None], speech_lengths[:, None, None]
    text_q, text_k = q < lt, k < lt
    speech_q, speech_k = (q >= lt) & (q < lt + ls), (k >= lt) & (k < lt + ls)
    causal = k <= q
    # Chunk of each speech position: SOS and the first chunk_units units share chunk 0 (as the reference).
    chunk = (q - lt - 1).clamp(min=0) // chunk_units
    visible = torch.minimum((chunk + 1) * chunk_text, lt)
    speech_to_text = speech_q & text_k & torch.where(chunked[:, None, None], k < visible, torch.ones_like(causal))
    mask = (text_q & text_k & causal) | (speech_q & speech_k & causal) | speech_to_text
    padding_q = q >= lt + ls
    mask = mask | (padding_q & (k == q))  # padding attends to itself only: a row of all False would give NaN
    return mask[:, None]
