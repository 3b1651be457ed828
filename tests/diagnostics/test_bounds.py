"""Known answers for pyro_vae.bounds: a linear-Gaussian VAE with exact log p(x), Pyro's RenyiELBO as an
independent implementation, and synthetic importance weights with a known Pareto tail."""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn as nn
from pyro.infer import RenyiELBO
from torch.distributions import MultivariateNormal

from pyro_vae import VAE, Normal, StandardNormal
from pyro_vae.bounds import (
    StreamingLogMeanExp,
    active_units,
    bound_curve,
    chunk_sizes,
    ess,
    iter_log_weights,
    iwae,
    log_weights,
    mixture_iwae,
    psis,
)
from pyro_vae.diagnostics.tightness import point_statistics
from pyro_vae.families.posteriors import Delta
from tests.linear_gaussian import LinearGaussian

LG = LinearGaussian()
X = LG.sample_x(4)  # (4, 5) float64


def _z(values, mean, se):
    return (values - mean).abs() / se


def test_exact_posterior_makes_every_weight_log_px():
    vae = LG.vae()  # q(z|x) = p(z|x)
    lw = log_weights(vae.model, vae.guide, X, 50)
    assert lw.shape == (50, 4) and lw.dtype == torch.float64
    exact = LG.log_px(X)
    assert torch.allclose(lw, exact.expand(50, 4), atol=1e-9)  # zero-variance importance sampler
    assert torch.allclose(iwae(vae.model, vae.guide, X, 200, chunk_size=7), exact, atol=1e-9)


def test_mean_log_weight_is_log_px_minus_kl_to_the_posterior():
    shift, factor = 0.4, 1.3
    vae = LG.vae(shift, factor)
    lw = log_weights(vae.model, vae.guide, X, 20000).detach()
    exact = LG.exact_elbo(X, shift, factor)  # log p(x) - KL(q || p(z|x)) in closed form
    assert (LG.log_px(X) - exact).min() > 0.1  # the perturbation matters
    assert _z(lw.mean(0), exact, lw.std(0) / math.sqrt(20000)).max() < 4


def test_iwae_converges_to_log_px_and_the_curve_rises():
    vae = LG.vae(0.3, 1.3)  # wider than the posterior: weights have finite variance
    lw = log_weights(vae.model, vae.guide, X, 20000).detach()
    ks = (1, 5, 50, 500, 5000, 20000)
    curve = bound_curve(lw, ks)
    gaps = [(LG.log_px(X) - curve[k]).mean().item() for k in ks]
    # E[log p - L_K] ~ Var(w / p) / 2K with Var(w / p) ~ 1.6 here: 0.8, 0.16, 0.016, 0.0016, ...
    assert all(a > b for a, b in zip(gaps[:4], gaps[1:4], strict=False)), gaps  # L_K rises with K on average
    assert gaps[0] > 0.5 and 0.008 < gaps[2] < 0.03, gaps
    assert abs(gaps[-1]) < 0.015, gaps  # converged to log p(x) within the noise (sd ~ 0.0045)
    assert torch.allclose(curve[1], lw.mean(0))
    assert torch.allclose(curve[20000], torch.logsumexp(lw, 0) - math.log(20000))


def test_agrees_with_pyro_renyi_elbo_per_data_point():
    """-RenyiELBO(alpha=0, K).loss on one data point is an independent estimate of the same L_K."""
    vae, k, reps = LG.vae(0.5, 0.8), 5, 300
    renyi = RenyiELBO(alpha=0, num_particles=k, vectorize_particles=True, max_plate_nesting=1)
    for n in range(2):
        x = X[n : n + 1]
        theirs = torch.tensor([-renyi.loss(vae.model, vae.guide, x) for _ in range(reps)], dtype=torch.float64)
        lw = log_weights(vae.model, vae.guide, x, k * 3000).detach()
        ours = bound_curve(lw, [k])[k].item()  # mean over 3000 disjoint groups of K draws
        ours_se = (lw.reshape(3000, k).logsumexp(1) - math.log(k)).std().item() / math.sqrt(3000)
        se = math.sqrt((theirs.std().item() / math.sqrt(reps)) ** 2 + ours_se**2)
        assert abs(theirs.mean().item() - ours) < 4 * se, (theirs.mean(), ours, se)
        assert LG.log_px(x).item() - ours > 10 * se  # a real gap to log p(x): the check has power


