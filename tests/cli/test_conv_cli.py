"""``--arch conv`` on the command line: the issue's command on 8-bit colour images end to end, old
configs, and the refusals."""

import json
import os
import pathlib

import numpy as np
import pytest

from pyro_vae.cli.parser import main
from pyro_vae.experiment.config import TrainConfig
from tests.helpers import digits_8bit


def test_train_evaluate_plot_a_conv_dlogistic_model_on_colour_images(tmp_path):
    pytest.importorskip("tensorboard")
    data = digits_8bit(tmp_path, colour=True)
    assert data.image_shape == (8, 8, 3)
    run = str(tmp_path / "run")
    assert main(["train", "--arch", "conv", "--dataset", data.name, "--likelihood", "dlogistic", "--binarize", "none",
                 "--log", "tensorboard", "--epochs", "2", "--channels", "8,16", "--hidden", "32", "--latent-dim", "4",
                 "--out", run, "--quiet"]) == 0
    assert json.loads(pathlib.Path(f"{run}/config.json").read_text())["arch"] == "conv"
    assert main(["evaluate", run, "--num-samples", "10", "--max-images", "50", "--no-representation", "--quiet"]) == 0
    report = json.loads(pathlib.Path(f"{run}/eval.json").read_text())
    assert report["bits_per_dim"] == pytest.approx(-report["log_likelihood"] / (192 * np.log(2)))
    assert main(["plot", run, "--quiet", "--grid-size", "3", "--num-images", "4"]) == 0
    assert os.path.isfile(f"{run}/reconstructions.png") and os.listdir(f"{run}/tensorboard")


def test_a_config_written_before_arch_existed_loads_as_mlp():
    old = TrainConfig().to_dict()
    del old["arch"], old["channels"]
    config = TrainConfig.from_dict(old)
    assert config.arch == "mlp" and config.channels == [32, 64]


@pytest.mark.parametrize("flags, message", [
    (["--channels", "8"], "--channels applies only to --arch conv, not mlp"),
    (["--arch", "conv", "--channels", "8,8,8,8"], "--channels has 4 layers, but 8 x 8 images halve only 3 times"),
    (["--arch", "cnn"], "argument --arch: invalid choice"),
    (["--arch", "conv", "--model", "mixture:3"], "--model mixture:3 with --posterior exact has no network"),
])
def test_refusals(tmp_path, capsys, flags, message):
    run = str(tmp_path / "run")
    assert _exit(["train", "--dataset", "digits", "--epochs", "1", "--out", run, "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_conv_on_rows_without_a_picture_is_refused(tmp_path, capsys):
    path = tmp_path / "flat.npz"
    np.savez(path, x_train=np.zeros((20, 10), np.uint8), x_test=np.zeros((5, 10), np.uint8))
    assert main(["train", "--dataset", f"npz:{path}", "--arch", "conv", "--binarize", "none", "--likelihood",
                 "dlogistic", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "--arch conv needs images, (H, W) grey or (H, W, C) colour; this data has rows of 10 values without a " \
           "picture shape: use --arch mlp" in capsys.readouterr().err


def _exit(argv):
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own refusals
        return e.code
