"""Learning-rate schedules by epoch: ``constant``, ``burda`` (Burda et al. 2016), ``cosine``.

A schedule is a pure function of the 1-based epoch, so a resumed run sets exactly the learning rate
an uninterrupted one would: ``fit`` writes ``schedule.lr(epoch, base_lr)`` into Adam's parameter
groups at the start of every epoch, and nothing else needs saving.
"""

import math
from dataclasses import dataclass

from ..errors import check_int
from ..specs import Registry

REGISTRY = Registry("learning-rate schedule")  # spec names, registered by @REGISTRY.register below


class Schedule:
    """Base: the learning rate of ``epoch`` (1-based) given the base rate ``base_lr``."""

    def lr(self, epoch, base_lr):
        raise NotImplementedError

    def total_epochs(self):
        """Epochs the schedule is defined for (None: any number)."""
        return None

    def stage_ends(self):
        """The last epoch of each stage of a staged schedule (none for a smooth one)."""
        return []

    def __repr__(self):
        return REGISTRY.spec_of(self) or type(self).__name__


@REGISTRY.register("constant", "the base learning rate in every epoch")
class Constant(Schedule):
    """The base rate in every epoch."""

    def lr(self, epoch, base_lr):
        return base_lr


@REGISTRY.register("burda", "3^i epochs at lr * 10^(-i/7), i < STAGES (8: 3,280 epochs; Burda et al. 2016)",
                   arg="STAGES", cast=int, default=8, attr="stages", example=3)
class Burda(Schedule):
    """Burda, Grosse & Salakhutdinov (2016), appendix: 3^i epochs at ``base_lr * 10^(-i/7)`` for
    i = 0 .. ``stages - 1`` (8 stages: 1 + 3 + ... + 2187 = 3,280 epochs); the last rate after that.

    Example::

        >>> s = Burda()
        >>> s.total_epochs(), s.lr(1, 1e-3), round(s.lr(2, 1e-3) / 1e-3, 4), s.stage(3280)
        (3280, 0.001, 0.7197, 7)
    """

    def __init__(self, stages=8):
        self.stages = check_int("stages", stages)

    def stage(self, epoch):
        """The stage i whose 3^i epochs contain ``epoch``."""
        end = 0
        for i in range(self.stages):
            end += 3 ** i
            if epoch <= end:
                return i
        return self.stages - 1

    def stage_ends(self):
        """The last epoch of each stage: 1, 4, 13, 40, 121, 364, 1093, 3280 for 8 stages."""
        return [sum(3 ** j for j in range(i + 1)) for i in range(self.stages)]

    def lr(self, epoch, base_lr):
        return base_lr * 10.0 ** (-self.stage(epoch) / 7.0)

    def total_epochs(self):
        return self.stage_ends()[-1]


@REGISTRY.register("cosine", "cosine decay to 0 over EPOCHS (default: the run's epochs)", arg="EPOCHS", cast=int,
                   default=None, attr="epochs", example=10, build=lambda cls, n, ctx: cls(n or ctx.epochs))
class Cosine(Schedule):
    """Cosine decay from the base rate to 0 over ``epochs`` (Loshchilov & Hutter 2017, no restarts):
    ``base_lr * (1 + cos(pi * (epoch - 1) / epochs)) / 2``; 0 after ``epochs``."""

    def __init__(self, epochs):
        self.epochs = check_int("epochs", epochs)

    def lr(self, epoch, base_lr):
        t = min(epoch - 1, self.epochs) / self.epochs
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * t))

    def total_epochs(self):
        return self.epochs


@dataclass(frozen=True)
class ScheduleContext:
    epochs: int  # the run's total epochs (cosine's default length)


def make_schedule(spec="constant", epochs=1):
    """The schedule a spec names (``constant``, ``burda[:STAGES]``, ``cosine[:EPOCHS]``); ``epochs``
    is the run's length, cosine's default."""
    return REGISTRY.build(spec, ScheduleContext(epochs))
