"""Shared test helpers (import them from here, never from conftest): a small digits VAE, the digits
as an 8-bit npz file, a graph step against eager Pyro, and a copy of a module's trained run."""

import shutil

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


def eager_and_graph(vae, elbo, x, num_data, kl_scale=None, mode="captured", seed=5):
    """``(loss, grads)`` of eager Pyro's ``loss_and_grads`` and of a
    :class:`~pyro_vae.inference.graph_step.GraphLoss`, on the same draws, and the GraphLoss."""
    from pyro_vae.inference.graph_step import GraphLoss

    params = list(vae.parameters())
    kwargs = {} if kl_scale is None else {"kl_scale": kl_scale}
    torch.manual_seed(seed)
    eager = elbo.loss_and_grads(vae.model, vae.guide, x, num_data=num_data, **kwargs)
    eager_grads = [None if p.grad is None else p.grad.clone() for p in params]
    vae.zero_grad(set_to_none=True)
    graph = GraphLoss(vae, elbo, params, num_data, mode=mode, kl_input=kl_scale is not None)
    torch.manual_seed(seed)
    loss = graph(x, kwargs)
    grads = [p.grad for p in params]
    after = torch.randn(3)  # the graph drew what eager drew: the stream goes on from the same state
    torch.manual_seed(seed)
    elbo.loss(vae.model, vae.guide, x, num_data=num_data, **kwargs)
    assert torch.equal(after, torch.randn(3))
    return (eager, eager_grads), (loss, grads), graph


def assert_close(eager, ours, rtol=1e-5):
    """Losses within ``rtol`` and each gradient within ``rtol`` of its norm; the same parameters without one."""
    import pytest

    (loss_e, grads_e), (loss_o, grads_o) = eager, ours
    assert loss_o == pytest.approx(loss_e, rel=rtol)
    assert len(grads_e) == len(grads_o)
    for a, b in zip(grads_e, grads_o, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert b.stride() == a.stride() and ((a - b).norm() <= rtol * a.norm()), ((a - b).norm(), a.norm())


def copy_run(root, tmp_path, name="vae"):
    """A copy of the run directory ``root / name`` in ``tmp_path``, for a test that changes it."""
    target = tmp_path / name
    shutil.copytree(root / name, target)
    return target
