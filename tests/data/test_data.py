"""Tests for lions_jax.data: sklearn sets, IDX / Fashion-MNIST, text, iterators."""

import dataclasses
import gzip
import itertools
import os
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lions_jax.data as data
from lions_jax.data import fashion_mnist

# --------------------------------------------------------------------------------------------------
# scikit-learn sets
# --------------------------------------------------------------------------------------------------

SKLEARN_LOADERS = {
    "digits": (data.load_digits, 64, 10),
    "moons": (data.load_moons, 2, 2),
    "breast-cancer": (data.load_breast_cancer, 30, 2),
}


@pytest.mark.parametrize("name", sorted(SKLEARN_LOADERS))
def test_sklearn_shapes_and_dtypes(name):
    loader, num_features, num_classes = SKLEARN_LOADERS[name]
    ds = loader()
    assert ds.name == name
    assert ds.num_classes == num_classes
    assert ds.num_features == num_features
    assert ds.feature_shape == (num_features,)
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == np.int32 and ds.y_test.dtype == np.int32
    n = ds.num_train + ds.num_test
    # sklearn rounds the test size up: ceil(0.25 * n).
    assert ds.num_test == int(np.ceil(0.25 * n))
    assert set(np.unique(ds.y_train)) == set(range(num_classes))
    assert np.all(np.isfinite(ds.x_train)) and np.all(np.isfinite(ds.x_test))


@pytest.mark.parametrize("name", sorted(SKLEARN_LOADERS))
def test_sklearn_split_is_deterministic(name):
    loader = SKLEARN_LOADERS[name][0]
    a, b = loader(seed=3), loader(seed=3)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    c = loader(seed=4)
    assert not np.array_equal(a.y_train, c.y_train) or not np.array_equal(a.x_train, c.x_train)


@pytest.mark.parametrize("name", ["digits", "breast-cancer"])
def test_sklearn_split_is_stratified(name):
    ds = SKLEARN_LOADERS[name][0](test_fraction=0.3, seed=1)
    y_all = np.concatenate([ds.y_train, ds.y_test])
    counts_all = np.bincount(y_all, minlength=ds.num_classes)
    counts_test = np.bincount(ds.y_test, minlength=ds.num_classes)
    expected_test = counts_all * ds.num_test / y_all.size
    # Stratification keeps every class's test count within one example of its share.
    np.testing.assert_allclose(counts_test, expected_test, rtol=0, atol=1.0)


def test_standardize_uses_train_statistics_only():
    raw = data.load_digits(standardize=False, seed=2)
    std = data.load_digits(standardize=True, seed=2)
    np.testing.assert_array_equal(raw.y_train, std.y_train)  # same split either way
    x_train = raw.x_train.astype(np.float64)
    mean, scale = x_train.mean(0), x_train.std(0)
    scale = np.where(scale > 1e-12, scale, 1.0)  # constant pixels are only centred
    np.testing.assert_allclose(std.x_train, (x_train - mean) / scale, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        std.x_test, (raw.x_test.astype(np.float64) - mean) / scale, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(std.x_train.mean(0), 0.0, rtol=0, atol=1e-5)
    nonconstant = raw.x_train.std(0) > 0
    assert nonconstant.sum() < 64  # digits has constant border pixels: the zero-std guard is used
    np.testing.assert_allclose(std.x_train.std(0)[nonconstant], 1.0, rtol=0, atol=1e-4)
    # Test statistics were not used: test features are not exactly centred.
    assert np.abs(std.x_test.mean(0)).max() > 1e-2


def test_moons_arguments():
    a = data.load_moons(n_samples=200, noise=0.0, seed=0, standardize=False)
    assert a.num_train + a.num_test == 200
    # Noise-free moons lie on unit circles centred at (0, 0) and (1, 0.5).
    x = np.concatenate([a.x_train, a.x_test])
    y = np.concatenate([a.y_train, a.y_test])
    r0 = np.linalg.norm(x[y == 0], axis=1)
    r1 = np.linalg.norm(x[y == 1] - np.array([1.0, 0.5]), axis=1)
    np.testing.assert_allclose(r0, 1.0, rtol=0, atol=1e-6)
    np.testing.assert_allclose(r1, 1.0, rtol=0, atol=1e-6)
    b = data.load_moons(n_samples=200, noise=0.3, seed=1)
    assert not np.allclose(np.sort(a.x_train, axis=0), np.sort(b.x_train, axis=0), atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"seed": -1}, "seed"),
        ({"n_samples": 3}, "n_samples"),
        ({"noise": -0.1}, "noise"),
    ],
)
def test_sklearn_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.load_moons(**kwargs)


