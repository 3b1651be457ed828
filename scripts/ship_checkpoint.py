"""Copy a trained run into ``benchmarks/NAME`` as a small, evaluable run directory.

Keeps ``config.json``, ``history.csv``, ``summary.json`` and the evaluation reports, and writes the
checkpoint with the model's parameters only (no optimiser state: a few MB). ``pyro-vae evaluate``
reads it like any run directory. The shipped config names its data portably: a run trained on
``npz:/abs/path/mnist.npz`` is shipped with ``--dataset mnist`` (the same arrays, read from the data
folder a user gives with ``--data-dir``: ``DIR/mnist.npz`` or torchvision's ``DIR/MNIST/raw``); an
absolute path is refused.

    python scripts/ship_checkpoint.py RUN_DIR benchmarks/burda-vae --dataset mnist
    pyro-vae evaluate benchmarks/burda-vae --data-dir DATA --no-representation
"""

import argparse
import io
import json
import os
import shutil
import sys

import torch

from pyro_vae.experiment.runs import CHECKPOINT_FORMAT, RunDir, atomic_write_bytes

KEEP = ("config.json", "history.csv", "summary.json", "eval.json", "nll_eval.json")


def ship(run_path, dest, checkpoint="checkpoint.pt", dataset=None):
    run = RunDir(run_path)
    config = run.config().to_dict()  # a missing or corrupt run is refused here
    if dataset is not None:
        config.update(dataset=dataset, data_dir=None)
    if config["dataset"].startswith("npz:") and os.path.isabs(config["dataset"][4:]):
        sys.exit(f"the run's data is {config['dataset']}, a path on this machine only: give --dataset with a "
                 "portable name for the same data (e.g. mnist)")
    state = run.load_checkpoint(name=checkpoint)
    os.makedirs(dest, exist_ok=True)
    for name in KEEP:
        if os.path.isfile(run.file(name)):
            shutil.copyfile(run.file(name), os.path.join(dest, name))
    with open(os.path.join(dest, "config.json"), "w") as f:
        f.write(json.dumps(config, indent=2, sort_keys=True) + "\n")
    buf = io.BytesIO()
    model = {k: v.detach().cpu().clone() for k, v in state["model"].items()}
    torch.save({"format": CHECKPOINT_FORMAT, "model_only": True, "epoch": state["epoch"], "model": model,
                "history": state["history"]}, buf)
    atomic_write_bytes(os.path.join(dest, "checkpoint.pt"), buf.getvalue())
    return os.path.getsize(os.path.join(dest, "checkpoint.pt"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a run directory written by pyro-vae train")
    p.add_argument("dest", help="where to write the shipped run, e.g. benchmarks/burda-vae")
    p.add_argument("--checkpoint", default="checkpoint.pt", help="the checkpoint to ship (relative to RUN)")
    p.add_argument("--dataset", help="the portable name of the run's data in the shipped config (e.g. mnist)")
    args = p.parse_args(argv)
    size = ship(args.run, args.dest, args.checkpoint, args.dataset)
    print(f"wrote {args.dest} (checkpoint {size / 2**20:.1f} MiB, model only)")


if __name__ == "__main__":
    main()
