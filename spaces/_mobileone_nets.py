"""The MobileOne networks: re-parameterizable blocks, the stand-alone net and the one-shot supernet.

Kept apart from :mod:`spaces.mobileone` so that decoding, validating and counting never import torch.
A :class:`MobileOneBlock` trains as a sum of linear branches (``k`` conv+BN, a 1x1 conv+BN "scale"
branch, a BN-only identity branch); since every branch is linear in eval mode, the sum folds into one
convolution with bias (:meth:`MobileOneBlock.reparameterize`), which is what runs, is counted and is
exported at inference.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._blocks import ConvBNAct, SqueezeExcite, chain_outputs
from ._elastic import sliced_batch_norm

if TYPE_CHECKING:
    from .mobileone import MobileOneArchArgs, MobileOneBlockArgs, MobileOneSpace

__all__ = ["ElasticMobileOneBlock", "MobileOneBlock", "MobileOneNet", "MobileOneSupernet"]

_BN_STATE = ("weight", "bias", "running_mean", "running_var")


class MobileOneBlock(nn.Module):
    """One MobileOne block, in train (branch) form until :meth:`reparameterize` folds it.

    Train form: ``sum(convs) + scale + skip`` -> [SE] -> ReLU, with ``args.branches`` kxk conv+BN
    branches, a 1x1 conv+BN ``scale`` branch when ``kernel > 1`` and a BN ``skip`` branch when
    ``in_ch == out_ch`` and ``stride == 1``. Folded form: ``reparam`` (one kxk conv with bias) ->
    [SE] -> ReLU; in eval mode both forms compute the same function.

    Args:
        args: The block's arguments.
    """

    def __init__(self, args: MobileOneBlockArgs) -> None:
        super().__init__()
        self.args = args
        conv = dict(kernel=args.kernel, stride=args.stride, groups=args.groups)
        self.convs = nn.ModuleList(ConvBNAct(args.in_ch, args.out_ch, **conv) for _ in range(args.branches))
        self.scale: nn.Module | None = None
        if args.has_scale:
            self.scale = ConvBNAct(args.in_ch, args.out_ch, kernel=1, stride=args.stride, groups=args.groups)
        self.skip: nn.Module | None = nn.BatchNorm2d(args.out_ch) if args.has_skip else None
        self.se: nn.Module = SqueezeExcite(args.out_ch, args.se_squeeze, act="relu", gate="sigmoid") if args.se else nn.Identity()
        self.act = nn.ReLU()
        self.reparam: nn.Conv2d | None = None

    @property
    def is_folded(self) -> bool:
        return self.reparam is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam is not None:
            return self.act(self.se(self.reparam(x)))
        out = self.convs[0](x)
        for conv in self.convs[1:]:
            out = out + conv(x)
        if self.scale is not None:
            out = out + self.scale(x)
        if self.skip is not None:
            out = out + self.skip(x)
        return self.act(self.se(out))

    def folded_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The kernel and bias of the one conv that equals the branch sum in eval mode (BN running stats)."""
        if self.reparam is not None:
            return self.reparam.weight, self.reparam.bias
        args, pad = self.args, self.args.kernel // 2
        pairs = [_fuse_bn(conv[0].weight, conv[1]) for conv in self.convs]
        if self.scale is not None:
            weight, bias = _fuse_bn(self.scale[0].weight, self.scale[1])
            pairs.append((F.pad(weight, [pad] * 4), bias))
        if self.skip is not None:
            pairs.append(_fuse_bn(_identity_kernel(args, self.skip.weight), self.skip))
        kernel, bias = pairs[0]
        for w, b in pairs[1:]:
            kernel, bias = kernel + w, bias + b
        return kernel, bias

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold the branches into ``reparam`` in place and drop them (idempotent)."""
        if self.reparam is not None:
            return
        kernel, bias = self.folded_kernel_bias()
        a = self.args
        with torch.device("meta"):  # no init draw from the global RNG: the weights are overwritten
            conv = nn.Conv2d(a.in_ch, a.out_ch, a.kernel, stride=a.stride, padding=a.kernel // 2, groups=a.groups)
        conv = conv.to_empty(device=kernel.device).to(kernel.dtype)
        conv.weight.copy_(kernel)
        conv.bias.copy_(bias)
        self.reparam = conv
        self.convs, self.scale, self.skip = nn.ModuleList(), None, None


def _fuse_bn(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """``bn(conv(x, weight))`` in eval mode as ``conv(x, kernel) + bias``."""
    factor = bn.weight / (bn.running_var + bn.eps).sqrt()
    return weight * factor.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * factor


def _identity_kernel(args: MobileOneBlockArgs, like: torch.Tensor) -> torch.Tensor:
    """The kxk (grouped) conv kernel that copies its input: a centred 1 on each channel's own input."""
    per_group = args.in_ch // args.groups
    eye = torch.eye(per_group, dtype=like.dtype, device=like.device).repeat(args.groups, 1)
    pad = args.kernel // 2
    return F.pad(eye.reshape(args.out_ch, per_group, 1, 1), [pad] * 4)


