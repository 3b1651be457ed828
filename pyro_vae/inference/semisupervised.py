"""Training M2 from a few labels: the objective J^alpha of Kingma et al. (2014) and its SVI loop.

Each step draws a minibatch of unlabelled images and one of labelled (image, label) pairs and
minimises, per training point,

    -J^alpha / N = -[ (N_u / B_u) sum U(x)  +  (N_l / B_l) sum L(x, y)  +  alpha (1 / B_l) sum log q(y | x) ] / N

an unbiased estimate of the full-data objective (``U``: the unlabelled ELBO with y summed out by
``TraceEnum_ELBO``; ``L``: the labelled ELBO; see :mod:`pyro_vae.models.m2`). An epoch is one pass
over the unlabelled images; the labelled ones are drawn in reshuffled passes of their own, as many
as the steps need. The checkpoint (parameters, Adam, both random streams, history) is written after
every epoch, so a resumed run continues exactly as an uninterrupted one.
"""

import contextlib
import math
import statistics
import time
from dataclasses import dataclass

import pyro
import torch
from pyro.infer import Trace_ELBO

from ..errors import UserError, check_int, check_positive
from .enumeration import EnumELBO
from .train_state import TrainState

ALPHA_PER_POINT = 0.1  # Kingma et al. (2014): alpha = 0.1 N


@dataclass
class SemiSupervisedData:
    """The training images split into labelled and unlabelled ones, and the test set.

    ``x_*`` are ``(N, D)`` grey levels in [0, 1] when ``dynamic`` (each minibatch a fresh Bernoulli
    draw), else as they are scored; ``y_*`` are ``(N,)`` int64.
    """

    x_labelled: torch.Tensor  # (L, D)
    y_labelled: torch.Tensor  # (L,)
    x_unlabelled: torch.Tensor  # (N - L, D)
    x_test: torch.Tensor  # (M, D), as scored (binarised once when dynamic)
    y_test: torch.Tensor  # (M,)
    dynamic: bool = False  # draw x ~ Bernoulli(grey level) for every training minibatch

    @property
    def num_train(self):
        return len(self.x_labelled) + len(self.x_unlabelled)

    @classmethod
    def from_dataset(cls, data, split):
        """From a :class:`~pyro_vae.data.Dataset` (plain rows, not a labelled view) and a
        :class:`~pyro_vae.labels.LabelSplit` of its training set."""
        if data.label_columns:
            raise UserError("give the data set itself, not its labelled view", param="data")
        return cls(x_labelled=data.x_train[split.labelled], y_labelled=data.y_train[split.labelled],
                   x_unlabelled=data.x_train[split.unlabelled], x_test=data.x_test, y_test=data.y_test,
                   dynamic=data.binarize == "dynamic")


class SemiSupervisedObjective:
    """``-J^alpha / N`` on one labelled and one unlabelled minibatch (differentiable).

    :param float alpha: weight of the classification term (per labelled point's mean), e.g. 0.1 N.
    :param int num_labelled: N_l.
    :param int num_unlabelled: N_u.
    """

    def __init__(self, alpha, num_labelled, num_unlabelled):
        self.alpha = check_positive("alpha", alpha)
        self.num_labelled = check_int("num_labelled", num_labelled)
        self.num_unlabelled = check_int("num_unlabelled", num_unlabelled, least=0)
        self.unlabelled_elbo = EnumELBO(max_plate_nesting=1)  # y enumerated in the guide: summed exactly
        self.labelled_elbo = Trace_ELBO(max_plate_nesting=1)  # y observed: nothing to enumerate

    @property
    def num_data(self):
        return self.num_labelled + self.num_unlabelled

    def terms(self, m2, x_unlabelled, x_labelled, y_labelled):
        """The three estimated terms, each summed over its full set (a scalar tensor each):
        ``unlabelled`` (sum U), ``labelled`` (sum L) and ``classification`` (alpha E_l log q(y|x))."""
        unlabelled = torch.zeros(())
        if len(x_unlabelled):
            unlabelled = -self.unlabelled_elbo.differentiable_loss(m2.model, m2.guide, x_unlabelled,
                                                                   num_data=self.num_unlabelled)
        labelled = -self.labelled_elbo.differentiable_loss(m2.model, m2.guide, x_labelled, y_labelled,
                                                  num_data=self.num_labelled)
        classification = self.alpha * m2.log_classifier(x_labelled, y_labelled).mean()
        return {"unlabelled": unlabelled, "labelled": labelled, "classification": classification}

    def __call__(self, m2, x_unlabelled, x_labelled, y_labelled):
        terms = self.terms(m2, x_unlabelled, x_labelled, y_labelled)
        return -(terms["unlabelled"] + terms["labelled"] + terms["classification"]) / self.num_data


