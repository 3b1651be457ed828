"""Training objectives by name: each builds a Pyro ELBO with vectorised particles.

``trace``          Trace_ELBO: KL(q || p) estimated by sampling, log q(z|x) - log p(z).
``meanfield``      TraceMeanField_ELBO: analytic KL where torch's ``kl_divergence`` registry has the
                   (q, p) pair; Pyro falls back to sampling silently otherwise.
``jit-trace``      JitTrace_ELBO.
``jit-meanfield``  JitTraceMeanField_ELBO with Pyro 1.9.2's recompilation bug worked around.

JIT objectives compile once per distinct keyword arguments (here ``num_data``) and assume the same
tensor shapes on every call: train them with a fixed batch size (``fit`` drops the ragged last batch).
"""

import warnings

from pyro.infer import JitTrace_ELBO, JitTraceMeanField_ELBO, Trace_ELBO, TraceMeanField_ELBO

from .errors import UserError, check_positive

# Pyro's JIT objectives are built on torch.jit.trace, which torch 2.9+ flags as deprecated on every call.
warnings.filterwarnings("ignore", message="`torch.jit.trace` is deprecated", category=FutureWarning)


class CachedJitTraceMeanField_ELBO(JitTraceMeanField_ELBO):
    """JitTraceMeanField_ELBO that compiles once.

    Pyro 1.9.2's ``differentiable_loss`` tests ``self._loss_and_surrogate_loss`` for a cached
    compiled closure but stores it as ``self._differentiable_loss``, so every call builds and traces
    a new closure (about 3x slower than Trace_ELBO). Here the cached closure is reused.
    """

    def differentiable_loss(self, model, guide, *args, **kwargs):
        compiled = getattr(self, "_differentiable_loss", None)
        if compiled is None:  # first call: Pyro builds, traces and caches the closure
            return super().differentiable_loss(model, guide, *args, **kwargs)
        kwargs["_pyro_model_id"] = id(model)
        kwargs["_pyro_guide_id"] = id(guide)
        return compiled(*args, **kwargs)


OBJECTIVES = {
    "trace": Trace_ELBO,
    "meanfield": TraceMeanField_ELBO,
    "jit-trace": JitTrace_ELBO,
    "jit-meanfield": CachedJitTraceMeanField_ELBO,
}


def is_jit(elbo):
    return isinstance(elbo, (JitTrace_ELBO, JitTraceMeanField_ELBO))


def make_elbo(name="trace", num_particles=1, max_plate_nesting=1):
    """Build the ELBO called ``name`` with ``num_particles`` vectorised particles."""
    if name not in OBJECTIVES:
        raise UserError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    if not isinstance(num_particles, int) or num_particles < 1:
        raise UserError(f"--num-particles must be a positive integer, got {num_particles!r}")
    check_positive("max_plate_nesting", max_plate_nesting)
    kwargs = dict(num_particles=num_particles, vectorize_particles=num_particles > 1,
                  max_plate_nesting=max_plate_nesting)
    if name.startswith("jit-"):
        kwargs["ignore_jit_warnings"] = True
    return OBJECTIVES[name](**kwargs)
