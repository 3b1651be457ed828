"""HMC step sizes for annealed importance sampling that keep its weights unbiased.

Wu et al. (2017) adapt each chain's step size from that chain's own acceptance. That makes the
transition at step t depend on the chain's past states, so the chain no longer runs a fixed
sequence of f_t-invariant kernels, and E[w] = p(x) fails: on a Poisson-Gamma model with a
LogNormal q0 (3 points, 100 steps, 2,000 chains each, initial step size 0.5) self-adapted chains gave
E[w] / p(x) = 1.226 +- 0.011, 1.399 +- 0.025 and 1.065 +- 0.007; the pilots below 0.998 +- 0.010,
0.992 +- 0.013 and 0.993 +- 0.007 (tests/diagnostics/test_ais.py keeps both checks). An upward bias
is the worst kind for a number meant to be a lower bound.

Here the adaptation is the same multiplicative rule (toward acceptance 0.65, :func:`.hmc.adapt_step_size`),
but run by P extra *pilot* chains per data point, whose weights are discarded; each of the C
counted chains takes the step size of pilot ``c mod P`` at every step. The pilots are independent
of the counted chains, so given the pilots each counted chain runs a fixed kernel sequence: exactly
unbiased, for P / C more work (one pilot: 1/16 with 16 chains). With P = C every chain has its own
step size. :class:`ScheduledStepSizes` replays a recorded pilot schedule (reverse AIS in BDMC takes
the forward run's, which does not depend on the exact posterior draw it starts from).
"""

import torch

from .hmc import adapt_step_size


def _chain_index(num_pilots, num_chains):
    """For each counted chain c, the pilot whose step size it takes: ``c mod P``."""
    return torch.arange(num_chains) % num_pilots


class PilotStepSizes:
    """P pilot chains (the first P of the P + C chains) adapt; the C counted chains follow them.

    :param int num_pilots: P (0: no adaptation, every chain keeps ``initial``).
    :param int num_chains: C counted chains.
    :param int batch: B data points.
    :param float initial: the starting step size.
    :param bool record: keep every step's pilot
        step sizes, for :class:`ScheduledStepSizes`.
    """

    def __init__(self, num_pilots, num_chains, batch, initial, dtype=torch.float32, device=None, record=False):
        self.num_pilots, self.num_chains, self.batch = num_pilots, num_chains, batch
        self.pilot_eps = torch.full((max(num_pilots, 1), batch), float(initial), dtype=dtype, device=device)
        self.index = _chain_index(max(num_pilots, 1), num_chains).to(self.pilot_eps.device)
        self.history = [] if record else None

    @property
    def num_rows_chains(self):
        """Chains in the batched computation: pilots and counted chains."""
        return self.num_pilots + self.num_chains

    def current(self):
        """``(N, 1)`` step size of every row (pilot rows first), N = (P + C) B."""
        eps = self.pilot_eps[self.index]  # (C, B)
        if self.num_pilots:
            eps = torch.cat([self.pilot_eps, eps])  # (P + C, B)
        return eps.reshape(-1, 1)

    def update(self, accept_prob):
        """After a transition: record the step sizes it used, then adapt the pilots' from their own
        acceptance probabilities (the first P B entries of ``accept_prob``)."""
        if self.history is not None:
            self.history.append(self.pilot_eps.clone())
        if self.num_pilots:
            rows = self.num_pilots * self.batch
            self.pilot_eps = adapt_step_size(self.pilot_eps.reshape(rows, 1), accept_prob[:rows]).reshape(
                self.num_pilots, self.batch)

    def schedule(self):
        """The recorded pilot step sizes, ``(T - 1, P, B)``."""
        return torch.stack(self.history)


class ScheduledStepSizes:
    """Step sizes read from a recorded ``schedule`` ``(T - 1, P, B)``, one entry per transition, for
    C chains (no pilots); chain c takes column ``c mod P``."""

    num_pilots = 0

    def __init__(self, schedule, num_chains):
        self.schedule, self.num_chains, self.step = schedule, num_chains, 0
        self.index = _chain_index(schedule.shape[1], num_chains).to(schedule.device)

    @property
    def num_rows_chains(self):
        return self.num_chains

    def current(self):
        return self.schedule[self.step][self.index].reshape(-1, 1)  # (C B, 1)

    def update(self, accept_prob):
        self.step += 1
