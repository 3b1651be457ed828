"""Class labels: their checks, one-hot codes, balanced labelled/unlabelled splits, and the labelled
view of a data set whose rows carry their label.

Conditional models read a label beside each image. So that every routine that slices the rows of
``x`` (the bounds, k-hat, AIS, ``fit``'s minibatches) passes labels through unchanged, a labelled
view serves each row as ``[x, one_hot(y)]``, ``(N, D + C)`` (:func:`with_label_columns`): the
one-hot columns are exactly 0 or 1, so a dynamic binarisation leaves them as they are.

A semi-supervised split (:func:`label_split`) chooses ``num_labels`` training images, the same
number from each of the C classes, with a seeded generator; the rest are unlabelled. The chosen
indices are returned (and recorded by the caller), so a split is reproducible and inspectable.
"""

import dataclasses
from dataclasses import dataclass

import torch

from .errors import UserError, check_int


def num_classes_of(*labels):
    """C = 1 + the largest label of the given ``(N,)`` tensors (None entries skipped)."""
    present = [y for y in labels if y is not None and y.numel()]
    if not present:
        raise UserError("the data set has no labels; a conditional model needs y_train and y_test", param="dataset")
    return int(max(int(y.max()) for y in present)) + 1


def check_labels(y, num_classes, name="y"):
    """``y`` as ``(N,)`` int64, or a :class:`UserError` naming ``name`` when a label lies outside 0..C-1.

    Example::

        >>> check_labels(torch.tensor([0, 2, 1]), 3).tolist()
        [0, 2, 1]
        >>> check_labels(torch.tensor([0, 3]), 3)
        Traceback (most recent call last):
        ...
        pyro_vae.errors.UserError: y holds labels outside 0..2 (e.g. 3); labels must be class indices 0..C-1
    """
    if y is None:
        raise UserError(f"{name} is missing; a conditional model needs a label per image", param=name)
    y = torch.as_tensor(y)
    if y.dtype.is_floating_point or y.dim() != 1:
        raise UserError(f"{name} must be a 1-d tensor of integer labels, got {tuple(y.shape)} {y.dtype}", param=name)
    bad = y[(y < 0) | (y >= num_classes)]
    if bad.numel():
        raise UserError(f"{name} holds labels outside 0..{num_classes - 1} (e.g. {int(bad[0])}); labels must be "
                        "class indices 0..C-1", param=name)
    return y.long()


def one_hot(y, num_classes, dtype=torch.float32):
    """``(..., C)`` one-hot codes of integer labels ``y`` ``(...)`` (an enumerated ``(C, 1)`` gives ``(C, 1, C)``)."""
    return torch.nn.functional.one_hot(y.long(), num_classes).to(dtype)


def pack(x, y, num_classes):
    """Rows ``[x, one_hot(y)]``, ``(B, D + C)``, from ``x`` ``(B, D)`` and labels ``(B,)``."""
    return torch.cat([x, one_hot(y, num_classes, x.dtype)], -1)


def unpack(rows, num_classes):
    """``(x, y_one_hot)`` of packed rows ``(..., D + C)``: ``(..., D)`` and ``(..., C)``."""
    return rows[..., :-num_classes], rows[..., -num_classes:]


@dataclass(frozen=True)
class LabelSplit:
    """A semi-supervised split of the training set: which images keep their label."""

    labelled: torch.Tensor  # (L,) int64 indices into x_train, L = num_labels, L / C per class
    unlabelled: torch.Tensor  # (N - L,) int64, the other indices, ascending
    num_classes: int  # C
    seed: int  # the generator seed that chose the labelled images

    @property
    def num_labels(self):
        return int(self.labelled.numel())

    def to_dict(self):
        """JSON-ready record: the seed, the counts and the labelled indices."""
        return {"num_labels": self.num_labels, "num_classes": self.num_classes, "seed": self.seed,
                "num_unlabelled": int(self.unlabelled.numel()), "labelled": self.labelled.tolist()}


def label_split(y, num_labels, num_classes=None, seed=0):
    """Choose ``num_labels`` labelled images, ``num_labels / C`` from each class, by ``seed``.

    :param y: ``(N,)`` training labels.
    :param int num_labels: L, a multiple of C, at most N.
    :param int num_classes: C (default: 1 + the largest label).
    :param int seed: the choice's seed.
    :raises UserError: naming ``num_labels`` when L is not a multiple of C, exceeds N, or asks a
        class for more images than it has; naming ``y`` for labels outside 0..C-1.

    Example::

        >>> y = torch.arange(100) % 10
        >>> s = label_split(y, 20, seed=3)
        >>> s.num_labels, torch.bincount(y[s.labelled]).tolist(), len(s.unlabelled)
        (20, [2, 2, 2, 2, 2, 2, 2, 2, 2, 2], 80)
        >>> bool((label_split(y, 20, seed=3).labelled == s.labelled).all())  # the same seed, the same split
        True
    """
    num_classes = num_classes_of(torch.as_tensor(y)) if num_classes is None else check_int("num_classes", num_classes)
    y = check_labels(y, num_classes)
    num_labels = check_int("num_labels", num_labels)
    seed = check_int("seed", seed, least=0)
    if num_labels > len(y):
        raise UserError(f"num_labels={num_labels} exceeds the {len(y)} training images", param="num_labels")
    if num_labels % num_classes:
        raise UserError(f"num_labels={num_labels} is not a multiple of the {num_classes} classes; a balanced split "
                        f"takes the same number from each (e.g. {num_classes * max(1, num_labels // num_classes)})",
                        param="num_labels")
    per_class = num_labels // num_classes
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c in range(num_classes):
        members = torch.nonzero(y == c).flatten()
        if len(members) < per_class:
            raise UserError(f"num_labels={num_labels} asks {per_class} images of class {c}, which has {len(members)}",
                            param="num_labels")
        chosen.append(members[torch.randperm(len(members), generator=gen)[:per_class]])
    labelled = torch.cat(chosen).sort().values
    mask = torch.ones(len(y), dtype=torch.bool)
    mask[labelled] = False
    return LabelSplit(labelled=labelled, unlabelled=torch.nonzero(mask).flatten(), num_classes=num_classes, seed=seed)


def with_label_columns(data, num_classes=None):
    """The labelled view of ``data`` (a :class:`~pyro_vae.data.Dataset`): every split's rows become
    ``[x, one_hot(y)]`` ``(N, D + C)``, with ``label_columns = C``; the picture shape stays that of ``x``.

    :raises UserError: when the data set has no labels, or a label lies outside 0..C-1.
    """
    if data.label_columns:
        return data
    if data.y_train is None or data.y_test is None:
        raise UserError(f"dataset {data.name} has no labels (y_train and y_test); a conditional model needs them",
                        param="dataset")
    if num_classes is None:
        num_classes = num_classes_of(data.y_train, data.y_test, data.y_valid)
    changes = {"label_columns": num_classes}
    for split in ("train", "test", "valid"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        if x is not None and y is not None:
            changes[f"x_{split}"] = pack(x, check_labels(y, num_classes, f"y_{split}").to(x.device), num_classes)
        elif x is not None:
            raise UserError(f"dataset {data.name} has x_{split} without y_{split}; label every split", param="dataset")
    return dataclasses.replace(data, **changes)
