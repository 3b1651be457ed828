"""``pyro-vae evaluate DIR``: the bound-tightness report, plus what the code is worth.

Writes ``DIR/eval.json`` (see :mod:`pyro_vae.diagnostics.tightness` for the bounds and diagnostics
and :mod:`pyro_vae.diagnostics.representations` for the code report) and prints a table.
"""

import os
import time

import pyro

from ..diagnostics.bits import bits_report, format_bits
from ..diagnostics.bounds import default_chunk_size
from ..diagnostics.conditional import format_task, retarget, task_report
from ..diagnostics.exact_gap import exact_report, exact_statistics, exact_verdict, format_exact
from ..diagnostics.inference_gap import DEFAULT_STEPS, inference_gaps
from ..diagnostics.report import format_table, tightness_report
from ..diagnostics.representations import probe_rows
from ..diagnostics.representations import report as code_report
from ..errors import UserError, check_int
from ..experiment.build import build_noise
from ..experiment.estimates import evaluate_need
from ..experiment.load import load_run
from ..experiment.runs import json_safe, save_png
from ..inference import distributed as dist
from . import annealing
from .figures import run_reconstructions_figure, stamp
from .options import POSITIVE_ELBO_NOTE, Progress, check_resources, set_threads


def run_command(args):
    """Write DIR/eval.json and print its table; see :mod:`pyro_vae.diagnostics.tightness` for the quantities."""
    for name in ("num_samples", "max_images", "batch_size", "chunk_size", "threads", "local_opt_steps"):
        if getattr(args, name) is not None:
            check_int(name, getattr(args, name))
    check_int("local_opt_images", args.local_opt_images, least=0)
    check_int("seed", args.seed, least=0)
    annealing.check_args(args)
    set_threads(args.threads)
    job = dist.from_environment()  # torchrun: every process scores a share of the batches
    try:
        return _evaluate(args, job)
    finally:  # no barrier: after the gathered bounds rank 0 works alone (AIS may outlast gloo's timeout)
        dist.shutdown()


def _evaluate(args, job):
    args.quiet = args.quiet or not job.is_main
    loaded = load_run(args.dir, checkpoint=args.checkpoint, dataset=args.dataset, data_dir=args.data_dir)
    x = loaded.data.rows(args.split)[: args.max_images]
    if args.local_opt_images > len(x):
        raise UserError(f"--local-opt-images {args.local_opt_images} exceeds the {len(x)} images evaluated; "
                        "lower it or raise --max-images")
    vae, steps = loaded.model, args.local_opt_steps or DEFAULT_STEPS
    if vae.discrete_latent and args.local_opt_images:
        raise UserError("--local-opt-images splits an estimated gap; a discrete latent's gap is exact "
                        "(eval.json's 'exact' section): drop --local-opt-images")
    annealing.check_model(vae, args)
    if (vae.conditional_bound or vae.classifies) and (args.local_opt_images or args.bdmc):
        flag = "--local-opt-images" if args.local_opt_images else "--bdmc"
        raise UserError(f"{flag} needs a model scored on its rows alone; --model {loaded.config.model} bounds "
                        f"{vae.bound_target}: drop {flag}")
    if vae.point_mass:  # a point mass: every draw is the same
        args.num_samples = 1
    device = next(vae.parameters()).device
    x = x.to(device)
    code = args.representation and not (vae.discrete_latent or vae.conditional_bound or vae.classifies)
    probe_train = code_rows(loaded.data, args.max_images or len(loaded.data.x_test)) if code else 0
    check_resources(evaluate_need(vae, len(x), args.num_samples, args.batch_size, args.chunk_size, args.psis,
                                  latent_dim=2 * loaded.config.latent_dim, local_opt_images=args.local_opt_images,
                                  local_opt_steps=steps, code_rows=probe_train,
                                  data_dim=loaded.data.data_dim, ais_steps=args.ais_steps, ais_chains=args.ais_chains,
                                  ais_leapfrog=args.ais_leapfrog, ais_images=args.ais_images, bdmc_points=args.bdmc),
                    device, force=args.force)
    t0 = time.perf_counter()
    report = tightness_report(*vae.scored_programs(), x, args.num_samples, batch_size=args.batch_size,
                              chunk_size=args.chunk_size, seed=args.seed, psis=args.psis, distributed=job,
                              progress=progress_bars(args.quiet), print_table=False,
                              **annealing.settings(args))
    if not job.is_main:  # rank 0 gathered every image's statistics and writes the report
        return 0
    annealed = sum(report[k]["seconds"] for k in ("ais", "bdmc") if k in report)
    report["seconds_bounds"] = time.perf_counter() - t0 - annealed
    if args.local_opt_images:
        pyro.set_rng_seed(args.seed)
        bar = Progress(steps, "steps", "local q*", disable=args.quiet)
        gaps = inference_gaps(vae, x[: args.local_opt_images], args.num_samples, steps=steps,
                              chunk_size=args.chunk_size, progress=bar.update)
        bar.close()
        report.update(approximation_gap=gaps["approximation_gap"], amortization_gap=gaps["amortization_gap"],
                      inference_gap=gaps)
    retarget(report, vae.bound_target)
    report.update(task_report(vae, x, labels_of(loaded.data, args.split, len(x), x.device), args.num_samples,
                              batch_size=args.batch_size, seed=args.seed, progress=progress_bars(args.quiet)))
    if vae.discrete_latent:  # sums over z: exact log p(x), ELBO and gap beside the sampled ones
        report["exact"] = exact_report(exact_statistics(vae, x, args.batch_size), report)
        annealed = {"ais": report["verdict"]["ais"]} if "ais" in report["verdict"] else {}
        report["verdict"] = {**exact_verdict(report["exact"]), **annealed}
    if not loaded.data.is_binary:  # grey or colour levels: bits per dimension beside the nats
        report.update(bits_report(report, vae.likelihood, x))
    plain_code = not (vae.discrete_latent or vae.conditional_bound or vae.classifies)  # one continuous code per image
    if args.representation and plain_code:  # the report reads a continuous code
        report.update(representation_report(loaded, args.seed, args.max_images))
    report.update(units="nats per data point; higher log-likelihoods and ELBOs are better",
                  dataset=loaded.data.name, split=args.split, epoch=loaded.epoch, seed=args.seed,
                  checkpoint=args.checkpoint,
                  processes=job.world_size,
                  batch_size=args.batch_size, seconds=time.perf_counter() - t0,
                  chunk_size=args.chunk_size or default_chunk_size(min(args.batch_size, len(x))))
    name = report_name(args.checkpoint)
    loaded.run.write_json(name, json_safe(report))
    if not args.quiet:
        print(format_table(report, f"{report['num_images']} {args.split} images of {loaded.data.name}, "
                                   f"{args.num_samples} draws each, epoch {loaded.epoch} ({report['seconds']:.0f} s)"))
    if not args.quiet:
        print(format_task(report))
    if not args.quiet and "bits_per_dim" in report:
        print(format_bits(report))
    if not args.quiet and report["elbo"] > 0:
        print(POSITIVE_ELBO_NOTE)
    if not args.quiet and "exact" in report:
        print(format_exact(report["exact"]))
    if not args.quiet and "reconstruction_error" in report:
        print(format_code_report(report))
    if loaded.model.corruption is not None:
        save_png(stamp(run_reconstructions_figure(loaded, args.seed), f"checkpoint of epoch {loaded.epoch}"),
                 loaded.run.file("denoising.png"), dpi=100)
    print(f"wrote {loaded.run.file(name)}")
    return 0


