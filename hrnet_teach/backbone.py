"""HRNet, the backbone: stem, layer1, then three multi-resolution stages.

The paper (Wang et al., TPAMI 2020, Section 3, numbered as in its arXiv version
1908.07919; Figure 2): "We input the image into a stem, which consists of two
stride-2 3×3 convolutions decreasing the resolution to 1/4, and subsequently the
main body that outputs the representation with the same resolution (1/4)."
Concretely:

- stem: two 3x3 stride-2 convs, 3 -> 64 channels, image to 1/4 resolution;
- ``layer1`` (stage 1): Bottleneck blocks at 1/4;
- ``transition1``, ``stage2``: branches at 1/4 and 1/8;
- ``transition2``, ``stage3``: adds 1/16;
- ``transition3``, ``stage4``: adds 1/32.

``forward`` returns the list of stage-4 branch outputs, finest first. The
attribute names are the official ones: they are the state-dict keys of every
official checkpoint and of timm's weights.
"""
from __future__ import annotations

import inspect

import torch
from torch import nn

from ._checks import is_tracing  # tests/test_deploy.py and older code import it from here
from ._validate import flag, image_shape_hint
from .blocks import BLOCKS, BN_MOMENTUM, NormLayer, check_norm_layer, make_layer
from .config import HRNetConfig, StageConfig, get_config
from .module import HighResolutionModule
from .transition import Transition

STEM_CHANNELS = 64


