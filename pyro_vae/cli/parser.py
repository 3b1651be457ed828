"""The ``pyro-vae`` command's parsers and ``main``: ``train``, ``evaluate``, ``compare-kl``, ``plot``.

Each subcommand's work lives in its own ``*_command.py`` module, imported only when it runs (so
``--help`` does not load matplotlib or arviz). Bad input ends with one line on stderr
(``pyro-vae: error: ...``) and exit status 2, the library's parameter names replaced by their flags;
a diverged run exits 3 and an interrupted one 130, each keeping its last checkpoint. While a
command runs, warnings are one line each (``pyro-vae: warning: ...``); a closed stdout ends it
quietly (141) unless, like ``plot``, it can finish its files without printing.
"""

import argparse
import importlib
import os
import re
import shlex
import sys
import warnings

from .. import specs
from ..data import BINARIZE_MODES
from ..errors import ParamWarning, UserError
from ..experiment.build import MODELS
from ..experiment.config import ARCHS, TrainConfig
from ..families import likelihoods, posteriors, priors
from ..inference import objectives, schedules
from ..inference.compiled import MODES
from ..inference.train import TrainingDiverged
from ..models.nets import ACTIVATIONS

# Library parameters whose flag is not their name with dashes.
FLAG_ALIASES = {"z_dim": "--latent-dim", "in_dim": "--hidden", "out_dim": "--hidden", "dir": "DIR",
                "init": "--ais-init", "bdmc_points": "--bdmc", "num_labels": "--labels", "path": "--out"}

FORCE_HELP = ("run work estimated above the ceiling of 3e15 multiply-adds (about a day on one core) anyway; "
              "memory limits still hold (see the resource guard in the docs)")


def _sizes(text):
    try:
        sizes = [int(s) for s in text.split(",")]  # every part a size: "400,,200" is refused
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected positive comma-separated sizes like 400 or 512,256, got {text!r}")
    return sizes


