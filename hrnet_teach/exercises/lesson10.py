"""Lesson 10, deploy: fold a conv and its BatchNorm by hand, predict which export fails,
choose the dynamic sizes of an export."""
from __future__ import annotations

import linecache
import re
import traceback

import torch
from torch import nn

from ..i18n import N_, _
from ._kinds import Case, ChoiceExercise, FunctionExercise, Mistake


# ------------------------------------------------------------------ 1. fold conv + BN by hand
def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # s_c = gamma_c / sqrt(var_c + eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    return conv.weight * scale.reshape(-1, 1, 1, 1), (bias - bn.running_mean) * scale + bn.bias


# A large eps, so forgetting it shows; one that no other field of the BN holds (momentum is 0.1), so a fold that
# reads another field in its place does not pass by chance.
FOLD_EPS = 0.2


def _fold_cases():
    g = torch.Generator().manual_seed(10)
    cases = []
    for cin, cout, k, bias in ((3, 4, 3, False), (5, 2, 1, True), (4, 6, 3, True)):
        conv = nn.Conv2d(cin, cout, k, bias=bias)
        bn = nn.BatchNorm2d(cout, eps=FOLD_EPS)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
            if bias:
                conv.bias.copy_(torch.randn(cout, generator=g))
            bn.running_mean.copy_(torch.randn(cout, generator=g))
            bn.running_var.copy_(torch.rand(cout, generator=g) + 0.2)
            bn.weight.copy_(torch.rand(cout, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(cout, generator=g))
        where = N_("conv {cin}->{cout}, {k}x{k}, bias={bias}", cin=cin, cout=cout, k=k, bias=bias)
        cases.append(Case(conv.eval(), bn.eval(), where=where))
    return cases


def _std_scale(bn):
    return bn.weight / torch.sqrt(bn.running_var + bn.eps)


def _shift(b, bn, s):
    return (b - bn.running_mean) * s + bn.bias


def _slip(scale=_std_scale, shift=_shift, use_conv_bias=True):
    """A wrong fold: the reference with another scale s(bn), another shift(b, bn, s), or conv.bias ignored."""
    def fold(conv, bn):
        s = scale(bn)
        b = conv.bias if use_conv_bias and conv.bias is not None else torch.zeros_like(bn.running_mean)
        return conv.weight * s.reshape(-1, 1, 1, 1), shift(b, bn, s)
    return fold


_no_eps = _slip(scale=lambda bn: bn.weight / torch.sqrt(bn.running_var))


def _bias_none(conv, bn):
    weight, bias = _fold(conv, bn)
    return weight, None if conv.bias is None else bias


def _zero_bias_when_none(conv, bn):
    """A slip: "take b = 0" read as "the folded bias is 0" for a conv without a bias."""
    weight, bias = _fold(conv, bn)
    return weight, torch.zeros_like(bias) if conv.bias is None else bias


def _folded_in_place(conv, bn):
    """A slip: the right fold, written into the caller's conv.weight."""
    weight, bias = _fold(conv, bn)
    return conv.weight.copy_(weight), bias


def _unchanged(conv, bn):
    return conv.weight, conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)


def _bias_taken_as_given(conv, bn):
    """The formula transcribed with conv.bias as it is: None for every conv of HRNet's backbone."""
    s = _std_scale(bn)
    return conv.weight * s.reshape(-1, 1, 1, 1), (conv.bias - bn.running_mean) * s + bn.bias


def _none_bias_used(case, got, expected) -> bool:
    """The answer raised a TypeError on a line that reads the bias of a conv that has none (found from the
    answer's own line and the names it gave the conv, not from the error's wording)."""
    if not isinstance(got, TypeError) or case.args[0].bias is not None:
        return False
    for frame, line_number in traceback.walk_tb(got.__traceback__):  # the answer gets a copy of the case's conv
        names = [name for name, value in frame.f_locals.items() if isinstance(value, nn.Conv2d) and value.bias is None]
        line = linecache.getline(frame.f_code.co_filename, line_number)
        if any(re.search(rf"\b{re.escape(name)}\.bias\b", line) for name in names):
            return True
    return False


