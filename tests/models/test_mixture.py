"""The mixture model with a discrete latent: its programs, its exact sums over z, and EM.

Known answers: scikit-learn's GaussianMixture (an independent EM for diagonal Gaussians), a brute-force
loop over components with torch.distributions, and EM's monotonicity."""

import math
import warnings

import pyro
import pyro.poutine as poutine
import pytest
import torch

from pyro_vae import MLP, Bernoulli, MixtureModel, Normal, NormalHeteroscedastic
from pyro_vae.families.likelihoods import softplus_inverse
from pyro_vae.inference.em import EM, em_step
from pyro_vae.inference.enumeration import enumerated_elbo, enumerated_terms


def _brute_log_joint(mix, x):
    """log p(x_n, z = k) with one torch.distributions call per component: (N, K)."""
    log_pi = torch.log_softmax(mix.weights.logits, -1)
    cols = [mix.likelihood(mix.decoder.table[k], event_dim=1).log_prob(x) + log_pi[k] for k in range(len(log_pi))]
    return torch.stack(cols, -1)


def _random_mixture(likelihood, k=4, d=6, encoder=None, seed=0):
    torch.manual_seed(seed)
    mix = MixtureModel(k, likelihood, d, encoder=encoder).double()
    with torch.no_grad():
        mix.decoder.table.normal_()
        mix.weights.logits.normal_()
    return mix


@pytest.mark.parametrize("likelihood", [Bernoulli(), Normal(0.5), NormalHeteroscedastic(0.05)],
                         ids=["bernoulli", "normal", "normal-hetero"])
def test_tables_match_a_loop_over_components(likelihood):
    mix = _random_mixture(likelihood)
    x = torch.bernoulli(torch.full((7, 6), 0.4, dtype=torch.float64))
    expected = _brute_log_joint(mix, x)
    assert torch.allclose(mix.log_joint_table(x), expected, atol=1e-10)
    assert torch.allclose(mix.log_marginal(x), torch.logsumexp(expected, -1), atol=1e-10)
    assert torch.allclose(mix.guide_table(x).exp(), torch.softmax(expected, -1), atol=1e-12)  # exact guide: Bayes


def test_programs_share_sites_and_enumerate():
    mix = _random_mixture(Bernoulli(), encoder=MLP(6, [5], 4).double())
    x = torch.bernoulli(torch.full((5, 6), 0.5, dtype=torch.float64))
    guide_trace = poutine.trace(mix.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(mix.model, trace=guide_trace)).get_trace(x)
    assert guide_trace.nodes["z"]["value"].shape == (5,) and guide_trace.nodes["z"]["value"].dtype == torch.int64
    assert model_trace.nodes["x"]["fn"].batch_shape == (5,)
    assert [f.name for f in model_trace.nodes["z"]["cond_indep_stack"]] == ["data"]
    enumerated_model = poutine.enum(pyro.infer.config_enumerate(mix.model), first_available_dim=-2)
    enumerated = poutine.trace(enumerated_model).get_trace(x)
    assert enumerated.nodes["z"]["value"].shape == (4, 1) and enumerated.nodes["x"]["fn"].batch_shape == (4, 5)


def test_enumerated_terms_split_the_exact_elbo():
    mix = _random_mixture(Bernoulli(), encoder=MLP(6, [5], 4).double())
    x = torch.bernoulli(torch.full((9, 6), 0.5, dtype=torch.float64))
    terms = enumerated_terms(mix, x)
    log_joint, log_q = _brute_log_joint(mix, x), mix.guide_table(x)
    q, log_pi = log_q.exp(), torch.log_softmax(mix.weights.logits, -1)
    assert torch.allclose(terms["reconstruction"], (q * (log_joint - log_pi)).sum(-1), atol=1e-10)
    assert torch.allclose(terms["kl"], (q * (log_q - log_pi)).sum(-1), atol=1e-10)
    assert torch.allclose(terms["elbo"], enumerated_elbo(log_joint, log_q), atol=1e-10)
    assert (terms["elbo"] <= terms["log_likelihood"] + 1e-12).all()  # Jensen


# --- EM --------------------------------------------------------------------------------------------

def _three_clusters(n=600, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0] * d, [3.0] * d, [-2.0, 4.0] + [0.0] * (d - 2)], dtype=torch.float64)
    scales = torch.tensor([0.5, 1.0, 0.7], dtype=torch.float64)
    labels = torch.randint(0, 3, (n,), generator=g)
    return centres[labels] + scales[labels, None] * torch.randn(n, d, generator=g, dtype=torch.float64)


