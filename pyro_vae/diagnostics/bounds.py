"""Importance-weighted bounds on log p(x), read from Pyro traces, and diagnostics of their tightness.

For a guide q(z|x) and a model p(x, z), the log importance weight of a draw z_k ~ q(z|x) is

    log w_k = log p(x, z_k) - log q(z_k | x)        (per data point: one column per row of x)

Its mean is the ELBO, E_q[log w] = log p(x) - KL(q(z|x) || p(z|x)), and the importance-weighted
bound of Burda et al. (2016) is

    L_K = E[log (1/K) sum_k w_k]  <=  log p(x),    with L_1 = ELBO <= L_K <= L_{K+1} -> log p(x).

Everything here reads log-densities from traces (model replayed on the guide's draws, under an
outer particle plate like Pyro's vectorised particles), so it works for any model/guide pair whose
sites lie in a ``"data"`` plate at dim -1, with any number of latent sites and any families.
Programs are called without ``num_data``: nothing is scaled by minibatch subsampling.

Whether L_K can be believed is a question about the weights' tail: the Pareto k-hat of
Vehtari et al. (2024) estimates it (k < 0.5: finite variance; k > 0.7: the estimate is
unreliable and L_K may still be far below log p(x)); the effective sample size
(sum w)^2 / sum w^2 says how many draws carry the estimate.

References: Burda, Grosse & Salakhutdinov (2016), Importance Weighted Autoencoders;
Vehtari, Simpson, Gelman, Yao & Gabry (2024), Pareto smoothed importance sampling, JMLR 25(72).
"""

import contextlib
import math
import warnings

import numpy as np
import pyro
import pyro.poutine as poutine
import torch

from ..errors import check_int
from ..inference.traces import check_traces, log_density, log_weight, particle_plate, particle_traces

# Rows (samples x data points) pushed through the networks at once when no chunk size is given:
# large enough that per-call overhead is negligible, small enough to stay in cache (about 8k rows
# of a 784-unit decoder is fastest on 2 CPU cores; 16k+ is slower).
DEFAULT_CHUNK_ROWS = 8192

KHAT_THRESHOLD = 0.7  # Vehtari et al. (2024): above this the importance-sampling estimate is unreliable


def log_weights(model, guide, x, num_samples, max_plate_nesting=1):
    """Log importance weights ``log p(x, z_k) - log q(z_k | x)``, ``(num_samples, B)``, z_k ~ q(z | x).

    One vectorised pass over all draws (see :func:`iter_log_weights` to bound memory). Unscaled:
    each column is one data point. Gradients flow (reparameterised families), so this can also
    train an importance-weighted objective.

    :param model: Pyro program ``model(x)`` with its sites in a ``"data"`` plate at dim -1.
    :param guide: Pyro program ``guide(x)`` with the same latent site names.
    :param x: ``(B, ...)`` data.
    :param int num_samples: K draws per data point.
    :param int max_plate_nesting: plates the programs nest (the particle plate goes left of them).

    Example::

        >>> import pyro_vae as pv
        >>> lik, post = pv.Bernoulli(), pv.DiagonalNormal()
        >>> vae = pv.VAE(pv.MLP(64, [32], post.num_params(2)), pv.MLP(2, [32], lik.num_params(64)),
        ...              prior=pv.StandardNormal(2), likelihood=lik, posterior=post)
        >>> x = torch.bernoulli(torch.full((5, 64), 0.3))
        >>> lw = log_weights(vae.model, vae.guide, x, num_samples=100)
        >>> lw.shape  # (K, B); its mean over K estimates each point's ELBO
        torch.Size([100, 5])
    """
    num_samples = check_int("num_samples", num_samples)
    model_trace, guide_trace = particle_traces(model, guide, x, num_samples, max_plate_nesting)
    check_traces(model_trace, guide_trace, x.shape[0])
    return log_weight(model_trace, guide_trace).expand(num_samples, x.shape[0])  # (K, B)


def chunk_sizes(num_samples, chunk_size):
    """Split ``num_samples`` draws into chunks of at most ``chunk_size``: e.g. (10, 4) -> 4, 4, 2."""
    num_samples = check_int("num_samples", num_samples)
    chunk_size = check_int("chunk_size", chunk_size)
    full, rest = divmod(num_samples, chunk_size)
    return [chunk_size] * full + ([rest] if rest else [])