def _unshaped(like_scale):
    """The scale s broadcast against the weight without its C_out x 1 x 1 x 1 reshape, each way a learner writes it."""
    def fold(conv, bn):
        return like_scale(conv.weight, _std_scale(bn)), _shift(_conv_bias(conv, bn), bn, _std_scale(bn))
    return fold


def _conv_bias(conv, bn):
    return conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)


def _bias_or_zeros(conv, bn):
    """A slip: `conv.bias or ...` asks a tensor of several values for its truth value."""
    s = _std_scale(bn)
    return conv.weight * s.reshape(-1, 1, 1, 1), _shift(conv.bias or torch.zeros_like(bn.running_mean), bn, s)


def _bn_on_weight(conv, bn):
    """A slip: the BatchNorm applied to the weight tensor, as if it were a batch of images."""
    return bn(conv.weight), _shift(_conv_bias(conv, bn), bn, _std_scale(bn))


_RESHAPE = N_("s has one value per output channel, and the weight is C_out x C_in x k x k: reshape s to "
              "(C_out, 1, 1, 1), s.reshape(-1, 1, 1, 1), so it scales each output channel's filter.")

_FOLD_SLIPS = [  # (name, message, what the slip computes, the fragment a test looks for)
    ("no_eps", N_("Your scale leaves out this BN's eps, or uses a typed-in one such as 1e-5: divide by "
                  "sqrt(running_var + bn.eps), with bn.eps itself ({eps} in these cases).", eps=FOLD_EPS),
     _no_eps, "sqrt(running_var + bn.eps)"),
    ("momentum", N_("You added bn.momentum: that is the rate at which training updates the running statistics. "
                    "The scale divides by sqrt(running_var + bn.eps)."),
     _slip(scale=lambda bn: bn.weight / torch.sqrt(bn.running_var + bn.momentum)), "bn.momentum"),
    *[(f"no_reshape_{i}", _RESHAPE, _unshaped(like), "reshape s to (C_out, 1, 1, 1)") for i, like in enumerate((
        lambda w, s: w * s, lambda w, s: s * w, lambda w, s: w * s.reshape(1, -1, 1, 1), lambda w, s: w * s[:, None]))],
    ("gamma_beta", N_("bn.weight is gamma (the scale) and bn.bias is beta (the shift): s = bn.weight / sqrt(var + "
                      "eps), and bn.bias is added to the bias."),
     _slip(scale=lambda bn: bn.bias / torch.sqrt(bn.running_var + bn.eps),
           shift=lambda b, bn, s: (b - bn.running_mean) * s + bn.weight), "bn.weight is gamma"),
    ("bias_without_gamma", N_("Your bias divides (b - mean) by the standard deviation but leaves out gamma: scale it "
                              "with s = gamma / sqrt(var + eps), the same s as the weight."),
     _slip(shift=lambda b, bn, s: (b - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) + bn.bias),
     "leaves out gamma"),
    ("bias_or_zeros", N_("`conv.bias or ...` asks a tensor of several values whether it is true, which torch refuses: "
                         "write `conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)`."),
     _bias_or_zeros, "is not None else"),
    ("bn_on_weight", N_("bn(conv.weight) treats the weight as a batch of images with C_in channels, but the BN's "
                        "statistics belong to the output channels (dim 0 of the weight). Compute s = gamma / sqrt(var "
                        "+ eps) and multiply each output channel's filter by it."), _bn_on_weight, "bn(conv.weight)"),
    ("eps_outside", N_("You added eps outside the square root: the scale is s = gamma / sqrt(var + eps), eps inside."),
     _slip(scale=lambda bn: bn.weight / (torch.sqrt(bn.running_var) + bn.eps)), "eps inside"),
    ("var_not_std", N_("You divided by the variance: the scale is gamma / sqrt(var + eps), a standard deviation."),
     _slip(scale=lambda bn: bn.weight / (bn.running_var + bn.eps)), "standard deviation"),
    ("inverse_scale", N_("Your scale is upside down: s = gamma / sqrt(var + eps), not sqrt(var + eps) / gamma. "
                         "BatchNorm divides by the standard deviation and multiplies by gamma."),
     _slip(scale=lambda bn: torch.sqrt(bn.running_var + bn.eps) / bn.weight), "upside down"),
    ("no_gamma", N_("You left out gamma (bn.weight): the scale is s = gamma / sqrt(var + eps)."),
     _slip(scale=lambda bn: 1 / torch.sqrt(bn.running_var + bn.eps)), "left out gamma"),
    ("bias_none", N_("Return a bias tensor even when conv.bias is None: the folded conv's bias is "
                     "(0 - mean) * s + beta."), _bias_none, "even when conv.bias is None"),
    ("no_conv_bias", N_("You left out conv.bias: when the conv has a bias b, the folded bias is (b - mean) * s + beta."),
     _slip(use_conv_bias=False), "left out conv.bias"),
    ("plus_mean", N_("You added the mean: BatchNorm subtracts it, so the bias is (b - mean) * s + beta."),
     _slip(shift=lambda b, bn, s: (b + bn.running_mean) * s + bn.bias), "subtracts it"),
    ("no_beta", N_("You left out beta (bn.bias): the bias is (b - mean) * s + beta."),
     _slip(shift=lambda b, bn, s: (b - bn.running_mean) * s), "left out beta"),
    ("beta_scaled", N_("You scaled beta too: BatchNorm adds beta after the scaling, so the bias is "
                       "(b - mean) * s + beta, not (b - mean + beta) * s."),
     _slip(shift=lambda b, bn, s: (b - bn.running_mean + bn.bias) * s), "adds beta after the scaling"),
    ("zero_bias", N_("With no conv bias, b = 0, but the folded bias is not 0: the BatchNorm still shifts each "
                     "channel, so it is (0 - mean) * s + beta."), _zero_bias_when_none, "the folded bias is not 0"),
    ("bias_unscaled", N_("Your bias is (b - mean) + beta: the shift (b - mean) is scaled too, (b - mean) * s + beta."),
     _slip(shift=lambda b, bn, s: b - bn.running_mean + bn.bias), "scaled too"),
    # the bias-free formula with b tacked on: right when conv.bias is None, wrong for the head's biased conv
    ("conv_bias_unscaled", N_("conv.bias goes through the BatchNorm too, so s scales it: the folded bias is "
                              "(b - mean) * s + beta, not b + beta - mean * s."),
     _slip(shift=lambda b, bn, s: b + bn.bias - bn.running_mean * s), "goes through the BatchNorm too"),
    ("unchanged", N_("You returned the convolution's own weight and bias unchanged: the BatchNorm's scale and shift "
                     "must go into them."), _unchanged, "unchanged"),
]