def halves_exactly(side: int, branches: int = 4) -> bool:
    """Whether an image side of ``side`` pixels can be fused by fixed factors (nearest, x ``2**(j-i)``,
    as the official classification and pose code do).

    The stem leaves ceil(side / 4) and every stride-2 conv rounds up again, so enlarging branch j
    by ``2**(j-i)`` lands exactly on branch i's size only when ceil(side / 4) is a multiple of
    ``2**(branches - 1)``: true of every multiple of 32, and of the three sides just below one
    (253, 254 and 255 work like 256). The official cls_hrnet.py, run at 28-32, 60-65 and 250-256
    (``tests/test_model.py`` keeps what it did), agrees at every one of those sides.
    """
    return side > 0 and -(-side // 4) % 2 ** (branches - 1) == 0


def round_up_to_32(side: int) -> int:
    """The size to resize or pad a side to for fixed-factor fusion: the next multiple of 32."""
    return max(32, -(-side // 32) * 32)


def _name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _autocast_on(x: torch.Tensor) -> bool:
    try:
        return torch.is_autocast_enabled(x.device.type)  # torch >= 2.4
    except TypeError:
        return torch.is_autocast_enabled() if x.is_cuda else torch.is_autocast_cpu_enabled()


class HRNet(nn.Module):
    """The HRNet backbone built from an :class:`HRNetConfig` (or a variant name).

    ``upsample``/``align_corners``: how fusion enlarges coarser branches (see
    :class:`HighResolutionModule`). ``multi_scale_output=False`` makes the last
    module of stage 4 output only the highest-resolution branch (the pose model).
    """

    def __init__(
        self,
        config: HRNetConfig | str = "w18",
        norm_layer: NormLayer = nn.BatchNorm2d,
        upsample: str = "bilinear",
        align_corners: bool = True,
        multi_scale_output: bool = True,
    ) -> None:
        super().__init__()
        # a string would fail in every forward; None is F.interpolate's default, as the official code allows
        align_corners = flag("align_corners", align_corners, none_means="F.interpolate's default")
        # "no" is truthy: it would keep every output, as True does
        multi_scale_output = flag("multi_scale_output", multi_scale_output)
        check_norm_layer(norm_layer)  # before the stem calls it: what it must be, not Python's bare call error
        self.config = get_config(config)
        self.upsample = upsample
        self.align_corners = align_corners
        self._norm_layer = norm_layer

        # stem: 3 x H x W -> 64 x H/4 x W/4
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = norm_layer(STEM_CHANNELS, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(STEM_CHANNELS, STEM_CHANNELS, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = norm_layer(STEM_CHANNELS, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)

        # stage 1: one branch of residual blocks at 1/4 (256 channels for W18..W64)
        s1 = self.config.stage1
        self.layer1 = make_layer(BLOCKS[s1.block], STEM_CHANNELS, s1.num_channels[0], s1.num_blocks[0], norm_layer=norm_layer)

        channels = s1.out_channels
        self.transition1, self.stage2, channels = self._make_stage(self.config.stage2, channels)
        self.transition2, self.stage3, channels = self._make_stage(self.config.stage3, channels)
        self.transition3, self.stage4, channels = self._make_stage(self.config.stage4, channels, multi_scale_output)
        self.out_channels = channels  # per stage-4 output branch

    def _make_stage(self, stage: StageConfig, pre_channels, multi_scale_output: bool = True):
        """A transition into the stage, then ``num_modules`` HighResolutionModules."""
        transition = Transition(pre_channels, stage.out_channels, self._norm_layer)
        modules, channels = [], stage.out_channels
        for index in range(stage.num_modules):
            last = index == stage.num_modules - 1
            module = HighResolutionModule(
                stage.num_branches,
                BLOCKS[stage.block],
                stage.num_blocks,
                channels,
                stage.num_channels,
                multi_scale_output=multi_scale_output or not last,  # only the last module can drop outputs
                norm_layer=self._norm_layer,
                upsample=self.upsample,
                align_corners=self.align_corners,
                fusion=self.config.fusion,
            )
            modules.append(module)
            channels = module.out_channels
        if not multi_scale_output:
            channels = channels[:1]
        return transition, nn.Sequential(*modules), channels

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))  # B x 64 x H/2 x W/2
        return self.relu(self.bn2(self.conv2(x)))  # B x 64 x H/4 x W/4

    def check_input(self, x: torch.Tensor) -> None:
        """Fail early, with a clear message, on input the network cannot take.

        Runs on eager calls only: :meth:`forward_features` skips it while torch.fx,
        TorchScript, torch.export, ONNX export or torch.compile trace the model
        (see :func:`is_tracing`), so those see the plain network.
        """
        if not isinstance(x, torch.Tensor):
            picture = hasattr(x, "__array__") or type(x).__module__.startswith("PIL")  # a numpy array, a PIL image
            how = ": for a picture (H x W x 3, 0-255) use hrnet_teach.assets.to_tensor(image)" if picture else ""
            raise TypeError(f"HRNet expects a tensor of shape (B, 3, H, W), got {type(x).__name__}{how}")
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"HRNet expects images of shape (B, 3, H, W), got {tuple(x.shape)}; {image_shape_hint(x)}")
        height, width = x.shape[-2:]
        if height == 0 or width == 0:
            raise ValueError(f"HRNet got an empty image ({height}x{width} pixels); check the crop or resize that made it")
        self._check_device(x)
        self._check_dtype(x)
        branches = self.config.stage4.num_branches
        if self.upsample == "nearest" and not (halves_exactly(height, branches) and halves_exactly(width, branches)):
            raise ValueError(
                f"Input {height}x{width}: this model fuses branches with nearest upsampling by "
                "fixed factors (as the official classification/pose code does), so each side must halve "
                "exactly from 1/4 down to 1/32 (ceil(side / 4) a multiple of 8): use multiples of 32 (the "
                "three sides just below one work too). Resize or pad the image, e.g. to "
                f"{round_up_to_32(height)}x{round_up_to_32(width)}{self._any_size_advice()}"
            )
        self._check_batch_statistics(x)

    def _any_size_advice(self) -> str:
        """How to take any image size instead: only a class whose constructor takes ``upsample`` can
        be rebuilt with bilinear fusion (the heads and the feature extractor fix it, as the official code)."""
        if "upsample" in inspect.signature(type(self).__init__).parameters:
            return ", or build the model with upsample='bilinear'."
        return (", or use the segmentation head (create_model(..., head='segmentation')), which fuses "
                "bilinearly and takes any size.")

    def _check_device(self, x: torch.Tensor) -> None:
        """Input and weights on one device; a meta-device model has shapes but no weights to run on data."""
        device = self.conv1.weight.device
        if x.device == device:
            return
        if device.type == "meta":
            raise ValueError(
                "This model was built on the meta device (under `with torch.device('meta')`): it has shapes but no "
                "weights, so it cannot run on real data. Build it without the meta device to run it, or give it a "
                "meta tensor, e.g. torch.empty(1, 3, 512, 512, device='meta'), for shapes only."
            )
        raise ValueError(
            f"The input is on {x.device} but the model is on {device}: move the input with x = x.to({str(device)!r}) "
            "(or the model with model.to(x.device))."
        )

    def _check_dtype(self, x: torch.Tensor) -> None:
        """The convs need input of the weights' dtype (autocast casts both itself)."""
        expected = self.conv1.weight.dtype
        if x.dtype == expected or _autocast_on(x):
            return
        if not x.is_floating_point():
            raise TypeError(
                f"HRNet got a {_name(x.dtype)} input; its weights are {_name(expected)}. Raw pixels (0-255) "
                f"must be converted first: x = x.to({expected}) / 255, then normalised as the model was trained "
                "(e.g. ImageNet mean and std)."
            )
        method = {torch.float32: "float()", torch.float16: "half()", torch.bfloat16: "bfloat16()",
                  torch.float64: "double()"}
        to_model, to_input = method.get(x.dtype, f"to({x.dtype})"), method.get(expected, f"to({expected})")
        raise TypeError(
            f"HRNet got a {_name(x.dtype)} input but its weights are {_name(expected)}: convert the input "
            f"with x.{to_input}, or the model with model.{to_model}, or run it under torch.autocast "
            "for mixed precision."
        )

    def _check_batch_statistics(self, x: torch.Tensor) -> None:
        """In training mode BatchNorm needs more than one value per channel at every
        branch; the coarsest (1/32 for 4 branches) is the first to run out."""
        if not self.training:
            return
        height, width = x.shape[-2:]
        for _ in range(1 + len(self.config.stage4.num_channels)):  # stem: 2 halvings; each new branch: 1 more
            height, width = -(-height // 2), -(-width // 2)  # stride-2 conv with padding 1: ceil(n / 2)
        if x.shape[0] * height * width > 1:
            return
        if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in self.modules()):
            return
        if x.shape[0] == 0:  # not the image size's fault, as the message below would say
            raise ValueError(
                f"Training mode with an empty batch (0 images of {x.shape[-2]}x{x.shape[-1]}): there is nothing "
                "to train on. Check the batch size and the length of the dataset (or the slice that made the batch)."
            )
        raise ValueError(
            f"Training mode with {x.shape[0]} image(s) of {x.shape[-2]}x{x.shape[-1]}: the coarsest "
            f"branch is {height}x{width}, so BatchNorm sees one value per channel and cannot compute a "
            "batch variance. Use a batch of at least 2 or a larger image (more than 32 pixels on a "
            "side), or call model.eval() for inference."
        )

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Image -> the list of stage-4 branch outputs (finest first)."""
        if not is_tracing(x):
            self.check_input(x)
        x = self.layer1(self.stem(x))  # B x 256 x H/4 x W/4 (W18..W64)
        y_list = self.stage2(self.transition1([x]))
        y_list = self.stage3(self.transition2(y_list))
        return self.stage4(self.transition3(y_list))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_features(x)
