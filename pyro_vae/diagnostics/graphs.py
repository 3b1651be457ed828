"""Evaluation computations of a model's programs as captured and compiled graphs, cached per model.

:func:`model_graph` turns a function of tensors that runs a model's Pyro programs (an IWAE chunk's log
weights, say) into a graph with :mod:`pyro_vae.inference.compiled`, once per input signature, and
keeps it for later calls with the model (held weakly: the cache goes with the model). The model's
parameters are inputs of every graph, so training it further, loading a checkpoint into it or moving
it does not leave a graph stale; its buffers are read where they are.

A graph only helps a computation that runs many times: :func:`~pyro_vae.diagnostics.bounds.iwae`
uses one when a call has at least :data:`MIN_GRAPH_CHUNKS` equal chunks of draws, where inductor's
fused log-likelihood (one pass over the decoder's output instead of several) makes each chunk faster
than eager code, and its compilation (seconds, once per shape and process; inductor's disk cache
serves later processes) pays back within the call.

Programs are recorded with gradients enabled: a family may take a faster route when no gradient is
needed after reading the data's values (the Bernoulli likelihood's softplus form for binary x), which a
graph cannot hold; with gradients enabled it takes its general route, which inductor fuses as well.
"""

import weakref

import torch
import torch.nn as nn

from ..inference import compiled

MIN_GRAPH_CHUNKS = 8  # equal chunks of draws from which a compiled graph pays back its compilation

_GRAPHS = weakref.WeakKeyDictionary()  # model -> {key: (graph, route)}


def owner(model, guide):
    """The ``nn.Module`` whose methods ``model`` and ``guide`` both are (a pyro_vae model's programs),
    or None (plain functions, or methods of different objects: no parameters to give a graph)."""
    module = getattr(model, "__self__", None)
    return module if isinstance(module, nn.Module) and getattr(guide, "__self__", None) is module else None


def model_graph(module, key, fn, tensors, mode="compiled", what="an evaluation"):
    """``fn(*tensors)`` (a tuple of tensors) as a graph of ``module``'s computation, built for tensors
    shaped like ``tensors`` and cached under ``key`` (which must name everything else ``fn`` depends
    on); returns ``(callable, route)``, the callable taking such tensors under ``torch.no_grad()``.
    ``route`` ``"eager"`` returns ``fn`` itself (see :func:`pyro_vae.inference.compiled.build`)."""
    params = list(module.parameters())
    graphs = _GRAPHS.setdefault(module, {})
    signature = (key, mode, module.training, tuple((t.shape, t.dtype, t.device) for t in tensors),
                 tuple((p.shape, p.dtype, p.device) for p in params))
    if signature not in graphs:
        def with_params(*inputs):
            return fn(*inputs[len(params):])

        with torch.enable_grad():
            graph, route = compiled.build(with_params, [*params, *tensors], mode=mode, what=what)
        graphs[signature] = (None if route == "eager" else graph), route  # fn itself would hold the module
    graph, route = graphs[signature]
    if route == "eager":
        return fn, route
    return (lambda *args: graph(*[p.detach() for p in module.parameters()], *args)), route
