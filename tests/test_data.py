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


# --- the npz rule: what arrays may hold (issue 12) -----------------------------------------------

def _npz(tmp_path, **arrays):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return f"npz:{path}"


def test_float_npz_outside_unit_interval_is_refused_not_rescaled(tmp_path):
    """scikit-learn's digits (0..16) saved as floats used to be divided by 255: near-black images."""
    x = load_dataset("digits", binarize="none").x_train.numpy() * 16  # floats 0..16
    with pytest.raises(UserError, match=r"x_train holds floats in \[0, 16\].*x / 16.*uint8"):
        load_dataset(_npz(tmp_path, x_train=x, x_test=x[:5]))


def test_integer_pixels_are_0_to_255_and_binary_integers_stay_binary(tmp_path):
    grey = np.array([[0, 51, 255, 1]], dtype=np.uint8)
    data = load_dataset(_npz(tmp_path, x_train=grey, x_test=grey), binarize="none")
    assert data.x_train[0].tolist() == pytest.approx([0.0, 0.2, 1.0, 1 / 255]) and data.image_shape == (2, 2)
    binary = np.array([[0, 1, 1, 0]], dtype=np.int64)  # only 0 and 1: binary data, not near-black levels
    data = load_dataset(_npz(tmp_path, x_train=binary, x_test=binary), binarize="dynamic")
    assert data.x_train.tolist() == [[0.0, 1.0, 1.0, 0.0]] and data.binarize == "none"
    with pytest.raises(UserError, match=r"integers in \[-1, 3\].*0\.\.255"):
        load_dataset(_npz(tmp_path, x_train=np.array([[-1, 3]]), x_test=np.array([[0, 1]])))


@pytest.mark.parametrize("layout", ["channel-first", "channel-last", "images", "flat"])
def test_grey_layouts_give_the_same_rows_and_picture_shape(tmp_path, layout):
    """A channel-first (N, 1, H, W) file used to get image_shape (1, 1) and blank figures."""
    x = np.random.default_rng(0).integers(0, 256, (6, 4, 4), dtype=np.uint8)
    arr = {"channel-first": x[:, None], "channel-last": x[..., None], "images": x, "flat": x.reshape(6, 16)}[layout]
    data = load_dataset(_npz(tmp_path, x_train=arr, x_test=arr[:2]), binarize="none")
    assert data.image_shape == (4, 4) and data.x_train.shape == (6, 16)
    assert torch.equal(data.x_train, torch.tensor(x.reshape(6, 16), dtype=torch.float32) / 255)


@pytest.mark.parametrize("shape", [(6, 2, 4, 4), (6, 4, 4, 2), (6, 2, 2, 2, 2), (6,), (0, 16), (6, 0)])
def test_other_layouts_are_one_line_errors(tmp_path, shape):
    x = np.zeros(shape, dtype=np.uint8)
    with pytest.raises(UserError, match=r"x_train has shape .*\(N, H, W\), \(N, 1, H, W\).*\(N, H, W, 3\) colour") as e:
        load_dataset(_npz(tmp_path, x_train=x, x_test=x))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("layout", ["channel-last", "channel-first"])
def test_colour_layouts_give_channel_last_rows_and_picture_shape(tmp_path, layout):
    """(N, H, W, 3) and (N, 3, H, W) uint8 images are the same data: rows flattened over (H, W, 3)."""
    x = np.random.default_rng(0).integers(0, 256, (6, 4, 5, 3), dtype=np.uint8)  # (N, H, W, C)
    arr = x if layout == "channel-last" else x.transpose(0, 3, 1, 2)
    data = load_dataset(_npz(tmp_path, x_train=arr, x_test=arr[:2]), binarize="none")
    assert data.image_shape == (4, 5, 3) and data.x_train.shape == (6, 60)
    assert torch.equal(data.x_train, torch.tensor(x.reshape(6, 60), dtype=torch.float32) / 255)
    assert data.x_train[1].reshape(4, 5, 3)[2, 3].tolist() == pytest.approx((x[1, 2, 3] / 255).tolist())


def test_a_colour_shape_with_two_possible_channel_axes_is_refused(tmp_path):
    x = np.zeros((6, 3, 5, 3), dtype=np.uint8)
    with pytest.raises(UserError, match=r"axis 1 and axis 3 could both be the colour channels"):
        load_dataset(_npz(tmp_path, x_train=x, x_test=x))


