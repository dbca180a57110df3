"""`sdpa_varlen`: padding-free packed attention without flash-attention (CPU, or GPUs without it).

Why: for a packed row (per-sample position ids restarting at 0, no attention mask) stock
transformers 5.x builds a dense block-diagonal (L x L) boolean mask from the position ids
(masking_utils.find_packed_sequence_indices + packed_sequence_mask_function) and hands it to
`scaled_dot_product_attention`. With an arbitrary mask torch cannot use its fused causal kernel
and falls back to the math path, which materialises the full L x L scores of the whole row:
cross-sample blocks are computed and then thrown away. On CPU that made packing 3x SLOWER
than padded batches.

What flash-attention's varlen path does on GPU (modeling_flash_attention_utils.
prepare_fa_kwargs_from_position_ids: cu_seqlens = where position_ids restart) we do here with
plain sdpa: split the row at the restarts and run causal sdpa (`is_causal=True`, no mask) on
each sample. Attention costs sum(len_i^2) instead of L^2 and no mask is built.

How it plugs in (transformers 5.19):
- AttentionInterface.register("sdpa_varlen", fn): the decoder layers forward `position_ids`
  in **kwargs down to the attention function (Qwen2/Llama DecoderLayer -> Attention -> fn).
- AttentionMaskInterface.register("sdpa_varlen", mask_fn): the mask builder still runs, but
  our mask function returns None for mask-free training rows (causal or packed, the
  attention function handles both) and defers to the stock `sdpa_mask` otherwise (padded
  batches with a 2D attention mask, generation with a cache), so those behave exactly as sdpa.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "sdpa_varlen"


def _segment_starts(position_ids: torch.Tensor) -> list[int]:
    """Where samples start in one packed row: position 0 and every place positions do not go up by 1."""
    restarts = torch.nonzero(torch.diff(position_ids) != 1).flatten() + 1
    return [0, *restarts.tolist()]


def sdpa_varlen_forward(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """(batch, heads, L, d) q/k/v -> (batch, L, heads, d), each packed sample attending only to itself."""
    position_ids = kwargs.get("position_ids")
    length = query.shape[2]
    if attention_mask is not None or position_ids is None or key.shape[2] != length or length == 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    # CPU: torch's fused causal kernel is ~2x slower with enable_gqa than with repeated kv
    # heads, and ~5x slower on non-contiguous inputs (q/k/v arrive as transposed views and a
    # slice of the sequence axis is never contiguous), so repeat kv heads and copy each
    # sample's slice; on GPUs enable_gqa avoids the copy.
    cpu = query.device.type == "cpu"
    gqa = {"enable_gqa": True} if groups > 1 and not cpu and key.shape[-1] == value.shape[-1] <= 256 else {}
    if groups > 1 and not gqa:
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)

    def piece(tensor, row, start, end):
        sliced = tensor[row:row + 1, :, start:end]
        return sliced.contiguous() if cpu else sliced
    rows = position_ids.expand(query.shape[0], -1)
    outputs = []
    for row in range(query.shape[0]):
        starts = _segment_starts(rows[row])
        pieces = []
        for start, end in zip(starts, [*starts[1:], length], strict=True):
            pieces.append(torch.nn.functional.scaled_dot_product_attention(
                piece(query, row, start, end), piece(key, row, start, end), piece(value, row, start, end),
                dropout_p=dropout, scale=scaling, is_causal=True, **gqa,
            ))
        outputs.append(pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=2))
    output = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=0)
    return output.transpose(1, 2).contiguous(), None


def sdpa_varlen_mask(batch_size, q_length, kv_length, q_offset=0, kv_offset=0, attention_mask=None, **kwargs):
    """No mask for mask-free training rows (the attention function splits packed rows itself);
    the stock sdpa mask whenever there is padding or a cache offset."""
    if attention_mask is None and q_length == kv_length and not q_offset and not kv_offset and kwargs.get("local_size") is None:
        return None
    return sdpa_mask(batch_size, q_length, kv_length, q_offset=q_offset, kv_offset=kv_offset,
                     attention_mask=attention_mask, **kwargs)


def register() -> str:
    """Make `attn_implementation="sdpa_varlen"` available (idempotent); returns the name."""
    AttentionInterface.register(NAME, sdpa_varlen_forward)
    AttentionMaskInterface.register(NAME, sdpa_varlen_mask)
    return NAME