fold_conv_bn = FunctionExercise(
    name="fold_conv_bn", lesson="10", fn_name="fold",
    question=N_("Write `fold(conv, bn)`: return `(weight, bias)` of one convolution that computes `bn(conv(x))` for "
                "an eval-mode BatchNorm2d. `conv.bias` may be None. Use bn.weight, bn.bias, bn.running_mean, "
                "bn.running_var and bn.eps."),
    reference=_fold, cases=_fold_cases, returns="(weight, bias)", entries=[N_("the weight"), N_("the bias")],
    against="hrnet_teach.deploy.fold_conv_bn", atol=1e-5, rtol=1e-4,
    mistakes=[Mistake(name, message, like=like, fragment=fragment) for name, message, like, fragment in _FOLD_SLIPS]
    + [Mistake("none_bias", N_("This conv has no bias (conv.bias is None, as in every conv of HRNet's backbone): "
                               "take b = 0, e.g. torch.zeros_like(bn.running_mean), and still return a bias tensor."),
               when=_none_bias_used)],
    success=lambda n: _("Your fold matches on {n} cases. deploy.fast() does this for every conv + BN pair of "
                        "HRNet, found by following the data with torch.fx.", n=n),
    hints=[N_("Write BN's output per channel c: gamma_c * (y_c - mean_c) / sqrt(var_c + eps) + beta_c, with "
              "y = W * x + b."),
           N_("s = gamma / sqrt(var + eps); weight: W * s per output channel (reshape s to C x 1 x 1 x 1); "
              "bias: (b - mean) * s + beta.")],
    wrong_answers=[(_unchanged, "unchanged"), (_no_eps, "bn.eps itself"),
                   (lambda conv, bn: _fold(conv, bn)[::-1], "entry 0 (the weight)"),
                   (_bias_taken_as_given, "conv.bias is None, as in every conv of HRNet's backbone"),
                   (_folded_in_place, "changed conv.weight in place")],
)