def test_is_8bit():
    from pyro_vae.data import is_8bit

    assert is_8bit(torch.arange(256.0) / 255) and is_8bit(load_dataset("mnist5k").x_test)
    assert not is_8bit(load_dataset("digits", binarize="none").x_test)  # v / 16
    assert not is_8bit(torch.tensor([0.5])) and not is_8bit(torch.tensor([1 + 1 / 255]))


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": np.array([["a", "b"]]), "x_test": np.array([["a", "b"]])}, "dtype <U1"),
    ({"x_train": np.array([[0.5, np.nan]]), "x_test": np.array([[0.5, 0.5]])}, "NaN or infinite"),
    ({"x_train": np.zeros((4, 2)), "x_test": np.zeros((2, 3))}, "images .* differ"),
    ({"x_train": np.zeros((4, 2)), "x_test": np.zeros((2, 2)), "y_train": np.arange(3)}, r"shape \(4,\)"),
    ({"x_train": np.zeros((4, 2)), "x_test": np.zeros((2, 2)), "y_test": np.array([0.5, 1.0])}, "non-integer"),
    ({"x_train": np.zeros((4, 2)), "x_test": np.zeros((2, 2)), "y_test": np.array(["a", "b"])}, "dtype <U1"),
    ({"x_train": np.zeros((4, 2)), "x_test": np.zeros((2, 2)), "y_valid": np.arange(2)}, "no x_valid"),
])
def test_bad_npz_content_is_a_user_error(tmp_path, arrays, message):
    with pytest.raises(UserError, match=message):
        load_dataset(_npz(tmp_path, **arrays))


def test_whole_number_float_labels_are_accepted(tmp_path):
    data = load_dataset(_npz(tmp_path, x_train=np.zeros((3, 4)), x_test=np.zeros((2, 4)), y_test=np.array([2.0, 7.0])))
    assert data.y_test.dtype == torch.int64 and data.y_test.tolist() == [2, 7]


# --- property: any npz gives a correct Dataset or a UserError, never another exception -----------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

DTYPES = ["uint8", "int16", "int64", "bool", "float16", "float32", "float64", "<U2", "complex64"]


def _expected(arrays):
    """An independent statement of the rule: the expected (N, D) float rows and picture shape of each
    split, or None when the files must be refused."""
    xs = {k: v for k, v in arrays.items() if k.startswith("x_")}
    shapes = {}
    for k, a in xs.items():
        s = a.shape
        if len(s) < 2 or 0 in s or a.dtype.kind not in "biuf":
            return None
        if len(s) == 2:
            r = int(round(s[1] ** 0.5))
            shapes[k] = (r, r) if r * r == s[1] else (s[1],)
        elif len(s) == 3:
            shapes[k] = s[1:]
        elif len(s) == 4 and (s[1] == 1 or s[3] == 1):
            shapes[k] = s[2:] if s[1] == 1 else s[1:3]
        elif len(s) == 4 and (s[1] == 3) != (s[3] == 3):  # colour: exactly one axis could be the channels
            shapes[k] = (*s[2:], 3) if s[1] == 3 else s[1:]
        else:
            return None
    if len(set(shapes.values())) != 1:
        return None
    ints = [a for a in xs.values() if a.dtype.kind in "biu"]
    binary = all(a.astype(np.int64).min() >= 0 and a.astype(np.int64).max() <= 1 for a in ints)
    rows = {}
    for k, a in xs.items():
        if a.dtype.kind in "biu":
            v = a.astype(np.int64)
            if v.min() < 0 or v.max() > 255:
                return None
            rows[k] = v.astype(np.float32) if binary else v.astype(np.float32) / np.float32(255)
        else:
            v = a.astype(np.float32)
            if not np.isfinite(v).all() or v.min() < 0 or v.max() > 1:
                return None
            rows[k] = v
        if a.ndim == 4 and a.shape[1] == 3 and a.shape[3] != 1:  # channel-first colour: served channel-last
            rows[k] = rows[k].transpose(0, 2, 3, 1)
        rows[k] = rows[k].reshape(len(a), -1)
    for k, y in arrays.items():
        if k.startswith("y_"):
            x = xs.get("x" + k[1:])
            if x is None or y.dtype.kind not in "biuf" or y.shape != (len(x),):
                return None
            if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
                return None
    return rows, shapes["x_train"]


