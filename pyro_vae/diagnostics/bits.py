"""Bits per dimension: a log-likelihood in nats per image, as the image-modelling papers report it.

``bits_per_dim = (-log p(x) + D c) / (D ln 2)`` for an image of D values, where c is the
dequantisation correction in nats per value:

- c = 0 when the likelihood is a probability mass over the data's levels (it declares
  ``Likelihood.discrete_levels``, e.g. the discretised logistic over 256 levels): -log p(x) is
  already a discrete log-likelihood, and the bound L_S <= log p(x) makes the reported bits/dim an
  upper bound on the model's true bits/dim.
- c = log 255 when the likelihood is a density (Normal, Laplace, continuous Bernoulli) and the data
  are 8-bit levels k / 255 (the loader divides uint8 pixels by 255). A density p on that scale gives
  the bin of level k, of width 1/255, a mass of about p(x) / 255, so -log P(k) ~ -log p(x) + log 255.
  Papers that scale pixels as (k + u) / 256 in [0, 1] add log 256 instead (bins of width 1/256, e.g.
  Dinh et al. 2017; Papamakarios et al. 2017); the two differ by log2(256/255) = 0.0056 bits/dim. It
  is an approximation, not a bound: a density trained on undequantised levels may put its mass in
  spikes at the levels themselves, which the bin mass p / 255 then overstates (train with the
  discretised logistic for a true discrete likelihood).
- no bits/dim (None, with the reason) for a density on data that are not 8-bit levels (e.g.
  scikit-learn's 17 grey levels divided by 16): the bin width is unknown.
"""

import math

from ..data import is_8bit

EIGHT_BIT = 256


def dequantization(likelihood, x):
    """``(c, basis)``: the correction c in nats per value (None: no bits/dim) and a sentence saying why.

    :param likelihood: a :class:`~pyro_vae.families.likelihoods.Likelihood`.
    :param x: ``(N, D)`` data.

    Example::

        >>> import torch, pyro_vae as pv
        >>> levels = torch.tensor([[0.0, 1 / 255, 1.0]])
        >>> dequantization(pv.DiscretizedLogistic(), levels)[0], round(dequantization(pv.Normal(0.1), levels)[0], 4)
        (0.0, 5.5413)
    """
    levels = likelihood.discrete_levels
    if levels is not None:
        return 0.0, (f"exact: the likelihood is a probability mass over {levels} levels, so -log p(x) is a "
                     "discrete log-likelihood (from a lower bound on log p(x): an upper bound on bits/dim)")
    if is_8bit(x):
        return math.log(EIGHT_BIT - 1), ("approximate: a density on 8-bit levels k/255, + log 255 nats per "
                                         "value for the bins of width 1/255 (not a bound)")
    return None, "none: a density on data that are not 8-bit levels k/255 has no bin width to correct by"


def bits_per_dim(nats, data_dim, correction=0.0):
    """``(-nats + D c) / (D ln 2)`` for a log-likelihood of ``nats`` per image of D values.

    Example::

        >>> round(bits_per_dim(-784 * math.log(2), 784), 6)  # 1 bit per pixel
        1.0
    """
    return (-nats + data_dim * correction) / (data_dim * math.log(2))


def bits_report(report, likelihood, x):
    """The bits-per-dimension keys of ``eval.json`` from the ``report`` of :func:`~pyro_vae.diagnostics.
    tightness.summarise` (the exact log p(x) where the report has one, else L_S) on data ``x`` ``(N, D)``:
    ``bits_per_dim`` (None when the data allow none), ``bits_per_dim_elbo``, ``bits_per_dim_stderr``,
    ``bits_per_dim_basis`` and ``dequantization_nats_per_dim``."""
    data_dim = x.shape[-1]
    correction, basis = dequantization(likelihood, x)
    out = {"bits_per_dim": None, "bits_per_dim_elbo": None, "bits_per_dim_stderr": None,
           "bits_per_dim_basis": basis, "dequantization_nats_per_dim": correction}
    if correction is None:
        return out
    source = report.get("exact") or report  # a discrete latent's exact log p(x) and ELBO, else L_S and the ELBO
    log_likelihood, elbo, stderr = source["log_likelihood"], source["elbo"], source["stderr"]["log_likelihood"]
    out.update(bits_per_dim=bits_per_dim(log_likelihood, data_dim, correction),
               bits_per_dim_elbo=bits_per_dim(elbo, data_dim, correction),
               bits_per_dim_stderr=None if stderr is None else stderr / (data_dim * math.log(2)))
    return out


def format_bits(report):
    """Lines for ``evaluate``'s table: bits/dim of the log-likelihood bound and of the ELBO, and the basis."""
    if report.get("bits_per_dim") is None:
        return f"bits/dim: {report['bits_per_dim_basis']}"
    se = report["bits_per_dim_stderr"]
    return "\n".join([f"{'bits/dim (log-likelihood)':32s}{report['bits_per_dim']:12.4f}"
                      f"{se if se is not None else float('nan'):9.4f}",
                      f"{'bits/dim (ELBO)':32s}{report['bits_per_dim_elbo']:12.4f}",
                      f"bits/dim basis: {report['bits_per_dim_basis']}"])