# ------------------------------------------------------------------ 2. which export fails
which_export_fails = ChoiceExercise(
    name="which_export_fails", lesson="10",
    question=N_("The segmentation model (align_corners=True, eval mode) is exported four ways. Which one fails?"),
    choices={"a": "torch.onnx.export(model, (x,), 'm.onnx', opset_version=10, dynamo=False)",
             "b": "torch.onnx.export(model, (x,), 'm.onnx', opset_version=11, dynamo=False)",
             "c": "deploy.export_onnx(model, 'm.onnx', opset=17)",
             "d": N_("torch.export.export(model, (x,))  # x of size 96x100")},
    answer="a",
    why={"b": N_("Opset 11 added Resize's coordinate_transformation_mode, which can say 'align_corners': it exports, "
                 "with align_corners=True kept (the cell after this exercise measures the difference from PyTorch)."),
         "c": N_("Opset 17: the dynamo exporter writes opset 18, then converts the file down to the opset asked for, "
                 "here 17; it exports."),
         "d": N_("The segmentation model resizes to exact sizes: any input size exports, 96x100 too.")},
    success=N_("(a): before opset 11 ONNX's Upsample/Resize has no align_corners mode, so PyTorch refuses "
               "align_corners=True; and align_corners=False exports but computes different values (the cell after this "
               "exercise measures differences of order 1 on its random 4x5 input; the exact value varies with the draw). "
               "deploy.export_onnx refuses opsets below 11."),
    hints=[N_("Which ONNX operator does bilinear resizing become, and when did it learn align_corners?")],
    solution_text="`answer = 'a'`",
    wrong_answers=[("b", "Opset 11"), ("c", "converts the file down"), ("d", "exact sizes"), ("e", "a, b, c")],
)


# ------------------------------------------------------------------ 3. the dynamic axes of the pose model
pose_dynamic_shapes = ChoiceExercise(
    name="pose_dynamic_shapes", lesson="10",
    question=N_("You export the pose model (HRNetV1: nearest-upsampling fusion) with torch.export and want any "
                "batch and many image sizes. Which dynamic_shapes for its input x is right?"),
    choices={"a": "{'x': {0: Dim('batch'), 2: Dim('height'), 3: Dim('width')}}",
             "b": "{'x': {0: Dim('batch'), 2: 32 * Dim('h32'), 3: 32 * Dim('w32')}}",
             "c": "{'x': {0: Dim('batch'), 1: Dim('channels')}}",
             "d": N_("None: the exported program takes any size anyway")},
    answer="b",
    why={"a": N_("Nearest fusion enlarges by fixed factors 2, 4, 8: a coarse map doubled must equal the finer one, "
                 "so the export keeps to multiples of 32 (one symbol times 32); a free Dim fails the exporter's checks."),
         "c": N_("The model takes exactly 3 channels (RGB): a dynamic channel axis cannot work, and the sizes "
                 "would stay fixed."),
         "d": N_("Without dynamic_shapes torch.export freezes every size at the example's: the program refuses "
                 "any other shape.")},
    success=N_("(b): sides that are 32 times a symbol, as deploy.dynamic_shapes writes for the pose, "
               "classification and pyramid heads; the segmentation and OCR heads take free Dims."),
    hints=[N_("What does nearest fusion need of the sizes of two neighbouring branches?")],
    solution_text="`answer = 'b'`",
    wrong_answers=[("a", "multiples of 32"), ("c", "exactly 3 channels"), ("d", "freezes every size")],
)

EXERCISES = [fold_conv_bn, which_export_fails, pose_dynamic_shapes]
