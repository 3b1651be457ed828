"""Plain ``nn.Module`` networks: no Pyro calls here.

Networks act on the last dimension and accept any leading batch dimensions, so a decoder can take
``z`` of shape ``(P, B, Z)`` when the ELBO vectorises P particles.
"""

import torch
import torch.nn as nn

from ..errors import UserError, check_int

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "softplus": nn.Softplus, "elu": nn.ELU, "sigmoid": nn.Sigmoid,
               "identity": nn.Identity}


class MLP(nn.Sequential):
    """Fully connected net ``in_dim -> hidden[0] -> ... -> out_dim``, activation between layers.

    Input ``(..., in_dim)``, output ``(..., out_dim)``; the last layer is linear.

    Example::

        >>> net = MLP(784, [400], 40)
        >>> net(torch.zeros(7, 128, 784)).shape, [type(m).__name__ for m in net]
        (torch.Size([7, 128, 40]), ['Linear', 'ReLU', 'Linear'])
    """

    def __init__(self, in_dim, hidden, out_dim, activation="relu"):
        if activation not in ACTIVATIONS:
            raise UserError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}",
                            param="activation")
        sizes = [check_int("in_dim", in_dim), *(check_int("hidden", h) for h in hidden), check_int("out_dim", out_dim)]
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
        super().__init__(*layers)
        self.in_dim, self.hidden, self.out_dim = in_dim, tuple(hidden), out_dim
