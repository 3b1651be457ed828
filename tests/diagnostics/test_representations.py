import torch
import torch.nn as nn

from pyro_vae import MLP, Bernoulli
from pyro_vae.diagnostics.representations import code_statistics, probe_accuracy, reconstruction_error, report
from pyro_vae.families.noises import Masking
from pyro_vae.families.posteriors import Delta
from pyro_vae.families.priors import Flat
from pyro_vae.models.autoencoders import Autoencoder


def test_probe_separates_separable_features_and_not_noise():
    g = torch.Generator().manual_seed(0)
    y_train, y_test = torch.randint(0, 3, (300,), generator=g), torch.randint(0, 3, (100,), generator=g)
    onehot = lambda y: nn.functional.one_hot(y, 3).float() + 0.1 * torch.randn(len(y), 3, generator=g)  # noqa
    assert probe_accuracy(onehot(y_train), y_train, onehot(y_test), y_test) == 1.0
    noise = lambda n: torch.randn(n, 3, generator=g)  # noqa: E731
    assert probe_accuracy(noise(300), y_train, noise(100), y_test) < 0.5


def _linear_ae(weight):
    enc = nn.Linear(4, 2)
    with torch.no_grad():
        enc.weight.copy_(weight)
        enc.bias.zero_()
    return Autoencoder(nn.Sequential(enc), MLP(2, [], 4), prior=Flat(2), likelihood=Bernoulli(), posterior=Delta())


def test_code_statistics_of_a_known_linear_encoder():
    w = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])  # h = (x_1, 0)
    x = torch.tensor([[0.5, 1.0, 0.0, 1.0], [0.02, 0.0, 1.0, 1.0]])
    stats = code_statistics(_linear_ae(w), x)
    assert stats["jacobian_frobenius_sq"] == 1.0  # ||W||_F^2
    assert abs(stats["code_mean_abs"] - (0.5 + 0.02) / 4) < 1e-6
    assert stats["code_frac_near_zero"] == 0.75  # 0.02 and both zeros


def test_reconstruction_error_is_the_summed_cross_entropy():
    ae = _linear_ae(torch.eye(2, 4))
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    logits = ae.decoder(ae.encoder(x))
    bce = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum").item()
    assert abs(reconstruction_error(ae, x, x)["nll"] - bce) < 1e-5


def test_report_has_every_key(digits):
    from tests.helpers import small_vae

    vae = small_vae()
    r = report(vae, digits, Masking(0.3))
    for key in ["reconstruction_error", "reconstruction_error_corrupted", "code_mean_abs", "code_frac_near_zero",
                "jacobian_frobenius_sq", "probe_accuracy", "probe_accuracy_pca", "probe_accuracy_pixels"]:
        assert key in r
    assert r["reconstruction_error_corrupted"] > r["reconstruction_error"]  # masking hurts an ordinary encoder
    assert r["probe_accuracy_pixels"] > 0.7  # 10 classes: far above chance