def default_alpha(num_data):
    """alpha = 0.1 N (Kingma et al. 2014, section 3.1.2)."""
    return ALPHA_PER_POINT * num_data


@torch.no_grad()
def classification_error(m2, x, y, batch_size=1000):
    """Share of ``x``'s rows whose most probable label under q(y | x) is not ``y`` (a float)."""
    wrong = 0
    for start in range(0, len(x), batch_size):
        wrong += int((m2.classify(x[start : start + batch_size]) != y[start : start + batch_size]).sum())
    return wrong / len(x)


@torch.no_grad()
def unlabelled_terms(m2, x, batch_size=1000):
    """Mean unlabelled ELBO U(x) per row of ``x`` and its terms (y summed exactly, one z per label)."""
    totals = {"elbo": 0.0, "reconstruction": 0.0, "kl": 0.0}
    for start in range(0, len(x), batch_size):
        terms = m2.enumerated_terms(x[start : start + batch_size])
        for key in totals:
            totals[key] += terms[key].double().sum().item()
    return {key: total / len(x) for key, total in totals.items()}


def fit_semisupervised(m2, data, epochs=10, batch_size=100, labelled_batch_size=100, lr=3e-4, alpha=None,
                       betas=(0.9, 0.999), eps=1e-8, seed=0, run=None, resume=False, on_epoch=None,
                       eval_batch_size=1000):
    """Train the M2 model ``m2`` on ``data`` (:class:`SemiSupervisedData`) by maximising J^alpha with Adam.

    :param int batch_size: B_u, unlabelled images per step.
    :param int labelled_batch_size: B_l (at most L).
    :param float alpha: the classification weight (default 0.1 N).
    :param run: an object with ``save_checkpoint(state)``, ``load_checkpoint()`` and
        ``write_history(rows)`` (e.g. :class:`~pyro_vae.experiment.runs.RunDir`), written after every epoch.
    :param bool resume: continue from ``run``'s checkpoint up to ``epochs`` in total.
    :param on_epoch: called with each epoch's history row (e.g. to print it).
    :returns: the history: per epoch ``train_loss`` (-J^alpha / N), ``test_elbo`` (the unlabelled
        ELBO, y summed out) and its terms ``test_reconstruction``, ``test_kl``, ``test_error``,
        ``labelled_error`` (on the labelled training images), ``seconds``, ``eval_seconds``.

    Example::

        >>> import pyro, pyro_vae as pv
        >>> from pyro_vae.inference.semisupervised import SemiSupervisedData, fit_semisupervised
        >>> d = pv.load_dataset("digits", binarize="static")
        >>> split = pv.label_split(d.y_train, 50, seed=0)
        >>> pyro.set_rng_seed(0)
        >>> lik, post = pv.Bernoulli(), pv.DiagonalNormal()
        >>> m2 = pv.SemiSupervisedVAE(pv.MLP(64, [64], 10), pv.ConditionalMLP(64, 10, [64], post.num_params(4)),
        ...                           pv.ConditionalMLP(4, 10, [64], lik.num_params(64)), num_classes=10, z_dim=4)
        >>> history = fit_semisupervised(m2, SemiSupervisedData.from_dataset(d, split), epochs=2, lr=1e-3)
        >>> [row["epoch"] for row in history], history[-1]["test_error"] < 0.9
        ([1, 2], True)
    """
    num_labelled, num_unlabelled = len(data.x_labelled), len(data.x_unlabelled)
    batch_size = check_int("batch_size", batch_size)
    labelled_batch_size = min(check_int("labelled_batch_size", labelled_batch_size), num_labelled)
    objective = SemiSupervisedObjective(default_alpha(data.num_train) if alpha is None else alpha,
                                        num_labelled, num_unlabelled)
    state = TrainState(m2, lr, betas, eps)
    if resume:
        state.load(m2, run.load_checkpoint(), lr, betas, eps)
        state.restore_rng()
    else:
        state.seed(seed)
    labelled_rng = state.data_rng  # one stream for both orders: checkpointed with the state
    for epoch in range(state.epoch + 1, epochs + 1):
        m2.train()
        t0, losses = time.perf_counter(), []
        labelled = _labelled_batches(num_labelled, labelled_batch_size, labelled_rng)
        order = torch.randperm(num_unlabelled, generator=labelled_rng)
        steps = max(1, math.ceil(num_unlabelled / batch_size))
        for step in range(steps):
            xu = _draw(data.x_unlabelled[order[step * batch_size : (step + 1) * batch_size]], data.dynamic,
                       labelled_rng)
            index = next(labelled)
            xl, yl = _draw(data.x_labelled[index], data.dynamic, labelled_rng), data.y_labelled[index]
            state.optimizer.zero_grad(set_to_none=True)
            # Pyro's per-step argument checks on the first step of a run only (as ``fit``: see .step)
            with contextlib.nullcontext() if not losses and epoch == state.epoch + 1 else \
                    pyro.validation_enabled(False):
                loss = objective(m2, xu, xl, yl)
            if not torch.isfinite(loss):
                raise UserError(f"the loss became {loss.item()} at epoch {epoch}, step {step + 1}; the last "
                                "checkpoint is kept: resume with a lower lr", param="lr")
            loss.backward()
            state.optimizer.step()
            losses.append(loss.item())
        m2.eval()
        seconds, t0 = time.perf_counter() - t0, time.perf_counter()
        test = unlabelled_terms(m2, data.x_test, eval_batch_size)
        row = {"epoch": epoch, "train_loss": statistics.fmean(losses), "test_elbo": test["elbo"],
               "test_reconstruction": test["reconstruction"], "test_kl": test["kl"],
               "test_error": classification_error(m2, data.x_test, data.y_test, eval_batch_size),
               "labelled_error": classification_error(m2, _scored(data.x_labelled, data.dynamic), data.y_labelled,
                                                      eval_batch_size),
               "seconds": seconds}
        row["eval_seconds"] = time.perf_counter() - t0
        state.history.append(row)
        state.epoch = epoch
        if run is not None:
            run.save_checkpoint(state.checkpoint(m2))
            run.write_history(state.history)
        if on_epoch is not None:
            on_epoch(row)
    return state.history


