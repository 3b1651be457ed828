"""The objectives' spec names (``trace``, ``iwae:K``, ...): one :class:`~pyro_vae.specs.Registry` that each
objective class registers itself in where it is defined, and the builders the registrations share.

Pyro's own ``Trace_ELBO`` and ``TraceMeanField_ELBO`` are registered here, where the project adopts them.
"""

from dataclasses import dataclass

from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from ..errors import UserError
from ..specs import Registry

REGISTRY = Registry("objective", separator=", ")


@dataclass(frozen=True)
class ElboContext:
    num_particles: int  # vectorised particles (iwae:K sets its own)
    max_plate_nesting: int  # plates in the model (the "data" plate: 1)


def pyro_elbo(cls, _, ctx, **extra):
    """``cls`` as a Pyro ELBO with the context's particles, vectorised when there are several."""
    return cls(num_particles=ctx.num_particles, vectorize_particles=ctx.num_particles > 1,
               max_plate_nesting=ctx.max_plate_nesting, **extra)


def own_particles(cls, k, ctx):
    """``cls(num_particles=K)`` for an objective that draws its own K particles (``iwae:K``)."""
    if ctx.num_particles != 1:
        name = REGISTRY.spec_of_class(cls)
        raise UserError(f"{name}:{k} draws its own {k} particles; drop num_particles={ctx.num_particles}",
                        param="num_particles")
    return cls(num_particles=k, max_plate_nesting=ctx.max_plate_nesting)


REGISTRY.register("trace", "Trace_ELBO (KL sampled)", build=pyro_elbo)(Trace_ELBO)
REGISTRY.register("meanfield", "TraceMeanField_ELBO (analytic KL where registered)", build=pyro_elbo)(
    TraceMeanField_ELBO)