def add_train_parser(sub):
    d = TrainConfig()
    p = sub.add_parser("train", help="train a model with SVI and write a run directory",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Train a VAE by stochastic variational inference.\n\nFamilies:\n"
                       f"  --model      {specs.describe(MODELS)}\n"
                       f"  --prior      {specs.describe(priors.REGISTRY)}\n"
                       f"  --likelihood {specs.describe(likelihoods.REGISTRY)}\n"
                       f"  --posterior  {specs.describe(posteriors.REGISTRY)}\n"
                       f"  --elbo       {specs.describe(objectives.REGISTRY)}")
    a = p.add_argument
    a("--out", help="new run directory to create (default: runs/<timestamp>)")
    a("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint, up to --epochs")
    a("--dataset", help=f"mnist5k | digits | mnist | fashion-mnist | kmnist | npz:PATH (default {d.dataset})")
    a("--data-dir", help="root folder of torchvision datasets: DIR/MNIST/raw/*-ubyte")
    a("--download", action="store_true", default=None, help="let torchvision download missing files (online only)")
    a("--binarize", choices=BINARIZE_MODES, help=f"binarisation of grey data (default {d.binarize})")
    a("--model", help=f"{specs.usages(MODELS)} (default {d.model})")
    a("--prior", help=f"{specs.usages(priors.REGISTRY)} (default {d.prior})")
    a("--likelihood", help=f"{specs.usages(likelihoods.REGISTRY)} (default {d.likelihood})")
    a("--posterior", help=f"{specs.usages(posteriors.REGISTRY)} (default {d.posterior})")
    a("--elbo", help=f"{specs.usages(objectives.REGISTRY)} (default {d.elbo})")
    a("--num-particles", type=int, help=f"vectorised ELBO samples per data point (default {d.num_particles})")
    a("--beta", type=float, help=f"weight of the KL term in training, beta-VAE (default {d.beta:g})")
    a("--kl-warmup", type=int, metavar="EPOCHS",
      help="raise the KL weight linearly, beta * min(1, epoch / EPOCHS) (default 0: off)")
    a("--sparsity", type=float, help=f"sparse-ae: lambda of the L1 code penalty (default {d.sparsity:g})")
    a("--noise", help=f"denoising-ae: masking:NU | gaussian:SIGMA; other models: the corruption of evaluate's "
      f"corrupted-input report (default {d.noise})")
    a("--contraction", type=float, help=f"contractive-ae: lambda of ||J_f(x)||_F^2 (default {d.contraction:g})")
    a("--labels", type=int, metavar="N", help="m2: labelled training images, N / C per class, chosen by --seed "
      "(recorded in DIR/labels.json); the others unlabelled")
    a("--alpha-scale", type=float, help=f"m2: classification weight alpha = SCALE * N_train (default "
      f"{d.alpha_scale:g}, as Kingma et al. 2014)")
    a("--latent-dim", type=int, help=f"latent dimension Z (default {d.latent_dim})")
    a("--hidden", type=_sizes, help=f"hidden sizes, comma-separated (default {','.join(map(str, d.hidden))})")
    a("--activation", help=f"{' | '.join(ACTIVATIONS)} (default {d.activation})")
    a("--arch", choices=ARCHS, help=f"networks next to the data: mlp, or conv (strided convolutions for images, "
      f"then --hidden fully connected layers) (default {d.arch})")
    a("--channels", type=_sizes, help=f"--arch conv: channels of each stride-2 convolution, comma-separated; each "
      f"halves the picture (default {','.join(map(str, d.channels))})")
    a("--epochs", type=int, help=f"total epochs; with --resume, train up to this many (default {d.epochs})")
    a("--batch-size", type=int, help=f"minibatch size (default {d.batch_size})")
    a("--lr", type=float, help=f"Adam learning rate (default {d.lr})")
    a("--lr-schedule", help=f"{specs.usages(schedules.REGISTRY)}: {specs.describe(schedules.REGISTRY)} "
      f"(default {d.lr_schedule})")
    a("--adam-eps", type=float, help=f"Adam's epsilon (default {d.adam_eps:g}; Burda et al. 1e-4)")
    a("--clip-norm", type=float, help="clip the gradient's global norm (default off)")
    a("--step", choices=MODES, help="compiled: each training step replays a graph captured from the model and "
      "guide and compiled with inductor; captured: the same graph without inductor; eager: Pyro's interpreter "
      f"on every step (default {d.step})")
    a("--keep-epochs", metavar="EPOCHS", help="also keep the model of these epochs in DIR/snapshots/: "
      "1,4,13 or 'stages' (the ends of --lr-schedule burda's stages); evaluate one with "
      "pyro-vae evaluate DIR --checkpoint snapshots/epoch-00013.pt")
    a("--seed", type=int, help=f"random seed (default {d.seed})")
    a("--device", choices=["cpu", "cuda"], help=f"(default {d.device})")
    a("--threads", type=int, help="torch intra-op threads (default torch's choice)")
    a("--quiet", action="store_true", help="print nothing but errors and the run directory")
    a("--log", metavar="TOOL", help="also log each epoch's scalars and image grids: tensorboard (DIR/tensorboard) or "
      "mlflow[:URI] (default a local store DIR/mlflow.db); needs pip install 'pyro_vae[logging]'")
    a("--log-images", type=int, default=5, metavar="EPOCHS",
      help="with --log: image grids (reconstructions, samples) every EPOCHS epochs and at the last; 0: none "
      "(default 5)")
    a("--force", action="store_true", help=FORCE_HELP)
    p.set_defaults(func=lambda args: importlib.import_module(".train_command", __package__).run_command(args))
    return p


def _run_dir_parser(sub, name, module, quiet_help, **kwargs):
    """A subcommand on a run directory: ``DIR``, ``--threads`` and ``--quiet``; it runs
    ``pyro_vae.cli.<module>.run_command(args)``, imported only then (matplotlib, arviz load lazily)."""
    p = sub.add_parser(name, **kwargs)
    p.add_argument("dir", metavar="DIR", help="a run directory written by pyro-vae train")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default torch's choice)")
    p.add_argument("--quiet", action="store_true", help=quiet_help)
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.set_defaults(func=lambda args: _run_dir_command(module, args))
    return p


def _run_dir_command(module, args):
    """Run ``pyro_vae.cli.<module>`` on ``args.dir``: each writes its results into the run directory,
    so a read-only one is refused first; a killed writer's temporary files are removed."""
    from ..experiment.runs import RunDir, check_writable

    run = RunDir(args.dir)
    if run.exists():  # else the command says what is missing
        check_writable(run.path)
        run.clean_orphans()
    return importlib.import_module(f".{module}", __package__).run_command(args)


