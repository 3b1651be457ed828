"""Plain ``nn.Module`` networks: no Pyro calls here.

Networks act on the last dimension and accept any leading batch dimensions, so a decoder can take
``z`` of shape ``(P, B, Z)`` when the ELBO vectorises P particles.
"""

import torch.nn as nn

from .errors import UserError

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "softplus": nn.Softplus, "elu": nn.ELU, "sigmoid": nn.Sigmoid,
               "identity": nn.Identity}


class MLP(nn.Sequential):
    """Fully connected net ``in_dim -> hidden[0] -> ... -> out_dim``, activation between layers.

    Input ``(..., in_dim)``, output ``(..., out_dim)``; the last layer is linear.
    """

    def __init__(self, in_dim, hidden, out_dim, activation="relu"):
        if activation not in ACTIVATIONS:
            raise UserError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        sizes = [in_dim, *hidden, out_dim]
        if any(not isinstance(s, int) or s <= 0 for s in sizes):
            raise UserError(f"layer sizes must be positive integers, got {sizes}")
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
        super().__init__(*layers)
        self.in_dim, self.hidden, self.out_dim = in_dim, tuple(hidden), out_dim
