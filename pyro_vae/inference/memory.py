"""How much memory a step needs, estimated from the shapes before anything is allocated.

Every draw of z is one row through the networks: a training step with P particles on a minibatch
of B rows pushes P * B rows, an evaluation chunk of k draws on B data points k * B rows. Each row
keeps every ``nn.Linear`` layer's outputs (the widths W, summed over the model's layers) and, for
the backward pass and the likelihood's elementwise log-densities, about two more tensors of the
same size, so

    bytes ~ rows x W x (bytes per value) x COPIES,      COPIES = 3.

Measured on the 784-400-20 Bernoulli VAE (peak resident memory of one step, 12,800 to 51,200
rows): 2.7 to 3.0 copies of the decoder's 400 + 784 outputs per row when training (``trace``,
``meanfield``, ``iwae:K``), 2.0 to 2.3 for an evaluation chunk. Summing every Linear layer (the
encoder's too, although it sees only the B data rows) errs on the safe side; the convolutional nets
(``arch='conv'``) add the values their feature maps hold per row (``conv_width``); other layers are
not counted. :func:`check_memory` refuses a step whose estimate exceeds the memory
available, so ``num_particles=100000`` is a one-line error instead of the kernel's OOM killer.
"""

import os

import torch

from ..errors import UserError
from ..models.nets import layer_width

COPIES = 3  # tensors of a layer's output size kept per row: forward, backward, log-density terms


def network_width(module):
    """Values per row of ``module``'s layers: :func:`~pyro_vae.models.nets.layer_width`.

    Example::

        >>> from pyro_vae.models.nets import MLP
        >>> network_width(MLP(20, [400], 784))
        1184
    """
    return layer_width(module)


def step_bytes(rows, width, value_bytes=4, copies=COPIES):
    """Estimated bytes of a step that pushes ``rows`` rows through layers of total ``width``.

    Example::

        >>> step_bytes(100000 * 128, 1184)  # num_particles=100000, batch 128, the 784-400-20 decoder
        181862400000
    """
    return int(rows) * int(width) * int(value_bytes) * int(copies)


def available_bytes(device=None):
    """Memory a step may take: free memory of a CUDA ``device``, else the system's ``MemAvailable``
    (total physical memory where /proc/meminfo is missing); None when unknown."""
    device = torch.device("cpu" if device is None else device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(model, rows, fix, what="a training step", available=None, param=None):
    """Refuse, with a one-line :class:`UserError` naming the estimate and ``fix``, a step of ``rows``
    rows through ``model`` whose :func:`step_bytes` exceed ``available`` (default
    :func:`available_bytes` of the model's device). Returns the estimate in bytes.

    Example::

        >>> from pyro_vae.models.nets import MLP
        >>> check_memory(MLP(20, [400], 784), 128, fix="lower num_particles", available=10 ** 9)
        1818624
        >>> check_memory(MLP(20, [400], 784), 128 * 100000, fix="lower num_particles", available=10 ** 9)
        Traceback (most recent call last):
        ...
        pyro_vae.errors.UserError: a training step needs about 181.9 GB (12,800,000 rows x 1184 ...), more ...
    """
    params = list(model.parameters())
    value_bytes = params[0].element_size() if params else 4
    width = network_width(model)
    need = step_bytes(rows, width, value_bytes)
    if available is None:
        available = available_bytes(params[0].device if params else None)
    if available is not None and need > available:
        raise UserError(f"{what} needs about {_gb(need)} ({int(rows):,} rows x {width} layer outputs x {value_bytes} "
                        f"bytes x {COPIES} copies), more than the {_gb(available)} available; {fix}", param=param)
    return need


def _gb(n):
    return f"{n / 1e9:.1f} GB"