def add_compare_kl_parser(sub):
    p = _run_dir_parser(sub, "compare-kl", "compare_kl_command", quiet_help="print only the path of the written file",
                        help="sampled against analytic KL on a trained run: audit, KL check, variance; "
                        "gradient estimators (stl, iwae-dreg:K) and their SNR against K",
                        description="Compare Trace_ELBO (sampled KL) with TraceMeanField_ELBO (analytic KL where "
                        "registered) on the run in DIR: which latent sites get an analytic KL, Monte-Carlo KL "
                        "against it (z-scores), and the variance of the ELBO and of its gradient per parameter "
                        "group on a fixed batch with paired draws. With --outcome-epochs it also trains the run's "
                        "configuration with each objective over --seeds. It also measures the gradient variance "
                        "and SNR of each of --estimators (stl, iwae-dreg:K: path-derivative estimators) and the "
                        "SNR of iwae:K against iwae-dreg:K for K in --snr-k (gradient_snr.png). Writes "
                        "DIR/kl_comparison.json and figures.")
    a = p.add_argument
    a("--repeats", type=int, default=100,
      help="paired gradient estimates per objective and particle count (default 100)")
    a("--num-particles", type=int, nargs="+", default=[1, 4], metavar="P",
      help="particle counts of the variance measurement (default 1 4)")
    a("--batch-size", type=int, default=128, help="rows of the fixed training batch (default 128)")
    a("--kl-samples", type=int, default=100, help="Monte-Carlo draws per test point in the KL check (default 100)")
    a("--kl-points", type=int, default=1000, help="test points in the KL check (default 1000)")
    a("--outcome-epochs", type=int, help="also train each objective for N epochs per seed (default: no training)")
    a("--seeds", type=int, nargs="+", metavar="S", help="seeds of the outcome training (default 0 1 2)")
    a("--iwae-samples", type=int, default=100, help="K of the outcome's IWAE log-likelihood; 0 skips it (default 100)")
    a("--seed", type=int, default=0, help="seed of the KL check and variance draws (default 0)")
    a("--estimators", type=_specs, default="trace,meanfield,stl,iwae:5,iwae-dreg:5", metavar="SPEC,...",
      help="objectives whose gradient variance and SNR per parameter group are measured, one particle, paired "
      "draws (default trace,meanfield,stl,iwae:5,iwae-dreg:5)")
    a("--snr-k", type=int, nargs="+", default=[1, 5, 50], metavar="K",
      help="K of the SNR curve of iwae:K against iwae-dreg:K, gradient_snr.png (default 1 5 50; add 500 for the "
      "curve's far end, about 4 times the whole default's time; 0: no curve)")
    a("--snr-batch-size", type=int, default=16, help="rows of the fixed batch the SNR curve uses (default 16)")
    a("--snr-repeats", type=int, help="paired gradient estimates per K of the SNR curve (default --repeats)")
    return p


def _specs(text):
    return [s.strip() for s in text.split(",") if s.strip()]


