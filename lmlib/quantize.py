"""Int8 weight-only quantisation: a linear layer's weights kept as 8-bit integers, one scale per output row.

A weight matrix W [out, in] in float32 becomes integers q and one scale s_i per row i (per output
channel), symmetric about 0:

    s_i = max_j |W_ij| / 127.5,     q_ij = clamp(round(W_ij / s_i), -128, 127),     W_ij ~ s_i q_ij

Rounding to the nearest step of size s_i errs by at most half a step, |W_ij - s_i q_ij| <= s_i / 2
(the row's largest entry, at 127.5 steps, is clamped to 127: half a step too). A row's scale
comes from its own largest entry, so one large weight coarsens the steps of its row only.

The layer computes y = x W^T + b with W_ij = s_i q_ij. Since s_i depends on the row only, it
also factors out of the sum over j, y_i = s_i (x q^T)_i + b_i: a product with the integers, then
one multiplication per output, the form an int8 kernel uses. ``Int8Linear`` computes either way
(``kernel``): by default it rebuilds the float weights and multiplies in float32, which on a CPU
is as fast as the float layer for a batch of many positions; ``kernel="int8"`` calls PyTorch's own
int8-weight CPU product, ``torch._weight_int8pack_mm`` (an internal operator: no public API
wraps it), which reads the integers as they are. Activations stay float ("weight-only"). Stored,
a weight takes 1 byte instead of 4 (plus 4 bytes of scale per row).

``quantize_int8`` gives a copy of a model with every linear layer replaced by an ``Int8Linear``.
The scales are those of PyTorch's symmetric per-channel int8 quantisation (the
``per_channel_symmetric`` observer of ``torch.ao.quantization``, which PyTorch 2.13 deprecates in
favour of the separate package torchao) and of torchao's ``Int8WeightOnlyConfig``; the tests
compare with the first, and with the second where torchao is installed (the course does not pin
it). ``torchao_quantized`` quantises with torchao itself.
"""

from __future__ import annotations

import copy
import io
import logging
from collections import Counter

import torch
import torch.nn as nn
import torch.nn.functional as F

INT8_MIN, INT8_MAX = -128, 127


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """W [out, in] float -> (q [out, in] int8, s [out] float32):
    s_i = max_j |W_ij| / 127.5, q = clamp(round(W / s), -128, 127), half to even."""
    if weight.ndim != 2 or not weight.is_floating_point():
        raise ValueError(f"quantize_rows takes a 2-D float weight matrix [out, in], got "
                         f"{weight.dtype} of shape {tuple(weight.shape)}")
    w = weight.float()
    # 255 levels, -128..127, so a step is 2 max|W| / 255; a row of zeros gets the
    # smallest scale, not 0
    half_range = (INT8_MAX - INT8_MIN) / 2
    scale = (w.abs().amax(dim=1) / half_range).clamp(min=torch.finfo(torch.float32).eps)
    # times 1/s rather than / s, as PyTorch's quantize_per_channel and torchao compute
    # it: the two can round a last bit apart
    q = torch.round(w * (1.0 / scale[:, None])).clamp(INT8_MIN, INT8_MAX)
    return q.to(torch.int8), scale  # [out, in], [out]


