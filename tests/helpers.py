"""Shared test helpers (import them from here, never from conftest): a small digits VAE."""

import torch


def small_vae(data_dim=64, z_dim=3, hidden=(16,), likelihood=None, seed=0):
    from pyro_vae import VAE, MLP, DiagonalNormal, StandardNormal, Bernoulli

    torch.manual_seed(seed)
    likelihood = likelihood or Bernoulli()
    posterior = DiagonalNormal()
    return VAE(MLP(data_dim, list(hidden), posterior.num_params(z_dim)),
               MLP(z_dim, list(hidden)[::-1], likelihood.num_params(data_dim)),
               prior=StandardNormal(z_dim), likelihood=likelihood, posterior=posterior)
