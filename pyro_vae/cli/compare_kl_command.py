"""``pyro-vae compare-kl DIR``: sampled against analytic KL on a trained run, written to
``DIR/kl_comparison.json`` with its figures.

Four parts, from :mod:`pyro_vae.inference.kl_audit` and :mod:`pyro_vae.diagnostics.kl_study` except
the last:

``audit``     per latent site, the KL estimator ``TraceMeanField_ELBO`` uses (analytic or sampled);
              ``latent_order`` says whether the guide samples in the model's order (else it is biased).
``kl_check``  Monte-Carlo KL against the analytic value per test point, as z-scores (``mean_abs_z``).
``variance``  the ELBO estimate's variance and the gradient's variance and SNR per parameter group
              for ``trace`` and ``meanfield`` at several particle counts, paired draws, fixed batch.
``outcome``   (when asked) the run's configuration trained afresh with each objective, several
              seeds: final test ELBO, IWAE log-likelihood, seconds per epoch, and the test-ELBO curve
              of every epoch.
``estimators`` the same measurement, one particle, for every objective of ``--estimators`` (any of
              ``trace``, ``meanfield``, ``stl``, ``iwae:K``, ``iwae-dreg:K``;
              :mod:`pyro_vae.diagnostics.estimator_study`).
``snr_curve`` the gradient SNR per parameter group of ``iwae:K`` and ``iwae-dreg:K`` for K in ``--snr-k``
              (Rainforth et al. 2018), on the first ``--snr-batch-size`` rows of the fixed batch.
"""

import dataclasses
import math
import os
import statistics
import time

import pyro
import torch

from ..diagnostics.bounds import iwae
from ..diagnostics.estimator_study import check_estimators, estimator_study, snr_curve
from ..diagnostics.kl_study import estimator_variance, kl_check, summarize_kl_check
from ..errors import UserError, check_int
from ..experiment.build import build_elbo, build_model, fit_options
from ..experiment.estimates import compare_kl_need
from ..experiment.load import load_run
from ..experiment.runs import atomic_write_json, json_safe, save_png
from ..inference.kl_audit import kl_audit, latent_order
from ..inference.train import fit
from ..plots import gradient_snr_figure, learning_curves_figure, variance_ratio_figure
from .options import check_resources, set_threads

OBJECTIVES = ("trace", "meanfield")  # compared in this order; ratios are meanfield / trace
RESULT_FILE = "kl_comparison.json"
FIGURES = {"variance": "kl_variance_ratio.png", "outcome": "kl_learning_curves.png", "snr": "gradient_snr.png"}
ESTIMATORS = ("trace", "meanfield", "stl", "iwae:5", "iwae-dreg:5")  # default of --estimators
SNR_K = (1, 5, 50)  # default of --snr-k (K = 500 is opt-in: it alone costs several times the rest)


