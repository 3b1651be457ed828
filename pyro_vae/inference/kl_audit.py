"""Which KL estimator each latent site gets: analytic or sampled, and a warning when it is silent.

For a model/guide pair, per latent site ``z``, the ELBO's KL term can be

- *analytic*: ``KL(q(z|x) || p(z))`` from torch's ``kl_divergence`` registry, which
  :class:`~pyro.infer.TraceMeanField_ELBO` uses when the (q, p) pair is registered, or
- *sampled*: ``log q(z|x) - log p(z)`` at ``z ~ q(z|x)``, which :class:`~pyro.infer.Trace_ELBO`
  always uses and ``TraceMeanField_ELBO`` falls back to, silently, for an unregistered pair.

:func:`kl_audit` says which of the two each latent site gets (reading Pyro traces, so no formula
per model); :func:`warn_sampled_kl` turns a silent fallback into one :class:`SampledKLWarning`
(``fit`` calls it for mean-field objectives). Whether the analytic value is right and what it buys
is measured in :mod:`pyro_vae.diagnostics.kl_study`.
"""

import warnings

import torch
from pyro.distributions.torch_distribution import ExpandedDistribution, MaskedDistribution
from pyro.infer import TraceMeanField_ELBO
from torch.distributions import Independent, MixtureSameFamily, TransformedDistribution

from .traces import get_traces, has_analytic_kl, latent_names, sample_sites


class SampledKLWarning(UserWarning):
    """A mean-field ELBO will estimate a latent site's KL by sampling: no analytic KL is registered."""


def describe(fn):
    """Short name of a distribution's type, wrappers included: ``Independent(Normal, 1)``."""
    name = type(fn).__name__
    if isinstance(fn, MixtureSameFamily):
        return f"{name}({describe(fn.mixture_distribution)}, {describe(fn.component_distribution)})"
    if isinstance(fn, Independent):
        return f"{name}({describe(fn.base_dist)}, {fn.reinterpreted_batch_ndims})"
    if isinstance(fn, (MaskedDistribution, ExpandedDistribution, TransformedDistribution)):
        return f"{name}({describe(fn.base_dist)})"
    return name


@torch.no_grad()
def kl_audit(model, guide, *args, **kwargs):
    """Per latent site, the KL estimator :class:`~pyro.infer.TraceMeanField_ELBO` will use.

    Runs the guide once and replays the model on it (one draw; wrap the call in
    ``torch.random.fork_rng()`` to leave the random stream untouched).

    :returns: ``{site: {"guide": type, "prior": type, "kl": "analytic" | "sampled"}}`` in guide order.
    """
    model_trace, guide_trace = get_traces(model, guide, *args, **kwargs)
    audit = {}
    for guide_site in sample_sites(guide_trace, observed=False):
        model_site = model_trace.nodes.get(guide_site["name"])
        if model_site is None:  # an auxiliary guide site: it has no prior to compare with
            continue
        q, p = guide_site["fn"], model_site["fn"]
        audit[guide_site["name"]] = {"guide": describe(q), "prior": describe(p),
                                     "kl": "analytic" if has_analytic_kl(q, p) else "sampled"}
    return audit


@torch.no_grad()
def latent_order(model, guide, *args, **kwargs):
    """The latent sites in the order the model and the guide sample them.

    ``TraceMeanField_ELBO`` takes each site's KL at the sampled values of the others, which is
    unbiased when the guide samples in the model's order (Pyro's mean-field condition); a bottom-up
    guide of a hierarchical model is not, and :func:`kl_check` then shows large z-scores.

    :returns: ``{"model": [names], "guide": [names], "same": bool}``.
    """
    model_trace, guide_trace = get_traces(model, guide, *args, **kwargs)
    guide_names = latent_names(guide_trace)
    model_names = [name for name in latent_names(model_trace) if name in guide_names]
    return {"model": model_names, "guide": guide_names, "same": model_names == guide_names}


def uses_analytic_kl(elbo):
    """Whether ``elbo`` takes analytic KLs where registered (``TraceMeanField_ELBO`` and its JIT form)."""
    return isinstance(elbo, TraceMeanField_ELBO)


def warn_sampled_kl(model, guide, *args, **kwargs):
    """Audit without disturbing the random stream; one :class:`SampledKLWarning` naming every site
    whose KL a mean-field ELBO would sample. Returns the sampled sites' audit entries."""
    with torch.random.fork_rng():
        audit = kl_audit(model, guide, *args, **kwargs)
    sampled = {name: a for name, a in audit.items() if a["kl"] == "sampled"}
    if sampled:
        sites = "; ".join(f"site {name!r}: guide {a['guide']}, prior {a['prior']}" for name, a in sampled.items())
        with warnings.catch_warnings():
            # Python's default shows a warning once per code location and process; this one is due
            # once per fit. Appended, so a filter of the user's still wins.
            warnings.filterwarnings("always", category=SampledKLWarning, append=True)
            warnings.warn(f"TraceMeanField_ELBO has no analytic KL for {sites}; it silently estimates "
                          "KL(q || p) by sampling log q(z|x) - log p(z), exactly as Trace_ELBO does. Register "
                          "one with torch.distributions.kl.register_kl, or train with the trace objective to "
                          "say so", SampledKLWarning, stacklevel=3)
    return sampled