def default_chunk_size(batch, rows=DEFAULT_CHUNK_ROWS):
    """Draws per chunk so that one chunk holds about ``rows`` (draw, data point) pairs."""
    return max(1, rows // max(1, batch))


def iter_log_weights(model, guide, x, num_samples, chunk_size=None, max_plate_nesting=1):
    """Yield ``(log_w, model_trace, guide_trace)`` for chunks of draws; ``log_w`` is ``(k, B)``.

    Concatenating the ``log_w`` over chunks gives ``num_samples`` independent draws, as
    :func:`log_weights` would; at most two chunks' tensors (the one yielded and the next) are
    alive at a time, whatever ``num_samples`` is.

    Pyro's validation (when enabled) checks the first chunk: data support and parameters. Later
    chunks see the same data and networks, so they skip it (it re-checks every decoder output for
    NaN, about 8% of the time of a 784-pixel Bernoulli model) and only their weights are checked.
    """
    num_samples = check_int("num_samples", num_samples)
    chunk_size = default_chunk_size(x.shape[0]) if chunk_size is None else check_int("chunk_size", chunk_size)
    for i, k in enumerate(chunk_sizes(num_samples, min(chunk_size, num_samples))):
        with contextlib.nullcontext() if i == 0 else pyro.validation_enabled(False):
            model_trace, guide_trace = particle_traces(model, guide, x, k, max_plate_nesting)
            if i == 0:  # once per call: the same programs give the same sites in every chunk
                check_traces(model_trace, guide_trace, x.shape[0])
            lw = log_weight(model_trace, guide_trace).expand(k, x.shape[0])  # (k, B)
        if torch.isnan(lw).any():
            raise ValueError("log importance weights are NaN: the model or guide produced NaN parameters")
        yield lw, model_trace, guide_trace
        del lw, model_trace, guide_trace  # a chunk's (k, B, D) decoder tensors go before the next's arrive


class StreamingLogMeanExp:
    """``log mean exp`` over dim 0 of chunks seen one at a time, accumulated in float64.

    Keeps a running maximum ``m`` and ``s = sum exp(x - m)``; a new chunk rescales ``s`` by
    ``exp(m_old - m_new)``. Exact up to rounding, with memory independent of the number of chunks.
    """

    def __init__(self):
        self.max = self.sum = None
        self.count = 0

    def update(self, chunk):
        chunk = chunk.detach().double()  # (k, B)
        chunk_max = chunk.max(0).values
        if self.max is None:
            new_max = chunk_max
            self.sum = torch.zeros_like(chunk_max)
        else:
            new_max = torch.maximum(self.max, chunk_max)
            self.sum = self.sum * _exp_diff(self.max, new_max)
        self.sum = self.sum + _exp_diff(chunk, new_max).sum(0)
        self.max = new_max
        self.count += chunk.shape[0]
        return self

    def value(self):
        """``(B,)`` float64: ``log((1/n) sum_i exp(x_i))`` over every row seen."""
        if self.max is None:
            raise ValueError("no chunk was given")
        return self.max + self.sum.log() - math.log(self.count)


def _exp_diff(a, m):
    """``exp(a - m)`` with ``exp(-inf - (-inf)) = 0`` (all weights zero) instead of NaN."""
    return torch.where(torch.isneginf(m), torch.zeros_like(a), (a - m).exp())


@torch.no_grad()
def iwae(model, guide, x, num_samples, chunk_size=None, max_plate_nesting=1):
    """Importance-weighted estimate of log p(x) per data point, ``(B,)`` float64.

    ``log (1/K) sum_k w_k`` with K = ``num_samples`` draws from the guide: a stochastic lower bound
    whose expectation is L_K (Burda et al. 2016). Draws are processed ``chunk_size`` at a time
    (default: about :data:`DEFAULT_CHUNK_ROWS` rows per chunk) and combined with a streaming
    logsumexp, so peak memory does not grow with ``num_samples``.

    Example::

        >>> import pyro_vae as pv
        >>> lik, post = pv.Bernoulli(), pv.DiagonalNormal()
        >>> vae = pv.VAE(pv.MLP(64, [32], post.num_params(2)), pv.MLP(2, [32], lik.num_params(64)),
        ...              prior=pv.StandardNormal(2), likelihood=lik, posterior=post)
        >>> x = torch.bernoulli(torch.full((5, 64), 0.3))
        >>> l_1000 = iwae(vae.model, vae.guide, x, num_samples=1000, chunk_size=250)  # 4 chunks
        >>> l_1000.shape, l_1000.dtype, bool((l_1000 >= log_weights(vae.model, vae.guide, x, 1000).mean(0) - 1).all())
        (torch.Size([5]), torch.float64, True)
    """
    acc = StreamingLogMeanExp()
    for lw, _, _ in iter_log_weights(model, guide, x, num_samples, chunk_size, max_plate_nesting):
        acc.update(lw)
        del lw, _
    return acc.value()


@torch.no_grad()
def mixture_iwae(model, guides, x, num_samples, chunk_size=None, max_plate_nesting=1):
    """Estimate log p(x) with ``num_samples`` draws from each of ``guides`` and the equal mixture
    m = (1/G) sum_g q_g as proposal (multiple importance sampling, balance heuristic), ``(B,)``.

    Each draw z is weighted by p(x, z) / m(z), with every q_g(z) read by replaying guide g on z, so
    ``w <= G p(x, z) / q_g(z)`` for every g: the weights are as light-tailed as those of the widest
    guide. A noisy maximum of separate IWAE estimates would instead pick up the upward flukes of the
    most heavy-tailed one (Veach & Guibas 1995; Owen & Zhou 2000, defensive importance sampling).
    """
    acc = StreamingLogMeanExp()
    for guide in guides:
        for lw, model_trace, guide_trace in iter_log_weights(model, guide, x, num_samples, chunk_size,
                                                            max_plate_nesting):
            k = lw.shape[0]
            log_q = []
            for other in guides:
                trace = guide_trace if other is guide else poutine.trace(poutine.replay(
                    particle_plate(k, max_plate_nesting)(other), trace=guide_trace)).get_trace(x)
                log_q.append(log_density(trace).expand(k, x.shape[0]))  # (k, B)
            log_m = torch.logsumexp(torch.stack(log_q), 0) - math.log(len(guides))
            acc.update(log_density(model_trace) - log_m)
    return acc.value()


def log_mean_exp(log_w, dim=0):
    return torch.logsumexp(log_w, dim) - math.log(log_w.shape[dim])


def bound_curve(log_w, ks):
    """Estimates of L_K for each K in ``ks`` from ONE set of draws ``log_w`` ``(S, B)``.

    The S draws are cut into ``S // K`` disjoint groups of K (a remainder is left out); each group
    gives an unbiased draw of ``log (1/K) sum w``; their mean estimates L_K. Returns
    ``{K: (B,) float64}`` (0-d tensors for 1-d ``log_w`` ``(S,)``). Because all K share the draws,
    the curve is consistent: L_1 is the mean log weight and L_S the estimate from all draws.
    """
    if log_w.dim() == 1:  # (S,): the draws of one data point
        return {k: v.squeeze(0) for k, v in bound_curve(log_w.unsqueeze(1), ks).items()}
    log_w = log_w.double()
    num_samples, batch = log_w.shape
    curve = {}
    for k in ks:
        if not 1 <= k <= num_samples:
            raise ValueError(f"K={k} needs 1 <= K <= {num_samples} draws")
        groups = num_samples // k
        curve[k] = log_mean_exp(log_w[: groups * k].reshape(groups, k, batch), dim=1).mean(0)
    return curve


def ess(log_w):
    """Effective sample size of the self-normalised weights, ``(sum w)^2 / sum w^2``, ``(B,)``.

    Between 1 (one draw carries all the weight) and S (all weights equal).
    """
    log_w = log_w.double()
    return (2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)).exp()


