"""The single-path supernet shape that moga, edgetpu and mobilenet share.

Each of them is a fixed trunk (``stem``, ``first`` block, ``forward_tail``) around one elastic module
per searched layer (``blocks[i]``) that runs any choice of that layer on slices of its weights and
hands out those slices keyed as the stand-alone block's ``state_dict()`` (``sliced_state(args)``).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ._settings import check_supernet_path

__all__ = ["LayerwiseSupernet"]


class LayerwiseSupernet(nn.Module):
    """Mixin: ``forward(x, path)`` and ``path_state_dict(path)`` over ``self.choices`` and ``self.blocks``.

    Subclasses set ``choices`` (per layer, the block arguments of each choice) and ``blocks`` (per
    layer, the elastic module), and override :meth:`elastic` when a layer holds several (one per
    block type, say).
    """

    choices: tuple[tuple[Any, ...], ...]
    blocks: nn.ModuleList

    def elastic(self, layer: int, args: Any) -> nn.Module:
        """The module that runs ``args`` in layer ``layer``."""
        return self.blocks[layer]

    def forward(self, x: torch.Tensor, path: Sequence[int]) -> torch.Tensor:
        """Run the candidate ``path[i]`` in layer ``i``; ``path`` is an encoding of the space."""
        check_supernet_path(self.choices, path)
        x = self.first(self.stem(x))
        for i, (layer, index) in enumerate(zip(self.choices, path)):
            args = layer[int(index)]
            x = self.elastic(i, args)(x, args)
        return self.forward_tail(x)

    def path_state_dict(self, path: Sequence[int]) -> dict[str, torch.Tensor]:
        """The state of ``path`` keyed as the stand-alone network's ``state_dict()``.

        Values are views of this supernet's tensors (copy them before changing them).
        """
        check_supernet_path(self.choices, path)
        state = {key: value for key, value in self.state_dict().items() if not key.startswith("blocks.")}
        for i, (layer, index) in enumerate(zip(self.choices, path)):
            args = layer[int(index)]
            sliced = self.elastic(i, args).sliced_state(args)
            state.update({f"blocks.{i}.{name}": tensor.detach() for name, tensor in sliced.items()})
        return state
