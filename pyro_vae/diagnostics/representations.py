"""What a code is worth: reconstruction errors, code statistics and linear probes.

Works for any model with ``encode(x) -> (B, Z)`` (the point code of an autoencoder, the posterior
mean of a VAE), ``decoder`` and ``likelihood``.
"""

import numpy as np
import torch

from ..models.autoencoders import jacobian_frobenius_sq

SPARSITY_THRESHOLD = 0.05  # |h_j| below this counts as "near zero"


@torch.no_grad()
def reconstruction_error(model, x_in, x_target, batch_size=1000):
    """Mean over rows of -log p(x_target | g(f(x_in))) (nats: cross-entropy or scaled squared error)
    and of the squared error ||x_target - E[x | g(f(x_in))]||^2."""
    nll, sq = 0.0, 0.0
    for start in range(0, len(x_in), batch_size):
        xi, xt = x_in[start : start + batch_size], x_target[start : start + batch_size]
        out = model.decoder(model.encode(xi))
        nll -= model.likelihood(out, event_dim=1).log_prob(xt).double().sum().item()
        sq += ((model.likelihood.mean(out) - xt) ** 2).double().sum().item()
    return {"nll": nll / len(x_in), "squared_error": sq / len(x_in)}


@torch.no_grad()
def codes(model, x, batch_size=1000):
    return torch.cat([model.encode(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def code_statistics(model, x, max_rows=1000):
    """Mean |h_j|, the share of entries with |h_j| < SPARSITY_THRESHOLD, and the mean squared
    Frobenius norm of the encoder Jacobian over (up to) ``max_rows`` rows of ``x``."""
    h = codes(model, x)
    jac = jacobian_frobenius_sq(model.encoder, x[:max_rows]).detach()
    return {"code_mean_abs": h.abs().mean().item(),
            "code_frac_near_zero": (h.abs() < SPARSITY_THRESHOLD).float().mean().item(),
            "sparsity_threshold": SPARSITY_THRESHOLD,
            "jacobian_frobenius_sq": jac.mean().item()}


def probe_accuracy(train_features, y_train, test_features, y_test, seed=0):
    """Test accuracy of a multinomial logistic regression fit on standardised train features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    clf.fit(np.asarray(train_features), np.asarray(y_train))
    return float(clf.score(np.asarray(test_features), np.asarray(y_test)))


def probe_rows(data, num_test):
    """``(train rows, test rows)`` the probes use when the report covers the first ``num_test`` test
    images: the training rows in the data set's own proportion (all of them for the whole test split).

    Example::

        >>> from types import SimpleNamespace
        >>> data = SimpleNamespace(num_train=4000, x_test=torch.zeros(1000, 1))
        >>> probe_rows(data, 1000), probe_rows(data, 20)
        ((4000, 1000), (80, 20))
    """
    total = len(data.x_test)
    num_test = min(num_test, total)
    return (data.num_train if num_test >= total else min(data.num_train, -(-data.num_train * num_test // total)),
            num_test)


def probes(model, data, num_test=None):
    """Linear-probe accuracy of the model's codes, of PCA codes of the same size and of raw pixels,
    on the first ``num_test`` test rows (default all) with the training rows of :func:`probe_rows`."""
    from sklearn.decomposition import PCA

    if data.y_train is None or data.y_test is None:
        return {}
    num_train, num_test = probe_rows(data, len(data.x_test) if num_test is None else num_test)
    device = next(model.parameters()).device
    x_train = data.served_sample(len(data.x_train))[:num_train]  # as training saw it (one fixed binarisation)
    y_train, x_test, y_test = data.y_train[:num_train], data.x_test[:num_test], data.y_test[:num_test]
    if len(torch.unique(y_train)) < 2:  # a classifier needs two classes to fit
        return {"probe_train_rows": num_train, "probe_test_rows": num_test}
    h_train, h_test = codes(model, x_train.to(device)).cpu(), codes(model, x_test.to(device)).cpu()
    pca = PCA(n_components=min(h_train.shape[1], *x_train.shape), random_state=0).fit(x_train.numpy())
    return {
        "probe_accuracy": probe_accuracy(h_train, y_train, h_test, y_test),
        "probe_accuracy_pca": probe_accuracy(pca.transform(x_train.numpy()), y_train,
                                             pca.transform(x_test.numpy()), y_test),
        "probe_accuracy_pixels": probe_accuracy(x_train, y_train, x_test, y_test),
        "probe_train_rows": num_train, "probe_test_rows": num_test,
    }


def report(model, data, corruption, seed=0, max_rows=None):
    """The representation keys of ``eval.json`` for any model with a point code or posterior mean.

    Reconstruction errors on clean test inputs and on inputs corrupted by ``corruption`` (one seeded
    draw; the target is always the clean input), code statistics, and the three linear probes, all
    on the first ``max_rows`` test rows (default all; the probes then fit on the training rows of
    :func:`probe_rows`).
    """
    x = data.x_test if max_rows is None else data.x_test[:max_rows]
    device = next(model.parameters()).device
    x = x.to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        corrupted = corruption(x)
    clean, noisy = reconstruction_error(model, x, x), reconstruction_error(model, corrupted, x)
    out = {"reconstruction_error": clean["nll"], "reconstruction_squared_error": clean["squared_error"],
           "reconstruction_error_corrupted": noisy["nll"],
           "reconstruction_squared_error_corrupted": noisy["squared_error"],
           "corruption": corruption.spec(), "code_rows": len(x), **code_statistics(model, x)}
    return {**out, **probes(model, data, len(x))}
