"""The run configuration: everything needed to rebuild a model and continue its training.

Stored as ``config.json`` in the run directory (plain JSON: never pickled objects).
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from .errors import UserError


@dataclass
class TrainConfig:
    # data
    dataset: str = "mnist5k"  # mnist5k | digits | mnist | fashion-mnist | kmnist | npz:PATH
    data_dir: Optional[str] = None  # root of torchvision datasets (<root>/MNIST/raw/...)
    download: bool = False  # let torchvision download missing files (needs internet)
    binarize: str = "dynamic"  # dynamic | static | none
    # model
    model: str = "vae"  # model program, see pyro_vae.build.MODELS
    prior: str = "normal"  # p(z) spec, see pyro_vae.priors.REGISTRY
    likelihood: str = "bernoulli"  # p(x|z) spec, see pyro_vae.likelihoods.REGISTRY
    posterior: str = "diag"  # q(z|x) spec, see pyro_vae.posteriors.REGISTRY
    latent_dim: int = 20  # Z
    hidden: list = field(default_factory=lambda: [400])  # hidden layer sizes of encoder and decoder
    activation: str = "relu"  # hidden-layer activation: relu | tanh | softplus | elu
    # objective and optimiser
    elbo: str = "meanfield"  # trace | meanfield | jit-trace | jit-meanfield | iwae:K
    num_particles: int = 1  # vectorised samples of z per data point in the ELBO estimate
    beta: float = 1.0  # weight of log p(z) - log q(z|x) in training (beta-VAE); 1 is the ELBO
    kl_warmup: int = 0  # epochs of linear KL warm-up, weight beta * min(1, epoch / W) (0: off)
    # autoencoders (--model ae | sparse-ae | denoising-ae | contractive-ae)
    sparsity: float = 1.0  # lambda of the sparse AE's L1 code penalty lambda |h|_1 (nats per unit)
    noise: str = "masking:0.3"  # denoising AE corruption: masking:NU | gaussian:SIGMA
    contraction: float = 0.1  # lambda_c of the contractive AE's penalty lambda_c ||J_f(x)||_F^2
    epochs: int = 50  # total passes over the training set (resume continues up to this)
    batch_size: int = 128  # minibatch size B
    lr: float = 1e-3  # Adam learning rate (the base rate of --lr-schedule)
    lr_schedule: str = "constant"  # constant | burda[:STAGES] | cosine[:EPOCHS], see pyro_vae.schedules
    adam_eps: float = 1e-8  # Adam's epsilon (Burda et al. 2016 use 1e-4)
    betas: list = field(default_factory=lambda: [0.9, 0.999])  # Adam betas
    clip_norm: Optional[float] = None  # clip the gradient's global L2 norm to this (None: off)
    seed: int = 0  # seeds initialisation, minibatch order, binarisation and the ELBO's samples
    device: str = "cpu"  # cpu | cuda
    threads: Optional[int] = None  # torch intra-op threads (None: torch's default)

    def validate(self):
        for name in ("latent_dim", "epochs", "batch_size", "num_particles"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive, got {self.lr!r}")
        if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) or not self.beta > 0:
            raise UserError(f"--beta must be positive (poutine.scale rejects 0), got {self.beta!r}")
        for name in ("sparsity", "contraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise UserError(f"--{name} must be a positive number, got {value!r}")
        if not isinstance(self.kl_warmup, int) or isinstance(self.kl_warmup, bool) or self.kl_warmup < 0:
            raise UserError(f"--kl-warmup must be a whole number of epochs (0: off), got {self.kl_warmup!r}")
        if isinstance(self.adam_eps, bool) or not isinstance(self.adam_eps, (int, float)) or not self.adam_eps > 0:
            raise UserError(f"--adam-eps must be a positive number, got {self.adam_eps!r}")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise UserError(f"--clip-norm must be positive, got {self.clip_norm!r}")
        if not self.hidden or any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise UserError(f"--hidden must be positive comma-separated sizes like 400 or 512,256, "
                            f"got {self.hidden!r}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"--threads must be a positive integer, got {self.threads!r}")
        return self

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"config has unknown keys {unknown}; it was written by another version")
        return cls(**d).validate()
