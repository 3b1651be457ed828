"""The compiled training step: graphs captured from the programs equal eager Pyro, every row is trained on,
resumes are exact, and whatever cannot be captured or compiled falls back with one line.

Tests here replay captured graphs without inductor (see conftest); those marked ``inductor`` compile."""

import os
import warnings

import pyro
import pytest
import torch

from pyro_vae import RunDir, fit, make_elbo
from pyro_vae.errors import UserError
from pyro_vae.inference import compiled
from pyro_vae.inference.compiled import CompiledStepWarning
from pyro_vae.inference.graph_step import GraphLoss
from tests.helpers import assert_close, eager_and_graph, small_vae

N = 1437  # digits' training rows: with batch 100, 14 full batches and a ragged one of 37

OBJECTIVES = [("meanfield", 1, None), ("trace", 1, None), ("trace", 3, None), ("stl", 1, None), ("stl", 2, 0.3),
              ("iwae:3", 1, None), ("iwae-dreg:3", 1, None), ("meanfield", 2, 0.3), ("iwae:2", 1, 0.5)]


@pytest.mark.parametrize("objective, particles, kl_scale", OBJECTIVES,
                         ids=[f"{o}-P{p}-kl{k}" for o, p, k in OBJECTIVES])
def test_captured_loss_and_gradients_equal_eager_pyro(objective, particles, kl_scale, digits):
    vae = small_vae()
    eager, ours, graph = eager_and_graph(vae, make_elbo(objective, particles), digits.x_train[:100], N, kl_scale)
    assert graph.routes == ["captured"]
    assert_close(eager, ours)
    assert ours[0] == eager[0] and all(torch.equal(a, b) for a, b in zip(eager[1], ours[1], strict=True))  # bit for bit


def test_the_ragged_last_batch_steps_eagerly_with_its_own_scale(digits):
    vae, elbo = small_vae(), make_elbo("meanfield")
    graph = GraphLoss(vae, elbo, list(vae.parameters()), N, mode="compiled")
    for x, graphed in ((digits.x_train[:100], True), (digits.x_train[1400:], False), (digits.x_train[100:200], True)):
        torch.manual_seed(1)
        loss = graph(x)
        assert (loss is not None) == graphed  # None: the caller steps eagerly (N / 37 for the ragged batch)
        if graphed:
            torch.manual_seed(1)
            assert loss == elbo.loss(vae.model, vae.guide, x, num_data=N)
    assert graph.routes == ["compiled"] and graph.active  # one graph (here replayed as captured, see conftest)


def test_objectives_without_a_graph_form_step_eagerly(digits):
    vae = small_vae()
    for spec in ("jit-trace", "jit-meanfield"):
        assert not GraphLoss(vae, make_elbo(spec), list(vae.parameters()), N).active
    assert not GraphLoss(vae, make_elbo("meanfield"), list(vae.parameters()), N, mode="eager").active
    with pytest.raises(UserError, match="step must be one of compiled, captured, eager, got 'fast'"):
        fit(vae, digits, make_elbo("meanfield"), epochs=1, step="fast")


def _fit(digits, step, epochs=2, **kw):
    pyro.clear_param_store()
    vae = small_vae(seed=0)
    history = fit(vae, digits, make_elbo(kw.pop("elbo", "meanfield"), kw.pop("particles", 1)), epochs=epochs,
                  batch_size=100, seed=3, quiet=True, step=step, **kw)
    return vae, history


@pytest.mark.parametrize("options", [{}, {"elbo": "iwae-dreg:2"}, {"elbo": "stl", "kl_warmup": 2, "beta": 0.5}],
                         ids=["meanfield", "iwae-dreg", "stl-warmup-beta"])
