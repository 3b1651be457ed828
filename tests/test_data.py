import gzip
import os
import struct

import numpy as np
import pytest
import torch

from pyro_vae import UserError, load_dataset


def test_mnist5k_split_is_stratified_and_fixed():
    a, b = load_dataset("mnist5k"), load_dataset("mnist5k")
    assert a.x_train.shape == (4000, 784) and a.x_test.shape == (1000, 784) and a.image_shape == (28, 28)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_train, b.y_train)
    assert torch.bincount(a.y_test).tolist() == [100] * 10  # 500 of each digit, split 4:1
    assert 0 < a.x_train.mean() < 1 and not ((a.x_train == 0) | (a.x_train == 1)).all()


def test_dynamic_binarization_draws_fresh_batches():
    data = load_dataset("digits", binarize="dynamic")
    gen = torch.Generator().manual_seed(0)
    first = next(data.batches(32, gen, shuffle=False))
    second = next(data.batches(32, gen, shuffle=False))
    assert ((first == 0) | (first == 1)).all() and not torch.equal(first, second)
    # each draw is Bernoulli(grey level): its mean matches the grey mean
    draws = torch.stack([next(data.batches(len(data.x_train), gen, shuffle=False)) for _ in range(50)])
    assert abs(draws.mean() - data.x_train.mean()) < 0.01


def test_static_and_dynamic_share_one_binary_test_set():
    static, dynamic = load_dataset("digits", binarize="static"), load_dataset("digits", binarize="dynamic")
    assert static.is_binary and ((static.x_train == 0) | (static.x_train == 1)).all()
    assert torch.equal(static.x_test, dynamic.x_test)
    grey = load_dataset("digits", binarize="none")
    assert not grey.is_binary and grey.x_train.max() == 1.0


def test_batches_cover_the_training_set_once_per_epoch():
    data = load_dataset("digits", binarize="static")
    rows = torch.cat(list(data.batches(100, torch.Generator().manual_seed(1))))
    assert rows.shape == data.x_train.shape
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, data.x_train.tolist()))
    dropped = list(data.batches(100, torch.Generator(), drop_last=True))
    assert len(dropped) == len(data.x_train) // 100 and all(len(b) == 100 for b in dropped)


def test_npz_pixels_are_scaled_and_labels_kept(tmp_path):
    path = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 256, (20, 4, 4), dtype=np.uint8),
             x_test=rng.integers(0, 256, (5, 4, 4), dtype=np.uint8), y_train=np.arange(20) % 3)
    data = load_dataset(f"npz:{path}", binarize="none")
    assert data.x_train.shape == (20, 16) and data.image_shape == (4, 4) and data.x_train.max() <= 1
    assert data.y_train.tolist() == (np.arange(20) % 3).tolist() and data.y_test is None


def test_binary_npz_is_not_rebinarized(tmp_path):
    path = tmp_path / "b.npz"
    x = (np.random.default_rng(0).random((30, 784)) > 0.5).astype(np.uint8)
    np.savez(path, x_train=x, x_valid=x[:5], x_test=x[:10])
    data = load_dataset(f"npz:{path}", binarize="dynamic")
    assert data.binarize == "none" and torch.equal(data.x_train, torch.tensor(x, dtype=torch.float32))
    assert data.x_valid.shape == (5, 784)


@pytest.mark.parametrize("content, message", [(None, "not found"), (b"not a zip", "cannot read"),
                                              ("missing", "lacks x_test")])
def test_npz_errors(tmp_path, content, message):
    path = tmp_path / "x.npz"
    if content == "missing":
        np.savez(path, x_train=np.zeros((2, 4)))
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        load_dataset(f"npz:{path}")


def _write_idx(folder, prefix, images, labels):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{prefix}-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 2051, len(images), 28, 28) + images.tobytes())
    with open(os.path.join(folder, f"{prefix}-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 2049, len(labels)) + labels.tobytes())


def test_torchvision_mnist_reads_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    _write_idx(raw, "train", rng.integers(0, 256, (12, 28, 28), dtype=np.uint8), np.arange(12, dtype=np.uint8) % 10)
    _write_idx(raw, "t10k", rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), np.arange(3, dtype=np.uint8))
    data = load_dataset("mnist", data_dir=str(tmp_path), binarize="static")
    assert data.x_train.shape == (12, 784) and data.y_test.tolist() == [0, 1, 2] and data.is_binary


def test_torchvision_missing_files_say_where_to_put_them(tmp_path):
    with pytest.raises(UserError, match=r"FashionMNIST/raw/.*download=True"):
        load_dataset("fashion-mnist", data_dir=str(tmp_path))
    with pytest.raises(UserError, match="needs data_dir"):
        load_dataset("kmnist")


def test_unknown_dataset_and_binarization_list_choices():
    with pytest.raises(UserError, match="mnist5k, digits, mnist, fashion-mnist, kmnist, npz:PATH"):
        load_dataset("cifar")
    with pytest.raises(UserError, match="dynamic, static, none"):
        load_dataset("digits", binarize="otsu")
