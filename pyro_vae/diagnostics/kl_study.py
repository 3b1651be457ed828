"""What the analytic KL buys, measured: Monte-Carlo KL against the closed form, and the variance
and signal-to-noise ratio of ELBO estimators and their gradients.

- :func:`kl_check` compares a Monte-Carlo KL (mean and standard error over S draws) with the
  analytic value per data point, as z-scores.
- :func:`gradient_variance` measures the variance of the ELBO estimate and of its gradient per
  parameter group on a fixed batch, with the random draws fixed by a seed per repeat, so two
  objectives run with the same seeds see the same ``z`` (a paired comparison);
  :func:`estimator_variance` runs it for several objectives and particle counts.

References: Kingma & Welling (2014), "Auto-Encoding Variational Bayes", sec. 2.3 (the analytic-KL
estimator); Roeder, Wu & Duvenaud (2017), "Sticking the Landing"; Rainforth et al. (2018),
"Tighter Variational Bounds are Not Necessarily Better" (gradient SNR).
"""

import math

import pyro
import torch

from ..errors import check_int
from ..inference.objectives import make_elbo
from ..inference.traces import analytic_kl, get_traces, log_prob, sample_sites

# --- KL check: Monte Carlo against analytic ------------------------------------------------------

def _vectorized(fn, num_samples, dim):
    """``fn`` run inside a plate of ``num_samples`` independent draws at ``dim`` (left of all plates)."""
    def wrapped(*args, **kwargs):
        with pyro.plate("kl_samples", num_samples, dim=dim):
            return fn(*args, **kwargs)
    return wrapped


@torch.no_grad()
def kl_check(model, guide, x, num_samples=100, chunk_size=25, max_plate_nesting=1):
    """Monte-Carlo KL per data point against the analytic value, as z-scores.

    For each latent site and data point n, draws ``z_s ~ q(z | x_n)``, s = 1..S, and forms
    ``d_s = log q(z_s | x_n) - log p(z_s) - KL_s`` with ``KL_s`` the registered analytic KL (constant
    in s unless the prior depends on other latents). Then ``z = mean(d) / (sd(d) / sqrt(S))``; if the
    analytic value is right, z is approximately Student-t with S - 1 degrees of freedom, and
    ``E|z| -> sqrt(2 / pi) ~ 0.798`` (see :func:`expected_abs_t`).

    :param x: ``(B, D)`` data; the programs are called unscaled (no ``num_data``).
    :param chunk_size: draws per vectorised pass (memory ~ chunk_size * B * D).
    :returns: ``{site: dict}`` with ``(B,)`` tensors ``mc_mean``, ``mc_se`` and, where an analytic KL
        is registered, ``analytic`` and ``z``; plus ``kl`` ("analytic" or "sampled").
    """
    num_samples = check_int("num_samples", num_samples, least=2)
    chunk_size = check_int("chunk_size", chunk_size)
    dim = -(max_plate_nesting + 1)
    mc, kl = {}, {}  # site -> list of (s, B) chunks
    for start in range(0, num_samples, chunk_size):
        s = min(chunk_size, num_samples - start)
        model_trace, guide_trace = get_traces(_vectorized(model, s, dim), _vectorized(guide, s, dim), x)
        for guide_site in sample_sites(guide_trace, observed=False):
            name = guide_site["name"]
            model_site = model_trace.nodes.get(name)
            if model_site is None:
                continue
            mc.setdefault(name, []).append(log_prob(guide_site) - log_prob(model_site))  # (s, B)
            exact = analytic_kl(guide_site, model_site)
            kl.setdefault(name, []).append(None if exact is None else exact.expand(s, -1))  # (s, B)
    result = {}
    for name, chunks in mc.items():
        samples = torch.cat(chunks).double()  # (S, B)
        site = {"kl": "sampled", "mc_mean": samples.mean(0), "mc_se": _se(samples)}
        if all(c is not None for c in kl[name]):
            exact = torch.cat(kl[name]).double()  # (S, B)
            diff = samples - exact
            site.update(kl="analytic", analytic=exact.mean(0), z=diff.mean(0) / _se(diff))
        result[name] = site
    return result