def test_chunked_equals_unchunked_given_the_same_draws():
    vae = LG.vae(0.3, 1.5)
    x = X[:4]  # B=4, Z=2: chunks of 2 draws are 16 normals, so torch fills them in the same order
    pyro.set_rng_seed(3)
    whole = iwae(vae.model, vae.guide, x, 64, chunk_size=64)
    pyro.set_rng_seed(3)
    chunked = iwae(vae.model, vae.guide, x, 64, chunk_size=2)
    pyro.set_rng_seed(3)
    lw = log_weights(vae.model, vae.guide, x, 64).detach()
    assert torch.allclose(whole, torch.logsumexp(lw, 0) - math.log(64), atol=1e-12)
    assert torch.allclose(chunked, whole, atol=1e-12)


def test_mixture_iwae_weights_by_the_mixture_density():
    """Draws from a too-narrow q and from the exact posterior, weighted by p / (q + p(z|x)) / 2 <= 2 p(x):
    the estimate is log p(x) up to noise, although q alone has a heavy tail (k = 1 - 0.5^2 here)."""
    exact, narrow = LG.vae(), LG.vae(0.0, 0.5)
    mixed = mixture_iwae(exact.model, [narrow.guide, exact.guide], X, 2000, chunk_size=300)
    assert torch.allclose(mixed, LG.log_px(X), atol=0.02)
    pyro.set_rng_seed(5)
    alone = mixture_iwae(narrow.model, [narrow.guide], X, 500)
    pyro.set_rng_seed(5)
    assert torch.allclose(alone, iwae(narrow.model, narrow.guide, X, 500), atol=1e-12)  # one guide: plain IWAE


def test_chunks_bound_the_particles_seen_by_the_decoder():
    vae = LG.vae(0.3, 1.5)
    seen = []
    vae.decoder.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    iwae(vae.model, vae.guide, X, 1000, chunk_size=64, graph="eager")  # a graph replays operations, not modules
    assert max(seen) == 64 and sum(seen) == 1000  # peak memory set by chunk_size, not num_samples
    assert chunk_sizes(10, 4) == [4, 4, 2] and chunk_sizes(8, 4) == [4, 4]


@pytest.mark.parametrize("likelihood", ["bernoulli", "normal"])
def test_iwae_chunks_as_a_graph_equal_eager_chunks(likelihood, digits):
    """16 chunks of 60 draws and a remainder of 40: the first and the last eager, 14 replayed as one graph.
    The same draws; the Bernoulli graph takes the cross-entropy form where eager code takes softplus's."""
    from pyro_vae.families.likelihoods import Normal
    from pyro_vae.inference import compiled
    from tests.helpers import small_vae

    vae = small_vae(likelihood=Normal(0.3) if likelihood == "normal" else None)
    x = digits.x_test[:20]
    captures = []
    original = compiled.capture
    with pytest.MonkeyPatch.context() as m:
        m.setattr(compiled, "capture", lambda *a, **k: captures.append(1) or original(*a, **k))
        pyro.set_rng_seed(3)
        graphed = iwae(vae.model, vae.guide, x, 1000, chunk_size=60)
        pyro.set_rng_seed(3)
        again = iwae(vae.model, vae.guide, x, 1000, chunk_size=60)  # the cached graph: no second capture
    pyro.set_rng_seed(3)
    eager = iwae(vae.model, vae.guide, x, 1000, chunk_size=60, graph="eager")
    assert captures == [1]
    assert torch.allclose(graphed, eager, rtol=1e-6, atol=0) and torch.equal(graphed, again)