def test_load_dataset_dispatch(tmp_path):
    ds = data.load_dataset("moons", n_samples=100, seed=5)
    ref = data.load_moons(n_samples=100, seed=5)
    np.testing.assert_array_equal(ds.x_train, ref.x_train)
    assert data.load_dataset("breast_cancer").name == "breast-cancer"
    _write_fake_fashion_mnist(tmp_path)
    assert data.load_dataset("fashion-mnist", data_dir=tmp_path).name == "fashion-mnist"
    with pytest.raises(ValueError, match=r"name must be one of.*digits.*fashion-mnist"):
        data.load_dataset("cifar10")


def test_array_dataset_validation():
    x, y = np.zeros((4, 3), np.float32), np.array([0, 1, 0, 1], np.int32)
    ds = data.ArrayDataset(x, y, x[:2], y[:2], 2, "toy")
    assert (ds.num_features, ds.num_train, ds.num_test) == (3, 4, 2)
    assert "toy" in repr(ds)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"
    with pytest.raises(ValueError, match="same number of rows"):
        data.ArrayDataset(x, y[:3], x, y, 2, "toy")
    with pytest.raises(ValueError, match="y_test must be a 1-D integer"):
        data.ArrayDataset(x, y, x, y.astype(np.float32), 2, "toy")
    with pytest.raises(ValueError, match="y_train must be a 1-D integer"):
        data.ArrayDataset(x, y[:, None], x, y, 2, "toy")
    with pytest.raises(ValueError, match="feature shape"):
        data.ArrayDataset(x, y, np.zeros((4, 5), np.float32), y, 2, "toy")
    with pytest.raises(ValueError, match="num_classes"):
        data.ArrayDataset(x, y, x, y + 1, 2, "toy")


# --------------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------------

IDX_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", IDX_DTYPES)
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5)])
def test_idx_round_trip(tmp_path, suffix, dtype, shape):
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        array = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    else:
        array = (rng.standard_normal(shape) * 1e3).astype(dtype)
    path = tmp_path / f"a-idx-ubyte{suffix}"
    data.write_idx(path, array)
    head = path.read_bytes()[:2]
    assert (head == b"\x1f\x8b") == (suffix == ".gz")
    out = data.read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    assert out.shape == shape
    np.testing.assert_array_equal(out, array)
    out[...] = 0  # the returned array is writable
    assert os.listdir(tmp_path) == [path.name]  # no temporary files left behind


def test_idx_header_is_big_endian(tmp_path):
    path = tmp_path / "x"
    data.write_idx(str(path), np.array([[1, 2, 3], [4, 5, 258]], np.int32))
    raw = path.read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0C, 2])
    assert raw[4:12] == (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    assert raw[-4:] == (258).to_bytes(4, "big")
    assert len(raw) == 12 + 6 * 4


def test_idx_reads_gzip_regardless_of_name(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    data.write_idx(tmp_path / "a.gz", array)
    os.replace(tmp_path / "a.gz", tmp_path / "a-renamed")
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a-renamed"), array)


def _idx_bytes(code, dims, payload_len):
    header = bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + bytes(payload_len)


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (b"", "too short"),
        (b"\x01\x00\x08\x01" + bytes(8), "not an IDX file"),
        (_idx_bytes(0x0A, (4,), 4), "not an IDX file"),
        (_idx_bytes(0x08, (), 0), "0 dimensions"),
        (bytes([0, 0, 8, 3]) + (28).to_bytes(4, "big"), "truncated IDX header"),
        (_idx_bytes(0x08, (2, 3), 5), "payload has 5 bytes.*requires 6"),
        (_idx_bytes(0x08, (2, 3), 7), "payload has 7 bytes.*requires 6"),
        (_idx_bytes(0x0C, (2,), 4), "payload has 4 bytes.*requires 8"),
        (b"\x1f\x8b" + bytes(20), "corrupt gzip"),
    ],
)
def test_idx_corrupt_files(tmp_path, blob, match):
    path = tmp_path / "corrupt-idx-file"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match=match) as info:
        data.read_idx(path)
    assert "corrupt-idx-file" in str(info.value)


