"""Build data, model and objective from a :class:`~pyro_vae.config.TrainConfig`."""

from dataclasses import dataclass

import torch

from . import likelihoods, posteriors, priors, specs
from .data import load_dataset
from .errors import UserError
from .models import VAE
from .nets import MLP
from .objectives import make_elbo
from .runs import RunDir


def build_data(config):
    return load_dataset(config.dataset, data_dir=config.data_dir, binarize=config.binarize,
                        download=config.download)


def build_vae(config, data_dim):
    """An MLP encoder/decoder VAE with the prior, likelihood and posterior the config names."""
    ctx = specs.Context(z_dim=config.latent_dim, data_dim=data_dim)
    prior = specs.build(priors.REGISTRY, config.prior, "prior", ctx)
    likelihood = specs.build(likelihoods.REGISTRY, config.likelihood, "likelihood", ctx)
    posterior = specs.build(posteriors.REGISTRY, config.posterior, "posterior", ctx)
    hidden = list(config.hidden)
    encoder = MLP(data_dim, hidden, posterior.num_params(config.latent_dim), config.activation)
    decoder = MLP(config.latent_dim, hidden[::-1], likelihood.num_params(data_dim), config.activation)
    return VAE(encoder, decoder, prior=prior, likelihood=likelihood, posterior=posterior)


MODELS = {
    "vae": specs.Choice("vae", "VAE with one stochastic layer", lambda arg, ctx: build_vae),
}


def build_model(config, data):
    """Check the data against the likelihood, then build the model on ``config.device``."""
    builder = specs.build(MODELS, config.model, "model", None)
    model = builder(config, data.data_dim)
    fix = "; binarize it (--binarize dynamic or static) or use --likelihood normal:0.1"
    model.likelihood.check_data(data.served_sample(), fix=fix)
    model.likelihood.check_data(data.x_test, fix=fix)
    return model.to(device(config.device))


def build_elbo(config):
    return make_elbo(config.elbo, num_particles=config.num_particles)


def device(name):
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda but CUDA is not available here; use --device cpu")
        return torch.device("cuda")
    raise UserError(f"unknown --device {name!r}; choose cpu or cuda")


@dataclass
class LoadedRun:
    """A trained run: its directory, config, data and model with the checkpoint's parameters."""

    run: RunDir
    config: object  # TrainConfig
    data: object  # Dataset
    model: torch.nn.Module
    history: list  # per-epoch dicts, as in history.csv
    epoch: int


def load_run(path, device_name=None):
    """Rebuild the model of the run directory ``path`` and load its last checkpoint (eval mode)."""
    run = RunDir(path)
    config = run.config()
    if device_name is not None:
        config.device = device_name
    state = run.load_checkpoint(map_location=device(config.device))
    data = build_data(config)
    model = build_model(config, data)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as e:
        raise UserError(f"{run.file('checkpoint.pt')} does not match {run.file('config.json')} "
                        f"({str(e).splitlines()[0][:100]}); the run is corrupt") from None
    model.eval()
    return LoadedRun(run=run, config=config, data=data, model=model, history=list(state["history"]),
                     epoch=int(state["epoch"]))