class MobileOneNet(nn.Module):
    """A stand-alone MobileOne network built from decoded arguments.

    Input ``(N, 3, H, W)`` float tensors; output ``(N, num_classes)`` logits. Built in train (branch)
    form; :meth:`reparameterize` folds it in place, :meth:`inference_form` returns a folded copy.
    Counting (:mod:`spaces.counting`) and ONNX export (:mod:`spaces.export`) use the folded copy.

    Args:
        arch: The decoded architecture (see :meth:`MobileOneSpace.decode`).
        classifier: ``False`` for a detector's backbone (no pooled classifier).
    """

    def __init__(self, arch: MobileOneArchArgs, *, classifier: bool = True) -> None:
        super().__init__()
        self.arch = arch
        self.stem = MobileOneBlock(arch.stem)
        self.blocks = nn.Sequential(*(MobileOneBlock(args) for args in arch.blocks))
        if classifier:  # a detector's backbone has none: its head reads block_outputs
            self.classifier = nn.Linear(arch.blocks[-1].out_ch, arch.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.blocks(self.stem(x)).mean((2, 3)))

    def block_outputs(self, x: torch.Tensor, indices: Sequence[int]) -> list[torch.Tensor]:
        """The outputs of the blocks after the stem at ``indices`` (e.g. the detection endpoints)."""
        return chain_outputs(self.stem(x), self.blocks, indices)

    @property
    def is_folded(self) -> bool:
        return all(block.is_folded for block in self.modules() if isinstance(block, MobileOneBlock))

    def reparameterize(self) -> MobileOneNet:
        """Fold every block in place (uses the BN running statistics); returns ``self``."""
        for block in self.modules():
            if isinstance(block, MobileOneBlock):
                block.reparameterize()
        return self

    def inference_form(self) -> MobileOneNet:
        """A folded copy in eval mode, on this model's device; this model is left untouched."""
        return copy.deepcopy(self).reparameterize().eval()