def test_streaming_logsumexp_is_exact_in_float64():
    g = torch.Generator().manual_seed(0)
    lw = torch.randn(1000, 3, generator=g, dtype=torch.float64) * 30
    lw[:, 1] -= 1e4  # far below exp's range: needs the running max
    lw[:, 2] = -math.inf  # zero weights everywhere: log of 0, not NaN
    lw[500, 0] = 200.0  # one dominant weight arriving late
    acc = StreamingLogMeanExp()
    for chunk in lw.float().split(37):
        acc.update(chunk)
    expected = torch.logsumexp(lw.float().double(), 0) - math.log(1000)
    assert acc.value().dtype == torch.float64 and torch.equal(torch.isneginf(acc.value()), torch.isneginf(expected))
    assert torch.allclose(acc.value()[:2], expected[:2], rtol=0, atol=1e-9)


@pytest.mark.parametrize("proposal_scale", [0.5, 0.7, 0.8])
def test_khat_matches_the_tail_of_a_too_narrow_normal_proposal(proposal_scale):
    """Target N(0, 1), proposal q = N(0, s^2), s < 1: log w(z) = log s + z^2 (1/s^2 - 1) / 2, so with
    z = s u, P(w > t) = P(u^2 > 2 (log t - log s) / (1 - s^2)) ~ t^(-1 / (1 - s^2)) (up to a slowly
    varying factor): a Pareto tail of index 1 / (1 - s^2), i.e. generalised-Pareto shape k = 1 - s^2."""
    s = proposal_scale
    rng = np.random.default_rng(0)
    z = torch.from_numpy(rng.normal(0.0, s, size=(5000, 200)))  # (S, B): 200 independent replicates
    lw = math.log(s) + z**2 * (1 / s**2 - 1) / 2
    khat, log_z = psis(lw)
    # the slowly varying factor biases k-hat low at S = 5000: medians 0.68, 0.48, 0.35 (sd 0.01 over seeds)
    assert abs(khat.median().item() - (1 - s**2)) < 0.1
    if 1 - s**2 < 0.5:  # finite variance: PSIS recovers the normalising constant log 1 = 0
        assert abs(log_z.mean().item()) < 0.02
    wide = math.log(1.5) + (torch.from_numpy(rng.normal(0.0, 1.5, size=(5000, 20)))) ** 2 * (1 / 1.5**2 - 1) / 2
    assert psis(wide)[0].max() < 0.2  # a wider proposal has bounded weights: k <= 0 up to noise


def test_ess_extremes_and_formula():
    equal = torch.zeros(100, 2)
    assert torch.allclose(ess(equal), torch.full((2,), 100.0, dtype=torch.float64))
    one = torch.full((100, 1), -1e4)
    one[7] = 0.0
    assert ess(one).item() == pytest.approx(1.0)
    lw = torch.randn(50, 3, dtype=torch.float64)
    w = lw.exp()
    assert torch.allclose(ess(lw), w.sum(0) ** 2 / (w**2).sum(0))


def test_active_units_counts_dimensions_whose_mean_varies():
    g = torch.Generator().manual_seed(0)
    means = torch.randn(2000, 4, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.3, 0.05, 0.0])
    count, variances = active_units(means)  # variances 1, 0.09, 0.0025, 0 against 0.01
    assert count == 2 and variances[0] == pytest.approx(1.0, abs=0.1)


