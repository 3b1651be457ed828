"""Reading per-site log-densities from Pyro traces, in one place, for any model/guide pair whose
sites lie in a ``"data"`` plate at dim -1.

Nothing here knows which prior, likelihood or posterior a model uses: it replays the model against
a guide trace and reads each site's log-density, so new families need no new formulas. Built on it:
the per-data-point ELBO terms (:func:`elbo_terms`), the log importance weight of each draw
(:func:`log_weight`, under an outer particle plate, :func:`particle_traces`), and which KL terms
have a closed form (:func:`analytic_kl`, :func:`same_order`).
"""

import pyro
import pyro.poutine as poutine
import torch
from torch.distributions import kl_divergence

from ..errors import UserError


def get_traces(model, guide, *args, **kwargs):
    """Run ``guide``, replay ``model`` on its latent values; return ``(model_trace, guide_trace)``."""
    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    return model_trace, guide_trace


def sample_sites(trace, observed):
    """Sample sites of ``trace`` that are (``observed=True``) or are not observed, in order.

    ``pyro.factor`` sites (auxiliary) are left out: see :func:`factor_sites`.
    """
    return [s for s in trace.nodes.values()
            if s["type"] == "sample" and s["is_observed"] == observed and not _is_factor(s)
            and not s["name"].startswith("_") and not _is_subsample(s)]


def factor_sites(trace):
    """``pyro.factor`` sites of ``trace``: penalties written as log-densities."""
    return [s for s in trace.nodes.values() if s["type"] == "sample" and _is_factor(s)]


def _is_factor(site):
    return bool(site["infer"].get("is_auxiliary")) and type(site["fn"]).__name__ == "Unit"


def _is_subsample(site):
    return type(site["fn"]).__name__ == "_Subsample"


def per_point(site, log_prob):
    """Check that ``site`` lies in the ``"data"`` plate at dim -1 and return ``log_prob``, ``(..., B)``."""
    frames = [f for f in site["cond_indep_stack"] if f.name == "data"]
    if not frames or frames[0].dim != -1:
        raise NotImplementedError(f"site {site['name']!r} is not inside the 'data' plate at dim -1; "
                                  "per-data-point terms need every site there")
    return log_prob


def log_prob(site):
    """Unscaled log-density of a site's value, summed over its event dims: ``(..., B)``."""
    return per_point(site, site["fn"].log_prob(site["value"]))


def analytic_kl(guide_site, model_site):
    """KL(q || p) for one latent site from the ``kl_divergence`` registry, or None if unregistered."""
    try:
        kl = kl_divergence(guide_site["fn"], model_site["fn"])
    except NotImplementedError:
        return None
    return per_point(guide_site, kl)


def has_analytic_kl(q, p):
    """Whether ``kl_divergence(q, p)`` is registered: the exact test ``TraceMeanField_ELBO`` makes."""
    try:
        kl_divergence(q, p)
    except NotImplementedError:
        return False
    return True


def latent_names(trace):
    """Names of the unobserved sample sites of ``trace``, in the order they were sampled."""
    return [s["name"] for s in sample_sites(trace, observed=False)]


def check_traces(model_trace, guide_trace, batch):
    """Refuse, with one :class:`UserError` naming the sites, a model/guide pair whose traces cannot
    give per-data-point log-densities of the ``batch`` rows of x.

    As Pyro's ``check_model_guide_match``, but an error rather than a warning, because a mismatch
    gives a silently wrong number: every latent site of the model must be sampled by the guide
    (else the model draws it from its prior and its log-density counts as if it were guided), and
    every guide site must be a model site or be marked ``infer={"is_auxiliary": True}``. And the
    ``"data"`` plate must cover all ``batch`` rows: a plate that subsamples scores other rows than x's.

    Example::

        >>> import pyro.distributions as dist
        >>> def model(x):
        ...     with pyro.plate("data", len(x)):
        ...         pyro.sample("latent", dist.Normal(0.0, 1.0))
        >>> def guide(x):
        ...     with pyro.plate("data", len(x)):
        ...         pyro.sample("z", dist.Normal(0.0, 1.0))
        >>> check_traces(*get_traces(model, guide, torch.zeros(3)), batch=3)
        Traceback (most recent call last):
        ...
        pyro_vae.errors.UserError: model and guide sample different latent sites: the model samples 'latent' that ...
    """
    model_names, guide_names = set(latent_names(model_trace)), set(latent_names(guide_trace))
    unguided = [name for name in latent_names(model_trace) if name not in guide_names]
    extra = [s["name"] for s in sample_sites(guide_trace, observed=False)
             if s["name"] not in model_names and not s["infer"].get("is_auxiliary")]
    if unguided or extra:
        parts = ([f"the model samples {_names(unguided)} that the guide does not"] if unguided else []) + \
                ([f"the guide samples {_names(extra)} that the model does not"] if extra else [])
        raise UserError(f"model and guide sample different latent sites: {'; '.join(parts)}; give both programs "
                        "the same site names" + ("" if unguided else " (or mark a guide-only site "
                                                 "infer={'is_auxiliary': True})"))
    for trace in (model_trace, guide_trace):
        for site in sample_sites(trace, True) + sample_sites(trace, False) + factor_sites(trace):
            for frame in site["cond_indep_stack"]:
                if frame.name != "data":
                    continue
                if frame.full_size is not None and frame.size != frame.full_size:
                    raise UserError(f"the 'data' plate subsamples {frame.size} of its {frame.full_size} rows at site "
                                    f"{site['name']!r}, but bounds score every row of x, unscaled: subsample only in "
                                    "training (as pyro_vae's models do, only when given num_data) and call the "
                                    "programs here with a plate over all rows")
                if frame.size != batch:
                    raise UserError(f"the 'data' plate has {frame.size} rows at site {site['name']!r} but x has "
                                    f"{batch}; the plate must run over the rows of x")


