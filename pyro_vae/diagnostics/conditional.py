"""What the report adds for models that read labels or predict hidden pixels, beside the bounds of their
scored pair (:meth:`~pyro_vae.models.base.LatentModel.scored_programs`):

- M2 (``model.classifies``): the test error of its classifier q(y | x), and bounds on log p(x, y) of
  the labelled points (the pair ``joint_model``/``joint_guide`` on rows ``[x, one_hot(y)]``) with their
  own L_K curve and k-hat;
- the quadrant CVAE (``model.predicts_hidden``): the baseline network's -log p(x_h | x_v), its masked
  cross-entropy, exact (no latent), beside the CVAE's bounds on log p(x_h | x_v).
"""

import torch

from ..inference.semisupervised import classification_error
from ..labels import pack
from .report import tightness_report
from .tightness import mean_and_stderr

JOINT_KEYS = ("num_images", "num_samples", "elbo", "log_likelihood", "gap", "bound_curve", "stderr", "khat",
              "ess_median", "verdict")


def task_report(model, x, y=None, num_samples=1000, batch_size=100, seed=0, progress=None):
    """The entries of ``eval.json`` beside the bounds: ``bound_target`` and ``conditional`` always,
    ``classification`` and ``joint`` for M2, ``baseline`` for the quadrant CVAE.

    :param model: a :class:`~pyro_vae.models.base.LatentModel`.
    :param x: ``(N, ...)`` the rows its bounds scored.
    :param y: ``(N,)`` their labels (M2).
    :param num_samples: S of the joint bounds.
    :param batch_size: rows at a time.
    :param seed: the joint bounds' seed.
    :param progress: ``tightness_report``'s progress factory.

    Example::

        >>> import pyro_vae as pv
        >>> lik, post = pv.Bernoulli(), pv.DiagonalNormal()
        >>> m2 = pv.SemiSupervisedVAE(pv.MLP(16, [8], 3), pv.ConditionalMLP(16, 3, [8], post.num_params(2)),
        ...                           pv.ConditionalMLP(2, 3, [8], lik.num_params(16)), num_classes=3, z_dim=2)
        >>> r = task_report(m2, torch.bernoulli(torch.full((6, 16), 0.4)), torch.tensor([0, 1, 2, 0, 1, 2]),
        ...                 num_samples=20)
        >>> r["bound_target"], sorted(r["classification"]), r["joint"]["num_images"]
        ('log p(x)', ['error', 'num_images'], 6)
    """
    report = {"bound_target": model.bound_target, "conditional": model.conditional_bound}
    if model.classifies:
        report["classification"] = {"error": classification_error(model, x, y, batch_size), "num_images": len(x)}
        joint = tightness_report(model.joint_model, model.joint_guide, pack(x, y, model.num_classes), num_samples,
                                 batch_size=batch_size, seed=seed, progress=progress, print_table=False)
        report["joint"] = {key: joint[key] for key in JOINT_KEYS}
        report["joint"]["bound_target"] = "log p(x, y)"
    if model.predicts_hidden:
        with torch.no_grad():
            scores = torch.cat([model.baseline_log_likelihood(x[start : start + batch_size])
                                for start in range(0, len(x), batch_size)])
        mean, stderr = mean_and_stderr(scores)
        report["baseline"] = {"log_likelihood": mean, "stderr": stderr, "cross_entropy": -mean,
                              "num_images": len(x), "bound_target": "log p_baseline(x_hidden | x_visible), exact"}
    return report


def retarget(report, target):
    """``report``'s verdict messages, written for log p(x), about ``target`` instead (e.g. log p(x | y))."""
    if target == "log p(x)":
        return report
    for verdict in [report["verdict"], *report["verdict"].values()]:
        if isinstance(verdict, dict) and "message" in verdict:
            verdict["message"] = verdict["message"].replace("log p(x)", target)
    return report


def format_task(report):
    """Lines for the printed table: what the bounds are on, and the entries of :func:`task_report`."""
    lines = [f"bounds on {report['bound_target']}" + (" (conditional)" if report["conditional"] else "")]
    if "classification" in report:
        c = report["classification"]
        lines.append(f"classifier q(y|x): test error {100 * c['error']:.2f}% on {c['num_images']} images")
        j = report["joint"]
        lines.append(f"log p(x, y): ELBO {j['elbo']:.3f}, L_{j['num_samples']} {j['log_likelihood']:.3f} "
                     f"+- {j['stderr']['log_likelihood']:.3f} nats, verdict {j['verdict']['level']}")
    if "baseline" in report:
        b = report["baseline"]
        lines.append(f"baseline network: -log p(x_hidden | x_visible) = masked cross-entropy {b['cross_entropy']:.3f} "
                     f"+- {b['stderr']:.3f} nats")
    return "\n".join(lines)
