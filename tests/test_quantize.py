"""lmlib.quantize: per-row int8 weights equal PyTorch's symmetric per-channel int8 quantisation (its observer's
scales, ``torch.quantize_per_channel``'s integers), within half a step of the float weights; both of
``Int8Linear``'s products (float32 on the rebuilt weights, and PyTorch's int8-weight kernel
``torch._weight_int8pack_mm``) compute the linear layer with those weights.

torchao, the package PyTorch points to for quantisation, is an optional reference that the course does not pin:
the tests that compare with it (its ``Int8WeightOnlyConfig``) are skipped where it is not installed."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lmlib import quantize as Q
from lmlib.show import max_abs_difference
from lmlib.tokenize import Vocab
from lmlib.transformer import GPT, GPTConfig


def weights(seed: int = 0) -> torch.Tensor:
    """[6, 40] float32: ordinary rows, a row of zeros, a row with one large entry, a row whose largest
    entry is negative."""
    w = torch.randn(6, 40, generator=torch.Generator().manual_seed(seed)) * 0.05
    w[1] = 0.0
    w[2, 7] = 3.0
    w[3, 0] = -1.0
    return w


def test_integers_and_scales_equal_torchao_s():
    pytest.importorskip("torchao")
    Q.import_torchao()
    from torchao.quantization import PerRow
    from torchao.quantization.quantize_.workflows.int8.int8_tensor import Int8Tensor

    for seed in range(3):
        w = weights(seed)
        q, scale = Q.quantize_rows(w)
        reference = Int8Tensor.from_hp(w, granularity=PerRow())
        assert q.dtype == torch.int8 and torch.equal(q, reference.qdata)
        assert torch.equal(scale, reference.scale.flatten())
        assert torch.equal(q.float() * scale[:, None], reference.dequantize())


def test_scales_equal_pytorch_s_symmetric_per_channel_observer_s():
    """torch.ao.quantization's observer for qint8, per_channel_symmetric: max|W| / ((127 - -128) / 2), at least
    float32's eps. (PyTorch 2.13 deprecates torch.ao.quantization; the observer still runs, as a reference.)"""
    from torch.ao.quantization.observer import PerChannelMinMaxObserver

    for seed in range(3):
        w = weights(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            observer = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
            observer(w)
            scale, zero_point = observer.calculate_qparams()
        assert torch.equal(Q.quantize_rows(w)[1], scale) and (zero_point == 0).all()


def test_integers_equal_pytorch_s_per_channel_quantised_tensor_with_the_same_scales():
    """torch.quantize_per_channel rounds and clamps in PyTorch's own kernel: the same integers, given the scales.
    On the larger matrices, dividing by s instead of multiplying by 1/s would round some entries the other way."""
    matrices = [weights(seed) for seed in range(3)]
    matrices += [torch.randn(64, 256, generator=torch.Generator().manual_seed(seed)) * 0.05 for seed in range(5)]
    divided_apart = 0
    for w in matrices:
        q, scale = Q.quantize_rows(w)
        with warnings.catch_warnings():  # PyTorch 2.13 deprecates its quantised dtypes; here only a reference
            warnings.simplefilter("ignore", UserWarning)
            reference = torch.quantize_per_channel(w, scale.double(), torch.zeros(len(scale), dtype=torch.long),
                                                   axis=0, dtype=torch.qint8)
        assert torch.equal(q, reference.int_repr())
        assert torch.equal(q.float() * scale[:, None], reference.dequantize())
        divided_apart += (torch.round(w / scale[:, None]).clamp(-128, 127) != q).sum().item()
    assert divided_apart > 0  # the check can tell the two roundings apart


def test_each_weight_is_within_half_a_step():
    w = weights()
    q, scale = Q.quantize_rows(w)
    error = (w - q.float() * scale[:, None]).abs()
    assert (error <= scale[:, None] / 2 * (1 + 1e-5)).all()  # (1e-5: float32 rounding)
    assert torch.equal(scale, (w.abs().amax(1) / 127.5).clamp(min=torch.finfo(torch.float32).eps))
    assert (q[1] == 0).all()  # a row of zeros stays zeros
    assert q[2, 7] == 127  # the largest entry, 127.5 steps, clamped to 127
    assert q[3, 0] in (-127, -128)  # -127.5 steps, give or take float32's last bit of 1 / s


@pytest.mark.parametrize("kernel", Q.Int8Linear.KERNELS)
def test_int8_linear_is_the_linear_layer_with_the_dequantised_weights(kernel):
    """Both products against float64's F.linear on s q: the float32 one, and PyTorch's int8-weight kernel."""
    torch.manual_seed(0)
    linear = nn.Linear(40, 6)
    with torch.no_grad():
        linear.weight.copy_(weights())
    layer = Q.Int8Linear.from_linear(linear, kernel)
    x = torch.randn(3, 5, 40)
    exact = F.linear(x.double(), layer.q.double() * layer.scale.double()[:, None], linear.bias.double())
    assert layer(x).shape == (3, 5, 6) and max_abs_difference(layer(x), exact) <= 1e-5
    # and each output within half a step of its row per unit of input: |y_i - y'_i| <= sum_j |x_j| s_i / 2
    bound = x.abs().sum(-1, keepdim=True) * layer.scale / 2  # [3, 5, 6]
    assert ((layer(x) - linear(x)).abs() <= bound * (1 + 1e-4)).all()


def tiny_gpt() -> GPT:
    vocab = Vocab(list("abcdefgh ") * 2, min_count=1)
    torch.manual_seed(0)
    return GPT(GPTConfig(len(vocab), block_size=16, d_model=32, n_layers=2, n_heads=4), vocab).eval()


def test_a_quantised_gpt_has_int8_blocks_a_tied_float_output_layer_and_nearly_the_same_logits():
    model = tiny_gpt()
    ours = Q.quantize_int8(model)
    assert Q.tied_linear_names(model) == {"lm_head"}
    replaced = {name for name, m in ours.named_modules() if isinstance(m, Q.Int8Linear)}
    assert replaced == {f"blocks.{i}.{part}" for i in range(2) for part in ("attn.qkv", "attn.proj", "mlp.fc",
                                                                            "mlp.proj")}
    assert ours.lm_head.weight is ours.token_embedding.weight  # still tied, still float
    assert all(isinstance(p, nn.Parameter) and p.dtype == torch.float32 for p in model.parameters())  # untouched
    ids = torch.tensor([[1, 4, 5, 6, 7, 8, 4, 5]])
    with torch.no_grad():
        assert max_abs_difference(ours(ids), model(ids)) <= 0.05
    assert Q.state_bytes(ours) < Q.state_bytes(model) / 2
    with torch.no_grad():  # PyTorch's int8-weight kernel: the same model, products in another order
        assert max_abs_difference(Q.quantize_int8(model, kernel="int8")(ids), ours(ids)) <= 1e-5


def test_a_quantised_gpt_computes_what_torchao_s_does():
    pytest.importorskip("torchao")
    model = tiny_gpt()
    ours, theirs = Q.quantize_int8(model), Q.torchao_quantized(model)
    ids = torch.tensor([[1, 4, 5, 6, 7, 8, 4, 5]])
    with torch.no_grad():
        assert max_abs_difference(ours(ids), theirs(ids)) <= 1e-5  # the same weights, products in another order


def test_the_import_filter_drops_only_torchao_s_two_import_messages():
    noise = Q._ImportNoise()

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("torchao", logging.WARNING, __file__, 1, message, None, None)

    assert not noise.filter(record("Failed to load /x/_C_cutlass_90a.abi3.so: Could not load this library"))
    assert not noise.filter(record("<enum 'KernelPreference'> is an Enum subclass and is now natively supported "
                                   "by torch.compile as an opaque value type."))
    assert noise.filter(record("Failed to load the config"))
    assert noise.filter(record("Skipping import of cpp extensions due to incompatible torch version"))


def test_bad_input_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="2-D float weight"):
        Q.quantize_rows(torch.zeros(4))
    with pytest.raises(ValueError, match="2-D float weight"):
        Q.quantize_rows(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="kernel must be one of"):
        Q.quantize_int8(tiny_gpt(), kernel="int4")
