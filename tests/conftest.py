import pyro
import pytest
import torch

from pyro_vae.inference.compiled import compile_graph as REAL_COMPILE_GRAPH

# Tests use tiny models: one intra-op thread is faster, and immune to a busy machine's contention
# (two threads on a shared 2-core machine made one 3 s test take 80 s).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def pyro_state():
    """Seed, clear the param store and validate distributions in every test, as Pyro's tests do."""
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    pyro.enable_validation(True)
    yield
    pyro.clear_param_store()


@pytest.fixture(autouse=True, scope="session")
def captured_without_inductor():
    """Compiled steps replay their captured graph without inductor in tests (the same operations, equal to
    eager Pyro bit for bit, and built in a fraction of a second instead of inductor's seconds): session-wide,
    so module fixtures that train see it too. Tests marked ``inductor`` compile for real (below)."""
    from pyro_vae.inference import compiled

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compiled, "compile_graph", lambda gm, inputs: gm)
        yield compiled


@pytest.fixture(autouse=True)
def inductor(request, captured_without_inductor, monkeypatch):
    """The real inductor for tests marked ``inductor``."""
    if "inductor" in request.keywords:
        monkeypatch.setattr(captured_without_inductor, "compile_graph", REAL_COMPILE_GRAPH)


@pytest.fixture(scope="session")
def digits():
    from pyro_vae.data import load_dataset

    return load_dataset("digits", binarize="static")