def compare_kl(loaded, repeats=100, num_particles=(1, 4), batch_size=128, kl_samples=100, kl_points=1000,
               outcome_epochs=None, seeds=(0, 1, 2), iwae_samples=100, seed=0, log=None, estimators=ESTIMATORS,
               snr_k=SNR_K, snr_batch_size=16, snr_repeats=None):
    """Run the study on ``loaded`` (a :class:`~pyro_vae.experiment.load.LoadedRun`); returns the JSON-ready dict.

    :param repeats: R, paired estimates per objective and particle count for the variance.
    :param num_particles: particle counts P of the variance measurement.
    :param batch_size: rows of the fixed training batch the variance is measured on.
    :param kl_samples: S, draws per data point in the KL check; ``kl_points`` test points are used.
    :param outcome_epochs: train each objective this many epochs per seed (None: no outcome).
    :param iwae_samples: K of the IWAE log-likelihood in the outcome (0: skip it).
    :param seed: base seed of the variance repeats and of the KL check's draws.
    :param estimators: objective specs whose gradient variance and SNR are measured (one particle).
    :param snr_k: the K of the SNR curve (empty: no curve); ``snr_batch_size`` rows and
        ``snr_repeats`` estimates (default ``repeats``) per point.
    """
    check_int("repeats", repeats, 2)
    check_int("batch_size", batch_size)
    check_int("kl_samples", kl_samples, 2)
    check_int("kl_points", kl_points)
    for p in num_particles:
        check_int("num_particles", p)
    check_estimators(estimators)  # bad specs fail now, not after the KL check
    for k in snr_k:
        check_int("snr_k", k)
    log = log or (lambda message: None)
    vae, data = loaded.model, loaded.data
    device = next(vae.parameters()).device
    x_test = data.x_test[:kl_points].to(device)
    result = {"units": "nats per data point", "run": loaded.run.path, "epoch": loaded.epoch,
              "config": loaded.config.to_dict()}

    t0 = time.perf_counter()
    with torch.random.fork_rng():
        pyro.set_rng_seed(seed)
        result["audit"] = kl_audit(vae.model, vae.guide, x_test[:batch_size])
        result["latent_order"] = latent_order(vae.model, vae.guide, x_test[:batch_size])
        check = kl_check(vae.model, vae.guide, x_test, num_samples=kl_samples)
    result["kl_check"] = summarize_kl_check(check, kl_samples)
    result["kl_check"]["seconds"] = time.perf_counter() - t0
    log(f"audit: {_audit_line(result['audit'])}; KL check over {x_test.shape[0]} test points, "
        f"{kl_samples} draws each: mean |z| {_fmt(result['kl_check']['mean_abs_z'])}")
    order = result["latent_order"]
    if not order["same"]:
        log(f"note: the guide samples {', '.join(order['guide'])} but the model {', '.join(order['model'])}: "
            "meanfield's per-site analytic KL is biased for this pair (large z-scores above)")

    t0 = time.perf_counter()
    x_batch = data.served_sample(batch_size).to(device)  # fixed: one seeded binarisation
    with torch.random.fork_rng():
        variance = estimator_variance(vae, x_batch, OBJECTIVES, tuple(num_particles), repeats=repeats, seed=seed)
    variance.update(batch_size=x_batch.shape[0], repeats=repeats, seed=seed, num_particles=list(num_particles),
                    paired=True, seconds=time.perf_counter() - t0)
    result["variance"] = variance
    for p, ratios in variance["ratio"].items():
        log(f"variance ratio meanfield / trace, {p} particle(s): "
            + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))

    result.update(_estimators(vae, x_batch, result["variance"], list(estimators), tuple(snr_k), repeats, seed,
                              snr_batch_size, snr_repeats or repeats, log))

    if outcome_epochs:
        result["outcome"] = train_outcome(loaded.config, data, outcome_epochs, seeds, iwae_samples=iwae_samples,
                                          log=log)
    return json_safe(result)


def _estimators(vae, x_batch, variance, estimators, snr_k, repeats, seed, snr_batch_size, snr_repeats, log):
    """The ``estimators`` and ``snr_curve`` parts (reusing ``variance``'s one-particle results)."""
    check_int("snr_batch_size", snr_batch_size)
    check_int("snr_repeats", snr_repeats, 2)
    known = {name: runs["1"] for name, runs in variance["objectives"].items() if "1" in runs}
    t0 = time.perf_counter()
    with torch.random.fork_rng():
        study = estimator_study(vae, x_batch, estimators, repeats=repeats, seed=seed, known=known)
    out = {"estimators": {"specs": estimators, "batch_size": x_batch.shape[0], "repeats": repeats, "seed": seed,
                          "paired": True, **study, "seconds": time.perf_counter() - t0}}
    log(estimator_table(out["estimators"]))
    if snr_k:
        t0 = time.perf_counter()
        x_snr = x_batch[:snr_batch_size]
        with torch.random.fork_rng():
            curve = snr_curve(vae, x_snr, snr_k, repeats=snr_repeats, seed=seed)
        curve.update(batch_size=x_snr.shape[0], repeats=snr_repeats, seed=seed, paired=True,
                     statistic="mean over coordinates of |E g| / sd g", seconds=time.perf_counter() - t0)
        out["snr_curve"] = curve
        log(snr_table(curve))
    return out


def estimator_table(study):
    """Plain text: per objective, the ELBO estimate's variance and each group's gradient variance and SNR."""
    results = study["results"]
    if not results:
        return "no estimator could run: " + "; ".join(study["skipped"].values())
    groups = list(next(iter(results.values()))["groups"])
    lines = [f"gradient estimators on {study['batch_size']} rows, R = {study['repeats']} paired draws:",
             f"{'objective':<14}{'ELBO var':>10}" + "".join(f"{g + ' var':>16}{g + ' SNR':>14}" for g in groups)]
    for name, r in results.items():
        lines.append(f"{name:<14}{r['elbo']['variance']:>10.4g}" + "".join(
            f"{r['groups'][g]['total_variance']:>16.4g}{r['groups'][g]['snr']:>14.3f}" for g in groups))
    lines += [f"skipped {name}: {why}" for name, why in study["skipped"].items()]
    return "\n".join(lines)