def add_evaluate_parser(sub):
    p = _run_dir_parser(sub, "evaluate", "evaluate_command",
                        quiet_help="no table and no progress bar; print only the written file",
                        help="how tight is the ELBO: IWAE bounds, gap, PSIS k-hat; writes DIR/eval.json",
                        description="Score the run in DIR on held-out data with S importance samples per image: "
                        "ELBO (reconstruction, KL), the bound curve L_K for K in 1, 5, 50, 500, S from one set of "
                        "draws, the gap L_S - ELBO, PSIS k-hat and ESS of the weights, the PSIS estimate, active "
                        "units and a verdict on whether L_S can be read as log p(x). With --local-opt-images N it "
                        "also splits the gap into approximation and amortization parts (Cremer et al. 2018). "
                        "With --ais-steps T it also estimates log p(x) by annealed importance sampling, and with "
                        "--bdmc P bounds AIS's error on P points simulated from the model (Grosse et al. 2015). "
                        "Writes DIR/eval.json (nats per image).")
    a = p.add_argument
    a("--split", default="test", help="test | valid | train (default test)")
    a("--checkpoint", default="checkpoint.pt", metavar="FILE",
      help="checkpoint to score, relative to DIR (default checkpoint.pt; e.g. snapshots/epoch-00364.pt)")
    a("--dataset", help="read the run's data from here instead (the same data, e.g. mnist with --data-dir "
      "on a machine without the npz it was trained on)")
    a("--data-dir", help="torchvision root for --dataset mnist | fashion-mnist | kmnist")
    a("--num-samples", type=int, default=5000, help="importance samples S per image (default 5000)")
    a("--max-images", type=int, help="evaluate only the first N images of the split (default all)")
    a("--local-opt-images", type=int, default=0,
      help="optimise a per-image q* on the first N images for the gap decomposition (default 0: off)")
    a("--local-opt-steps", type=int, help="Adam steps of that optimisation (default 500)")
    a("--batch-size", type=int, default=100, help="images scored at once (default 100)")
    a("--chunk-size", type=int, help="samples per network pass (default: about 8192 rows / batch size)")
    a("--seed", type=int, default=0, help="seed of the importance samples (default 0)")
    a("--no-psis", dest="psis", action="store_false",
      help="skip the Pareto fit of each image's weights (k-hat, PSIS estimate): L_K only, about 10%% faster")
    a("--no-representation", dest="representation", action="store_false",
      help="skip the code report (reconstruction errors, code statistics, linear probes)")
    a("--ais-steps", type=int, help="also estimate log p(x) by annealed importance sampling with T steps "
      "(HMC transitions; Wu et al. 2017) on the first --ais-images images (default: off; 1000 with --bdmc)")
    a("--ais-chains", type=int, default=16, help="AIS chains per image (default 16)")
    a("--ais-leapfrog", type=int, default=10, help="leapfrog steps per HMC transition (default 10)")
    a("--ais-schedule", choices=["sigmoid", "linear"], default="sigmoid", help="AIS schedule of beta (default sigmoid)")
    a("--ais-init", choices=["guide", "prior"], default="guide",
      help="AIS starts from the encoder's q(z|x) or from the prior (default guide)")
    a("--ais-images", type=int, default=100, help="images AIS scores, the first of those evaluated (default 100)")
    a("--bdmc", type=int, default=0, metavar="P",
      help="BDMC sandwich on P points simulated from the model: forward and reverse AIS with the --ais-* "
      "settings bound AIS's error (default 0: off)")
    return p