# ------------------------------------------------------------------------------------------ supernet
class ElasticMobileOneBlock(MobileOneBlock):
    """A MobileOne block holding the weights of its position's largest choice; runs any smaller one.

    Same module tree (and state-dict names) as ``MobileOneBlock(max_args)``, except that the identity
    branch exists iff ``skip`` (some choice of the position has one). A choice ``args`` uses the first
    ``args.branches`` conv branches and the first ``out_ch`` (and ``in_ch``) channels of every tensor.

    Args:
        max_args: The largest choice (most branches, widest, with SE if any choice has it).
        skip: Whether to hold an identity-branch BN (of ``max_args.out_ch`` channels).
    """

    def __init__(self, max_args: MobileOneBlockArgs, *, skip: bool) -> None:
        super().__init__(max_args)
        self.skip = nn.BatchNorm2d(max_args.out_ch) if skip else None

    @property
    def max_args(self) -> MobileOneBlockArgs:
        return self.args

    def forward(self, x: torch.Tensor, args: MobileOneBlockArgs) -> torch.Tensor:  # type: ignore[override]
        """Run the choice ``args`` (train form); gradients and BN stat updates reach only its slices."""
        p = self.sliced_state(args)
        out = self._conv_bn(x, p, "convs.0", self.convs[0][1], args, args.kernel)
        for j in range(1, args.branches):
            out = out + self._conv_bn(x, p, f"convs.{j}", self.convs[j][1], args, args.kernel)
        if args.has_scale:
            out = out + self._conv_bn(x, p, "scale", self.scale[1], args, 1)
        if args.has_skip:
            out = out + sliced_batch_norm(x, self.skip, {key: p[f"skip.{key}"] for key in _BN_STATE})
        if args.se:
            scale = F.relu(F.conv2d(out.mean((2, 3), keepdim=True), p["se.reduce.weight"], p["se.reduce.bias"]))
            out = out * torch.sigmoid(F.conv2d(scale, p["se.expand.weight"], p["se.expand.bias"]))
        return self.act(out)

    def sliced_state(self, args: MobileOneBlockArgs) -> dict[str, torch.Tensor]:
        """Views of the parameters and buffers ``args`` uses, keyed as ``MobileOneBlock(args).state_dict()``.

        The views share storage with this block (and keep autograd to its parameters).
        """
        self._check(args)
        per_group, squeeze = args.in_ch // args.groups, args.se_squeeze
        state = {}
        for name, tensor in [*self.named_parameters(), *self.named_buffers()]:
            parts = name.split(".")  # e.g. convs.2.0.weight, scale.1.running_var, skip.bias, se.reduce.weight
            if (
                (parts[0] == "convs" and int(parts[1]) >= args.branches)
                or (parts[0] == "skip" and not args.has_skip)
                or (parts[0] == "se" and not args.se)
            ):
                continue
            if parts[-1] == "num_batches_tracked":
                state[name] = tensor
            elif parts[-2:] == ["0", "weight"] and parts[0] in ("convs", "scale"):  # conv kernels
                state[name] = tensor[: args.out_ch, :per_group]
            elif name == "se.reduce.weight":
                state[name] = tensor[:squeeze, : args.out_ch]
            elif name == "se.reduce.bias":
                state[name] = tensor[:squeeze]
            elif name == "se.expand.weight":
                state[name] = tensor[: args.out_ch, :squeeze]
            else:  # BN vectors and the SE expand bias
                state[name] = tensor[: args.out_ch]
        return state

    @staticmethod
    def _conv_bn(
        x: torch.Tensor, p: dict[str, torch.Tensor], name: str, bn: nn.BatchNorm2d, args: MobileOneBlockArgs,
        kernel: int,
    ) -> torch.Tensor:
        y = F.conv2d(x, p[f"{name}.0.weight"], None, args.stride, kernel // 2, 1, args.groups)
        return sliced_batch_norm(y, bn, {key: p[f"{name}.1.{key}"] for key in _BN_STATE})

    def reparameterize(self) -> None:
        raise TypeError("a supernet block is not folded; extract a path and fold that model instead")

    def _check(self, args: MobileOneBlockArgs) -> None:
        big = self.args
        fits = (
            (args.kernel, args.stride) == (big.kernel, big.stride)
            and (args.groups == args.in_ch) == (big.groups == big.in_ch)
            and (args.groups == 1) == (big.groups == 1)
            and 1 <= args.in_ch <= big.in_ch
            and 1 <= args.out_ch <= big.out_ch
            and 1 <= args.branches <= big.branches
            and (big.se or not args.se)
            and (self.skip is not None or not args.has_skip)
        )
        if not fits:
            raise ValueError(
                f"choice {args} does not fit the elastic block {big} (skip={self.skip is not None}): kernel, "
                f"stride and kind (depthwise or full) must match; channels and branches may not grow"
            )


class MobileOneSupernet(nn.Module):
    """Single-path one-shot supernet with weights shared within each block position.

    Every position (stem, then the 42 blocks) holds one :class:`ElasticMobileOneBlock` at its largest
    choice (4 branches, the widest stage widths, SE where S4 has it); a path runs on the first ``k``
    branches and the first channels of it, and the classifier on the first input features.

    Args:
        space: The space whose encodings are the paths (its settings fix the layout).
    """

    def __init__(self, space: MobileOneSpace, *, classifier: bool = True) -> None:
        super().__init__()
        self._decode = space.decode
        (stem, stem_skip), *blocks = space.supernet_blocks()
        self.stem = ElasticMobileOneBlock(stem, skip=stem_skip)
        self.blocks = nn.ModuleList(ElasticMobileOneBlock(args, skip=skip) for args, skip in blocks)
        self.classifier = nn.Linear(blocks[-1][0].out_ch, space.settings["num_classes"]) if classifier else None

    def forward(self, x: torch.Tensor, path: Sequence[int] | MobileOneArchArgs) -> torch.Tensor:
        """Run the candidate ``path``: an encoding of the space, or its decoded arguments."""
        arch = self._arch(path)
        x = self.block_outputs(x, arch, [len(arch.blocks) - 1])[0]
        features = arch.blocks[-1].out_ch
        return F.linear(x.mean((2, 3)), self.classifier.weight[:, :features], self.classifier.bias)

    def block_outputs(self, x: torch.Tensor, path: Sequence[int] | MobileOneArchArgs,
                      indices: Sequence[int]) -> list[torch.Tensor]:
        """The outputs of the blocks after the stem at ``indices`` on the path (e.g. C4 and C5)."""
        arch = self._arch(path)
        x = self.stem(x, arch.stem)
        wanted, outputs = set(indices), {}
        for i, (block, args) in enumerate(zip(self.blocks, arch.blocks)):
            if i > max(indices):
                break
            x = block(x, args)
            if i in wanted:
                outputs[i] = x
        return [outputs[i] for i in indices]

    def path_state_dict(self, path: Sequence[int] | MobileOneArchArgs) -> dict[str, torch.Tensor]:
        """The state of ``path`` keyed as the stand-alone :class:`MobileOneNet`'s ``state_dict()``.

        Values are views of this supernet's tensors (copy them before changing them).
        """
        arch = self._arch(path)
        state = {f"stem.{name}": t.detach() for name, t in self.stem.sliced_state(arch.stem).items()}
        for i, (block, args) in enumerate(zip(self.blocks, arch.blocks)):
            state.update({f"blocks.{i}.{name}": t.detach() for name, t in block.sliced_state(args).items()})
        if self.classifier is not None:
            features = arch.blocks[-1].out_ch
            state["classifier.weight"] = self.classifier.weight.detach()[:, :features]
            state["classifier.bias"] = self.classifier.bias.detach()
        return state

    def _arch(self, path: Sequence[int] | MobileOneArchArgs) -> MobileOneArchArgs:
        # decode() validates: a bad path raises InvalidEncodingError naming the dimension.
        return path if hasattr(path, "blocks") else self._decode(path)
