"""What each command's work needs, as a :class:`~pyro_vae.experiment.guard.Need` for
:func:`~pyro_vae.experiment.guard.check`: training, evaluation (bounds, AIS, BDMC, the gap
decomposition, the code report), the KL study and the figures.

A phase's memory is what is alive together at its peak; a command's :class:`Need` is its heaviest
phase (phases run one after the other). Rows through the networks cost the model's
``activation_width()`` values each (every layer's outputs) and ``multiply_adds()`` multiply-adds;
the copies each kind of step keeps were measured on the 784-400-20 and 64-32-4 VAEs and rounded up:

- a training step keeps about 3 copies of its layer outputs (forward, backward, the likelihood's
  elementwise terms) and 8 of its parameters (parameters, gradients, Adam's two moments, a fused
  step's temporaries, and the checkpoint's state, bytes and copy while it is written);
- an evaluation chunk keeps 2 to 3 (no gradient);
- the S x B log weights of a batch in float64 are held about 5.5 times at the peak (measured; 7
  counted: the chunks, their concatenation, the bound curve's and PSIS's working copies);
- AIS's HMC transitions keep about 6 copies of their chains' layer outputs (forward, backward and
  the leapfrog's states).
"""

from ..diagnostics.ais import DEFAULT_CHUNK_ROWS as AIS_CHUNK_ROWS
from ..diagnostics.ais import DEFAULT_PILOTS
from ..diagnostics.bounds import default_chunk_size
from ..diagnostics.inference_gap import DEFAULT_PARTICLES as LOCAL_PARTICLES
from .guard import Need, Part, row_bytes

VALUE = 4  # bytes of a float32 value
DOUBLE = 8  # float64: the log weights
STEP_COPIES = 3  # a training step's layer outputs
PARAM_COPIES = 8  # parameters, gradients, Adam's moments, temporaries, the checkpoint being written
EVAL_COPIES = 3  # an evaluation chunk's layer outputs (no gradient)
WEIGHT_COPIES = 7  # a batch's S x B float64 log weights at the peak (5.5 measured with PSIS)
HMC_COPIES = 6  # AIS chains' layer outputs (forward, backward, leapfrog states)
BACKWARD = 3  # multiply-adds of a step with its gradient, per forward one
PIXEL_BYTES = 48  # an image value in a figure: float data, matplotlib's normalised float64 copy, RGBA
CANVAS_COPIES = 3  # a figure's RGBA canvas: the buffer, its copy for the PNG, the encoder's rows


def _params_bytes(model):
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _worst(what, phases, work, fix, param):
    """The :class:`Need` of the heaviest of ``phases`` (``[[Part, ...], ...]``)."""
    parts = max(phases, key=lambda parts: sum(p.bytes for p in parts))
    return Need(what, parts, work=work, fix=fix, param=param)


def train_need(model, num_train, num_test, batch_size, num_particles, epochs_left, elbo_spec="meanfield",
               closed_form=False, eval_batch_size=1000, model_spec="vae"):
    """Training ``model`` for ``epochs_left`` more epochs.

    :param num_train: training rows N.
    :param num_test: test rows, scored after every epoch.
    :param batch_size: B.
    :param num_particles: draws per row in a step (K of ``iwae:K``).
    :param elbo_spec: the objective's spec, named in the advice.
    :param closed_form: EM, which takes every training row in one step.
    :param eval_batch_size: rows of the per-epoch test evaluation.
    :param model_spec: the model's spec, named in the advice for a model too big.
    """
    width, macs = model.activation_width(), model.multiply_adds()
    batch = num_train if closed_form else min(batch_size, num_train)
    if model.discrete_latent:
        model_fix, model_param = f"lower K in model={model_spec!r}", "model"
    else:
        model_fix, model_param = "lower `hidden` or `latent_dim`", ("hidden", "latent_dim")
    if closed_form:
        step_fix = f"lower K in model={model_spec!r}, or train with elbo='enum' in minibatches of `batch_size`"
        step_param = ("model", "elbo", "batch_size")
    elif elbo_spec.startswith("iwae"):
        step_fix = f"lower K in elbo={elbo_spec!r} or batch_size={batch_size}"
        step_param = ("elbo", "batch_size")
    else:
        step_fix = f"lower num_particles={num_particles} or batch_size={batch_size}"
        step_param = ("num_particles", "batch_size")
    params = Part("the parameters, gradients, Adam's moments and the checkpoint being written",
                  _params_bytes(model) * PARAM_COPIES, model_fix, model_param)
    step = Part(f"a training step of {num_particles * batch:,} rows x {width:,} layer outputs",
                row_bytes(num_particles * batch, width, VALUE, STEP_COPIES), step_fix, step_param)
    test = Part(f"the test evaluation of {min(eval_batch_size, num_test):,} rows",
                row_bytes(min(eval_batch_size, num_test), width, VALUE, EVAL_COPIES), model_fix, model_param)
    work = epochs_left * (num_train * num_particles * macs * BACKWARD + num_test * macs)
    work_fix = "lower `epochs`" + (f" or num_particles={num_particles}" if num_particles > 1 and not
                                   elbo_spec.startswith("iwae") else "")
    return _worst("training", [[params, step], [params, test]], work, work_fix, ("epochs", "num_particles"))