def test_em_reaches_scikit_learns_gaussian_mixture():
    """Same data, same initial weights, means and diagonal variances, 40 EM iterations each: the
    mean log-likelihood agrees within 1e-8 nats per point (float64), and so do the parameters."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    x = _three_clusters()
    k, d, iterations, floor = 3, x.shape[1], 40, 1e-3
    means0 = x[torch.tensor([0, 1, 2])]  # three data rows
    var0 = x.var(0, correction=0).expand(k, d)
    weights0 = torch.full((k,), 1.0 / k, dtype=torch.float64)

    mix = MixtureModel(k, NormalHeteroscedastic(floor), d).double()
    with torch.no_grad():
        mix.decoder.table.copy_(torch.cat([means0, softplus_inverse(var0.sqrt() - floor)], -1))
        mix.weights.logits.copy_(weights0.log())
    for _ in range(iterations):
        em_step(mix, x)

    gm = GaussianMixture(k, covariance_type="diag", weights_init=weights0.numpy(), means_init=means0.numpy(),
                         precisions_init=(1 / var0).numpy(), reg_covar=0.0, max_iter=iterations, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0: it runs all iterations by design
        gm.fit(x.numpy())
    ours = mix.log_marginal(x).mean().item()
    assert ours == pytest.approx(gm.score(x.numpy()), abs=1e-8)
    loc, scale = mix.likelihood.loc_scale(mix.decoder.table.detach())
    assert torch.allclose(loc, torch.from_numpy(gm.means_), atol=1e-8)
    assert torch.allclose(scale**2, torch.from_numpy(gm.covariances_), atol=1e-8)
    assert torch.allclose(torch.softmax(mix.weights.logits.detach(), -1), torch.from_numpy(gm.weights_), atol=1e-8)


@pytest.mark.parametrize("likelihood, binary", [(Bernoulli(), True), (NormalHeteroscedastic(0.05), False),
                                                (Normal(0.3), False)], ids=["bernoulli", "normal-hetero", "normal"])
def test_em_never_decreases_the_elbo(likelihood, binary, digits):
    """log p(x; theta_t) = ELBO(q_t, theta_t) <= ELBO(q_t, theta_{t+1}) <= log p(x; theta_{t+1}), every t."""
    x = (digits.x_train[:400] if binary else digits.x_train[:400] * 0.9 + 0.05).double()
    torch.manual_seed(0)
    mix = MixtureModel(6, likelihood, x.shape[1]).double()
    mix.init_from_data(x)
    sequence = []
    for _ in range(25):
        log_px, log_q = em_step(mix, x)  # E-step at theta_t, then the M-step
        sequence += [log_px.sum().item(), enumerated_elbo(mix.log_joint_table(x), log_q).sum().item()]
    assert all(b >= a - 1e-9 * abs(a) for a, b in zip(sequence, sequence[1:], strict=False)), sequence
    assert sequence[-1] > sequence[0] + 10  # and it does climb


def test_em_as_an_objective_is_one_iteration_per_call(digits):
    x = digits.x_train[:300]
    torch.manual_seed(1)
    a, b = MixtureModel(5, Bernoulli(), 64), MixtureModel(5, Bernoulli(), 64)
    a.init_from_data(x)
    b.load_state_dict(a.state_dict())
    loss = EM().loss_and_grads(a.model, a.guide, x, num_data=3000)
    log_px, _ = em_step(b, x)
    assert loss == pytest.approx(-10 * log_px.sum().item(), rel=1e-6)  # scaled by N / B like the ELBOs
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=False))
    assert all(p.grad is None for p in a.parameters())


def test_smoothing_pulls_components_to_the_data_mean(digits):
    x = digits.x_train[:200]
    torch.manual_seed(2)
    mix = MixtureModel(3, Bernoulli(), 64)
    mix.init_from_data(x)
    resp = torch.softmax(torch.randn(200, 3), -1)
    mix.m_step(x, resp, smoothing=50.0)
    expected = (resp.T @ x + 50.0 * x.mean(0)) / (resp.sum(0)[:, None] + 50.0)
    assert torch.allclose(torch.sigmoid(mix.decoder.table.detach()), expected.clamp(1e-6, 1 - 1e-6), atol=1e-5)


def test_init_from_data_starts_between_a_row_and_the_mean(digits):
    x = digits.x_train[:100].double()
    mix = MixtureModel(4, Normal(1.0), 64).double()
    torch.manual_seed(3)
    mix.init_from_data(x)
    torch.manual_seed(3)
    pick = torch.randperm(100)[:4]
    assert torch.allclose(mix.decoder.table.detach(), (x[pick] + x.mean(0)) / 2, atol=1e-10)
    assert torch.equal(mix.weights.logits.detach(), torch.zeros(4, dtype=torch.float64))


def test_sample_and_decode_use_component_means():
    mix = _random_mixture(Bernoulli())
    one_hot = torch.eye(4, dtype=torch.float64)
    assert torch.allclose(mix.decode(one_hot), torch.sigmoid(mix.decoder.table.detach()))
    x = torch.bernoulli(torch.full((3, 6), 0.5, dtype=torch.float64))
    assert torch.allclose(mix.encode(x).sum(-1), torch.ones(3, dtype=torch.float64))
    samples = mix.sample(50)
    assert samples.shape == (50, 6) and all(any(torch.equal(s, m) for m in mix.component_means()) for s in samples)
    assert math.isclose(mix.reconstruct(x).sum().item(), (mix.encode(x) @ mix.component_means()).sum().item())