MIN_PSIS_SAMPLES = 5  # fewer draws than this leave no tail for arviz to fit


def psis(log_w):
    """Pareto-smoothed importance sampling per data point, via ``arviz.psislw``.

    :param log_w: ``(S, B)`` log weights (draws first, as :func:`log_weights` returns them), or
        ``(S,)`` for one data point (the results are then 0-d).
    :returns: ``(khat, log_p)``, both ``(B,)`` float64: the fitted generalised-Pareto shape of the
        upper tail of the weights, and the PSIS estimate of log p(x) (log-mean of the smoothed,
        unnormalised weights). ``khat`` is inf when too few draws are in the tail to fit it (e.g.
        all weights equal, where the estimate is exact).
    """
    if log_w.dim() == 1:  # (S,): the draws of one data point
        khat, log_p = psis(log_w.unsqueeze(1))
        return khat.squeeze(0), log_p.squeeze(0)
    if log_w.shape[0] < MIN_PSIS_SAMPLES:  # too few draws for a tail: no k-hat, plain estimate
        return torch.full(log_w.shape[1:], math.nan, dtype=torch.float64), log_mean_exp(log_w.double(), dim=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # arviz's import-time refactor notice and fit warnings
        from arviz import psislw

        smoothed, khat = psislw(log_w.detach().double().T.cpu().numpy(), normalize=False)
    smoothed = torch.from_numpy(np.asarray(smoothed))  # (B, S)
    return torch.from_numpy(np.asarray(khat, dtype=np.float64)).reshape(-1), log_mean_exp(smoothed, dim=1)


def active_units(posterior_means, threshold=0.01):
    """Active units (Burda et al. 2016): dimensions u with Cov_x(E_q[u | x]) > ``threshold``.

    :param posterior_means: ``(N, U)`` posterior means of N data points.
    :returns: ``(count, variances)``, with the ``(U,)`` variance over data points of each dimension.
    """
    variances = posterior_means.double().var(0, correction=0)
    return int((variances > threshold).sum()), variances
