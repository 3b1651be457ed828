"""Noticing a training run that diverges without reaching NaN: a loss that grows by orders of magnitude.

A learning rate far too large can throw the parameters to where the loss is astronomically large
but finite (``lr=1e6`` on the demo net: 1e33 nats per image), so the NaN guard of ``fit`` never
fires. :class:`DivergenceWatch` compares every step's loss with a reference, the loss of the run's
first step (taken at the initial parameters; for a resumed run, its first epoch's mean), and warns
once when the loss has grown beyond it by more than :data:`GROWTH` times its size. Losses that fall
(a likelihood with learned scale can go far below zero) never warn.
"""

import warnings

from ..errors import ParamWarning

GROWTH = 1e3  # warn when loss - reference exceeds this many times max(|reference|, 1)


class DivergenceWarning(ParamWarning):
    """The training loss grew by orders of magnitude: the learning rate is likely too large."""


class DivergenceWatch:
    """Call it with each step's loss; it warns (:class:`DivergenceWarning`) at most once.

    :param reference: the loss to compare with (e.g. the first epoch's mean of a resumed run's
        history), or None to take the first step's.
    :param lr: the base learning rate, named in the advice.

    Example::

        >>> import warnings
        >>> watch = DivergenceWatch(reference=100.0, lr=1e6)
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     for loss in (90.0, 5e4, 1e33, 1e34):
        ...         watch(loss, epoch=1, step=1)
        >>> len(caught), str(caught[0].message)[:60]
        (1, 'the training loss grew from 100 to 1e+33 nats per data point')
    """

    def __init__(self, reference=None, lr=None):
        self.reference, self.lr, self.warned = reference, lr, False

    def __call__(self, loss, epoch, step):
        if self.warned:
            return
        if self.reference is None:
            self.reference = loss
            return
        if loss - self.reference > GROWTH * max(abs(self.reference), 1.0):
            self.warned = True
            lr = "lr" if self.lr is None else f"lr={self.lr:g}"
            warnings.warn(DivergenceWarning(
                f"the training loss grew from {self.reference:.4g} to {loss:.4g} nats per data point by epoch "
                f"{epoch}, step {step}: training is diverging; lower {lr} or set clip_norm=NORM (gradient clipping)",
                param=("lr", "clip_norm")), stacklevel=3)
