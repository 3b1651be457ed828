import math

import pytest
import torch
import torch.nn as nn

from pyro_vae.families.noises import GaussianNoise, Masking
from pyro_vae.models.autoencoders import jacobian_frobenius_sq


def _finite_difference_jacobian_sq(f, x, eps=1e-3):
    """||J_f(x)||_F^2 by central differences, one input coordinate at a time (float64)."""
    cols = []
    for d in range(x.shape[-1]):
        e = torch.zeros_like(x)
        e[:, d] = eps
        cols.append((f(x + e) - f(x - e)) / (2 * eps))  # (B, Z)
    return torch.stack(cols, -1).pow(2).flatten(1).sum(-1)


@pytest.mark.parametrize("encoder", [
    nn.Sequential(nn.Linear(6, 3), nn.Sigmoid()),  # closed form
    nn.Sequential(nn.Linear(6, 3), nn.Tanh()),  # closed form
    nn.Sequential(nn.Linear(6, 3)),  # J = W
    nn.Sequential(nn.Linear(6, 5), nn.Softplus(), nn.Linear(5, 3)),  # one hidden layer, closed form
    nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)),  # one hidden layer, closed form
    nn.Sequential(nn.Linear(6, 5), nn.ELU(), nn.Linear(5, 3)),  # one hidden layer, closed form
    nn.Sequential(nn.Linear(6, 5), nn.Softplus(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)),  # autograd
    nn.Sequential(nn.Linear(6, 5), nn.Softplus(beta=2), nn.Linear(5, 3)),  # non-default: autograd
], ids=["sigmoid", "tanh", "affine", "softplus-mlp", "tanh-mlp", "elu-mlp", "deep", "softplus-beta2"])
def test_contractive_penalty_matches_finite_differences(encoder):
    encoder = encoder.double()
    x = torch.randn(4, 6, dtype=torch.float64)
    exact = jacobian_frobenius_sq(encoder, x)
    assert exact.shape == (4,)
    assert torch.allclose(exact, _finite_difference_jacobian_sq(encoder, x), rtol=1e-5)


def test_relu_closed_form_matches_autograd():
    """ReLU has no derivative at 0, so compare with autograd rather than finite differences."""
    encoder = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    x = torch.randn(8, 6, dtype=torch.float64)
    auto = (torch.func.vmap(torch.func.jacrev(encoder))(x) ** 2).flatten(1).sum(-1)
    assert torch.allclose(jacobian_frobenius_sq(encoder, x), auto)


@pytest.mark.parametrize("deep", [False, True])
def test_contractive_penalty_is_differentiable_in_the_weights(deep):
    layers = [nn.Linear(6, 5), nn.Softplus(), nn.Linear(5, 3)] + ([nn.Tanh(), nn.Linear(3, 2)] if deep else [])
    encoder = nn.Sequential(*layers)
    jacobian_frobenius_sq(encoder, torch.randn(4, 6)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters()
               if p.dim() == 2)


def test_masking_zeroes_a_fraction_close_to_nu():
    x = torch.ones(200, 784)
    frac = (Masking(0.3)(x) == 0).float().mean().item()
    assert abs(frac - 0.3) < 4 * (0.3 * 0.7 / x.numel()) ** 0.5


def test_gaussian_noise_has_the_given_scale():
    noise = GaussianNoise(0.5)(torch.zeros(100, 784))
    assert abs(noise.std().item() - 0.5) < 0.01 and abs(noise.mean().item()) < 0.01


# --- the autoencoders as Pyro programs ----------------------------------------------------------

import pyro  # noqa: E402
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO  # noqa: E402

from pyro_vae import MLP, Bernoulli, Normal, fit, load_dataset, make_elbo  # noqa: E402
from pyro_vae.families.posteriors import Delta  # noqa: E402
from pyro_vae.families.priors import Flat, SparseLaplace  # noqa: E402
from pyro_vae.inference.traces import elbo_terms  # noqa: E402
from pyro_vae.models.autoencoders import Autoencoder  # noqa: E402


def _ae(prior=None, corruption=None, contraction=0.0, likelihood=None, d=64, k=4, hidden=(16,)):
    likelihood = likelihood or Bernoulli()
    return Autoencoder(MLP(d, list(hidden), k, "tanh"), MLP(k, list(hidden), d, "tanh"),
                       prior=prior or Flat(k), likelihood=likelihood, posterior=Delta(),
                       corruption=corruption, contraction=contraction)


def _bce(ae, x_in, x):
    logits = ae.decoder(ae.encoder(x_in))
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