def labels_of(data, split, n, device):
    """The first ``n`` labels of ``split``, or None for a data set without them."""
    y = {"test": data.y_test, "valid": data.y_valid, "train": data.y_train}[split]
    return None if y is None else y[:n].to(device)


def progress_bars(quiet):
    """``tightness_report``'s progress factory: a :class:`Progress` line or bar per phase on stderr."""
    names = {"bounds": ("images", "evaluate")}

    def bar(total, unit, desc):
        unit, desc = names.get(desc, (unit, desc))
        return Progress(total, unit, desc, disable=quiet)

    return bar


def report_name(checkpoint):
    """``eval.json`` for the run's last checkpoint; ``snapshots/epoch-00364.eval.json`` for a snapshot."""
    return "eval.json" if checkpoint == "checkpoint.pt" else os.path.splitext(checkpoint)[0] + ".eval.json"


def representation_report(loaded, seed, num_images=None):
    """Reconstruction errors (clean, and corrupted as the run's ``--noise`` says), code statistics
    and linear probes of the codes (posterior means for a VAE) on the first ``num_images`` test
    images (all by default; ``--max-images``), the probes fitted on the training rows in the same
    proportion."""
    model, data = loaded.model, loaded.data
    corruption = model.corruption or build_noise(loaded.config.noise, data.data_dim)
    return code_report(model, data, corruption, seed=seed, max_rows=num_images)


def code_rows(data, num_images):
    """Training rows the code report's probes fit on when it covers ``num_images`` test images."""
    return probe_rows(data, num_images)[0] if data.y_train is not None else 0


def format_code_report(r):
    lines = [f"reconstruction error, clean / {r['corruption']}: {r['reconstruction_error']:.2f} / "
             f"{r['reconstruction_error_corrupted']:.2f} nats",
             f"code: mean |h| {r['code_mean_abs']:.3f}, share |h| < {r['sparsity_threshold']}: "
             f"{r['code_frac_near_zero']:.1%}, mean ||J_f||_F^2 {r['jacobian_frobenius_sq']:.2f}"]
    if "probe_accuracy" in r:
        lines.append(f"linear probe accuracy: code {r['probe_accuracy']:.3f}, PCA {r['probe_accuracy_pca']:.3f}, "
                     f"pixels {r['probe_accuracy_pixels']:.3f}")
    return "\n".join(lines)