def snr_table(curve):
    """Plain text: SNR per group against K for each objective (the data of gradient_snr.png)."""
    groups = list(next(iter(curve["snr"].values())))
    lines = [f"gradient SNR against K on {curve['batch_size']} rows, R = {curve['repeats']} "
             f"(noise floor {curve['snr_floor']:.3f}):",
             f"{'K':>6}" + "".join(f"{f'{n}:K {g}':>22}" for g in groups for n in curve["objectives"])]
    for i, k in enumerate(curve["ks"]):
        lines.append(f"{k:>6}" + "".join(f"{curve['snr'][n][g][i]:>22.3f}"
                                         for g in groups for n in curve["objectives"]))
    return "\n".join(lines)


def train_outcome(config, data, epochs, seeds, objectives=OBJECTIVES, iwae_samples=100, log=None):
    """Train ``config`` afresh with each objective and seed for ``epochs`` epochs, in memory.

    Every run is what ``pyro-vae train --elbo OBJ --seed S --epochs N`` with the rest of ``config``
    would train. Returns per-run rows, a per-objective summary (mean and sd over seeds) and curves.
    """
    check_int("outcome_epochs", epochs)
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds needs distinct seeds, e.g. --seeds 0 1 2, got {list(seeds)}")
    log = log or (lambda message: None)
    rows, curves = [], {name: {} for name in objectives}
    for s in seeds:  # objectives interleaved, so warm-up and machine load fall on both alike
        for name in objectives:
            run_config = dataclasses.replace(config, elbo=name, seed=int(s), epochs=int(epochs))
            pyro.set_rng_seed(run_config.seed)  # as `pyro-vae train` seeds the initialisation
            vae = build_model(run_config, data)
            history = fit(vae, data, build_elbo(run_config), quiet=True, **fit_options(run_config))
            vae.eval()
            row = {"objective": name, "seed": int(s), "test_elbo": history[-1]["test_elbo"],
                   "test_kl": history[-1]["test_kl"],
                   "seconds_per_epoch": statistics.median(r["seconds"] for r in history)}
            if iwae_samples:
                row["test_iwae"] = _mean_iwae(vae, data.x_test, iwae_samples)
            rows.append(row)
            curves[name][str(s)] = [r["test_elbo"] for r in history]
            log(f"outcome {name} seed {s}: test ELBO {row['test_elbo']:.3f}"
                + (f", IWAE-{iwae_samples} {row['test_iwae']:.3f}" if "test_iwae" in row else "")
                + f", {row['seconds_per_epoch']:.2f} s/epoch")
    summary = {}
    columns = ["test_elbo", "test_kl", "seconds_per_epoch"] + (["test_iwae"] if iwae_samples else [])
    for name in objectives:
        mine = [r for r in rows if r["objective"] == name]
        summary[name] = {f"{c}_{stat}": fn([r[c] for r in mine]) for c in columns
                         for stat, fn in (("mean", statistics.fmean), ("sd", _sd))}
    paired = {}
    if len(objectives) == 2:  # same seeds, same initialisation: compare seed by seed
        first, second = ({r["seed"]: r for r in rows if r["objective"] == name} for name in objectives)
        for c in columns:
            diffs = [second[s][c] - first[s][c] for s in first]
            paired[c] = {"mean": statistics.fmean(diffs), "se": _sd(diffs) / math.sqrt(len(diffs))}
    return {"epochs": int(epochs), "seeds": [int(s) for s in seeds], "objectives": list(objectives),
            "iwae_samples": iwae_samples or None,
            "iwae": "pyro_vae.bounds.iwae" if iwae_samples else "not computed (--iwae-samples 0)",
            "runs": rows, "summary": summary, "curves": curves,
            "paired_difference": {"of": f"{objectives[-1]} - {objectives[0]}", **paired}}


@torch.no_grad()
def _mean_iwae(vae, x, num_samples, batch=250):
    device = next(vae.parameters()).device
    total = 0.0
    for start in range(0, len(x), batch):
        total += iwae(vae.model, vae.guide, x[start : start + batch].to(device), num_samples).double().sum().item()
    return total / len(x)


def write_comparison(directory, result):
    """Write the figures and then ``kl_comparison.json`` (atomically) into ``directory``."""
    figures = {"variance": variance_ratio_figure(result["variance"]["ratio"])}
    if "outcome" in result:
        figures["outcome"] = learning_curves_figure(result["outcome"]["curves"])
    if "snr_curve" in result:
        figures["snr"] = gradient_snr_figure(result["snr_curve"])
    result["figures"] = {}
    for key, fig in figures.items():
        save_png(fig, os.path.join(directory, FIGURES[key]), dpi=100)
        result["figures"][key] = FIGURES[key]
    atomic_write_json(os.path.join(directory, RESULT_FILE), result)
    return os.path.join(directory, RESULT_FILE)