def test_idx_size_mismatch_in_gzip(tmp_path):
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(_idx_bytes(0x08, (10, 28, 28), 100)))
    with pytest.raises(ValueError, match=r"short\.gz.*requires 7840"):
        data.read_idx(path)


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros(3, np.int64), "dtypes"),
        (np.zeros(3, bool), "dtypes"),
        (np.zeros(3, np.float16), "dtypes"),
        (np.zeros((), np.uint8), "dimensions"),
    ],
)
def test_write_idx_rejects_bad_arrays(tmp_path, array, match):
    with pytest.raises(ValueError, match=match):
        data.write_idx(tmp_path / "x", array)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------------------------------
# Fashion-MNIST
# --------------------------------------------------------------------------------------------------


def _write_fake_fashion_mnist(folder, *, gz=True, n_train=30, n_test=10):
    rng = np.random.default_rng(0)
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }
    for key, array in arrays.items():
        data.write_idx(folder / (fashion_mnist.FILE_STEMS[key] + (".gz" if gz else "")), array)
    return arrays


@pytest.fixture
def no_default_dirs(tmp_path, monkeypatch):
    """Points the system folder and $LIONS_JAX_DATA at empty folders; returns both."""
    system = tmp_path / "system-empty"
    env = tmp_path / "env-empty"
    system.mkdir()
    env.mkdir()
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DATA_DIR", str(system))
    monkeypatch.setenv("LIONS_JAX_DATA", str(env))
    return system, env


