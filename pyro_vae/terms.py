"""Per-data-point ELBO terms read from Pyro traces, for any model/guide pair with a ``"data"`` plate.

Nothing here knows which prior, likelihood or posterior a model uses: it replays the model against
a guide trace and reads each site's log-density, so new families need no new formulas.
"""

import pyro.poutine as poutine
import torch
from torch.distributions import kl_divergence


def get_traces(model, guide, *args, **kwargs):
    """Run ``guide``, replay ``model`` on its latent values; return ``(model_trace, guide_trace)``."""
    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    return model_trace, guide_trace


def sample_sites(trace, observed):
    """Sample sites of ``trace`` that are (``observed=True``) or are not observed, in order."""
    return [s for s in trace.nodes.values()
            if s["type"] == "sample" and s["is_observed"] == observed
            and not s["name"].startswith("_") and not _is_subsample(s)]


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


@torch.no_grad()
def elbo_terms(model, guide, x, use_analytic_kl=True):
    """One-sample ELBO of each data point, split into its two terms.

    ``reconstruction = log p(x | z)`` with ``z ~ q(z | x)``;
    ``kl = KL(q(z|x) || p(z))``: analytic where registered (and ``use_analytic_kl``), otherwise the
    one-sample estimate ``log q(z|x) - log p(z)``; ``elbo = reconstruction - kl``.
    Returns a dict of ``(B,)`` tensors in nats, unscaled (call the programs without ``num_data``).
    """
    model_trace, guide_trace = get_traces(model, guide, x)
    reconstruction = sum(log_prob(s) for s in sample_sites(model_trace, observed=True))
    kl = torch.zeros_like(reconstruction)
    for guide_site in sample_sites(guide_trace, observed=False):
        model_site = model_trace.nodes[guide_site["name"]]
        kl_site = analytic_kl(guide_site, model_site) if use_analytic_kl else None
        kl = kl + (kl_site if kl_site is not None else log_prob(guide_site) - log_prob(model_site))
    return {"elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl}