def run_command(args):
    """The ``compare-kl`` subcommand (see :func:`pyro_vae.cli.parser.add_compare_kl_parser`)."""
    if args.seeds is not None and not args.outcome_epochs:
        raise UserError("--seeds only applies to the training outcome; add --outcome-epochs N")
    check_args(args)
    set_threads(args.threads)
    loaded = load_run(args.dir)
    if loaded.model.discrete_latent:  # meanfield needs a reparameterised guide; the mixture's KL is exact anyway
        raise UserError(f"compare-kl compares meanfield with trace, and meanfield cannot train the discrete latent "
                        f"of --model {loaded.config.model}; its KL and gap are exact sums: "
                        f"see pyro-vae evaluate {args.dir}")
    if loaded.model.point_mass:
        flags = f"--model {loaded.config.model}" + (" --posterior delta" if loaded.config.posterior == "delta" else "")
        raise UserError(f"the KL study needs a stochastic posterior, but {flags} has a point-mass code: "
                        "there is no KL(q || p) to compare; run compare-kl on a VAE")
    snr_k = [k for k in args.snr_k if k != 0]
    outcome = None if not args.outcome_epochs else {
        "epochs": args.outcome_epochs, "seeds": args.seeds or (0, 1, 2), "batch_size": loaded.config.batch_size,
        "num_particles": loaded.config.num_particles, "iwae_samples": args.iwae_samples}
    need = compare_kl_need(loaded.model, loaded.data.num_train, len(loaded.data.x_test), repeats=args.repeats,
                           num_particles=args.num_particles, batch_size=args.batch_size, kl_samples=args.kl_samples,
                           kl_points=args.kl_points, estimator_ks=[_estimator_k(e) for e in args.estimators] or [1],
                           snr_k=snr_k, snr_batch_size=args.snr_batch_size, snr_repeats=args.snr_repeats,
                           outcome=outcome)
    check_resources(need, next(loaded.model.parameters()).device, force=args.force)
    log = (lambda message: None) if args.quiet else print
    result = compare_kl(loaded, repeats=args.repeats, num_particles=args.num_particles,
                        batch_size=args.batch_size, kl_samples=args.kl_samples, kl_points=args.kl_points,
                        outcome_epochs=args.outcome_epochs, seeds=args.seeds if args.seeds is not None else (0, 1, 2),
                        iwae_samples=args.iwae_samples, seed=args.seed, log=log, estimators=args.estimators,
                        snr_k=snr_k, snr_batch_size=args.snr_batch_size,
                        snr_repeats=args.snr_repeats)
    path = write_comparison(loaded.run.path, result)
    if not args.quiet and "outcome" in result:
        print(outcome_table(result["outcome"]))
    print(f"wrote {path}")
    return 0


def check_args(args):
    """Every number and spec of the flags, before the run is loaded (a bad one fails in a second)."""
    for name, least in (("repeats", 2), ("batch_size", 1), ("kl_samples", 2), ("kl_points", 1), ("iwae_samples", 0),
                        ("snr_batch_size", 1), ("seed", 0)):
        check_int(name, getattr(args, name), least)
    for name in ("snr_repeats", "outcome_epochs", "threads"):
        if getattr(args, name) is not None:
            check_int(name, getattr(args, name), 2 if name == "snr_repeats" else 1)
    for p in args.num_particles:
        check_int("num_particles", p)
    for k in args.snr_k:
        check_int("snr_k", k, least=0)
    check_estimators(args.estimators)


def _estimator_k(spec):
    """K of an estimator spec (``iwae:5`` -> 5; ``trace`` -> 1)."""
    _, _, arg = spec.partition(":")
    return int(arg) if arg.isdigit() else 1


def outcome_table(outcome):
    """Plain-text table: one row per objective, mean +- sd over seeds."""
    cols = [("test ELBO", "test_elbo"), ("test KL", "test_kl"), ("IWAE", "test_iwae"), ("s/epoch", "seconds_per_epoch")]
    cols = [(title, key) for title, key in cols if f"{key}_mean" in next(iter(outcome["summary"].values()))]
    lines = [f"{'objective':<10}" + "".join(f"{title:>20}" for title, _ in cols)]
    for name, s in outcome["summary"].items():
        lines.append(f"{name:<10}" + "".join(f"{s[key + '_mean']:>11.3f} +- {s[key + '_sd']:<5.3f}" for _, key in cols))
    return "\n".join(lines)


def _audit_line(audit):
    sites = [f"{site} {a['kl']} ({a['guide']} vs {a['prior']})" for site, a in audit.items()]
    return ", ".join(sites) or "no latent site"


def _fmt(value):
    return "n/a" if value is None else f"{value:.3f}"


def _sd(values):
    return statistics.stdev(values) if len(values) > 1 else 0.0