def _check_fake(ds, arrays, *, flatten=False, normalize=True):
    assert ds.name == "fashion-mnist" and ds.num_classes == 10
    for split in ("train", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        ref = arrays[f"{split}_images"].astype(np.float64)
        if normalize:
            ref = ref / 255.0
        if flatten:
            ref = ref.reshape(len(ref), 784)
        assert x.dtype == np.float32 and y.dtype == np.int32
        assert x.shape == ref.shape
        np.testing.assert_allclose(x, ref, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(y, arrays[f"{split}_labels"])


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize(("flatten", "normalize"), [(False, True), (True, False)])
def test_fashion_mnist_from_data_dir(tmp_path, no_default_dirs, gz, flatten, normalize):
    arrays = _write_fake_fashion_mnist(tmp_path / "fm", gz=gz)
    ds = data.load_fashion_mnist(data_dir=tmp_path / "fm", flatten=flatten, normalize=normalize)
    _check_fake(ds, arrays, flatten=flatten, normalize=normalize)
    if normalize:
        assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0


@pytest.mark.parametrize("subfolder", ["fashion-mnist", ""])
def test_fashion_mnist_from_env_var(tmp_path, no_default_dirs, monkeypatch, subfolder):
    root = tmp_path / "lions-data"
    arrays = _write_fake_fashion_mnist(root / subfolder if subfolder else root)
    monkeypatch.setenv("LIONS_JAX_DATA", str(root))
    _check_fake(data.load_fashion_mnist(), arrays)


def test_fashion_mnist_from_system_dir(tmp_path, monkeypatch):
    arrays = _write_fake_fashion_mnist(tmp_path / "usr-share", gz=False)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DATA_DIR", str(tmp_path / "usr-share"))
    monkeypatch.delenv("LIONS_JAX_DATA", raising=False)
    _check_fake(data.load_fashion_mnist(), arrays)


def test_fashion_mnist_missing_data_message(no_default_dirs):
    system, env = no_default_dirs
    with pytest.raises(ValueError) as info:
        data.load_fashion_mnist()
    msg = str(info.value)
    assert "dataset-fashion-mnist" in msg
    assert "apt-get install" in msg
    assert "LIONS_JAX_DATA" in msg
    assert "github.com/zalandoresearch/fashion-mnist" in msg
    assert str(system) in msg
    assert str(env) in msg and str(env / "fashion-mnist") in msg


def test_fashion_mnist_partial_folder_and_no_fallback(tmp_path, no_default_dirs, monkeypatch):
    folder = tmp_path / "partial"
    _write_fake_fashion_mnist(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ValueError, match=r"missing t10k-labels-idx1-ubyte\[\.gz\]"):
        data.load_fashion_mnist(data_dir=folder)
    # An explicit data_dir is the only folder searched, even if $LIONS_JAX_DATA has the files.
    _write_fake_fashion_mnist(tmp_path / "good")
    monkeypatch.setenv("LIONS_JAX_DATA", str(tmp_path / "good"))
    with pytest.raises(ValueError, match="not found"):
        data.load_fashion_mnist(data_dir=folder)
    assert data.load_fashion_mnist().num_train == 30


def test_fashion_mnist_bad_contents(tmp_path, no_default_dirs):
    arrays = _write_fake_fashion_mnist(tmp_path)
    labels = arrays["train_labels"].copy()
    labels[0] = 10
    data.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz.*labels must be in"):
        data.load_fashion_mnist(data_dir=tmp_path)
    data.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", arrays["train_labels"][:5])
    with pytest.raises(ValueError, match="30 images but"):
        data.load_fashion_mnist(data_dir=tmp_path)
    data.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", arrays["train_labels"])
    data.write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", arrays["test_images"].astype(np.int16))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz.*uint8 image array"):
        data.load_fashion_mnist(data_dir=tmp_path)


@pytest.mark.skipif(
    not os.path.isdir("/usr/share/datasets/fashion-mnist"),
    reason="real Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)",
)
def test_fashion_mnist_real_data():
    ds = data.load_fashion_mnist(data_dir="/usr/share/datasets/fashion-mnist")
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_test.shape == (10000, 28, 28)
    np.testing.assert_array_equal(np.bincount(ds.y_train), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(ds.y_test), np.full(10, 1000))
    # The published pixel mean of the train set is 0.2860.
    np.testing.assert_allclose(ds.x_train.mean(dtype=np.float64), 0.2860, rtol=0, atol=1e-3)
    assert len(fashion_mnist.CLASS_NAMES) == 10


# --------------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------------

TOK = data.ByteTokenizer()


def test_tokenizer_constants():
    assert (TOK.pad_id, TOK.bos_id, TOK.eos_id, TOK.vocab_size) == (256, 257, 258, 259)


@settings(max_examples=100, deadline=None)
@given(text=st.text(), add_bos=st.booleans(), add_eos=st.booleans())
def test_tokenizer_round_trip(text, add_bos, add_eos):
    ids = TOK.encode(text, add_bos=add_bos, add_eos=add_eos)
    assert ids.dtype == np.int32 and ids.ndim == 1
    assert ids.size == len(text.encode("utf-8")) + add_bos + add_eos
    assert ids.size == 0 or (ids.min() >= 0 and ids.max() < TOK.vocab_size)
    assert TOK.decode(ids) == text
    assert TOK.decode(ids.tolist()) == text


@settings(max_examples=50, deadline=None)
@given(texts=st.lists(st.text(max_size=20), max_size=5), seq_len=st.integers(1, 16))
def test_encode_batch(texts, seq_len):
    ids, mask = TOK.encode_batch(texts, seq_len=seq_len, add_eos=True)
    assert ids.shape == mask.shape == (len(texts), seq_len)
    assert ids.dtype == np.int32 and mask.dtype == bool
    for row, m, text in zip(ids, mask, texts):
        full = TOK.encode(text, add_eos=True)
        n = min(full.size, seq_len)
        np.testing.assert_array_equal(row[:n], full[:n])
        assert np.all(row[n:] == TOK.pad_id)
        np.testing.assert_array_equal(m, np.arange(seq_len) < n)


def test_tokenizer_specials_and_errors():
    ids = np.array([TOK.bos_id, 104, 105, TOK.eos_id, TOK.pad_id], np.int32)
    assert TOK.decode(ids) == "hi"
    assert TOK.decode(jnp.asarray(ids)) == "hi"
    cut = TOK.encode("é")[:1]  # half of a two-byte character
    assert TOK.decode(cut) == "\ufffd"
    with pytest.raises(ValueError, match="ids must be in"):
        TOK.decode(np.array([259]))
    with pytest.raises(ValueError, match="ids must be 1-D"):
        TOK.decode(np.zeros((2, 2), np.int32))
    with pytest.raises(ValueError, match="text"):
        TOK.encode("\ud800")
    with pytest.raises(ValueError, match="seq_len"):
        TOK.encode_batch(["a"], seq_len=0)
    with pytest.raises(ValueError, match="texts"):
        TOK.encode_batch("abc", seq_len=4)


def test_text_corpus():
    import pydoc_data.topics

    a = data.load_text_corpus()
    b = data.load_text_corpus("python-docs", validation_fraction=0.1, seed=0)
    assert a == b  # deterministic
    assert a.name == "python-docs" and "pydoc_data" in a.source
    assert len(a.train) > 100_000 and len(a.validation) > 1_000
    assert not set(a.train_documents) & set(a.validation_documents)
    topics = {k for k, v in pydoc_data.topics.topics.items() if v.strip()}
    assert set(a.train_documents) | set(a.validation_documents) == topics
    assert len(a.validation_documents) == max(1, round(0.1 * len(topics)))
    for key in a.validation_documents:
        assert pydoc_data.topics.topics[key].strip() not in a.train
    assert a.validation == "\n\n".join(
        pydoc_data.topics.topics[k].strip() for k in a.validation_documents
    )
    c = data.load_text_corpus(seed=1)
    assert c.validation_documents != a.validation_documents
    assert "chars" in repr(a) and len(repr(a)) < 1_000


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "wikitext"}, "name must be one of"),
        ({"validation_fraction": 0.0}, "validation_fraction"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"seed": -1}, "seed"),
    ],
)
def test_text_corpus_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.load_text_corpus(**kwargs)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(2, 200), seq_len=st.integers(1, 20))
def test_lm_sequences(n, seq_len):
    tokens = np.arange(n, dtype=np.int64) * 7 % 259
    if n < seq_len + 1:
        with pytest.raises(ValueError, match="seq_len \\+ 1"):
            data.lm_sequences(tokens, seq_len)
        return
    w = data.lm_sequences(tokens, seq_len)
    num = (n - 1) // seq_len
    assert w.shape == (num, seq_len + 1) and w.dtype == np.int32
    # Inputs tile the stream without overlap; targets are the inputs shifted by one.
    np.testing.assert_array_equal(w[:, :-1].ravel(), tokens[: num * seq_len])
    np.testing.assert_array_equal(w[:, 1:].ravel(), tokens[1 : num * seq_len + 1])