def test_whole_epochs_captured_equal_eager_bit_for_bit(options, digits):
    """Every row of every epoch (the ragged batch of 37 included), the same draws, the same parameters."""
    eager, h_eager = _fit(digits, "eager", **dict(options))
    ours, h_ours = _fit(digits, "captured", **dict(options))
    for (name, a), b in zip(eager.state_dict().items(), ours.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert [r["train_loss"] for r in h_eager] == [r["train_loss"] for r in h_ours]


# --- fallbacks ----------------------------------------------------------------------------------------


class Clipped(torch.nn.Module):
    """A user's decoder whose control flow reads a tensor's value: no graph can hold it."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, z):
        out = self.net(z)
        return out.clamp(-10, 10) if out.abs().max() > 10 else out


def test_a_model_that_cannot_be_captured_trains_eagerly_after_one_line(digits):
    def clipped():
        vae = small_vae(seed=0)
        vae.decoder = Clipped(vae.decoder)
        return vae

    vae = clipped()
    with pytest.warns(CompiledStepWarning) as record:
        fit(vae, digits, make_elbo("meanfield"), epochs=1, batch_size=100, seed=3, quiet=True)
    assert len(record) == 1
    message = str(record[0].message)
    assert "\n" not in message and message.startswith("the training step runs eagerly") and "captured" in message
    reference = clipped()
    fit(reference, digits, make_elbo("meanfield"), epochs=1, batch_size=100, seed=3, quiet=True, step="eager")
    for a, b in zip(vae.state_dict().values(), reference.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_failing_compiler_leaves_the_captured_graph_after_one_line(digits, monkeypatch):
    def no_compiler(gm, inputs):
        raise RuntimeError("C++ compile error: c++ not found\nmore lines")

    monkeypatch.setattr(compiled, "compile_graph", no_compiler)
    vae = small_vae()
    with pytest.warns(CompiledStepWarning, match=r"^the training step replays its captured graph without inductor: "
                      r"compiling it failed \(RuntimeError: C\+\+ compile error: c\+\+ not found\)$") as record:
        eager, ours, graph = eager_and_graph(vae, make_elbo("meanfield"), digits.x_train[:100], N, mode="compiled")
    assert len(record) == 1 and graph.routes == ["captured"]
    assert_close(eager, ours)


def test_a_graph_that_disagrees_with_eager_is_not_used(digits, monkeypatch):
    monkeypatch.setattr(compiled, "compile_graph", lambda gm, inputs: lambda *a: [t * 1.01 for t in gm(*a)])
    vae = small_vae()
    with pytest.warns(CompiledStepWarning, match=r"compiling it failed \(RuntimeError: its result differs from "
                      r"eager Pyro by 1\.0e-02"):
        eager, ours, graph = eager_and_graph(vae, make_elbo("trace"), digits.x_train[:100], N, mode="compiled")
    assert graph.routes == ["captured"]
    assert_close(eager, ours)


def test_nan_parameters_with_validation_report_a_nan_loss(digits):
    vae = small_vae()
    with torch.no_grad():
        vae.encoder[0].weight.fill_(float("nan"))
    graph = GraphLoss(vae, make_elbo("meanfield"), list(vae.parameters()), N)
    assert torch.isnan(torch.tensor(graph(digits.x_train[:100])))


# --- inductor -----------------------------------------------------------------------------------------


@pytest.mark.inductor
@pytest.mark.parametrize("objective", ["meanfield", "iwae-dreg:3"])
def test_inductor_loss_and_gradients_equal_eager_pyro(objective, digits):
    vae = small_vae()
    eager, ours, graph = eager_and_graph(vae, make_elbo(objective), digits.x_train[:100], N, mode="compiled")
    assert graph.routes == ["compiled"]
    assert_close(eager, ours)


@pytest.mark.inductor
def test_inductor_resume_is_exact(digits, tmp_path):
    """2 epochs, then resume for 2 more == 4 straight, parameter for parameter, on the default (compiled)
    step: the resumed process compiles the same graph (from inductor's cache) and draws the same numbers."""
    def train(epochs, path, resume=False):
        vae = small_vae(seed=0)
        os.makedirs(path, exist_ok=True)
        fit(vae, digits, make_elbo("meanfield"), epochs=epochs, batch_size=100, seed=7, run=RunDir(path),
            resume=resume, quiet=True, kl_warmup=3)
        return vae

    straight = train(4, tmp_path / "a")
    train(2, tmp_path / "b")
    resumed = train(4, tmp_path / "b", resume=True)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.inductor
def test_inductor_without_a_cpp_compiler_falls_back_to_the_captured_graph(digits):
    import torch._inductor.config as inductor_config

    vae = small_vae(hidden=(13,))  # a graph no other test compiles, so no cache can serve it
    no_compiler = {"cpp.cxx": (None, "/nonexistent/c++"), "force_disable_caches": True}
    with inductor_config.patch(no_compiler), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        eager, ours, graph = eager_and_graph(vae, make_elbo("meanfield"), digits.x_train[:100], N, mode="compiled")
    lines = [str(w.message) for w in record if issubclass(w.category, CompiledStepWarning)]
    assert graph.routes == ["captured"] and len(lines) == 1, lines
    assert lines[0].startswith("the training step replays its captured graph without inductor: compiling it failed")
    assert_close(eager, ours)