def _names(names):
    return ", ".join(repr(n) for n in names)


def same_order(model_trace, guide_trace):
    """True when the guide samples its latent sites in the model's order.

    Pyro's condition for ``TraceMeanField_ELBO``: only then is each site's analytic
    KL(q(z_i | ...) || p(z_i | parents)), taken at the sampled parents, unbiased. A bottom-up guide
    of a hierarchical model (z2 ~ q(z2|x), then z1 ~ q(z1|z2), under z1 -> z2 -> x) is not.
    """
    names = latent_names(guide_trace)
    return names == [name for name in latent_names(model_trace) if name in names]


@torch.no_grad()
def elbo_terms(model, guide, x, use_analytic_kl=True):
    """One-sample ELBO of each data point, split into its two terms.

    ``reconstruction = log p(x | z)`` with ``z ~ q(z | x)``;
    ``kl = KL(q(z|x) || p(z))``: analytic where registered (and ``use_analytic_kl``, and the guide
    samples in the model's order, see :func:`same_order`), otherwise the one-sample estimate
    ``log q(z|x) - log p(z)``;
    ``penalty``: the ``pyro.factor`` terms (model factors minus guide factors; 0 for a plain VAE);
    ``elbo = reconstruction - kl + penalty``.
    Returns a dict of ``(B,)`` tensors in nats, unscaled (call the programs without ``num_data``).
    """
    model_trace, guide_trace = get_traces(model, guide, x)
    check_traces(model_trace, guide_trace, x.shape[0])
    return trace_terms(model_trace, guide_trace, use_analytic_kl=use_analytic_kl)


def trace_terms(model_trace, guide_trace, use_analytic_kl=True, site_log_prob=log_prob):
    """The terms of :func:`elbo_terms` read from given traces, ``(..., B)`` each (leading particle
    dims kept; analytic KL terms broadcast against them). ``site_log_prob`` computes a site's
    log-density (callers may pass a caching version)."""
    reconstruction = sum(site_log_prob(s) for s in sample_sites(model_trace, observed=True))
    kl = torch.zeros_like(reconstruction)
    use_analytic_kl = use_analytic_kl and same_order(model_trace, guide_trace)
    for guide_site in sample_sites(guide_trace, observed=False):
        model_site = model_trace.nodes[guide_site["name"]]
        kl_site = analytic_kl(guide_site, model_site) if use_analytic_kl else None
        kl = kl + (kl_site if kl_site is not None else site_log_prob(guide_site) - site_log_prob(model_site))
    penalty = torch.zeros_like(reconstruction)
    for sign, trace in ((1.0, model_trace), (-1.0, guide_trace)):
        for site in factor_sites(trace):
            penalty = penalty + sign * site_log_prob(site)
    return {"elbo": reconstruction - kl + penalty, "reconstruction": reconstruction, "kl": kl,
            "penalty": penalty}


# --- importance weights: the model replayed on the guide's draws under a particle plate ----------

def particle_plate(num_samples, max_plate_nesting=1):
    """The outer plate ``"num_particles"`` over draws, left of the model's own plates."""
    return pyro.plate("num_particles", num_samples, dim=-(max_plate_nesting + 1))


def particle_traces(model, guide, x, num_samples, max_plate_nesting=1):
    """Run ``guide`` under a particle plate of ``num_samples`` and replay ``model`` on its draws.

    Every site's batch shape gains the leading particle dimension: latent values are
    ``(num_samples, B, ...)`` and each site's ``log_prob`` is ``(num_samples, B)``.
    """
    plate = particle_plate(num_samples, max_plate_nesting)
    return get_traces(plate(model), plate(guide), x)


def site_log_prob(site):
    """:func:`log_prob` of a trace node, computed once and kept in the node.

    The decoder's log-likelihood is the costliest tensor of an evaluation; callers that need it
    again (e.g. for the reconstruction term) get the same tensor instead of recomputing it.
    """
    if "pyro_vae_log_prob" not in site:
        site["pyro_vae_log_prob"] = log_prob(site)
    return site["pyro_vae_log_prob"]


def log_density(trace):
    """Sum of every site's unscaled log-density (latent, observed and ``pyro.factor``), ``(..., B)``."""
    sites = sample_sites(trace, observed=True) + sample_sites(trace, observed=False) + factor_sites(trace)
    return sum(site_log_prob(site) for site in sites)


def log_weight(model_trace, guide_trace):
    """``log p(x, z) - log q(z | x)`` per particle and data point, ``(K, B)``.

    As in Pyro's ``Trace_ELBO``, every sample site counts: the model's (latent, observed, factors)
    add, the guide's subtract. A point-mass guide (``Delta``) has ``log q = 0``.
    """
    return log_density(model_trace) - log_density(guide_trace)
