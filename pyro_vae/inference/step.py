"""One optimisation step as ``fit`` takes it, shared with the speed benchmark.

Pyro checks every distribution's parameters and the observed data on every step when validation is
on (its default). ``fit`` keeps that check for the first step of a run, where a wrong shape or a
value outside a family's support shows up, and skips it afterwards: the data's support was checked
when the model was built, and a NaN loss is caught by ``fit`` itself. On the 784-400-20 demo net
the per-step checks cost about 8% of a step (CHANGELOG.md, 0.2.0).
"""

import contextlib
import math
import warnings

import pyro
import torch


class SVIStep:
    """``step(xb, kl_kwargs)`` zeroes the gradients, backpropagates ``elbo``'s loss on minibatch
    ``xb`` (scaled to ``num_data``), averages the gradients across processes (``distributed``,
    each weighted by ``weight``, this rank's share of the global batch), clips them, and steps
    ``optimizer``. Returns the loss per data point (a float; NaN or infinite when the step diverged
    on any process, in which case no update is made).

    :param bool validate_every_step: keep Pyro's validation on after the first step.
    """

    def __init__(self, vae, elbo, optimizer, num_data, clip_norm=None, distributed=None,
                 validate_every_step=False):
        self.vae, self.elbo, self.optimizer, self.num_data = vae, elbo, optimizer, num_data
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.clip_norm, self.distributed = clip_norm, distributed
        self.validate_every_step = validate_every_step
        self.steps = 0

    def __call__(self, xb, kl_kwargs=None, weight=1.0):
        self.optimizer.zero_grad(set_to_none=True)
        checks = contextlib.nullcontext() if self.steps == 0 or self.validate_every_step \
            else pyro.validation_enabled(False)
        loss = 0.0
        if xb.shape[0]:  # a rank may get no rows of a ragged last batch: it contributes nothing
            with checks:
                loss = loss_and_grads(self.elbo, self.vae, xb, self.num_data, kl_kwargs or {}) / self.num_data
        self.steps += 1
        if self.distributed is not None:
            loss = self.distributed.average_gradients(self.params, loss, weight)
        if not math.isfinite(loss):
            return loss
        if self.clip_norm:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip_norm)
        self.optimizer.step()
        return loss


def loss_and_grads(elbo, vae, xb, num_data, kl_kwargs):
    """The ELBO estimate's loss (backpropagated), or NaN where NaN parameters failed validation."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Encountered NaN")  # fit raises its own error
            return elbo.loss_and_grads(vae.model, vae.guide, xb, num_data=num_data, **kl_kwargs)
    except ValueError as e:  # with validation on, NaN parameters fail distribution checks first
        if "invalid values" not in str(e):
            raise
        return float("nan")
