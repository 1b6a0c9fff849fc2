"""An SSDLite detector on any space's backbone, and its weight-sharing supernet.

A space whose networks expose ``block_outputs`` (its C4 and C5, see :meth:`SearchSpace.endpoints`)
becomes a detector by putting :class:`~spaces._ssdlite_nets.SSDLiteHead` on those two maps; its
classifier tail is left out. MobileDet builds its own head (:mod:`spaces._mobiledet_nets`); the other
spaces get theirs here.

Weight sharing: the supernet's head is held at the widest C4 / C5 channels of the space. Where those
channels are the same for every candidate (the layer-table spaces), every path runs the head itself;
where they vary (MobileOne's searched widths), a path runs a head of its own channels on the *first*
channels of every shared tensor (``torch.func.functional_call`` on views, as the MobileDet supernet
does), so gradients and BN statistics reach only the slices it uses.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Sequence

import torch
from torch import nn
from torch.func import functional_call

from ._ssdlite_nets import SSDLiteHead

if TYPE_CHECKING:
    from .base import SearchSpace
    from .ssdlite import SSDLiteArgs

__all__ = ["SSDLiteDetector", "SSDLiteDetectorSupernet"]


class SSDLiteDetector(nn.Module):
    """A stand-alone detector: ``backbone.block_outputs`` at the C4 / C5 blocks, then the SSDLite head.

    ``forward(x)`` returns ``(boxes, logits)``: ``(N, A, 4)`` box offsets and ``(N, A, num_classes)``
    class logits, anchors as :meth:`SearchSpace.detection_anchors` orders them.

    Args:
        backbone: A stand-alone network of the space, built without its classifier.
        head: The head's arguments (its C4 / C5 channels are the backbone's).
        endpoint_blocks: Indices of the C4 and C5 blocks in the backbone.
    """

    onnx_output_names = ("boxes", "logits")

    def __init__(self, backbone: nn.Module, head: SSDLiteArgs, endpoint_blocks: Sequence[int]) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = SSDLiteHead(head)
        self.endpoint_blocks = tuple(int(i) for i in endpoint_blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c4, c5 = self.backbone.block_outputs(x, self.endpoint_blocks)
        return self.head(c4, c5)

    def inference_form(self) -> SSDLiteDetector:
        """A copy whose backbone is in its inference form (MobileOne folds its branches); else ``self``."""
        fold = getattr(self.backbone, "inference_form", None)
        if fold is None:
            return self
        folded = copy.copy(self)  # a shallow module copy: only the backbone entry is replaced
        folded._modules = dict(self._modules)
        folded._modules["backbone"] = fold()
        return folded.eval()


def _slice(tensor: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The leading ``shape`` of ``tensor`` (head tensors differ only in channels, never in kernels)."""
    return tensor[tuple(slice(0, s) for s in shape)]


class SSDLiteDetectorSupernet(nn.Module):
    """Single-path supernet of a detector: the space's backbone supernet and a shared SSDLite head.

    Args:
        backbone: The space's backbone supernet, built without its classifier; it runs
            ``block_outputs(x, path, indices)`` and hands out ``path_state_dict(path)``.
        space: The space (for each path's endpoints and head).
        widest: The head at the widest C4 / C5 channels any candidate has.
    """

    def __init__(self, backbone: nn.Module, space: SearchSpace, widest: SSDLiteArgs) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = SSDLiteHead(widest)
        self._space = space
        self._templates: dict[tuple[int, int], SSDLiteHead] = {}

    def _endpoints(self, path: Sequence[int]) -> tuple[tuple[int, int], SSDLiteArgs]:
        c4, c5 = self._space.endpoints(path)
        return (c4.block, c5.block), self._space.detection_head(path)

    def _template(self, args: SSDLiteArgs) -> SSDLiteHead | None:
        """A meta-device head of ``args``' channels, or ``None`` when it is the shared head itself."""
        if (args.c4_ch, args.c5_ch) == (self.head.args.c4_ch, self.head.args.c5_ch):
            return None
        key = (args.c4_ch, args.c5_ch)
        if key not in self._templates:
            with torch.device("meta"):
                self._templates[key] = SSDLiteHead(args)
        return self._templates[key]

    def _head_state(self, template: SSDLiteHead | None) -> dict[str, torch.Tensor]:
        shared = self.head.state_dict(keep_vars=True)
        if template is None:
            return shared
        return {key: _slice(shared[key], tensor.shape) for key, tensor in template.state_dict(keep_vars=True).items()}

    def forward(self, x: torch.Tensor, path: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the candidate ``path`` (an encoding of the space) on the shared weights."""
        blocks, args = self._endpoints(path)
        c4, c5 = self.backbone.block_outputs(x, path, blocks)
        template = self._template(args)
        if template is None:
            return self.head(c4, c5)
        template.train(self.training)
        momentum = self.head.extras[0][0][1].momentum  # BN recalibration sets momentum=None: follow it
        for module in template.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = momentum
        return functional_call(template, self._head_state(template), (c4, c5), strict=True)

    def path_state_dict(self, path: Sequence[int]) -> dict[str, torch.Tensor]:
        """The state of ``path`` keyed as the stand-alone :class:`SSDLiteDetector`'s ``state_dict()``;
        values are detached views of this supernet's tensors."""
        _, args = self._endpoints(path)
        state = {f"backbone.{k}": v.detach() for k, v in self.backbone.path_state_dict(path).items()}
        state.update({f"head.{k}": v.detach() for k, v in self._head_state(self._template(args)).items()})
        return state