@torch.no_grad()
def averaged_classification_error(m2, grey, y, num_draws=20, seed=0, batch_size=1000):
    """Share of images whose most probable label under E_x[q(y | x)], averaged over ``num_draws``
    Bernoulli draws x of the grey levels ``grey`` ``(N, D)``, is not ``y``: the classifier of a model
    trained on dynamically binarised images, applied to the distribution it was trained on."""
    generator = torch.Generator(device=grey.device).manual_seed(seed)
    wrong = 0
    for start in range(0, len(grey), batch_size):
        xb = grey[start : start + batch_size]
        probs = sum(torch.softmax(m2.classifier(torch.bernoulli(xb, generator=generator)), -1)
                    for _ in range(num_draws))
        wrong += int((probs.argmax(-1) != y[start : start + batch_size]).sum())
    return wrong / len(grey)


def _labelled_batches(num_labelled, batch_size, generator):
    """Endless index batches of ``batch_size`` over reshuffled passes of the labelled set."""
    while True:
        order = torch.randperm(num_labelled, generator=generator)
        for start in range(0, num_labelled - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def _draw(x, dynamic, generator):
    return torch.bernoulli(x, generator=generator) if dynamic else x


def _scored(x, dynamic):
    """Training images as scored: one fixed Bernoulli draw of grey levels (seed 0) when dynamic."""
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(0)) if dynamic else x