@pytest.mark.parametrize("kind", ["ae", "sparse", "contractive", "denoising"])
def test_negative_elbo_is_the_regularised_loss_term_by_term(kind, digits):
    """With a point-mass code, -ELBO = L(x, g(f(x~))) - log p(h) + lambda_c ||J_f(x)||^2, exactly."""
    x, lam, lam_c = digits.x_train[:9], 0.7, 0.3
    ae = _ae(prior=SparseLaplace(4, lam) if kind == "sparse" else None,
             corruption=Masking(0.3) if kind == "denoising" else None,
             contraction=lam_c if kind == "contractive" else 0.0)
    pyro.set_rng_seed(1)
    x_in = ae.corruption(x) if ae.corruption is not None else x  # the draw the guide will make
    with torch.no_grad():
        h = ae.encoder(x_in)
        rec = -_bce(ae, x_in, x)
        neg_log_prior = lam * h.abs().sum(-1) - 4 * math.log(lam / 2) if kind == "sparse" else torch.zeros(9)
        penalty = -lam_c * jacobian_frobenius_sq(ae.encoder, x) if kind == "contractive" else torch.zeros(9)
    for objective in (Trace_ELBO(), TraceMeanField_ELBO()):
        pyro.set_rng_seed(1)
        loss = objective.loss(ae.model, ae.guide, x)
        assert loss == pytest.approx((-rec + neg_log_prior - penalty).sum().item(), rel=1e-5)
    pyro.set_rng_seed(1)
    terms = elbo_terms(ae.model, ae.guide, x)
    assert torch.allclose(terms["reconstruction"], rec, atol=1e-4)
    assert torch.allclose(terms["kl"], neg_log_prior, atol=1e-4)
    assert torch.allclose(terms["penalty"], penalty, atol=1e-5)


def test_linear_autoencoder_reaches_the_pca_error():
    """Linear encoder/decoder + squared error spans the principal subspace (Baldi & Hornik 1989)."""
    from sklearn.decomposition import PCA

    x, k = load_dataset("digits", binarize="none").x_train, 5
    ae = Autoencoder(MLP(64, [], k), MLP(k, [], 64), prior=Flat(k), likelihood=Normal(1.0),
                     posterior=Delta())
    opt, elbo = torch.optim.Adam(ae.parameters(), lr=2e-2), make_elbo("trace")
    for _ in range(1500):
        opt.zero_grad()
        elbo.loss_and_grads(ae.model, ae.guide, x)
        opt.step()
    err_ae = ((ae.reconstruct(x) - x) ** 2).sum(1).mean().item()
    pca = PCA(k).fit(x.numpy())
    err_pca = ((torch.tensor(pca.inverse_transform(pca.transform(x.numpy()))) - x) ** 2).sum(1).mean().item()
    assert err_pca <= err_ae < 1.03 * err_pca, (err_ae, err_pca)


def test_denoising_beats_plain_on_corrupted_inputs(digits):
    """Same nets, data and budget: the denoising AE reconstructs clean digits from masked ones better."""
    from pyro_vae.diagnostics.representations import reconstruction_error

    errors = {}
    for name, corruption in [("plain", None), ("denoising", Masking(0.5))]:
        pyro.set_rng_seed(0)
        ae = _ae(corruption=corruption, k=8, hidden=(64,))
        fit(ae, digits, make_elbo("trace"), epochs=40, batch_size=64, lr=3e-3, quiet=True)
        torch.manual_seed(123)
        corrupted = Masking(0.5)(digits.x_test)
        errors[name] = reconstruction_error(ae, corrupted, digits.x_test)["nll"]
    assert errors["denoising"] < 0.9 * errors["plain"], errors


# --- command line ------------------------------------------------------------------------------

FAST = ["--dataset", "digits", "--hidden", "32", "--latent-dim", "4", "--batch-size", "200", "--quiet"]


@pytest.mark.parametrize("model", ["ae", "sparse-ae", "denoising-ae", "contractive-ae"])
def test_cli_trains_and_evaluates_each_autoencoder(model, tmp_path):
    import json

    from pyro_vae.cli import main

    out = tmp_path / model
    assert main(["train", "--model", model, *FAST, "--epochs", "1", "--out", str(out)]) == 0
    assert main(["evaluate", str(out), "--quiet"]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["verdict"]["level"] == "not-a-bound" and report["num_samples"] == 1
    for key in ["reconstruction_error", "reconstruction_error_corrupted", "code_frac_near_zero",
                "jacobian_frobenius_sq", "probe_accuracy", "probe_accuracy_pca", "probe_accuracy_pixels"]:
        assert key in report
    assert (out / "denoising.png").exists() == (model == "denoising-ae")


def test_cli_refuses_a_prior_or_posterior_for_an_autoencoder(tmp_path, capsys):
    from pyro_vae.cli import main

    assert main(["train", "--model", "ae", "--prior", "mog:3", *FAST, "--out", str(tmp_path / "r")]) == 2
    assert "fixes its code term" in capsys.readouterr().err
    assert main(["train", "--model", "denoising-ae", "--noise", "masking:1.5", *FAST,
                 "--out", str(tmp_path / "r")]) == 2
    assert "probability in (0, 1)" in capsys.readouterr().err