def _se(samples):
    """Standard error of the mean over dim 0."""
    return samples.std(0, unbiased=True) / math.sqrt(samples.shape[0])


def expected_abs_t(dof):
    """``E|T|`` for Student's t with ``dof`` degrees of freedom (``dof > 1``); ``sqrt(2/pi)`` as dof -> inf."""
    return math.exp(0.5 * math.log(dof / math.pi) + math.lgamma((dof - 1) / 2) - math.lgamma(dof / 2))


def summarize_kl_check(check, num_samples):
    """JSON-ready summary of :func:`kl_check`: per site and pooled ``mean_abs_z`` with what to expect.

    ``mean_abs_z_se`` is the standard error of ``mean_abs_z`` if z is standard normal
    (``sqrt(1 - 2/pi) / sqrt(n)``): a mean |z| within a few of those of ``expected_mean_abs_z`` is
    what a correct analytic KL gives.
    """
    sites, pooled = {}, []
    for name, site in check.items():
        entry = {"kl": site["kl"], "num_points": int(site["mc_mean"].numel()), "num_samples": num_samples,
                 "mc_mean": site["mc_mean"].mean().item(), "mc_se_mean": site["mc_se"].mean().item()}
        if site["kl"] == "analytic":
            z = site["z"]
            pooled.append(z)
            entry.update(analytic_mean=site["analytic"].mean().item(), **_z_summary(z, num_samples))
        sites[name] = entry
    summary = {"sites": sites, "num_samples": num_samples}
    if pooled:
        summary.update(_z_summary(torch.cat(pooled), num_samples))
    else:
        summary.update(mean_abs_z=None, note="no latent site has an analytic KL to check")
    return summary


def _z_summary(z, num_samples):
    z = z[torch.isfinite(z)]
    n = z.numel()
    return {"mean_abs_z": z.abs().mean().item(), "mean_abs_z_se": math.sqrt(1 - 2 / math.pi) / math.sqrt(n),
            "expected_mean_abs_z": expected_abs_t(num_samples - 1), "mean_z": z.mean().item(),
            "fraction_abs_z_above_1.96": (z.abs() > 1.96).double().mean().item(),
            "max_abs_z": z.abs().max().item(), "num_z": n}


# --- Estimator variance: ELBO value and gradients per parameter group ------------------------------

def parameter_groups(module):
    """Trainable parameters grouped by ``module``'s direct submodules (a VAE: encoder, decoder, prior,
    likelihood, posterior); groups without trainable parameters are left out, parameters held by
    ``module`` itself form ``"other"``."""
    groups = {}
    for name, child in module.named_children():
        params = [p for p in child.parameters() if p.requires_grad]
        if params:
            groups[name] = params
    own = [p for p in module.parameters(recurse=False) if p.requires_grad]
    if own:
        groups["other"] = own
    return groups


class _Moments:
    """Running per-coordinate mean and sum of squared deviations (Welford), in float64."""

    def __init__(self):
        self.count, self.mean, self.m2, self.norm_sum = 0, None, None, 0.0

    def add(self, g):
        g = g.detach().double()
        self.count += 1
        self.norm_sum += g.norm().item()
        if self.mean is None:
            self.mean, self.m2 = g.clone(), torch.zeros_like(g)
            return
        delta = g - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (g - self.mean)

    def summary(self):
        var = self.m2 / (self.count - 1)  # (n_params,)
        sd = var.sqrt()
        live = sd > 0  # coordinates that never move (e.g. dead units) have no SNR
        snr = self.mean.abs()[live] / sd[live]  # (n_live,) per-coordinate |E g| / sd g
        nan = float("nan")
        return {"num_params": self.mean.numel(), "total_variance": var.sum().item(),
                "mean_grad_norm": self.norm_sum / self.count, "norm_of_mean_grad": self.mean.norm().item(),
                "snr": snr.mean().item() if live.any() else nan,
                "snr_median": snr.median().item() if live.any() else nan}


