"""The latent sites of a model/guide pair as one flat, unconstrained vector per chain and data point,
with log p(x, z) and the initial density q0(z) read from Pyro traces at given latent values.

For C chains on B data points, every latent site's value is ``(C, B, *event)`` (an outer particle
plate of C, left of the ``"data"`` plate). :class:`LatentSpace` maps each site to real space with
torch's ``biject_to(support)`` (the identity for real-valued sites, so nothing is done for a VAE's
Gaussian latents), flattens and concatenates the sites in the model's order into ``u`` ``(C B, D)``,
and back. At any ``u`` it reads, from the model conditioned on the latent values (any prior,
likelihood or ``pyro.factor`` term, any number of latent sites):

    log q0(z)         the guide's joint density at z (``init="guide"``) or the prior's (``init="prior"``)
    log p(x, z)       every site of the model: latent, observed and factor terms
    log |dz / du|     the Jacobian of the map from real space (0 for real-valued sites)

with their gradients with respect to ``u`` (the guide scores its own copy of ``u``, so one backward
pass gives the gradients of log p(x, z) and log q0). When no distribution of the guide depends on a
latent value (a VAE's q(z | x) depends on x only) the guide runs once and its distributions are
reused at every position. This is what annealed importance sampling moves between.
"""

import contextlib

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from torch.distributions import biject_to, constraints

from ..errors import UserError
from ..inference.traces import (
    factor_sites,
    get_traces,
    log_density,
    particle_plate,
    per_point,
    sample_sites,
    site_log_prob,
)

INITS = ("guide", "prior")


class _Site:
    """One latent site's place in the flat vector: its map to real space and its slice."""

    def __init__(self, name, value, support):
        self.name = name
        self.transform = biject_to(support)
        self.identity = _is_real(support)
        unconstrained = value if self.identity else self.transform.inv(value)
        self.shape = unconstrained.shape[2:]  # event shape in real space
        self.size = unconstrained[0, 0].numel()


def _grad(value, u, retain_graph):
    """Gradient of ``value.sum()`` with respect to ``u``; zeros when it does not depend on ``u``."""
    if not value.requires_grad:
        return torch.zeros_like(u)
    grad, = torch.autograd.grad(value.sum(), u, retain_graph=retain_graph, allow_unused=True)
    return torch.zeros_like(u) if grad is None else grad


def _is_real(constraint):
    while isinstance(constraint, constraints.independent):
        constraint = constraint.base_constraint
    return constraint is constraints.real