def test_lm_sequences_errors():
    with pytest.raises(ValueError, match="seq_len"):
        data.lm_sequences(np.arange(10), 0)
    with pytest.raises(ValueError, match="tokens must be a 1-D integer"):
        data.lm_sequences(np.zeros((2, 5), np.int32), 2)
    with pytest.raises(ValueError, match="tokens must be a 1-D integer"):
        data.lm_sequences(np.zeros(5, np.float32), 2)


def test_corpus_to_lm_sequences():
    corpus = data.load_text_corpus()
    w = data.lm_sequences(TOK.encode(corpus.validation), 128)
    assert w.shape[1] == 129 and w.shape[0] == (len(corpus.validation.encode()) - 1) // 128
    assert w.min() >= 0 and w.max() < 256


# --------------------------------------------------------------------------------------------------
# Iterators
# --------------------------------------------------------------------------------------------------


class Pair(NamedTuple):
    x: np.ndarray
    y: np.ndarray


def _toy(n=10):
    return np.arange(n * 2, dtype=np.float32).reshape(n, 2), np.arange(n, dtype=np.int32)


def test_num_batches():
    assert data.num_batches(10, 3) == 3
    assert data.num_batches(10, 3, drop_last=False) == 4
    assert data.num_batches(9, 3, drop_last=False) == 3
    assert data.num_batches(0, 3) == 0
    with pytest.raises(ValueError, match="batch_size"):
        data.num_batches(10, 0)
    with pytest.raises(ValueError, match="n must be"):
        data.num_batches(-1, 2)


