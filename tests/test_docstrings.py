"""The ``Example::`` blocks in docstrings run and print what they say (NumPyro's habit)."""

import doctest
import importlib
import inspect
import pkgutil

import pytest

import pyro_vae
from pyro_vae import bounds
from pyro_vae.diagnostics import exact_gap
from pyro_vae.families import likelihoods, noises, posteriors, priors
from pyro_vae.inference import em, enumeration

MODULES = sorted(m.name for m in pkgutil.walk_packages(pyro_vae.__path__, "pyro_vae.")
                 if not m.name.endswith("__main__"))
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, name):
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} docstring example(s) of {name} failed (see the output above)"


def _family_classes():
    """Every class a family registry builds, found by building each spec's class from its module."""
    classes = []
    for module, base in ((priors, priors.Prior), (likelihoods, likelihoods.Likelihood),
                         (posteriors, posteriors.Posterior), (noises, noises.Noise)):
        classes += [c for _, c in inspect.getmembers(module, inspect.isclass)
                    if issubclass(c, base) and c is not base and c.__module__ == module.__name__]
    return classes


ENTRY_POINTS = [pyro_vae.VAE, pyro_vae.Autoencoder, pyro_vae.fit, pyro_vae.make_elbo, bounds.iwae, bounds.log_weights,
                pyro_vae.dataset_statistics, pyro_vae.MLP] + _family_classes()
ENTRY_POINTS += [pyro_vae.MixtureModel, em.EM, enumeration.EnumELBO, exact_gap.exact_statistics]


@pytest.mark.parametrize("obj", ENTRY_POINTS, ids=lambda o: o.__qualname__)
def test_public_entry_points_carry_a_runnable_example(obj):
    doc = inspect.getdoc(obj) or ""
    assert "Example::" in doc and ">>> " in doc, f"{obj.__qualname__} has no runnable Example:: block"
