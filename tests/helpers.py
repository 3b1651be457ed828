"""Shared test helpers (import them from here, never from conftest): a small digits VAE, and the digits
as an 8-bit npz file."""

import torch


def small_vae(data_dim=64, z_dim=3, hidden=(16,), likelihood=None, seed=0):
    from pyro_vae import MLP, VAE, Bernoulli, DiagonalNormal, StandardNormal

    torch.manual_seed(seed)
    likelihood = likelihood or Bernoulli()
    posterior = DiagonalNormal()
    return VAE(MLP(data_dim, list(hidden), posterior.num_params(z_dim)),
               MLP(z_dim, list(hidden)[::-1], likelihood.num_params(data_dim)),
               prior=StandardNormal(z_dim), likelihood=likelihood, posterior=posterior)


def digits_8bit(folder, colour=False):
    """scikit-learn's digits as 8-bit levels (round(v / 16 * 255), uint8) in ``folder/digits8.npz``,
    loaded with ``binarize="none"``; ``colour=True`` stores them as (N, H, W, 3) with the three
    channels scaled by 1, 0.5 and 0.25."""
    import numpy as np
    from sklearn.datasets import load_digits

    from pyro_vae.data import load_dataset

    d = load_digits()
    x = np.round(d.images / 16 * 255)  # (1797, 8, 8)
    if colour:
        x = np.round(x[..., None] * np.array([1.0, 0.5, 0.25]))
    x = x.astype(np.uint8)
    path = f"{folder}/digits8{'-colour' if colour else ''}.npz"
    np.savez(path, x_train=x[:1437], x_test=x[1437:], y_train=d.target[:1437], y_test=d.target[1437:])
    return load_dataset(f"npz:{path}", binarize="none")
