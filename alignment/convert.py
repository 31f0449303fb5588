"""The torch -> Paddle weight converter, re-exported for the parity checks.

It lives in ``paddle_models.convert`` (loading an official checkpoint is a product feature, below the
engine); these names stay importable from here.
"""

from paddle_models.convert import (  # noqa: F401
    ConversionError,
    convert_state_dict,
    find_sublayer_prefix,
    iter_missing,
    load_torch_checkpoint,
    paddle_linear_weight_keys,
    split_prefix,
    torch_key_to_paddle,
    unwrap_checkpoint,
)

__all__ = [
    "ConversionError",
    "convert_state_dict",
    "find_sublayer_prefix",
    "iter_missing",
    "load_torch_checkpoint",
    "paddle_linear_weight_keys",
    "split_prefix",
    "torch_key_to_paddle",
    "unwrap_checkpoint",
]