def test_two_latent_sites_converge_to_the_joint_gaussian_answer():
    """Any model/guide pair with a "data" plate: a hierarchical z1 -> z2 -> x with its exact marginal."""
    D, a, sd2, s = 3, 0.8, 0.6, 0.4
    W = torch.tensor([[1.0, 0.5], [-0.3, 1.2], [0.7, -0.9]], dtype=torch.float64)  # x | z1, z2 = W [z1, z2]
    b = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)

    def model(x):
        with pyro.plate("data", x.shape[0], dim=-1):
            z1 = pyro.sample("z1", dist.Normal(torch.zeros(1, dtype=torch.float64), 1.0).to_event(1))
            z2 = pyro.sample("z2", dist.Normal(a * z1, sd2).to_event(1))
            pyro.sample("x", dist.Normal(torch.cat([z1, z2], -1) @ W.T + b, s).to_event(1), obs=x)

    def guide(x):  # q(z1 | x) q(z2 | z1, x): a crude but valid proposal
        with pyro.plate("data", x.shape[0], dim=-1):
            z1 = pyro.sample("z1", dist.Normal(0.3 * x[:, :1], 0.9).to_event(1))
            pyro.sample("z2", dist.Normal(0.5 * z1 + 0.2 * x[:, 1:2], 0.8).to_event(1))

    cov_z = torch.tensor([[1.0, a], [a, a * a + sd2**2]], dtype=torch.float64)
    x = torch.tensor([[0.5, -0.4, 1.0], [-1.0, 0.8, 0.2]], dtype=torch.float64)
    exact = MultivariateNormal(b, W @ cov_z @ W.T + s**2 * torch.eye(D, dtype=torch.float64)).log_prob(x)
    lw = log_weights(model, guide, x, 50000).detach()
    curve = bound_curve(lw, (1, 50000))
    assert (exact - curve[1]).min() > 0.05 and (exact - curve[50000]).abs().max() < 0.01
    # Pyro's RenyiELBO sums L_K over the batch: one of its draws against the spread of ours (50 groups of K)
    groups = (lw.reshape(50, 1000, 2).logsumexp(1) - math.log(1000)).sum(1)  # (50,)
    renyi = RenyiELBO(alpha=0, num_particles=1000, vectorize_particles=True, max_plate_nesting=1)
    theirs = torch.tensor([-renyi.loss(model, guide, x) for _ in range(5)], dtype=torch.float64)
    assert abs(theirs.mean() - groups.mean()) < 4 * groups.std() / math.sqrt(5)


def test_point_mass_guide_runs_and_is_flagged():
    """A Delta posterior has no density: each weight is log p(x, z(x)); nothing may crash."""

    torch.manual_seed(0)
    vae = VAE(nn.Linear(5, 2), nn.Linear(2, 5), prior=StandardNormal(2), likelihood=Normal(0.5),
              posterior=Delta()).double()
    x = X
    with torch.no_grad():
        z = vae.encoder(x)
        joint = dist.Normal(0.0, 1.0).log_prob(z).sum(-1) + dist.Normal(vae.decoder(z), 0.5).log_prob(x).sum(-1)
    lw = log_weights(vae.model, vae.guide, x, 10).detach()
    assert torch.allclose(lw, joint.expand(10, 4))
    stats = point_statistics(vae.model, vae.guide, x, 50, chunk_size=20)
    assert stats["point_mass"].all() and torch.isnan(stats["khat"]).all()
    assert torch.allclose(stats["curve"][50], joint)
    assert torch.allclose(stats["ess"], torch.full((4,), 50.0, dtype=torch.float64))


def test_iter_log_weights_yields_traces_of_each_chunk():
    vae = LG.vae(0.2, 1.1)
    sizes = [(lw.shape, gt.nodes["z"]["value"].shape) for lw, _, gt in iter_log_weights(vae.model, vae.guide, X, 10, 4)]
    assert sizes == [((4, 4), (4, 4, 2)), ((4, 4), (4, 4, 2)), ((2, 4), (2, 4, 2))]
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        log_weights(vae.model, vae.guide, X, 0)


# --- model/guide pairs that would give a silently wrong number are refused (issue 12) --------------

def _gaussian_programs(model_sites=("z",), guide_sites=("z",), subsample_size=None, auxiliary=()):
    """A model with N(0, 1) latents ``model_sites`` and x ~ N(sum of them, 1), and a guide drawing ``guide_sites``."""
    def model(x):
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size) as ind:
            total = sum(pyro.sample(name, dist.Normal(0.0, 1.0)) for name in model_sites)
            pyro.sample("x", dist.Normal(total, 1.0), obs=x[ind])

    def guide(x):
        with pyro.plate("data", x.shape[0], subsample_size=subsample_size):
            for name in guide_sites:
                pyro.sample(name, dist.Normal(0.0, 1.0), infer={"is_auxiliary": name in auxiliary})

    return model, guide