@st.composite
def npz_contents(draw):
    """Random npz contents: about half follow the rule (a grey or colour layout, a numeric dtype, a valid
    range), the rest vary shape, dtype, range, NaN and labels freely."""
    good = draw(st.booleans())
    picture = draw(st.sampled_from([(8, 8), (3, 5), (4,)]))

    def array(n):
        if good:
            layouts = [picture, (1, *picture), (*picture, 1), (3, *picture), (*picture, 3)]
            shape = (n, *draw(st.sampled_from(layouts))) if len(picture) == 2 else (n, 4)
            dtype = draw(st.sampled_from(["uint8", "int64", "bool", "float32", "float64"]))
        else:
            ndim = draw(st.integers(1, 5))
            shape = (n, *draw(st.lists(st.integers(0, 4), min_size=ndim - 1, max_size=ndim - 1)))  # 3s: colour
            dtype = draw(st.sampled_from(DTYPES))
        if dtype == "<U2":
            return np.full(shape, "a")
        ranges = [(0, 1), (0, 255)] if good else [(0, 1), (0, 255), (0, 16), (-2, 2), (0, 300)]
        low, high = (0, 1) if good and dtype.startswith("float") else draw(st.sampled_from(ranges))
        values = draw(st.sampled_from(["integers", "uniform"]))
        rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
        a = rng.integers(low, high + 1, shape) if values == "integers" else rng.uniform(low, high, shape)
        if not good and dtype.startswith("float") and a.size and draw(st.booleans()):
            a = a.astype(np.float64)
            a.flat[0] = draw(st.sampled_from([np.nan, np.inf]))
        with np.errstate(invalid="ignore", over="ignore"):
            return a.astype(dtype) if dtype != "bool" else a > 0

    arrays = {"x_train": array(draw(st.integers(1 if good else 0, 5)))}
    same = draw(st.booleans())  # a prefix of x_train, or an array of its own
    arrays["x_test"] = arrays["x_train"][:2] if same and len(arrays["x_train"]) else array(draw(st.integers(1, 3)))
    if draw(st.booleans()):
        arrays["x_valid"] = arrays["x_train"][:1]
    for k in ("y_train", "y_test", "y_valid"):
        x = arrays.get("x" + k[1:])
        if draw(st.integers(0, 2)) == 0:
            n = len(x) if good and x is not None else draw(st.integers(0, 5))
            kinds = ["int", "whole"] if good else ["int", "float", "whole", "str", "2d"]
            kind = draw(st.sampled_from(kinds))
            arrays[k] = {"int": np.arange(n), "float": np.arange(n) + 0.5, "whole": np.arange(n) * 1.0,
                         "str": np.array(["a"] * n), "2d": np.zeros((n, 2), np.int64)}[kind]
    return arrays


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays=npz_contents(), binarize=st.sampled_from(["dynamic", "static", "none"]))
def test_any_npz_loads_correctly_or_raises_a_user_error(arrays, binarize):
    import tempfile

    expected = _expected(arrays)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "d.npz")
        np.savez(path, **arrays)
        try:
            data = load_dataset(f"npz:{path}", binarize=binarize)
        except UserError as e:
            assert expected is None, f"refused a valid file: {e}"
            assert "\n" not in str(e)
            return
    assert expected is not None, "accepted a file the rule refuses"
    rows, image_shape = expected
    assert data.image_shape == image_shape
    binary_source = all(((r == 0) | (r == 1)).all() for r in (rows["x_train"], rows["x_test"]))
    for k in ("x_train", "x_test", "x_valid"):
        got = getattr(data, k)
        if k not in rows:
            assert got is None
            continue
        want = torch.from_numpy(rows[k])
        assert got.dtype == torch.float32 and got.shape == want.shape
        if binary_source or binarize == "none" or (k == "x_train" and binarize == "dynamic"):
            assert torch.equal(got, want)  # served as they are (dynamic draws per minibatch)
        else:  # one Bernoulli draw of each grey level: certain where the level is 0 or 1
            assert ((got == 0) | (got == 1)).all() and torch.equal(got[want == 0], want[want == 0])
            assert torch.equal(got[want == 1], want[want == 1])
    for k in ("y_train", "y_test", "y_valid"):
        got = getattr(data, k)
        assert (got is None) == (k not in arrays)
        if got is not None:
            assert got.dtype == torch.int64 and got.tolist() == arrays[k].astype(np.int64).tolist()
