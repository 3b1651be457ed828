"""The run configuration: everything needed to rebuild a model and continue its training.

Stored as ``config.json`` in the run directory (plain JSON: never pickled objects). Every key must be
there: a missing one is an error naming it, never filled in with a default, since a default may not
be what the run was trained with. ``changes`` records the settings a resumed run changed (see
:meth:`TrainConfig.record_changes`); the per-epoch learning rate and clipping are in ``history.csv``.
"""

import dataclasses
import json
from dataclasses import dataclass, field

from .. import specs
from ..errors import UserError, check_int, check_positive
from ..families import noises
from ..inference.compiled import check_mode
from ..inference.objectives import make_elbo
from ..inference.schedules import make_schedule

# Keys that config.json gained after runs had been written without them, with the value that says how
# those runs were trained: MLP networks, Pyro's interpreter on every step, no labels, no recorded change.
# Any other missing key is an error. (A conv run stripped of "arch" is then refused by its checkpoint.)
ADDED_LATER = {"arch": "mlp", "channels": [32, 64], "step": "eager", "labels": None, "alpha_scale": 0.1,
               "changes": []}

ARCHS = ("mlp", "conv")  # the networks between the data and the latent code (arch)


@dataclass
class TrainConfig:
    # data
    dataset: str = "mnist5k"  # mnist5k | digits | mnist | fashion-mnist | kmnist | npz:PATH
    data_dir: str | None = None  # root of torchvision datasets (<root>/MNIST/raw/...)
    download: bool = False  # let torchvision download missing files (needs internet)
    binarize: str = "dynamic"  # dynamic | static | none
    # model
    model: str = "vae"  # model program, see pyro_vae.experiment.build.MODELS
    prior: str = "normal"  # p(z) spec, see pyro_vae.families.priors.REGISTRY
    likelihood: str = "bernoulli"  # p(x|z) spec, see pyro_vae.families.likelihoods.REGISTRY
    posterior: str = "diag"  # q(z|x) spec, see pyro_vae.families.posteriors.REGISTRY
    latent_dim: int = 20  # Z
    hidden: list = field(default_factory=lambda: [400])  # hidden layer sizes of encoder and decoder
    activation: str = "relu"  # hidden-layer activation, see pyro_vae.models.nets.ACTIVATIONS
    arch: str = "mlp"  # networks next to the data: mlp (fully connected) | conv (strided convolutions, images only)
    channels: list = field(default_factory=lambda: [32, 64])  # conv: channels of each stride-2 layer (encoder order)
    # objective and optimiser
    elbo: str = "meanfield"  # trace | meanfield | jit-trace | jit-meanfield | iwae:K
    num_particles: int = 1  # vectorised samples of z per data point in the ELBO estimate
    beta: float = 1.0  # weight of log p(z) - log q(z|x) in training (beta-VAE); 1 is the ELBO
    kl_warmup: int = 0  # epochs of linear KL warm-up, weight beta * min(1, epoch / W) (0: off)
    # autoencoders (model ae | sparse-ae | denoising-ae | contractive-ae)
    sparsity: float = 1.0  # lambda of the sparse AE's L1 code penalty lambda |h|_1 (nats per unit)
    noise: str = "masking:0.3"  # denoising AE corruption: masking:NU | gaussian:SIGMA
    contraction: float = 0.1  # lambda_c of the contractive AE's penalty lambda_c ||J_f(x)||_F^2
    # semi-supervised M2 (model "m2")
    labels: int | None = None  # labelled training images, N / C from each class, chosen by seed; the rest unlabelled
    alpha_scale: float = 0.1  # weight alpha = alpha_scale * N of the classification term (Kingma et al. 2014: 0.1)
    epochs: int = 50  # total passes over the training set (resume continues up to this)
    batch_size: int = 128  # minibatch size B
    lr: float = 1e-3  # Adam learning rate (the base rate of lr_schedule)
    lr_schedule: str = "constant"  # constant | burda[:STAGES] | cosine[:EPOCHS], see pyro_vae.inference.schedules
    adam_eps: float = 1e-8  # Adam's epsilon (Burda et al. 2016 use 1e-4)
    betas: list = field(default_factory=lambda: [0.9, 0.999])  # Adam betas
    clip_norm: float | None = None  # clip the gradient's global L2 norm to this (None: off)
    step: str = "compiled"  # compiled | captured | eager: a training step's graph (pyro_vae.inference.compiled)
    keep_epochs: str = ""  # epochs whose model is kept in snapshots/: "1,4,13" or "stages" (the schedule's stage ends)
    seed: int = 0  # seeds initialisation, minibatch order, binarisation and the ELBO's samples
    device: str = "cpu"  # cpu | cuda
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    # what resumes changed: [{"epoch": first epoch trained with the change, "settings": {name: [old, new]}}]
    changes: list = field(default_factory=list)

    def validate(self):
        """Check every field; a bad one is a :class:`~pyro_vae.errors.UserError` naming the field.

        A config edited by hand (or written by an older version) is checked as strictly as flags:
        ``config.json`` holds only values that rebuild the same run.
        """
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type is str and not isinstance(value, str) or \
                    f.name == "data_dir" and value is not None and not isinstance(value, str):
                raise UserError(f"{f.name} must be a string, got {value!r}", param=f.name)
        if not isinstance(self.download, bool):
            raise UserError(f"download must be true or false, got {self.download!r}", param="download")
        if not isinstance(self.betas, list) or len(self.betas) != 2 or any(
                isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 <= b < 1 for b in self.betas):
            raise UserError(f"betas must be two numbers in [0, 1) such as [0.9, 0.999], got {self.betas!r}",
                            param="betas")
        for name in ("latent_dim", "epochs", "batch_size", "num_particles"):
            check_int(name, getattr(self, name))
        check_int("kl_warmup", self.kl_warmup, least=0)
        check_int("seed", self.seed, least=0)
        for name in ("lr", "beta", "sparsity", "contraction", "adam_eps"):
            check_positive(name, getattr(self, name))
        if self.clip_norm is not None:
            check_positive("clip_norm", self.clip_norm)
        if self.labels is not None:
            check_int("labels", self.labels)
        check_positive("alpha_scale", self.alpha_scale)
        if self.threads is not None:
            check_int("threads", self.threads)
        if not isinstance(self.hidden, list) or not self.hidden or \
                any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hidden):
            raise UserError(f"hidden must be positive comma-separated sizes like 400 or 512,256, got {self.hidden!r}",
                            param="hidden")
        check_mode(self.step, "step")
        if self.arch not in ARCHS:
            raise UserError(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}", param="arch")
        if not isinstance(self.channels, list) or not self.channels or \
                any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in self.channels):
            raise UserError(f"channels must be positive comma-separated sizes like 32,64, got {self.channels!r}",
                            param="channels")
        try:  # built by denoising-ae and by evaluate's corrupted-input report: refuse e.g. masking:1.5 now
            noises.REGISTRY.build(self.noise, specs.Context(z_dim=0, data_dim=1))
        except UserError as e:
            raise UserError(str(e) if str(e).startswith("unknown") else f"noise {e}", param="noise") from None
        for name, parse in (("elbo", lambda: make_elbo(self.elbo, num_particles=self.num_particles)),
                            ("lr_schedule", self.schedule), ("keep_epochs", self.kept_epochs)):
            try:  # every spec is parsed now, before a run directory is made or a config rewritten
                parse()
            except UserError as e:
                raise UserError(str(e), param=e.params() or name) from None
        if not isinstance(self.changes, list) or any(not isinstance(c, dict) or set(c) != {"epoch", "settings"}
                                                     for c in self.changes):
            raise UserError(f"changes must be a list of {{'epoch': E, 'settings': {{name: [old, new]}}}}, got "
                            f"{self.changes!r}", param="changes")
        return self

    def schedule(self):
        """The :class:`~pyro_vae.inference.schedules.Schedule` of ``lr_schedule`` over ``epochs``."""
        return make_schedule(self.lr_schedule, self.epochs)

    def kept_epochs(self):
        """The epochs ``keep_epochs`` names (see :func:`keep_epochs`)."""
        return keep_epochs(self.keep_epochs, self.schedule())

    def record_changes(self, new, epoch):
        """This config with the fields of ``new`` (a dict) applied, and ``changes`` extended by the
        ones that differ: ``{"epoch": epoch, "settings": {name: [old, new]}}``, ``epoch`` being the
        first epoch trained with them. Nothing is recorded when nothing differs."""
        changed = {k: [getattr(self, k), v] for k, v in sorted(new.items()) if getattr(self, k) != v}
        updated = dataclasses.replace(self, **new)
        if changed:
            updated.changes = [*self.changes, {"epoch": int(epoch), "settings": changed}]
        return updated

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        """The config of a ``config.json`` dict: every field present (a missing one is an error naming
        it and the value a new run would write, never a silent default), no unknown key, all valid.
        The keys of :data:`ADDED_LATER` alone may be absent: a run written before they existed was
        trained as their value there says."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"config has unknown keys {unknown}; it was written by another version")
        d = {**{k: v for k, v in ADDED_LATER.items() if k not in d}, **d}  # a run written before the key existed
        missing = [name for name in known if name not in d]
        if missing:
            fresh = cls().to_dict()
            listed = ", ".join(f"{name!r} (a new run writes {json.dumps(fresh[name])})" for name in missing)
            raise UserError(f"config lacks {listed}; a missing setting is not filled in with a default, which may "
                            "not be what the run was trained with: add it with the run's value")
        return cls(**d).validate()


def keep_epochs(spec, schedule):
    """The epochs a ``keep_epochs`` spec names: ``stages`` (the ends of ``schedule``'s stages) or
    ``1,4,13``; () for "".

    Example::

        >>> from pyro_vae.inference.schedules import make_schedule
        >>> keep_epochs("1,4,13", None), keep_epochs("stages", make_schedule("burda:3"))
        ((1, 4, 13), (1, 4, 13))
    """
    if not spec:
        return ()
    if spec == "stages":
        ends = schedule.stage_ends()
        if not ends:
            raise UserError(f"keep_epochs='stages' needs a staged `lr_schedule` (burda), not {schedule!r}",
                            param=("keep_epochs", "lr_schedule"))
        return tuple(ends)
    try:
        epochs = tuple(int(e) for e in spec.split(","))
    except ValueError:
        epochs = ()
    if not epochs or min(epochs) < 1:
        raise UserError(f"keep_epochs takes 'stages' or positive epochs like 1,4,13, got {spec!r}", param="keep_epochs")
    return epochs