def gradient_variance(model, guide, x, elbo, groups, repeats=100, seed=0):
    """Spread of ``elbo``'s per-data-point estimate and of its gradient over ``repeats`` draws on ``x``.

    Repeat r reseeds with ``seed + r`` (``pyro.set_rng_seed``), so calling this for two ELBOs with
    the same seed pairs their draws: Trace_ELBO and TraceMeanField_ELBO then see the same ``z``,
    and any difference comes from the estimator alone. It leaves the global RNG reseeded: wrap the
    call in ``torch.random.fork_rng()`` to keep the caller's stream.

    :param x: ``(B, D)`` fixed batch; the estimate is the batch mean, unscaled (no ``num_data``).
    :param elbo: a Pyro ELBO with ``differentiable_loss`` (not a JIT one).
    :param dict groups: ``{name: [parameters]}``, e.g. :func:`parameter_groups`.
    :returns: ``{"elbo": {mean, variance, se, variance_per_point}, "groups": {name: {num_params,
        total_variance, mean_grad_norm, norm_of_mean_grad, snr, snr_median}}}``. ``total_variance`` sums
        the per-coordinate variances (the expected squared distance of one estimate from the mean);
        ``snr`` averages ``|mean| / sd`` over coordinates, ``snr_median`` is their median.
        ``variance_per_point`` is ``B`` times the variance of the batch mean: the average single-point
        variance, as the points' draws are independent.
    """
    repeats = check_int("repeats", repeats, least=2)
    names = list(groups)
    params = [p for name in names for p in groups[name]]
    moments = {name: _Moments() for name in names}
    values = []
    batch = x.shape[0]
    for r in range(repeats):
        pyro.set_rng_seed(seed + r)
        loss = elbo.differentiable_loss(model, guide, x) / batch
        grads = iter(torch.autograd.grad(loss, params, allow_unused=True))
        for name in names:
            flat = [(g if g is not None else torch.zeros_like(p)).reshape(-1)
                    for p, g in zip(groups[name], grads, strict=False)]
            moments[name].add(-torch.cat(flat))  # gradient of the ELBO (ascent direction)
        values.append(-loss.item())
    v = torch.tensor(values, dtype=torch.float64)
    return {"elbo": {"mean": v.mean().item(), "variance": v.var().item(), "se": (v.var() / repeats).sqrt().item(),
                     "variance_per_point": batch * v.var().item()},
            "groups": {name: m.summary() for name, m in moments.items()}}


def estimator_variance(vae, x, objectives=("trace", "meanfield"), num_particles=(1, 10), repeats=100, seed=0,
                       groups=None):
    """:func:`gradient_variance` of each objective at each particle count, paired by seed.

    :param objectives: names for :func:`pyro_vae.inference.objectives.make_elbo` (non-JIT ones).
    :param groups: parameter groups (default :func:`parameter_groups` of ``vae``).
    :returns: ``{"objectives": {name: {str(P): result}}, "ratio": {str(P): {"elbo": r, group: r}}}``;
        ``ratio`` is second objective / first (``meanfield / trace`` by default) of the ELBO variance
        and of each group's ``total_variance``: below 1 means the second has less noise.
    """
    groups = parameter_groups(vae) if groups is None else groups
    results = {name: {} for name in objectives}
    for p in num_particles:
        for name in objectives:
            results[name][str(p)] = gradient_variance(vae.model, vae.guide, x, make_elbo(name, p), groups,
                                                      repeats=repeats, seed=seed)
    ratio = {}
    if len(objectives) == 2:
        first, second = objectives
        for p in map(str, num_particles):
            a, b = results[first][p], results[second][p]
            ratio[p] = {"elbo": _ratio(b["elbo"]["variance"], a["elbo"]["variance"])}
            ratio[p].update({g: _ratio(b["groups"][g]["total_variance"], a["groups"][g]["total_variance"])
                             for g in groups})
    return {"objectives": results, "ratio": ratio, "ratio_of": list(objectives[::-1])}


def _ratio(a, b):
    return a / b if b > 0 else float("nan")
