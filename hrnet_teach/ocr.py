"""HRNet + OCR: object-contextual representations, as the authors' HRNet-OCR branch builds it.

Yuan, Chen and Wang, "Object-Contextual Representations for Semantic Segmentation"
(ECCV 2020): "the class label assigned to one pixel is the category of the
object that the pixel belongs to", so each pixel is augmented with a representation
of the *object* it probably belongs to, in three steps (the paper's Figure 3):

1. **soft object regions**: a coarse segmentation, one map per class, predicted from
   the backbone (here the HRNetV2 concatenation) and supervised by the ground truth
   (``aux_head``, the first output, weighted 0.4 in the official loss);
2. **object region representations**: for each class k, the pixel features averaged
   with weights softmax(region k) over the image (``ocr_gather_head``);
3. **object contextual representation**: each pixel attends to the K region
   representations (a key/query/value attention), and the result,
   concatenated with the pixel's own feature, gives the **augmented representation**
   that the classifier reads (``ocr_distri_head``, then ``cls_head``).

The model is ``lib/models/seg_hrnet_ocr.py`` of HRNet/HRNet-Semantic-Segmentation
(branch HRNet-OCR). Attribute names are the official ones, registered in the official
order, so the state-dict keys and their order equal those of the official class and
official HRNet-OCR checkpoints load strictly. Two official quirks are kept because the
keys depend on them: every ``ModuleHelper.BNReLU`` is a Sequential of its own (hence
keys such as ``f_pixel.1.0.weight``), and the auxiliary head is registered last
although it runs first. The official module-level ``BatchNorm2d = SyncBatchNorm`` is
the ``norm_layer`` argument here, as in the rest of the package.
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import flag, positive_int
from .backbone import HRNet
from .blocks import BN_MOMENTUM, NormLayer
from .config import HRNetConfig
from .heads import concat_branches, init_weights

# The official sizes (lib/config/default.py: MODEL.OCR.MID_CHANNELS, KEY_CHANNELS). The
# official seg_hrnet_ocr.py hard-codes the dropout (0.05) and the scale (1) instead of
# reading MODEL.OCR.DROPOUT and MODEL.OCR.SCALE, so those two are arguments here only.
MID_CHANNELS = 512
KEY_CHANNELS = 256
DROPOUT = 0.05
SCALE = 1


def bn_relu(channels: int, norm_layer: NormLayer) -> nn.Sequential:
    """The official ``ModuleHelper.BNReLU``: norm then ReLU, as a Sequential of its own.

    (Its ReLU is not in place, unlike the backbone's; the result is the same.)
    """
    return nn.Sequential(norm_layer(channels, momentum=BN_MOMENTUM), nn.ReLU())


def conv1x1_bn_relu(in_channels: int, out_channels: int, norm_layer: NormLayer) -> list[nn.Module]:
    """A 1x1 conv without bias, then BNReLU: the unit every OCR transform is made of."""
    return [nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False), bn_relu(out_channels, norm_layer)]


class SpatialGather(nn.Module):
    """Object region representations, f_k (official ``SpatialGather_Module``).

    "We aggregate the representations of all the pixels weighted by their degrees
    belonging to the kth object region": f_k = sum_i softmax(m_k)_i x_i, where the
    softmax runs over the pixels i of the soft region map m_k. No parameters.
    """

    def __init__(self, cls_num: int = 0, scale: float = 1) -> None:
        super().__init__()
        self.cls_num = cls_num
        self.scale = scale  # a softmax temperature; always 1 in the official model

    def forward(self, feats: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        batch_size, k = probs.shape[:2]
        probs = probs.view(batch_size, k, -1)  # B x K x HW: one soft region per class
        feats = feats.view(batch_size, feats.size(1), -1).permute(0, 2, 1)  # B x HW x C
        probs = F.softmax(self.scale * probs, dim=2)  # each region's weights sum to 1 over the pixels
        regions = torch.matmul(probs, feats)  # B x K x C: one C-vector per region
        return regions.permute(0, 2, 1).unsqueeze(3)  # B x C x K x 1, a "K x 1 image" for the 1x1 convs


class ObjectAttentionBlock(nn.Module):
    """The pixel-region relation, w_ik, and the object contextual representation, y_i (official
    ``_ObjectAttentionBlock`` / ``ObjectAttentionBlock2D``).

    "w_ik = exp(kappa(x_i, f_k)) / sum_j exp(kappa(x_i, f_j))", with
    kappa(x, f) = phi(x)^T psi(f) the "unnormalized relation function": ``f_pixel`` is
    phi (the query, per pixel), ``f_object`` is psi (the key, per region); the context of
    pixel i is y_i = rho(sum_k w_ik delta(f_k)), with ``f_down`` as delta (the value) and
    ``f_up`` as rho. Each transform is "1x1 conv -> BN -> ReLU" (twice for phi and psi).
    ``scale > 1`` max-pools the pixels first to save memory (the official model uses 1).
    """

    def __init__(
        self,
        in_channels: int,
        key_channels: int,
        scale: int = 1,
        norm_layer: NormLayer = nn.BatchNorm2d,
        align_corners: bool = True,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.in_channels = in_channels
        self.key_channels = key_channels
        self.align_corners = align_corners  # only used when scale > 1
        self.pool = nn.MaxPool2d(kernel_size=(scale, scale))
        self.f_pixel = nn.Sequential(  # phi: the query of every pixel
            *conv1x1_bn_relu(in_channels, key_channels, norm_layer),
            *conv1x1_bn_relu(key_channels, key_channels, norm_layer),
        )
        self.f_object = nn.Sequential(  # psi: the key of every region
            *conv1x1_bn_relu(in_channels, key_channels, norm_layer),
            *conv1x1_bn_relu(key_channels, key_channels, norm_layer),
        )
        self.f_down = nn.Sequential(*conv1x1_bn_relu(in_channels, key_channels, norm_layer))  # delta: the value
        self.f_up = nn.Sequential(*conv1x1_bn_relu(key_channels, in_channels, norm_layer))  # rho: back to C

    def relation(self, x: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
        """The pixel-region relation w_ik: B x HW x K, for pixels x (B x C x H x W, already pooled when
        scale > 1) and regions proxy (B x C x K x 1); each pixel's K weights sum to 1."""
        batch_size = x.size(0)
        query = self.f_pixel(x).view(batch_size, self.key_channels, -1).permute(0, 2, 1)  # B x HW x Ck
        key = self.f_object(proxy).view(batch_size, self.key_channels, -1)  # B x Ck x K
        sim_map = torch.matmul(query, key)  # B x HW x K: kappa(x_i, f_k)
        sim_map = (self.key_channels**-0.5) * sim_map  # scaled as in dot-product attention
        return F.softmax(sim_map, dim=-1)  # w_ik: each pixel's weights over the K regions sum to 1

    def forward(self, x: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
        """x: pixels, B x C x H x W; proxy: regions, B x C x K x 1 -> context, B x C x H x W."""
        batch_size, h, w = x.size(0), x.size(2), x.size(3)
        if self.scale > 1:
            x = self.pool(x)
        sim_map = self.relation(x, proxy)  # B x HW x K
        value = self.f_down(proxy).view(batch_size, self.key_channels, -1).permute(0, 2, 1)  # B x K x Ck

        context = torch.matmul(sim_map, value)  # B x HW x Ck
        # x.size(2), x.size(3) rather than *x.shape[2:]: torch.fx cannot unpack a traced shape into a call
        context = context.permute(0, 2, 1).contiguous().view(batch_size, self.key_channels, x.size(2), x.size(3))
        context = self.f_up(context)  # B x C x H x W
        if self.scale > 1:
            context = F.interpolate(context, size=(h, w), mode="bilinear", align_corners=self.align_corners)
        return context


class SpatialOCR(nn.Module):
    """The augmented representation, z_i (official ``SpatialOCR_Module``).

    "z_i = g([x_i^T y_i^T]^T)": the pixel's own feature concatenated with its object
    contextual representation, through g = 1x1 conv -> BN -> ReLU (then dropout).
    """

    def __init__(
        self,
        in_channels: int,
        key_channels: int,
        out_channels: int,
        scale: int = 1,
        dropout: float = 0.1,
        norm_layer: NormLayer = nn.BatchNorm2d,
        align_corners: bool = True,
    ) -> None:
        super().__init__()
        self.object_context_block = ObjectAttentionBlock(in_channels, key_channels, scale, norm_layer, align_corners)
        self.conv_bn_dropout = nn.Sequential(
            *conv1x1_bn_relu(2 * in_channels, out_channels, norm_layer),
            nn.Dropout2d(dropout),
        )

    def forward(self, feats: torch.Tensor, proxy_feats: torch.Tensor) -> torch.Tensor:
        context = self.object_context_block(feats, proxy_feats)  # y: B x C x H x W
        return self.conv_bn_dropout(torch.cat([context, feats], 1))  # [y, x]: B x 2C -> z: B x C_out


class HRNetOCR(HRNet):
    """HRNetV2 + OCR for semantic segmentation (official ``seg_hrnet_ocr.py``).

    Output: the list ``[aux_logits, ocr_logits]``, in the official order, each
    B x num_classes x H/4 x W/4. ``aux_logits`` are the soft object regions (trained
    with weight 0.4 in the official loss, ``LOSS.BALANCE_WEIGHTS: [0.4, 1]``);
    ``ocr_logits`` are the prediction (the official test code reads output -1).
    """

    def __init__(
        self,
        config: HRNetConfig | str,
        num_classes: int = 19,
        mid_channels: int = MID_CHANNELS,
        key_channels: int = KEY_CHANNELS,
        dropout: float = DROPOUT,
        scale: int = SCALE,
        align_corners: bool = True,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__(config, norm_layer, upsample="bilinear", align_corners=align_corners)
        num_classes = positive_int("num_classes", num_classes)
        mid_channels = positive_int("mid_channels", mid_channels)
        key_channels = positive_int("key_channels", key_channels)
        scale = positive_int("scale", scale)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        # The official init_weights draws N(0, 0.001) for the backbone's convs and skips
        # every module named *cls*, *aux* or *ocr*: the head keeps PyTorch's default init.
        init_weights(self, "normal")
        last_inp_channels = sum(self.out_channels)  # 15C: 270 for W18, 720 for W48

        # Registered in the official order (the state dict follows it), not in the order they run.
        self.conv3x3_ocr = nn.Sequential(  # the pixel representations x_i: 15C -> mid_channels
            nn.Conv2d(last_inp_channels, mid_channels, kernel_size=3, padding=1),  # with bias, as official
            norm_layer(mid_channels, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
        )
        self.ocr_gather_head = SpatialGather(num_classes)
        self.ocr_distri_head = SpatialOCR(
            mid_channels, key_channels, mid_channels, scale, dropout, norm_layer, align_corners
        )
        self.cls_head = nn.Conv2d(mid_channels, num_classes, kernel_size=1)
        self.aux_head = nn.Sequential(  # the soft object regions: HRNetV2's last_layer under another name
            nn.Conv2d(last_inp_channels, last_inp_channels, kernel_size=1),
            norm_layer(last_inp_channels, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
            nn.Conv2d(last_inp_channels, num_classes, kernel_size=1),
        )

    def check_input(self, x: torch.Tensor) -> None:
        """The backbone's checks, and three of the head's own, before torch's deep errors."""
        super().check_input(x)
        if x.shape[0] == 0:  # SpatialGather's view(B, K, -1) cannot infer -1 from 0 elements
            raise ValueError(f"HRNetOCR got an empty batch (0 images of {x.shape[-2]}x{x.shape[-1]}): there is "
                             "nothing to segment; check the batch size and the slice that made it")
        block = self.ocr_distri_head.object_context_block
        quarter = (-(-x.shape[-2] // 4), -(-x.shape[-1] // 4))  # the 1/4 map the head works on
        if block.scale > 1 and min(quarter) < block.scale:
            raise ValueError(
                f"Input {x.shape[-2]}x{x.shape[-1]}: the OCR attention max-pools the {quarter[0]}x{quarter[1]} "
                f"map by scale={block.scale}; use an image of at least {4 * block.scale} pixels a side or scale=1"
            )
        regions = x.shape[0] * self.cls_head.out_channels  # the values per channel the region BatchNorms see
        if self.training and regions < 2 and isinstance(block.f_object[1][0], nn.modules.batchnorm._BatchNorm):
            raise ValueError(
                "Training mode with 1 image and 1 class: the OCR head's BatchNorm on the region "
                "representations (B x C x K x 1) sees one value per channel; use a batch of at least 2, "
                "more than one class, or model.eval()"
            )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = concat_branches(self.forward_features(x), self.align_corners)  # B x 15C x H/4 x W/4
        out_aux = self.aux_head(feats)  # soft object regions: B x K x H/4 x W/4
        feats = self.conv3x3_ocr(feats)  # pixel representations: B x 512 x H/4 x W/4
        context = self.ocr_gather_head(feats, out_aux)  # region representations: B x 512 x K x 1
        feats = self.ocr_distri_head(feats, context)  # augmented representations: B x 512 x H/4 x W/4
        out = self.cls_head(feats)  # B x K x H/4 x W/4
        return [out_aux, out]


# ------------------------------------------------------------------ the official loss
BALANCE_WEIGHTS = (0.4, 1.0)  # LOSS.BALANCE_WEIGHTS of every official seg_hrnet_ocr experiment: [aux, ocr]
OHEM_THRESHOLD = 0.9  # LOSS.OHEMTHRES
OHEM_KEEP = 131072  # LOSS.OHEMKEEP (the official files' value; the code's default is 100000)


def _resized(logits: torch.Tensor, target: torch.Tensor, align_corners: bool) -> torch.Tensor:
    if logits.shape[-2:] != target.shape[-2:]:  # the official criterion upsamples the 1/4 logits to the labels
        logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=align_corners)
    return logits.float()


def check_target(target: object, logits: torch.Tensor, name: str = "target") -> None:
    """The labels as cross-entropy takes them: B x H x W class indices (int64), one map per image.
    ``name`` is what the caller calls them (the trainer's loss says ``mask``).

    Shape and dtype only: a check of the values would cost a device sync every step.
    """
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"{name} must be a (B, H, W) tensor of class indices, got {type(target).__name__}")
    hint = ""
    if target.dim() == 4 and target.shape[1] == 1:
        hint = f"; drop the channel dimension with {name}.squeeze(1)"
    elif target.dim() == 4:
        hint = f"; for one-hot labels or class probabilities (B, K, H, W), take the classes with {name}.argmax(1)"
    elif target.dim() == 2:
        hint = f"; add a batch dimension with {name}.unsqueeze(0)"
    elif target.dtype != torch.long:
        hint = f"; convert it with {name}.long()"
    elif target.shape[0] != logits.shape[0]:
        hint = f"; the outputs are for {logits.shape[0]} image(s)"
    if hint or target.dim() != 3:
        raise ValueError(f"{name} must be a (B, H, W) int64 tensor of class indices, got {target.dtype} of shape "
                         f"{tuple(target.shape)}{hint}")


def check_label_range(labels: torch.Tensor, num_classes: int, ignore_index: int = 255) -> None:
    """Labels (the ignored ones left out) are classes 0 .. num_classes - 1; else a ValueError that says so.
    It reads the labels' min and max, which waits for the GPU: the losses call it only after cross-entropy
    failed, and confusion_matrix only after its own one-read range check found a label out of range."""
    if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < num_classes:
        raise ValueError(
            f"the labels run from {int(labels.min())} to {int(labels.max())} (besides {ignore_index}, ignored), "
            f"but there are {num_classes} classes (0 to {num_classes - 1}): labels must be below num_classes, or "
            f"{ignore_index} to ignore a pixel. The model was built for another dataset? Build it with "
            "num_classes=dataset.num_classes"
        ) from None


def ohem_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int = 255,
    threshold: float = OHEM_THRESHOLD,
    min_kept: int = OHEM_KEEP,
    align_corners: bool = True,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Online hard example mining (official ``OhemCrossEntropy._ohem_forward``).

    Averages the cross-entropy over the *hard* labelled pixels only: those whose
    probability for their true class is below ``max(threshold, p_k)``, where p_k is
    the sorted probability at index ``min_kept`` (the (min_kept + 1)-th smallest), so the
    ``min_kept`` hardest pixels count (barring ties) when there are more than that.
    With ``min_kept`` or fewer labelled pixels (the official 131072 is more than a 16 x 64 x 64 batch has)
    the cut is max(largest probability, threshold): every pixel counts but those at the largest.
    The trainer uses it for ``ohem=True`` on either head: the official ``LOSS.USE_OHEM`` picks
    ``OhemCrossEntropy`` for plain HRNetV2 too (``seg_hrnet_w48_*_ohem_*`` files).
    """
    if isinstance(logits, (list, tuple)):
        raise TypeError(f"ohem_cross_entropy takes one logits tensor, got a {type(logits).__name__} of {len(logits)}: "
                        "for HRNet-OCR's [aux, ocr] use ocr_loss(outputs, target, ohem=True)")
    check_target(target, logits)
    _check_loss_options(logits, False, align_corners, threshold, min_kept, weight, ("threshold", "min_kept"))
    weight = _as_float_weight(weight, logits)
    logits = _resized(logits, target, align_corners)
    try:
        pixel_losses = F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index,
                                       reduction="none").view(-1)
    except IndexError:  # the CPU's "Target 7 is out of bounds"
        check_label_range(target[target != ignore_index], logits.shape[1], ignore_index)
        raise
    labelled = target.reshape(-1) != ignore_index
    safe_target = target.clone()
    safe_target[safe_target == ignore_index] = 0
    true_prob = F.softmax(logits, dim=1).gather(1, safe_target.unsqueeze(1)).view(-1)[labelled]
    true_prob, order = true_prob.sort()  # easiest pixels last
    if true_prob.numel() == 0:
        return logits.sum() * 0  # no labelled pixel: nothing to learn, but keep the graph
    kept_value = true_prob[min(min_kept, true_prob.numel() - 1)]
    cut = torch.clamp(kept_value, min=threshold)  # official: max(min_value, thresh)
    hard = pixel_losses[labelled][order][true_prob < cut]
    return hard.mean()


def ocr_loss(
    outputs: list[torch.Tensor] | tuple[torch.Tensor, ...],
    target: torch.Tensor,
    balance_weights: tuple[float, ...] = BALANCE_WEIGHTS,
    ignore_index: int = 255,
    align_corners: bool = True,
    ohem: bool = False,
    ohem_threshold: float = OHEM_THRESHOLD,
    ohem_keep: int = OHEM_KEEP,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The official criterion over ``[aux_logits, ocr_logits]`` (``lib/core/criterion.py``).

    ``sum_i balance_weights[i] * loss_i``: each output upsampled (bilinear) to the
    labels and scored with cross-entropy; with ``ohem=True`` (``LOSS.USE_OHEM``) the
    last output's loss is :func:`ohem_cross_entropy` and the others stay plain (averaged
    over every pixel, as the official trainer ends up doing).
    ``weight``: per-class weights (the official Cityscapes trainer passes its dataset's).
    """
    balance_weights = _check_balance_weights(balance_weights)
    if not isinstance(outputs, (list, tuple)) or len(outputs) != len(balance_weights):
        count = len(outputs) if isinstance(outputs, (list, tuple)) else "a single tensor"
        raise ValueError(
            f"ocr_loss takes the model's list of outputs, one per balance weight {list(balance_weights)}; got {count}"
        )
    check_target(target, outputs[0])
    _check_loss_options(outputs[0], ohem, align_corners, ohem_threshold, ohem_keep, weight)
    weight = _as_float_weight(weight, outputs[0])
    try:
        return _weighted_losses(outputs, target, balance_weights, ignore_index, align_corners, ohem, ohem_threshold,
                                ohem_keep, weight)
    except IndexError:  # the CPU's "Target 7 is out of bounds"
        check_label_range(target[target != ignore_index], outputs[0].shape[1], ignore_index)
        raise


def _check_balance_weights(balance_weights: object) -> tuple[float, ...]:
    """One number per output, as the official LOSS.BALANCE_WEIGHTS ([0.4, 1]); None or strings failed
    inside len() or torch's indexing."""
    all_numbers = isinstance(balance_weights, (list, tuple)) and all(
        isinstance(w, numbers.Real) and not isinstance(w, bool) and math.isfinite(w) for w in balance_weights)
    if not all_numbers or not balance_weights:
        raise ValueError(f"balance_weights must be numbers, one per output (the official [0.4, 1] for [aux, ocr]); "
                         f"got {balance_weights!r}")
    return tuple(balance_weights)


def _check_loss_options(logits: object, ohem: object, align_corners: object, ohem_threshold: object,
                        ohem_keep: object, weight: object, names: tuple[str, str] = ("ohem_threshold", "ohem_keep")
                        ) -> None:
    """The loss's switches and numbers, before cross-entropy runs: "no" is a truthy string (OHEM on), a NaN
    threshold made the loss NaN, a negative ohem_keep was taken, a wrong-length weight failed in torch."""
    flag("ohem", ohem)
    flag("align_corners", align_corners, none_means="F.interpolate's default")
    threshold_ok = isinstance(ohem_threshold, numbers.Real) and not isinstance(ohem_threshold, bool)
    if not threshold_ok or not 0 <= ohem_threshold <= 1:  # NaN fails the comparison too
        raise ValueError(f"{names[0]} must be a probability in [0, 1] (the official 0.9), got {ohem_threshold!r}")
    positive_int(names[1], ohem_keep, minimum=0)
    if weight is None or not isinstance(logits, torch.Tensor) or logits.dim() < 2:
        return
    if not isinstance(weight, torch.Tensor) or weight.dim() != 1:
        raise ValueError(f"weight must be a 1-D tensor of per-class weights, got {type(weight).__name__}"
                         + (f" of shape {tuple(weight.shape)}" if isinstance(weight, torch.Tensor) else ""))
    if weight.numel() != logits.shape[1]:
        raise ValueError(f"weight has {weight.numel()} entries but the outputs have {logits.shape[1]} classes: "
                         "give one weight per class")


def _as_float_weight(weight: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor | None:
    """Class weights in the logits' dtype and device: torch.from_numpy of numpy's float64 weights, or whole numbers,
    failed in cross_entropy with 'expected scalar type Float but found Double'."""
    return None if weight is None else weight.to(device=logits.device, dtype=logits.dtype)


def _weighted_losses(outputs, target, balance_weights, ignore_index, align_corners, ohem, ohem_threshold, ohem_keep,
                     weight) -> torch.Tensor:
    total = 0
    for index, (w, logits) in enumerate(zip(balance_weights, outputs)):
        resized = _resized(logits, target, align_corners)
        if ohem and index == len(outputs) - 1:
            loss = ohem_cross_entropy(logits, target, ignore_index, ohem_threshold, ohem_keep, align_corners, weight)
        elif ohem:
            # Official quirk, kept: OhemCrossEntropy scores the other outputs with its own
            # reduction='none' criterion, and the trainer's losses.mean() then averages them
            # over *all* pixels (an ignored pixel counts as a loss of 0), not over the labelled ones.
            loss = F.cross_entropy(resized, target, weight=weight, ignore_index=ignore_index, reduction="none").mean()
        else:
            loss = F.cross_entropy(resized, target, weight=weight, ignore_index=ignore_index)
        total = total + w * loss
    return total