class LatentSpace:
    """Latent values of C chains on the rows of ``x`` as ``u`` ``(C B, D)``, and the densities of AIS.

    :param model: Pyro program ``model(x)``, latent sites in the ``"data"`` plate at dim -1.
    :param guide: Pyro program ``guide(x)`` with the same latent sites.
    :param x: ``(B, ...)`` observed data.
    :param int num_chains: C.
    :param str init: ``"guide"``: q0 = the guide q(z | x); ``"prior"``: q0 = the model's prior p(z).
    :param int max_plate_nesting: plates the programs nest (the chain plate goes left of them).
    """

    def __init__(self, model, guide, x, num_chains, init="guide", max_plate_nesting=1):
        if init not in INITS:
            raise UserError(f"init must be one of {', '.join(INITS)}, got {init!r}", param="init")
        self.x, self.init = x, init
        self.num_chains, self.batch = num_chains, x.shape[0]
        plate = particle_plate(num_chains, max_plate_nesting)
        self._model, self._guide = plate(model), plate(guide)
        model_trace, guide_trace = get_traces(self._model, self._guide, x)  # the model replayed on the guide
        latents = sample_sites(model_trace, observed=False)
        if not latents:
            raise UserError("the model has no latent sample site to anneal over", param="model")
        for site in latents:
            per_point(site, site["value"])  # in the "data" plate at dim -1
            if site["fn"].support.is_discrete:
                raise UserError(f"site {site['name']!r} is discrete; AIS with HMC needs continuous latent "
                                "sites (sum discrete ones out in the model)", param="model")
        self.names = [site["name"] for site in latents]
        self._check_guide(guide_trace)
        self.sites = [_Site(site["name"], site["value"], site["fn"].support) for site in latents]
        self.dim = sum(site.size for site in self.sites)
        self._validated = False
        self._guide_fns = None
        if init == "guide":
            self._guide_fns = self._fixed_guide_distributions(
                {name: guide_trace.nodes[name]["value"].detach() for name in self.names})

    def _check_guide(self, guide_trace):
        guide_names = [site["name"] for site in sample_sites(guide_trace, observed=False)]
        if sorted(guide_names) != sorted(self.names):
            raise UserError(f"the guide samples {guide_names} but the model's latent sites are {self.names}; "
                            "they must be the same", param="guide")
        if self.init == "guide":
            for site in sample_sites(guide_trace, observed=False):
                if isinstance(site["fn"], dist.Delta):
                    raise UserError(f"init='guide' needs a guide with a density, but its site {site['name']!r} "
                                    "is a point mass (Delta); use init='prior'", param="init")

    # --- the flat vector ------------------------------------------------------------------------

    def flatten(self, values):
        """``{site: (C, B, *event)}`` -> ``u`` ``(C B, D)`` in real space."""
        parts = []
        for site in self.sites:
            value = values[site.name]
            value = value if site.identity else site.transform.inv(value)
            parts.append(value.expand(self.num_chains, self.batch, *site.shape)
                         .reshape(self.num_chains * self.batch, site.size))
        return torch.cat(parts, -1)

    def unflatten(self, u):
        """``u`` ``(C B, D)`` -> ``({site: (C, B, *event)}, log |dz/du|)``; the log-Jacobian is
        ``(C, B)``, or None when every site is real-valued."""
        values, log_jacobian = {}, None
        for site, part in zip(self.sites, u.split([s.size for s in self.sites], -1), strict=False):
            part = part.reshape(self.num_chains, self.batch, *site.shape)
            if site.identity:
                values[site.name] = part
                continue
            value = site.transform(part)
            ladj = site.transform.log_abs_det_jacobian(part, value)
            ladj = ladj.reshape(self.num_chains, self.batch, -1).sum(-1)  # (C, B)
            log_jacobian = ladj if log_jacobian is None else log_jacobian + ladj
            values[site.name] = value
        return values, log_jacobian

    # --- draws and densities --------------------------------------------------------------------

    def sample_initial(self):
        """``u`` ``(C B, D)`` drawn from q0: the guide's or the prior's draws, C per data point."""
        program = self._guide if self.init == "guide" else self._model
        try:
            trace = poutine.trace(program).get_trace(self.x)
        except NotImplementedError as e:  # e.g. an improper flat prior cannot be sampled
            raise UserError(f"init={self.init!r} cannot draw the initial states: {e}", param="init") from e
        return self.flatten({name: trace.nodes[name]["value"].detach() for name in self.names})

    def log_joint(self, values):
        """log p(x, z) at the latent ``values`` ``(C, B)`` and the model's trace."""
        trace = poutine.trace(poutine.condition(self._model, data=values)).get_trace(self.x)
        return log_density(trace).expand(self.num_chains, self.batch), trace

    def log_guide(self, values):
        """log q(z | x) of the guide at the latent ``values``, ``(C, B)``."""
        if self._guide_fns is not None:  # the guide's distributions, computed once
            return sum(fn.log_prob(values[name]) for name, fn in self._guide_fns.items()).expand(
                self.num_chains, self.batch)
        trace = poutine.trace(poutine.condition(self._guide, data=values)).get_trace(self.x)
        return log_density(trace).expand(self.num_chains, self.batch)

    def _fixed_guide_distributions(self, values):
        """The guide's distributions ``{site: fn}`` when none of them depends on a latent value (a
        VAE's q(z | x) depends on x only), else None (a bottom-up guide's q(z1 | z2)).

        Found by differentiating each site's log-density at fixed values with respect to the latent
        values the guide was conditioned on; the distributions are then reused at every position.
        """
        with torch.enable_grad():
            leaves = {name: value.detach().requires_grad_(True) for name, value in values.items()}
            trace = poutine.trace(poutine.condition(self._guide, data=leaves)).get_trace(self.x)
            if factor_sites(trace):
                return None
            for site in sample_sites(trace, observed=True):
                lp = site["fn"].log_prob(site["value"].detach()).sum()
                grads = torch.autograd.grad(lp, list(leaves.values()), allow_unused=True) if lp.requires_grad \
                    else [None]
                if any(g is not None for g in grads):
                    return None
        # the same distributions, without the networks' graph, and unchecked: leapfrog positions may
        # leave the support numerically (exp overflow); their energy is NaN and the transition rejects them
        with torch.no_grad(), pyro.validation_enabled(False):
            trace = poutine.trace(poutine.condition(self._guide, data=values)).get_trace(self.x)
        return {site["name"]: site["fn"] for site in sample_sites(trace, observed=True)}

    def _log_prior(self, model_trace):
        """log p(z) of the model's latent sites (read from its trace), ``(C, B)``."""
        return sum(site_log_prob(model_trace.nodes[name]) for name in self.names).expand(self.num_chains, self.batch)

    def evaluate(self, u):
        """Log-density components at ``u`` ``(N, D)`` and their gradients.

        :returns: ``values`` ``(K, N)`` and ``grads`` ``(K, N, D)`` with K = 2 (log q0, log p(x, z))
            or 3 (and log |dz/du|, when a site is not real-valued); N = C B.

        With ``init="guide"`` the guide is scored on its own copy of ``u``, so one backward pass
        gives both gradients. Pyro's distribution checks run on the first call only; later
        positions are checked by their result (a NaN energy is rejected by the transition).
        """
        with contextlib.nullcontext() if not self._validated else pyro.validation_enabled(False), \
                torch.enable_grad():
            u_p = u.detach().requires_grad_(True)
            values, log_jacobian = self.unflatten(u_p)
            log_p, trace = self.log_joint(values)
            extra = [] if log_jacobian is None else [(log_jacobian, _grad(log_jacobian, u_p, retain_graph=True))]
            if self.init == "prior":
                log_q0 = self._log_prior(trace)
                g_q = _grad(log_q0, u_p, retain_graph=True)
                g_p = _grad(log_p, u_p, retain_graph=False)
            else:
                u_q = u.detach().requires_grad_(True)
                log_q0 = self.log_guide(self.unflatten(u_q)[0])
                g_p, g_q = torch.autograd.grad([log_p.sum(), log_q0.sum()], [u_p, u_q], allow_unused=True)
                g_p = torch.zeros_like(u) if g_p is None else g_p
                g_q = torch.zeros_like(u) if g_q is None else g_q
        self._validated = True
        n = u.shape[0]
        parts = [(log_q0, g_q), (log_p, g_p)] + extra
        return torch.stack([v.detach().reshape(n) for v, _ in parts]), torch.stack([g for _, g in parts])

    def log_joint_minus_q0(self, values):
        """``log p(x, z) - log q0(z)`` from :meth:`evaluate`'s ``values``, float64 ``(N,)``: the
        integrand of the AIS weight (the log-Jacobian cancels)."""
        return values[1].double() - values[0].double()
