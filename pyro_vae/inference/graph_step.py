"""A training objective's loss and parameter gradients as a captured (and compiled) graph.

:class:`GraphLoss` is what :class:`~pyro_vae.inference.step.SVIStep` calls instead of
``elbo.loss_and_grads`` when the objective has an item-free form (:mod:`.surrogates`): for the
run's minibatch shape it captures, once, the function

    (trainable parameters, x[, kl_scale]) -> (loss, d surrogate / d parameter for each parameter)

with :mod:`.compiled`, replays it on every later minibatch of that shape and puts the gradients in
each parameter's ``.grad``, as ``loss_and_grads`` does. The gradients are those eager Pyro computes
(the same operations, captured at the dispatcher level; inductor may round differently in the last
bits), and the random draws are the same numbers from the same stream.

- The first shape a run meets (the full minibatch) gets the graph (compiled with inductor for
  ``mode="compiled"``). Any other shape, such as the ragged last batch of an epoch, steps eagerly
  through Pyro, exactly as before: it comes once an epoch, and capturing it (a few tenths of a
  second) would pay back only after hundreds of epochs, compiling it (seconds) never. Every row of
  every epoch is trained on, with the ragged batch's own N / B scale.
- A KL weight (beta, warm-up) enters as an input, a float64 scalar, so a warm-up compiles once, not
  once per epoch; runs without one capture graphs without it, and the programs then see no ``kl_scale``.
- Pyro's validation runs once per new graph, eagerly, on that graph's first minibatch (as ``fit``'s
  eager steps validate their first step), outside the RNG stream.
- A model or guide that cannot be captured trains eagerly from then on, after one
  :class:`~pyro_vae.inference.compiled.CompiledStepWarning`.
"""

import torch
from pyro.infer.util import is_validation_enabled

from . import compiled
from .surrogates import supports, surrogate_loss


class GraphLoss:
    """``loss_and_grads`` of ``elbo`` on ``vae`` as a graph for the run's minibatch shape (see the module
    docstring).

    :param params: the trainable parameters (the optimiser's), inputs of every graph; other tensors
        the programs read (buffers, frozen parameters) are referenced as constants.
    :param int num_data: N, which the ``"data"`` plate scales by (baked into each graph).
    :param str mode: ``"compiled"``, ``"captured"`` or ``"eager"`` (see :mod:`.compiled`).
    :param bool kl_input: the programs take a KL weight (``kl_scale``) in this run: every graph takes
        it as an input (1 where the epoch has none).
    """

    def __init__(self, vae, elbo, params, num_data, mode="compiled", kl_input=False):
        self.vae, self.elbo, self.params, self.num_data = vae, elbo, list(params), num_data
        self.mode = compiled.check_mode(mode)
        self.kl_input = kl_input
        self.active = self.mode != "eager" and supports(elbo)  # else the caller steps eagerly
        self.graphs = {}  # (shape, dtype, device, training) -> (callable, route, which params get a gradient)
        self.shape = None  # the one minibatch shape that gets a graph (the first one met)
        self.routes = []  # the route of each graph built, in order (for tests and benchmarks)

    def __call__(self, xb, kl_kwargs=None):
        """Backpropagate the loss on minibatch ``xb`` into the parameters' ``.grad`` (parameters
        without a gradient keep None) and return the loss (a float, unscaled by 1 / N); None when
        this step must run eagerly (the programs could not be captured)."""
        kl_kwargs = kl_kwargs or {}
        if self.shape is None:
            self.shape = tuple(xb.shape)
        if tuple(xb.shape) != self.shape:
            return None  # a ragged batch: eager (see the module docstring)
        key = (self.shape, xb.dtype, xb.device, self.vae.training)
        entry = self.graphs.get(key)
        if entry is None:
            invalid = self._validate(xb, kl_kwargs)
            if invalid:
                return float("nan")
            entry = self.graphs[key] = self._build(xb)
            if entry[1] == "eager":
                self.active = False
                return None
        elif entry[1] == "eager":
            return None
        graph, _, has_grad = entry
        with torch.no_grad():
            loss, *grads = graph(*[p.detach() for p in self.params], xb, *self._kl_inputs(kl_kwargs, xb.device))
        for p, g in zip((p for p, used in zip(self.params, has_grad, strict=True) if used), grads, strict=True):
            p.grad = g
        return loss.item()

    def _kl_inputs(self, kl_kwargs, device):
        if not self.kl_input:
            if kl_kwargs:
                raise ValueError("this GraphLoss was made without kl_input: it cannot weigh the KL term")
            return ()
        return (torch.tensor(float(kl_kwargs.get("kl_scale", 1.0)), dtype=torch.float64, device=device),)

    def _validate(self, xb, kl_kwargs):
        """Pyro's checks on the new graph's first minibatch, eagerly, outside the RNG stream; True where
        parameters are NaN (the step's loss is then NaN, as the eager step reports it)."""
        if not is_validation_enabled():
            return False
        devices = [xb.device] if xb.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            try:
                self.elbo.loss(self.vae.model, self.vae.guide, xb, num_data=self.num_data, **kl_kwargs)
            except ValueError as e:  # with validation on, NaN parameters fail distribution checks first
                if "invalid values" not in str(e):
                    raise
                return True
        return False

    def _build(self, xb):
        params = self.params

        def loss_and_grads(*inputs):
            ps, x, kl = inputs[: len(params)], inputs[len(params)], inputs[len(params) + 1:]
            kwargs = {"kl_scale": kl[0]} if kl else {}
            loss, surrogate = surrogate_loss(self.elbo, self.vae.model, self.vae.guide, x, num_data=self.num_data,
                                             **kwargs)
            grads = torch.autograd.grad(surrogate, ps, allow_unused=True)
            has_grad[:] = [g is not None for g in grads]
            # the layout eager's .grad gets (AccumulateGrad's contract: that of the parameter)
            grads = [g.contiguous() if p.is_contiguous() else g for p, g in zip(ps, grads, strict=True)
                     if g is not None]
            return (loss.detach().reshape(()), *grads)

        has_grad = []
        inputs = [*params, xb, *self._kl_inputs({}, xb.device)]
        graph, route = compiled.build(loss_and_grads, inputs, mode=self.mode)
        if route == "eager":
            return None, "eager", None
        self.routes.append(route)
        return graph, route, list(has_grad)
