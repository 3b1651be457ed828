"""Labels: balanced, seeded, recorded splits; checks of label values; the labelled view of a data set."""

import pytest
import torch

from pyro_vae.data import load_dataset
from pyro_vae.errors import UserError
from pyro_vae.labels import check_labels, label_split, pack, unpack, with_label_columns


@pytest.fixture(scope="module")
def labels():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 10, (1000,), generator=g)


@pytest.mark.parametrize("num_labels", [10, 100, 600])
def test_split_is_balanced_and_disjoint(labels, num_labels):
    split = label_split(labels, num_labels, seed=1)
    assert torch.bincount(labels[split.labelled], minlength=10).tolist() == [num_labels // 10] * 10
    assert len(split.labelled) + len(split.unlabelled) == len(labels)
    together = torch.cat([split.labelled, split.unlabelled]).sort().values
    assert torch.equal(together, torch.arange(len(labels)))  # every image once, in one part


def test_split_is_reproducible_and_depends_on_the_seed(labels):
    a, b, c = label_split(labels, 100, seed=4), label_split(labels, 100, seed=4), label_split(labels, 100, seed=5)
    assert torch.equal(a.labelled, b.labelled) and not torch.equal(a.labelled, c.labelled)
    record = a.to_dict()
    assert record["labelled"] == a.labelled.tolist() and record["seed"] == 4 and record["num_unlabelled"] == 900


def test_split_does_not_use_the_global_stream(labels):
    torch.manual_seed(0)
    first = label_split(labels, 100, seed=4)
    torch.rand(7)
    assert torch.equal(first.labelled, label_split(labels, 100, seed=4).labelled)


@pytest.mark.parametrize("num_labels, message", [
    (1001, "exceeds the 1000 training images"),
    (105, "not a multiple of the 10 classes"),
    (0, "num_labels must be a positive integer"),
])
def test_bad_numbers_of_labels_are_refused(labels, num_labels, message):
    with pytest.raises(UserError, match=message) as e:
        label_split(labels, num_labels)
    assert e.value.param == "num_labels"


def test_a_class_with_too_few_images_is_refused():
    y = torch.tensor([0] * 50 + [1] * 3)
    with pytest.raises(UserError, match="asks 5 images of class 1, which has 3"):
        label_split(y, 10)


def test_labels_outside_the_classes_are_refused():
    with pytest.raises(UserError, match=r"outside 0\.\.9 \(e\.g\. -1\)") as e:
        check_labels(torch.tensor([0, -1, 3]), 10)
    assert e.value.param == "y"
    with pytest.raises(UserError, match="outside 0..9"):
        label_split(torch.tensor([0, 10, 3]), 10, num_classes=10)


def test_labelled_view_packs_one_hot_columns_that_survive_binarisation():
    data = load_dataset("digits", binarize="dynamic")
    view = with_label_columns(data)
    assert view.label_columns == 10 and view.x_dim == 64 and view.data_dim == 74
    x, code = unpack(view.x_test, 10)
    assert torch.equal(x, data.x_test) and torch.equal(code.argmax(-1), data.y_test)
    served = next(view.batches(32, torch.Generator().manual_seed(0), shuffle=False))  # a fresh Bernoulli draw
    assert torch.equal(unpack(served, 10)[1], unpack(view.x_train[:32], 10)[1])  # labels untouched
    assert torch.equal(pack(x, data.y_test, 10), view.x_test)


def test_labelled_view_needs_labels(tmp_path):
    import numpy as np

    path = tmp_path / "nolabels.npz"
    np.savez(path, x_train=np.zeros((4, 2, 2), np.uint8), x_test=np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(UserError, match="has no labels") as e:
        with_label_columns(load_dataset(f"npz:{path}"))
    assert e.value.param == "dataset"