@pytest.mark.parametrize("container", ["tuple", "dict", "namedtuple"])
def test_batch_iterator_containers_and_alignment(container):
    x, y = _toy(10)
    arrays = {"tuple": (x, y), "dict": {"x": x, "y": y}, "namedtuple": Pair(x, y)}[container]
    batches = list(data.batch_iterator(arrays, 4, seed=0, num_epochs=1))
    assert len(batches) == 2
    for batch in batches:
        assert type(batch) is type(arrays)
        bx, by = (batch["x"], batch["y"]) if container == "dict" else batch
        assert bx.shape == (4, 2) and by.shape == (4,)
        np.testing.assert_array_equal(bx, x[by])  # rows stay aligned across leaves


def test_batch_iterator_determinism():
    x, y = _toy(13)

    def run(seed):
        return [b[1] for b in data.batch_iterator((x, y), 4, seed=seed, num_epochs=3)]

    a, b, c = run(7), run(7), run(8)
    assert len(a) == 3 * 3
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert any(not np.array_equal(u, v) for u, v in zip(a, c))
    # Epoch e is the permutation np.random.default_rng([seed, e]).
    perm1 = np.random.default_rng([7, 1]).permutation(13)
    np.testing.assert_array_equal(np.concatenate(a[3:6]), perm1[:12])