def bounds_parts(model, num_images, num_samples, batch_size, chunk_size=None, psis=True):
    """The peak of the importance-sampling bounds (``tightness_report``): a chunk of draws through the
    networks and a batch's S x B float64 log weights."""
    batch = min(batch_size, num_images)
    chunk = min(chunk_size or default_chunk_size(batch), num_samples)
    fix_chunk = f"lower chunk_size={chunk} or batch_size={batch_size}"
    fix_weights = f"lower num_samples={num_samples} or batch_size={batch_size}"
    copies = WEIGHT_COPIES if psis else WEIGHT_COPIES - 3
    return [Part(f"an evaluation chunk of {batch * chunk:,} rows x {model.activation_width():,} layer outputs",
                 row_bytes(batch * chunk, model.activation_width(), VALUE, EVAL_COPIES), fix_chunk,
                 ("chunk_size", "batch_size")),
            Part(f"the log weights of {batch:,} images x {num_samples:,} draws",
                 row_bytes(batch, num_samples, DOUBLE, copies), fix_weights, ("num_samples", "batch_size"))]


def ais_parts(model, latent_dim, num_images, num_steps, num_chains, what="AIS"):
    """The peak of AIS on ``num_images`` images: the chains of one chunk through the networks with
    their gradients, and the schedule of ``num_steps`` betas."""
    per_image = num_chains + DEFAULT_PILOTS
    images = min(num_images, max(1, AIS_CHUNK_ROWS // per_image))
    rows = images * per_image
    fix = f"lower ais_chains={num_chains}"
    return [Part(f"{what}'s {rows:,} chains x {model.activation_width():,} layer outputs",
                 row_bytes(rows, model.activation_width() + 4 * latent_dim, VALUE, HMC_COPIES), fix, "ais_chains"),
            Part(f"{what}'s schedule of {num_steps:,} steps", row_bytes(num_steps + 1, 4, DOUBLE),
                 f"lower ais_steps={num_steps}", "ais_steps")]


def evaluate_need(model, num_images, num_samples, batch_size=100, chunk_size=None, psis=True, latent_dim=1,
                  ais_steps=None, ais_chains=16, ais_leapfrog=10, ais_images=100, bdmc_points=0,
                  local_opt_images=0, local_opt_steps=500, code_rows=0, data_dim=1):
    """``pyro-vae evaluate``: the bounds on ``num_images`` images with S = ``num_samples`` draws,
    AIS and BDMC when asked, the gap decomposition on ``local_opt_images`` images, and the code
    report's probes on ``code_rows`` training rows of ``data_dim`` values."""
    macs = model.multiply_adds()
    phases = [bounds_parts(model, num_images, num_samples, batch_size, chunk_size, psis)]
    work = num_images * num_samples * macs
    fix = f"lower num_samples={num_samples} or max_images={num_images}"
    param = ("num_samples", "max_images")
    if ais_steps is not None or bdmc_points:
        steps = ais_steps or 1000
        annealed = min(ais_images, num_images) if ais_steps is not None else 0
        chains = annealed + 2 * bdmc_points
        phases.append(ais_parts(model, latent_dim, max(annealed, bdmc_points, 1), steps, ais_chains))
        work += chains * (ais_chains + DEFAULT_PILOTS) * steps * (ais_leapfrog + 1) * macs * BACKWARD
        fix += f", ais_steps={steps}, ais_chains={ais_chains} or bdmc_points={bdmc_points}"
        param += ("ais_steps", "ais_chains", "bdmc_points")
    if local_opt_images:
        n = local_opt_images
        opt = Part(f"the local optimisation of {n:,} images x {LOCAL_PARTICLES} draws",
                   row_bytes(n * LOCAL_PARTICLES, model.activation_width(), VALUE, STEP_COPIES),
                   f"lower local_opt_images={n}", "local_opt_images")
        phases.append([*bounds_parts(model, n, num_samples, n, chunk_size, psis), opt])
        work += n * (local_opt_steps * LOCAL_PARTICLES * BACKWARD + 6 * num_samples) * macs
        param += ("local_opt_images",)
    if code_rows:
        phases.append([Part(f"the code report's probes on {code_rows:,} rows x {data_dim:,} values",
                            row_bytes(code_rows, data_dim, DOUBLE, 6), f"lower max_images={num_images}",
                            "max_images")])
    return _worst("evaluate", phases, work, fix, param)


def grid_bytes(num_images, data_dim):
    """Bytes of ``num_images`` images of ``data_dim`` values drawn in a figure."""
    return row_bytes(num_images, data_dim, PIXEL_BYTES)


def canvas_bytes(width_inches, height_inches, dpi):
    """Bytes of a figure's RGBA canvas while it is drawn and written as a PNG."""
    return int(width_inches * dpi) * int(height_inches * dpi) * 4 * CANVAS_COPIES


def plot_need(model, data_dim, num_test, grid_size=15, num_images=10, dpi=90, khat=None):
    """``pyro-vae plot``: the 2-d manifold's ``grid_size``^2 decoded images, the grids of
    ``num_images`` per row (samples: 5 rows; interpolations: up to 5 paths of ``num_images`` steps),
    their canvases at ``dpi``, the test codes, and k-hat recomputed as ``khat`` says
    (``{"num_images", "num_samples", "batch_size", "chunk_size"}`` from ``eval.json``)."""
    width, macs = model.activation_width(), model.multiply_adds()
    g, n = grid_size, num_images
    manifold = [Part(f"the manifold's {g * g:,} decoded images", row_bytes(g * g, width, VALUE, EVAL_COPIES)
                     + grid_bytes(g * g, data_dim), f"lower grid_size={g}", "grid_size"),
                Part("its canvas", canvas_bytes(6, 6, dpi), f"lower dpi={dpi}", "dpi")]
    grids = [Part(f"{5 * n:,} sample and interpolation images", row_bytes(5 * n, width, VALUE, EVAL_COPIES)
                  + grid_bytes(5 * n, data_dim), f"lower num_images={n}", "num_images"),
             Part("their canvas", canvas_bytes(0.6 * n + 0.4, 3.6, dpi), f"lower num_images={n} or dpi={dpi}",
                  ("num_images", "dpi"))]
    codes = [Part(f"the codes of {num_test:,} test images", row_bytes(min(num_test, 1000), width, VALUE, EVAL_COPIES),
                  "", ())]
    phases = [manifold, grids, codes]
    work = (g * g + 5 * n + n * n + num_test) * macs
    if khat:
        k = min(khat["khat_images"], khat["num_images"])
        phases.append(bounds_parts(model, k, khat["num_samples"], khat["batch_size"], khat.get("chunk_size")))
        work += k * khat["num_samples"] * macs
    return _worst("plot", phases, work, f"lower grid_size={g}, num_images={n} or khat_images", ("grid_size",
                  "num_images", "khat_images"))


def compare_kl_need(model, num_train, num_test, repeats=100, num_particles=(1, 4), batch_size=128, kl_samples=100,
                    kl_points=1000, estimator_ks=(1,), snr_k=(), snr_batch_size=16, snr_repeats=None,
                    outcome=None):
    """``pyro-vae compare-kl``: the KL check, the variance study, the estimators, the SNR curve and,
    when ``outcome`` (``{"epochs", "seeds", "batch_size", "num_particles", "iwae_samples"}``) is
    given, the retraining."""
    width, macs = model.activation_width(), model.multiply_adds()
    snr_repeats = snr_repeats or repeats
    kl_rows = min(kl_points, num_test) * min(25, kl_samples)
    phases = [[Part(f"the KL check's {kl_rows:,} rows", row_bytes(kl_rows, width, VALUE, EVAL_COPIES)
                    + row_bytes(min(kl_points, num_test), kl_samples, VALUE, 4), f"lower kl_points={kl_points}",
                    "kl_points")],
              [Part(f"a gradient of {max(num_particles) * batch_size:,} rows",
                    row_bytes(max(num_particles) * batch_size, width, VALUE, STEP_COPIES),
                    f"lower num_particles={max(num_particles)} or batch_size={batch_size}",
                    ("num_particles", "batch_size"))],
              [Part(f"an estimator's gradient of {max(estimator_ks) * batch_size:,} rows",
                    row_bytes(max(estimator_ks) * batch_size, width, VALUE, STEP_COPIES),
                    f"lower K in estimators or batch_size={batch_size}", ("estimators", "batch_size"))]]
    work = min(kl_points, num_test) * kl_samples * macs
    work += repeats * batch_size * (2 * sum(num_particles) + sum(estimator_ks)) * macs * BACKWARD
    if snr_k:
        phases.append([Part(f"the SNR curve's gradient of {max(snr_k) * snr_batch_size:,} rows",
                            row_bytes(max(snr_k) * snr_batch_size, width, VALUE, STEP_COPIES),
                            f"lower snr_k={max(snr_k)} or snr_batch_size={snr_batch_size}",
                            ("snr_k", "snr_batch_size"))])
        work += snr_repeats * snr_batch_size * 2 * sum(snr_k) * macs * BACKWARD
    if outcome:
        train = train_need(model, num_train, num_test, outcome["batch_size"], outcome["num_particles"],
                           outcome["epochs"])
        phases.append(train.parts)
        runs = 2 * len(outcome["seeds"])
        work += runs * (train.work + num_test * outcome["iwae_samples"] * macs)
    return _worst("compare-kl", phases, work, f"lower repeats={repeats}, snr_k or outcome_epochs",
                  ("repeats", "snr_k", "outcome_epochs"))


__all__ = ["ais_parts", "bounds_parts", "compare_kl_need", "evaluate_need", "plot_need", "train_need"]