@pytest.mark.parametrize("model_sites, guide_sites, names", [
    (("latent",), ("z",), ["the model samples 'latent'", "the guide samples 'z'"]),  # renamed site
    (("z", "u"), ("z",), ["the model samples 'u' that the guide does not"]),  # an unguided model latent
    (("z",), ("z", "a"), ["the guide samples 'a' that the model does not", "is_auxiliary"]),
])
def test_mismatched_site_names_are_refused_by_every_bound(model_sites, guide_sites, names):
    """Before: iwae returned a number (the unguided latent scored as if guided) and dataset_statistics
    raised a bare KeyError."""
    from pyro_vae import UserError, dataset_statistics

    model, guide = _gaussian_programs(model_sites, guide_sites)
    x = torch.randn(3)
    calls = [lambda: iwae(model, guide, x, 10), lambda: log_weights(model, guide, x, 10),
             lambda: dataset_statistics(model, guide, x, 10), lambda: mixture_iwae(model, [guide], x, 10)]
    for call in calls:
        with pytest.raises(UserError, match="model and guide sample different latent sites") as e:
            call()
        assert all(name in str(e.value) for name in names), str(e.value)


def test_a_guide_only_auxiliary_site_is_allowed():
    """Pyro's rule: a guide site marked is_auxiliary may be absent from the model. Weights then are
    log p(x, z) - log q(z) - log q(a): with z ~ N(0, 1) = p(z) and a ~ N(0, 1), log w = log p(x|z) - log q(a)."""
    model, guide = _gaussian_programs(("z",), ("z", "a"), auxiliary=("a",))
    x = torch.randn(3)
    assert log_weights(model, guide, x, 5).shape == (5, 3)


def test_a_subsampling_data_plate_is_refused_with_the_fix():
    """Before: an unhelpful 'expanded size' RuntimeError."""
    from pyro_vae import UserError

    model, guide = _gaussian_programs(subsample_size=2)
    with pytest.raises(UserError, match="subsamples 2 of its 6 rows.*subsample only in training"):
        iwae(model, guide, torch.randn(6), 10)


def test_numpy_integers_and_0d_tensors_are_accepted_end_to_end():
    """Before: a 0-d tensor num_samples made the report's bound curve hold both 20 and tensor(20)."""
    from pyro_vae import dataset_statistics, summarise

    vae = LG.vae(0.3, 1.3)
    reports = []
    for n, batch, chunk in [(20, 3, 7), (np.int64(20), np.int32(3), np.int16(7)), (torch.tensor(20), torch.tensor(3),
                                                                                     torch.tensor(7))]:
        pyro.set_rng_seed(0)
        reports.append(summarise(dataset_statistics(vae.model, vae.guide, X, n, batch_size=batch, chunk_size=chunk), n))
        pyro.set_rng_seed(0)
        reports[-1]["iwae"] = iwae(vae.model, vae.guide, X, n, chunk_size=chunk).tolist()
    assert list(reports[0]["bound_curve"]) == ["1", "5", "20"] and reports[0]["num_samples"] == 20
    assert reports[1] == reports[0] and reports[2] == reports[0]  # same draws, same numbers, same keys


def test_psis_accepts_the_weights_of_one_data_point():
    lw = torch.randn(200, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    khat, log_p = psis(lw[:, 1])
    khat_all, log_p_all = psis(lw)
    assert khat.shape == () and khat == khat_all[1] and log_p == log_p_all[1]
    assert bound_curve(lw[:, 1], (1, 5))[5].item() == pytest.approx(bound_curve(lw, (1, 5))[5][1].item(), abs=1e-12)