class Int8Linear(nn.Module):
    """y = x (s q)^T + b: a linear layer whose weights are stored as int8 q [out, in] with one
    float32 scale s per output row (``quantize_rows``). ``kernel`` chooses how it multiplies:
    ``"dequantize"`` (rebuild s q in float, then float32's product) or ``"int8"`` (PyTorch's
    int8-weight product on the integers, then the row scales); the two agree to float rounding."""

    KERNELS = ("dequantize", "int8")

    def __init__(self, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None,
                 kernel: str = "dequantize"):
        super().__init__()
        if kernel not in self.KERNELS:
            raise ValueError(f"kernel must be one of {self.KERNELS}, got {kernel!r}")
        self.kernel = kernel
        self.register_buffer("q", q)  # [out, in] int8
        self.register_buffer("scale", scale)  # [out] float32
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear, kernel: str = "dequantize") -> Int8Linear:
        return cls(*quantize_rows(linear.weight.detach()), linear.bias, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel == "int8":
            # y = (x q^T) * s, the integers read as int8 by PyTorch's CPU kernel; it takes
            # [N, in] rows, so the leading dimensions are flattened and restored
            rows = x.reshape(-1, x.shape[-1]).contiguous()  # [N, in]
            y = torch._weight_int8pack_mm(rows, self.q, self.scale.to(x.dtype))  # [N, out]
            y = y.view(*x.shape[:-1], -1)  # [..., out]
            return y if self.bias is None else y + self.bias
        # The weights s_i q_ij are rebuilt for each call, then multiplied as float: the
        # [out, in] matrix is small next to a batch's activations, and float32's own
        # product adds the bias in the same pass. Only storage is int8.
        weight = self.q.to(x.dtype) * self.scale.to(x.dtype)[:, None]  # [out, in]
        return F.linear(x, weight, self.bias)  # [..., in] -> [..., out]

    def dequantized(self) -> torch.Tensor:
        """[out, in] the weights the layer computes with, s_i q_ij."""
        return self.q.float() * self.scale[:, None]

    def extra_repr(self) -> str:
        out_features, in_features = self.q.shape
        return (f"in_features={in_features}, out_features={out_features}, bias={self.bias is not None}, int8, "
                f"kernel={self.kernel}")


def tied_linear_names(model: nn.Module) -> set[str]:
    """Names of the linear layers whose weight is also another module's parameter (a GPT's output
    layer is its token embedding): quantising one would untie them."""
    uses = Counter(id(p) for _, p in model.named_parameters(remove_duplicate=False))
    return {name for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and uses[id(module.weight)] > 1}


def quantize_int8(model: nn.Module, kernel: str = "dequantize") -> nn.Module:
    """A copy of ``model`` in evaluation mode with each ``nn.Linear`` an ``Int8Linear`` (multiplying
    with ``kernel``). A linear layer tied to another module (``tied_linear_names``) keeps its float
    weights: for a GPT, the embedding table that is also the output layer."""
    quantized = copy.deepcopy(model).eval()
    keep = tied_linear_names(quantized)
    for name, module in list(quantized.named_modules()):
        if isinstance(module, nn.Linear) and name not in keep:
            parent, _, child = name.rpartition(".")
            setattr(quantized.get_submodule(parent), child, Int8Linear.from_linear(module, kernel))
    return quantized


def state_bytes(model: nn.Module) -> int:
    """The size of ``torch.save(model.state_dict())``: what a file of the model's weights takes (a
    tied matrix once)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


# --- torchao, the reference ------------------------------------------------------------------------------------

# torchao 0.18 logs two messages on import that do not concern int8 weight-only quantisation on a CPU:
# it cannot load its CUDA kernels (_C_cutlass_90a, for sm_90a GPUs) or its MXFP8 kernels (built for
# CPython 3.10), and torch warns that torchao registers an Enum in a way torch has deprecated. Only these
# are filtered; any other message passes.
class _ImportNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        kernels = message.startswith("Failed to load") and ".so" in message
        return not (kernels or "is an Enum subclass and is now natively supported" in message)


def import_torchao():
    """``import torchao`` without the import messages above (logged by the loggers ``torchao`` and
    ``torch.utils._pytree``); anything else they log still shows."""
    noise = _ImportNoise()
    loggers = [logging.getLogger("torchao"), logging.getLogger("torch.utils._pytree")]
    for logger in loggers:
        logger.addFilter(noise)
    try:
        import torchao
    finally:
        for logger in loggers:
            logger.removeFilter(noise)
    return torchao


def torchao_quantized(model: nn.Module) -> nn.Module:
    """A copy of ``model`` quantised by torchao's ``Int8WeightOnlyConfig()`` (per-row int8 weights), the
    same linear layers as ``quantize_int8`` (tied ones kept); torchao's layers hold ``Int8Tensor`` weights,
    whose ``qdata``, ``scale`` and ``dequantize()`` the tests compare with lmlib's."""
    import_torchao()
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    quantized = copy.deepcopy(model).eval()
    keep = tied_linear_names(quantized)
    # set_inductor_config=False: torchao would otherwise change torch.compile's global settings
    quantize_(quantized, Int8WeightOnlyConfig(set_inductor_config=False),
              filter_fn=lambda module, name: isinstance(module, nn.Linear) and name not in keep)
    return quantized
