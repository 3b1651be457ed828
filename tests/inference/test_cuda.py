"""On a GPU: the training set stays on the device, and training there gives a model that evaluates
like the CPU one. Skipped without CUDA; scripts/gpu_check.sh runs these on a GPU machine."""

import pytest
import torch

from pyro_vae import evaluate_elbo, fit, load_dataset, make_elbo
from tests.helpers import small_vae

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_training_set_moves_to_the_device_once_and_batches_stay_there():
    data = load_dataset("digits", binarize="dynamic").to("cuda")
    assert data.x_train.is_cuda and data.x_test.is_cuda and data.y_train.is_cuda
    gen = torch.Generator(device="cuda").manual_seed(0)
    xb = next(data.batches(64, gen))
    assert xb.is_cuda and set(xb.unique().tolist()) <= {0.0, 1.0}


def test_fit_on_cuda_improves_the_elbo_and_matches_a_cpu_evaluation():
    data = load_dataset("digits", binarize="static")
    vae = small_vae(hidden=(64,), z_dim=4).cuda()
    before = evaluate_elbo(vae, data.x_test)["elbo"]
    history = fit(vae, data, make_elbo("meanfield"), epochs=5, batch_size=64, lr=3e-3, quiet=True)
    assert history[-1]["test_elbo"] > before + 5
    torch.manual_seed(0)
    on_gpu = evaluate_elbo(vae, data.x_test)["elbo"]
    on_cpu = evaluate_elbo(vae.cpu(), data.x_test)["elbo"]
    assert on_gpu == pytest.approx(on_cpu, abs=0.5)  # one-sample estimates: Monte-Carlo noise only
