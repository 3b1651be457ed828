"""Ship a few hundred MNIST *test* images with a shipped checkpoint, and their recorded bounds.

The shipped VAE (``benchmarks/burda-vae``) was trained on dynamically binarised MNIST; its claimed
NLL is on the 10,000 test images. This script draws a seeded random subset of the test images
(``--images``, numpy's ``default_rng(--seed)``), binarises each pixel once with the same generator
(``x ~ Bernoulli(grey level / 255)``: one fixed draw, as the test split of a binarised data set
always is), and scores every image with S = ``--num-samples`` importance samples (one set of draws
per image, seeded by ``pyro_vae.diagnostics.tightness.batch_seed``). It writes
``DEST/test_images.npz``:

- ``bits``: the binary images packed with ``numpy.packbits`` (``shape`` gives them back: N x 784);
- ``indices``: their rows in the MNIST test set; ``seed``: the subset's and binarisation's seed;
- ``log_likelihood``: L_S per image (S = ``num_samples``); ``bound_500``: L_500 per image from the
  same draws (disjoint groups of 500), for a test that scores them with K = 500.

``tests/cli/test_shipped.py`` scores the images with K = 500 and compares. About 3 minutes of one core
for 500 images (S = 5000, the 784-200-200-50 net)::

    python scripts/ship_test_images.py --data-dir ../shared/data --threads 1
"""

import argparse
import os
import time

import numpy as np
import torch

from pyro_vae.data import Dataset, load_dataset
from pyro_vae.diagnostics.tightness import dataset_statistics
from pyro_vae.experiment.build import build_model
from pyro_vae.experiment.runs import RunDir

SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "burda-vae")


def binary_subset(x_test, num_images, seed):
    """``(indices, bits)``: a seeded random subset of the grey test images ``(M, D)`` in [0, 1] and one
    seeded Bernoulli draw of each pixel, ``(N, D)`` uint8 in {0, 1}."""
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(len(x_test), size=num_images, replace=False))
    grey = np.asarray(x_test[indices], dtype=np.float64)
    return indices, (rng.random(grey.shape) < grey).astype(np.uint8)


def shipped_model(run_path=SHIPPED, data_dim=784, image_shape=(28, 28), x=None):
    """The shipped run's model, parameters loaded, in eval mode, built without its data set."""
    run = RunDir(run_path)
    config = run.config()
    rows = torch.zeros(2, data_dim) if x is None else x
    data = Dataset(name="shipped test images", x_train=rows, x_test=rows, image_shape=image_shape, binarize="none")
    model = build_model(config, data)
    model.load_state_dict(run.load_checkpoint(name="checkpoint.pt")["model"])
    return model.eval()


def unpack(path):
    """The shipped images of ``test_images.npz`` as a float tensor ``(N, D)`` and the file's arrays."""
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    n, d = arrays["shape"]
    bits = np.unpackbits(arrays["bits"])[: n * d].reshape(n, d)
    return torch.from_numpy(bits.astype(np.float32)), arrays


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help="folder with mnist.npz or torchvision's MNIST/raw")
    p.add_argument("--dest", default=SHIPPED, help="the shipped run (default benchmarks/burda-vae)")
    p.add_argument("--images", type=int, default=500, help="test images to ship (default 500)")
    p.add_argument("--seed", type=int, default=23, help="seed of the subset and its binarisation (default 23)")
    p.add_argument("--num-samples", type=int, default=5000, help="S of the recorded L_S (default 5000)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist", data_dir=args.data_dir, binarize="none")  # grey levels k / 255
    indices, bits = binary_subset(data.x_test.numpy(), args.images, args.seed)
    x = torch.from_numpy(bits.astype(np.float32))
    model = shipped_model(args.dest, x=x)
    t0 = time.perf_counter()
    stats = dataset_statistics(model.model, model.guide, x, args.num_samples, ks=(500, args.num_samples),
                               batch_size=50, seed=0, psis=False)
    seconds = time.perf_counter() - t0
    out = os.path.join(args.dest, "test_images.npz")
    np.savez_compressed(out, bits=np.packbits(bits), shape=np.array(bits.shape), indices=indices,
                        seed=np.array(args.seed), num_samples=np.array(args.num_samples),
                        log_likelihood=stats["curve"][args.num_samples].numpy(), bound_500=stats["curve"][500].numpy())
    l_s = stats["curve"][args.num_samples]
    print(f"wrote {out} ({os.path.getsize(out) / 1e3:.0f} kB): {len(x)} test images, mean L_{args.num_samples} "
          f"{l_s.mean():.3f} +- {l_s.std() / len(l_s) ** 0.5:.3f} nats (sd over images {l_s.std():.2f}), "
          f"mean L_500 {stats['curve'][500].mean():.3f}; {seconds:.0f} s")


if __name__ == "__main__":
    main()