@pytest.mark.parametrize(("n", "batch_size"), [(10, 3), (12, 4), (7, 7), (5, 8)])
def test_batch_iterator_full_epoch_coverage(n, batch_size):
    _, y = _toy(n)
    batches = list(data.batch_iterator(y, batch_size, seed=1, drop_last=False, num_epochs=2))
    assert len(batches) == 2 * data.num_batches(n, batch_size, drop_last=False)
    per_epoch = len(batches) // 2
    for e in range(2):
        seen = np.concatenate(batches[e * per_epoch : (e + 1) * per_epoch])
        np.testing.assert_array_equal(np.sort(seen), np.arange(n))  # every example exactly once
    if batch_size <= n:
        dropped = list(data.batch_iterator(y, batch_size, seed=1, num_epochs=1))
        seen = np.concatenate(dropped)
        assert seen.size == (n // batch_size) * batch_size
        assert np.unique(seen).size == seen.size  # without replacement


def test_batch_iterator_no_shuffle_and_forever():
    _, y = _toy(6)
    ordered = list(data.batch_iterator(y, 3, seed=0, shuffle=False, num_epochs=2))
    np.testing.assert_array_equal(np.concatenate(ordered), np.tile(np.arange(6), 2))
    forever = data.batch_iterator(y, 3, seed=0)
    first = list(itertools.islice(forever, 50))
    assert len(first) == 50
    assert list(data.batch_iterator(y, 3, seed=0, num_epochs=0)) == []


def test_batch_iterator_validates_eagerly():
    x, y = _toy(10)
    with pytest.raises(ValueError, match="equal leading dimensions"):
        data.batch_iterator((x, y[:9]), 2, seed=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        data.batch_iterator((x, y), 0, seed=0)
    with pytest.raises(ValueError, match="batch_size must be <= the number of examples"):
        data.batch_iterator((x, y), 11, seed=0)
    with pytest.raises(ValueError, match="num_epochs"):
        data.batch_iterator((x, y), 2, seed=0, num_epochs=-1)
    with pytest.raises(ValueError, match="at least one array"):
        data.batch_iterator((), 2, seed=0)
    with pytest.raises(ValueError, match="at least one example"):
        data.batch_iterator(np.zeros((0, 3)), 2, seed=0, drop_last=False)


def _device_toy(n=10):
    x, y = _toy(n)
    return {"x": jnp.asarray(x), "y": jnp.asarray(y)}


def test_sample_batch_jit_matches_eager():
    arrays = _device_toy()
    key = jax.random.key(0)
    jitted = jax.jit(data.sample_batch, static_argnames=("batch_size", "replace"))
    # jit matches eager once (without replacement); after that, jitted only.
    eager = data.sample_batch(key, arrays, 6, replace=False)
    np.testing.assert_array_equal(jitted(key, arrays, batch_size=6, replace=False)["y"], eager["y"])
    for replace in (True, False):
        batch = jitted(key, arrays, batch_size=6, replace=replace)
        np.testing.assert_array_equal(batch["x"], arrays["x"][batch["y"]])
        assert batch["x"].shape == (6, 2)
    distinct = jitted(key, arrays, batch_size=10, replace=False)["y"]
    np.testing.assert_array_equal(np.sort(distinct), np.arange(10))


def test_sample_batch_vmap_over_keys():
    arrays = _device_toy()
    keys = jax.random.split(jax.random.key(1), 5)
    sample = jax.jit(jax.vmap(lambda k: data.sample_batch(k, arrays, 4, replace=False)))
    batches = sample(keys)
    assert batches["x"].shape == (5, 4, 2) and batches["y"].shape == (5, 4)
    single_fn = jax.jit(lambda k: data.sample_batch(k, arrays, 4, replace=False))
    for i in range(5):
        single = single_fn(keys[i])
        np.testing.assert_array_equal(batches["y"][i], single["y"])
        assert np.unique(np.asarray(batches["y"][i])).size == 4
    assert np.unique(np.asarray(batches["y"]), axis=0).shape[0] > 1  # keys differ -> batches differ


def test_sample_batch_with_replacement_is_uniform():
    n, draws = 10, 20_000
    idx = data.sample_batch(jax.random.key(2), jnp.arange(n), draws)
    counts = np.bincount(np.asarray(idx), minlength=n)
    assert counts.sum() == draws and counts.size == n
    # Binomial(20000, 0.1): sd ~ 42; allow 5 sd.
    np.testing.assert_allclose(counts, draws / n, rtol=0, atol=210)


def test_sample_batch_errors():
    arrays = _device_toy()
    with pytest.raises(ValueError, match="equal leading dimensions"):
        data.sample_batch(jax.random.key(0), (arrays["x"], arrays["y"][:3]), 2)
    with pytest.raises(ValueError, match="batch_size must be <= the number of examples"):
        data.sample_batch(jax.random.key(0), arrays, 11, replace=False)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        data.sample_batch(jax.random.key(0), arrays, 0)
    assert data.sample_batch(jax.random.key(0), arrays, 11)["y"].shape == (11,)


def test_epoch_permutation():
    perm = jax.jit(data.epoch_permutation, static_argnums=1)(jax.random.key(3), 17)
    np.testing.assert_array_equal(np.sort(np.asarray(perm)), np.arange(17))
    keys = jax.random.split(jax.random.key(4), 3)
    perms = jax.vmap(lambda k: data.epoch_permutation(k, 8))(keys)
    assert perms.shape == (3, 8)
    for p in np.asarray(perms):
        np.testing.assert_array_equal(np.sort(p), np.arange(8))
    with pytest.raises(ValueError, match="n must be >= 1"):
        data.epoch_permutation(jax.random.key(0), 0)
