"""Typed block arguments and channel arithmetic, free of torch so that decoding stays import-light.

Searchers and the CLI decode, validate and count architectures without importing torch; only
building a model (``spaces._blocks``) needs it.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ACTIVATIONS", "MBBlockArgs", "make_divisible"]

#: Activation names accepted by block arguments: ``relu`` (the papers' "RE"), ``hswish`` ("HS") and
#: ``relu6`` (MobileNetV2 and the accelerator MobileDets).
ACTIVATIONS: tuple[str, ...] = ("relu", "hswish", "relu6")


def make_divisible(value: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    """Round a channel count to a multiple of ``divisor`` the way MobileNetV3 / timm do.

    Rounds to the nearest multiple, never below ``divisor``, and goes one multiple up when rounding
    down would lose more than ``1 - round_limit`` of the width.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return rounded


@dataclass(frozen=True)
class MBBlockArgs:
    """Arguments of one inverted-residual (MB) block.

    Attributes:
        in_ch: Input channels.
        out_ch: Output channels.
        expansion: Expansion ratio ``t``; the hidden width is ``in_ch * expansion``.
        kernel: Depthwise kernel size (odd).
        stride: Depthwise stride.
        se: Whether a squeeze-excite follows the depthwise conv.
        act: Activation name, one of :data:`ACTIVATIONS`.
    """

    in_ch: int
    out_ch: int
    expansion: int
    kernel: int
    stride: int
    se: bool
    act: str

    @property
    def hidden(self) -> int:
        return self.in_ch * self.expansion

    @property
    def se_squeeze(self) -> int:
        """MoGA's SE width: ``hidden // 4`` with no rounding to a multiple of 8 (unlike MobileNetV3)."""
        return max(1, self.hidden // 4)

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_ch == self.out_ch
