"""The networks of the layer-table spaces: one stand-alone net and one supernet for all of them.

A space describes its network by a :class:`LayerwiseParts`: its fixed trunk modules by name (stem,
first block, tail), how a searched block is built, how one layer's choices share weights in the
supernet, and how the tail runs. :class:`LayerwiseNet` and :class:`LayerwiseSupernet` register the
trunk modules under the space's own names, before the blocks, so that state-dict keys, parameter order
and initialisation draws are those of the space's published module tree.
"""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import torch
from torch import nn

from .base import LayerParts
from ._blocks import chain_outputs, check_supernet_path, materialize

if TYPE_CHECKING:
    from ._table import LayerTableSpace, LayerwiseArch

__all__ = ["LayerwiseNet", "LayerwiseParts", "LayerwiseSupernet", "measure_parts"]


class LayerwiseParts(abc.ABC):
    """How one layer-table space's network is made. Stateless; one instance per space is enough."""

    #: Names of the trunk modules run, in this order, before the first searched layer.
    prefix: ClassVar[tuple[str, ...]] = ("stem", "first")

    @abc.abstractmethod
    def trunk(self, fixed: Any, tail_in: int) -> dict[str, nn.Module]:
        """Every fixed module by its state-dict name, in registration order (the prefix modules and the
        tail's); ``tail_in`` is the last searched layer's output channels."""

    @abc.abstractmethod
    def block(self, args: Any) -> nn.Module:
        """The stand-alone module of one searched block."""

    @abc.abstractmethod
    def elastic(self, choices: tuple[Any, ...], **options: str) -> nn.Module:
        """The supernet's module for a layer with these choices: it holds weights every choice slices,
        runs ``forward(x, args)`` and hands out ``sliced_state(args)`` keyed as ``block(args)``'s state.
        ``options``: the space's non-default supernet options (see ``SearchSpace.SUPERNET_OPTIONS``)."""

    @abc.abstractmethod
    def forward_tail(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The tail of ``net`` (its trunk modules are attributes) on the last searched layer's output."""

    def elastic_for(self, module: nn.Module, args: Any) -> nn.Module:
        """The part of a layer's elastic module that runs ``args`` (the module itself, unless a layer holds
        several, e.g. one per block type)."""
        return module


class _Trunk(nn.Module):
    def _add_trunk(self, parts: LayerwiseParts, fixed: Any, tail_in: int, tail: bool) -> None:
        self.fixed = fixed
        self.parts = parts
        for name, module in parts.trunk(fixed, tail_in).items():
            if tail or name in parts.prefix:  # a detector's backbone has no classifier tail
                self.add_module(name, module)

    def forward_prefix(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.parts.prefix:
            x = self._modules[name](x)
        return x


class LayerwiseNet(_Trunk):
    """A stand-alone network of a layer-table space, built from decoded arguments.

    Args:
        arch: The decoded architecture (see ``space.decode``).
        parts: The space's network parts.
        tail: ``False`` for a detector's backbone: no classifier tail, only :meth:`block_outputs`.

    Input ``(N, 3, H, W)`` float tensors; output ``(N, num_classes)`` logits. Constructed directly it
    gets torch's default initialisation; ``space.build`` gives the seeded one.
    """

    def __init__(self, arch: LayerwiseArch, parts: LayerwiseParts, *, tail: bool = True) -> None:
        super().__init__()
        self._add_trunk(parts, arch.fixed, tail_in=arch.blocks[-1].out_ch, tail=tail)
        self.arch = arch
        self.blocks = nn.Sequential(*(parts.block(args) for args in arch.blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.parts.forward_tail(self, self.blocks(self.forward_prefix(x)))

    def block_outputs(self, x: torch.Tensor, indices: Sequence[int]) -> list[torch.Tensor]:
        """The outputs of the searched blocks at ``indices`` (e.g. the detection endpoints)."""
        return chain_outputs(self.forward_prefix(x), self.blocks, indices)


class LayerwiseSupernet(_Trunk):
    """Single-path one-shot supernet of a layer-table space.

    Every searched layer holds one elastic module (see :meth:`LayerwiseParts.elastic`); a path runs
    each layer's chosen block on its slice of those weights, and the trunk is shared by all paths. A
    step gives gradients and BN running-stat updates only to the slices its path uses.

    Args:
        fixed: The shared fixed parts.
        choices: Per searched layer, the block arguments of each choice, in choice-index order.
        parts: The space's network parts.
        tail: ``False`` for a detector's backbone (see :class:`LayerwiseNet`).
        options: The non-default supernet options, handed to every layer's elastic module.
    """

    def __init__(self, fixed: Any, choices: tuple[tuple[Any, ...], ...], parts: LayerwiseParts, *,
                 tail: bool = True, options: dict[str, str] | None = None) -> None:
        super().__init__()
        self._add_trunk(parts, fixed, tail_in=choices[-1][0].out_ch, tail=tail)
        self.choices = choices
        self.blocks = nn.ModuleList(parts.elastic(layer, **(options or {})) for layer in choices)

    def forward(self, x: torch.Tensor, path: Sequence[int]) -> torch.Tensor:
        """Run the candidate ``path[i]`` in layer ``i``; ``path`` is an encoding of the space."""
        return self.parts.forward_tail(self, self.block_outputs(x, path, [len(self.blocks) - 1])[0])

    def block_outputs(self, x: torch.Tensor, path: Sequence[int], indices: Sequence[int]) -> list[torch.Tensor]:
        """The outputs of the searched layers at ``indices`` on the path (e.g. a detector's C4 and C5)."""
        check_supernet_path(self.choices, path)
        x = self.forward_prefix(x)
        wanted, outputs = set(indices), {}
        for i, (module, layer, index) in enumerate(zip(self.blocks, self.choices, path)):
            if i > max(indices):
                break
            args = layer[int(index)]
            x = self.parts.elastic_for(module, args)(x, args)
            if i in wanted:
                outputs[i] = x
        return [outputs[i] for i in indices]

    def path_state_dict(self, path: Sequence[int]) -> dict[str, torch.Tensor]:
        """The state of ``path`` keyed as the stand-alone network's ``state_dict()``.

        Values are detached views of this supernet's tensors (copy them before changing them).
        """
        check_supernet_path(self.choices, path)
        state = {key: value for key, value in self.state_dict().items() if not key.startswith("blocks.")}
        for i, (module, layer, index) in enumerate(zip(self.blocks, self.choices, path)):
            args = layer[int(index)]
            sliced = self.parts.elastic_for(module, args).sliced_state(args)
            state.update({f"blocks.{i}.{name}": tensor.detach() for name, tensor in sliced.items()})
        return state


class _Suffix(nn.Module):
    """A built net's tail as a module of its own (for timing it alone)."""

    def __init__(self, net: LayerwiseNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.parts.forward_tail(self.net, x)


def measure_parts(space: LayerTableSpace) -> LayerParts:
    """The space's :class:`~spaces.base.LayerParts`: the default architecture's prefix and suffix, each
    layer's fixed input shape (traced once), and a builder for every choice's block."""
    net = space.build(space.default_encoding()).eval()
    parts: LayerwiseParts = net.parts
    shapes: list[tuple[int, ...]] = []
    hooks = [b.register_forward_pre_hook(lambda _m, inp: shapes.append(tuple(inp[0].shape))) for b in net.blocks]
    try:
        with torch.no_grad():
            suffix_input = tuple(net.blocks(net.forward_prefix(torch.zeros(space.input_shape))).shape)
    finally:
        for hook in hooks:
            hook.remove()
    prefix = nn.Sequential(*(net.get_submodule(name) for name in parts.prefix))
    return LayerParts(
        input_shape=tuple(space.input_shape), prefix=prefix, layer_inputs=tuple(shapes), choices=space.table,
        block=lambda args: materialize(lambda: parts.block(args)), suffix=_Suffix(net), suffix_input=suffix_input,
    )  # fmt: skip