def add_plot_parser(sub):
    p = _run_dir_parser(sub, "plot", "plot_command", quiet_help="print only the written files",
                        help="write every applicable figure of a run as PNGs into DIR",
                        description="Write the figures of the run in DIR as PNGs into DIR: training curves, "
                        "reconstructions, prior samples, interpolations, latent scatter and 2-d manifold; the "
                        "bound curve and per-image k-hat when DIR/eval.json exists (pyro-vae evaluate); the KL "
                        "variance ratio and learning curves when DIR/kl_comparison.json exists (pyro-vae compare-kl).")
    a = p.add_argument
    a("--grid-size", type=int, default=15, help="G: the manifold decodes a G x G grid (default 15)")
    a("--num-images", type=int, default=10,
      help="images per row of reconstructions, samples, interpolations (default 10)")
    a("--khat-images", type=int, default=200,
      help="images whose k-hat is recomputed with eval.json's settings for khat.png (default 200)")
    a("--dpi", type=int, default=90, help="resolution of the PNGs (default 90)")
    a("--seed", type=int, default=0, help="seed of prior samples and corruption noise (default 0)")
    return p


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors (unknown flag, bad value) on one line, without the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def make_parser():
    from .. import __version__

    parser = OneLineParser(prog="pyro-vae", description="Autoencoders and VAEs as Pyro programs.")
    parser.add_argument("--version", action="version", version=f"pyro-vae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    add_compare_kl_parser(sub)
    add_evaluate_parser(sub)
    add_plot_parser(sub)
    return parser


def option_flags(parser):
    """``{dest: "--flag"}`` for every long option of ``parser`` and its subcommands."""
    flags = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                flags.update(option_flags(subparser))
        long = [o for o in action.option_strings if o.startswith("--")]
        if long:
            flags.setdefault(action.dest, long[0])
    return flags


def flag_message(error, flags):
    """The message of a :class:`~pyro_vae.errors.UserError` (or a
    :class:`~pyro_vae.errors.ParamWarning`) with the parameters it names (its ``param``) written as
    flags. Library messages name a parameter in three forms: as their first word (``num_samples must
    be ...`` -> ``--num-samples must be ...``), as an assignment (``num_particles=4`` ->
    ``--num-particles 4``, ``elbo='trace'`` -> ``--elbo trace``, ``path='my runs/a'`` -> ``--out 'my
    runs/a'``, ``download=True`` -> ``--download``) and in backticks anywhere (```prior``` -> ``--prior``)."""
    message = str(error)
    for param in error.params():
        flag = FLAG_ALIASES.get(param) or flags.get(param)
        if flag is None:
            continue
        name = re.escape(param)
        message = re.sub(rf"(?<![\w-]){name}=True\b", flag, message)
        message = re.sub(rf"(?<![\w-]){name}=(?:'([^']*)'|\"([^\"]*)\"|([^\s,;'\")]*))",
                         lambda m, flag=flag: f"{flag} {_shell_word(next(g for g in m.groups() if g is not None))}",
                         message)
        message = re.sub(rf"^{name}\b(?!=)", flag, message)
        message = message.replace(f"`{param}`", flag)
    return message


def _shell_word(text):
    """``text`` as one word of a command line: quoted when it holds spaces or quotes."""
    return text if text and not re.search(r"[\s'\"]", text) else shlex.quote(text)


def show_warning(message, category, filename, lineno, file=None, line=None):
    """``warnings.showwarning`` for the command line: one line, no source location or code; the
    parameters a :class:`~pyro_vae.errors.ParamWarning` names written as flags."""
    name = "" if category is UserWarning else f"{category.__name__}: "
    if isinstance(message, ParamWarning):
        message = flag_message(message, option_flags(make_parser()))
    text = " ".join(str(message).split())
    print(f"pyro-vae: warning: {name}{text}", file=file or sys.stderr)


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))  # under torchrun, say which process failed
    prefix = "pyro-vae" if rank == 0 else f"pyro-vae[rank {rank}]"
    shown, warnings.showwarning = warnings.showwarning, show_warning  # only while the command runs
    try:
        return args.func(args)
    except TrainingDiverged as e:
        return _error(f"{prefix}: error: {flag_message(e, option_flags(parser))}", 3)
    except UserError as e:
        return _error(f"{prefix}: error: {flag_message(e, option_flags(parser))}", 2)
    except RuntimeError as e:
        if not _peer_failure(e):
            raise
        print(f"{prefix}: error: another process of this torchrun job stopped (its own message says why); "
              "this one stops too, and the run directory keeps its last finished epoch", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # train says what it kept itself; the others write their results last
        print(f"pyro-vae: interrupted; {args.command} wrote nothing more", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout's reader left while the command still printed (plot keeps going: say())
        _stdout_to_devnull()
        print(f"pyro-vae: output closed (broken pipe); {args.command} stopped, its files are complete",
              file=sys.stderr)
        return 141
    finally:
        warnings.showwarning = shown
        try:
            sys.stdout.flush()
        except BrokenPipeError:  # `pyro-vae plot DIR | head`: the reader has gone; nothing more to say
            _stdout_to_devnull()


def _error(line, status):
    """Print the one-line error and return ``status``. Under torchrun, also write it to the error file
    torchrun gives each process (``TORCHELASTIC_ERROR_FILE``), so that torchrun's failure summary names
    it as the root cause instead of pointing at its documentation."""
    print(line, file=sys.stderr, flush=True)
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if path:
        import json
        import time

        message = {"message": line, "extraInfo": {"py_callstack": line, "timestamp": str(int(time.time()))}}
        try:
            with open(path, "w") as f:
                json.dump({"message": message}, f)
        except OSError:
            pass  # the line above is the message; the summary then points at torch's documentation
    return status


def _peer_failure(error):
    """A collective failed because another process of a torchrun job exited."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch.distributed as dist

    text = str(error)
    return isinstance(error, dist.DistError) or "closed by peer" in text or "Connection reset" in text


def _stdout_to_devnull():
    """Point stdout at /dev/null, so the interpreter's last flush prints no BrokenPipeError either."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

