"""The family table of the models that read labels or quadrants: each row is built from its specs as
``pyro-vae train`` builds it (data prepared by ``build_data``), trains a few steps and must improve a
finite ELBO of its scored pair; the combinations that make no sense are refused in one line."""

import math

import pyro
import pytest
import torch

from pyro_vae.errors import UserError
from pyro_vae.experiment.build import build_data, build_elbo, build_model
from pyro_vae.experiment.config import TrainConfig
from pyro_vae.inference.traces import elbo_terms

#            model               prior     likelihood       posterior       objective    binarize
CASES = [
    ("cvae", "normal", "bernoulli", "diag", "meanfield", "static"),
    ("cvae", "mog:3", "bernoulli", "iaf:1", "iwae:3", "static"),
    ("cvae", "normal", "cbernoulli", "full", "trace", "none"),
    ("cvae", "normal", "normal-hetero", "lowrank:1", "stl", "none"),
    ("cvae-quadrants:2", "normal", "bernoulli", "diag", "meanfield", "static"),
    ("cvae-quadrants:1", "normal", "cbernoulli", "full", "iwae:3", "none"),
    ("m2", "normal", "bernoulli", "diag", "enum", "static"),
    ("m2", "mog:3", "cbernoulli", "lowrank:1", "enum", "none"),
]


def _config(**kw):
    return TrainConfig(**{**dict(dataset="digits", latent_dim=3, hidden=[32], labels=50), **kw}).validate()


@pytest.mark.parametrize("model, prior, likelihood, posterior, elbo, binarize", CASES,
                         ids=["-".join(c[:4]) for c in CASES])
def test_conditional_family_trains(model, prior, likelihood, posterior, elbo, binarize):
    config = _config(model=model, prior=prior, likelihood=likelihood, posterior=posterior, elbo=elbo,
                     binarize=binarize)
    data = build_data(config)
    vae = build_model(config, data)
    objective = build_elbo(config, vae)
    x_eval = data.x_test[:200]

    def neg_elbo():
        pyro.set_rng_seed(123)
        with torch.no_grad():
            terms = vae.enumerated_terms(x_eval) if vae.classifies else elbo_terms(vae.model, vae.guide, x_eval)
        assert all(torch.isfinite(t).all() for t in terms.values())
        return -terms["elbo"].mean().item()

    before = neg_elbo()
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(12):
        xb = data.x_train[torch.randint(0, data.num_train, (64,), generator=gen)]
        optimizer.zero_grad()
        assert math.isfinite(objective.loss_and_grads(vae.model, vae.guide, xb, num_data=data.num_train))
        optimizer.step()
    assert neg_elbo() < before - 1.0


@pytest.mark.parametrize("overrides, message", [
    (dict(model="cvae", prior="vamp:4"), r"vamp:4 .* no q\(z \| x\)"),
    (dict(model="m2", prior="vamp:4"), r"vamp:4 .* no q\(z \| x\)"),
    (dict(model="cvae", arch="conv"), r"fully connected networks .* drop arch='conv'"),
    (dict(model="cvae-quadrants:2", prior="mog:3"), r"prior network .* drop `prior`"),
    (dict(model="m2", labels=55), r"num_labels=55 is not a multiple of the 10 classes"),
])
def test_conditional_nonsense_is_refused(overrides, message):
    config = _config(**overrides)
    with pytest.raises(UserError, match=message) as e:
        build_model(config, build_data(config))
    assert "\n" not in str(e.value)
