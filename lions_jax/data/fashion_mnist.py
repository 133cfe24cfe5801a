"""Fashion-MNIST from local IDX files, plus a reader and writer for the IDX format.

Nothing is downloaded. The four IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally gzipped) are looked for in

1. the ``data_dir`` argument, if given (then only there);
2. ``$LIONS_JAX_DATA/fashion-mnist``;
3. ``$LIONS_JAX_DATA``;
4. :data:`SYSTEM_DATA_DIR` (``/usr/share/datasets/fashion-mnist``), where Debian's and Ubuntu's
   ``dataset-fashion-mnist`` package installs them.

Fashion-MNIST is by Zalando Research (Xiao, Rasul and Vollgraf, 2017,
https://github.com/zalandoresearch/fashion-mnist), MIT licence.
"""

import gzip
import os
import pathlib
import tempfile

import numpy as np

from lions_jax.data.sklearn_sets import ArrayDataset

__all__ = [
    "CLASS_NAMES",
    "DATA_ENV_VAR",
    "FILE_STEMS",
    "SYSTEM_DATA_DIR",
    "find_fashion_mnist_dir",
    "load_fashion_mnist",
    "read_idx",
    "write_idx",
]

#: The ten Fashion-MNIST classes, indexed by label.
CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

#: Environment variable naming a data folder (searched as ``$LIONS_JAX_DATA/fashion-mnist`` and
#: as ``$LIONS_JAX_DATA``).
DATA_ENV_VAR = "LIONS_JAX_DATA"

#: Where Debian's ``dataset-fashion-mnist`` package installs the files. Tests monkeypatch this.
SYSTEM_DATA_DIR = "/usr/share/datasets/fashion-mnist"

#: File name stems of the four IDX files; each may also end in ``.gz``.
FILE_STEMS: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# IDX type code -> big-endian numpy dtype ("THE IDX FILE FORMAT", http://yann.lecun.com/exdb/mnist/).
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"

_HOW_TO_GET = (
    "To get Fashion-MNIST: on Debian/Ubuntu run `sudo apt-get install dataset-fashion-mnist` "
    f"(installs into {SYSTEM_DATA_DIR}); or download the four IDX files "
    "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz) from https://github.com/zalandoresearch/fashion-mnist into a "
    f"folder and set {DATA_ENV_VAR} to it (or to its parent, if the folder is named "
    "'fashion-mnist'), or pass data_dir=."
)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads an IDX file (as used by MNIST and Fashion-MNIST), gzipped or not.

    Gzip compression is detected from the file's first bytes, whatever its name. The header is
    two zero bytes, a type code (``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32,
    ``0x0D`` float32, ``0x0E`` float64), the number of dimensions, then one big-endian uint32 per
    dimension; the big-endian payload follows.

    Args:
        path: The file to read.

    Returns:
        A writable numpy array in native byte order with the stored dtype and shape.

    Raises:
        ValueError: If the header is malformed (bad magic number, unknown type code) or the payload
            size does not match the header; the message names the file.
        FileNotFoundError: If ``path`` does not exist.

    Example:
        >>> import os, tempfile, numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "a-idx2-ubyte.gz")
        >>> write_idx(path, np.arange(6, dtype=np.uint8).reshape(2, 3))
        >>> read_idx(path)
        array([[0, 1, 2],
               [3, 4, 5]], dtype=uint8)
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ValueError(f"path {path!r}: corrupt gzip stream ({e})") from e
    if len(raw) < 4:
        raise ValueError(f"path {path!r}: too short for an IDX header ({len(raw)} bytes)")
    zero0, zero1, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0 or code not in _IDX_DTYPES:
        raise ValueError(
            f"path {path!r}: not an IDX file (magic number 0x{int.from_bytes(raw[:4], 'big'):08X}; "
            "expected 0x0000TTDD with type code TT in "
            f"{{{', '.join(f'0x{c:02X}' for c in _IDX_DTYPES)}}} and DD dimensions)"
        )
    if ndim == 0:
        raise ValueError(f"path {path!r}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise ValueError(
            f"path {path!r}: truncated IDX header (needs {header_len} bytes for {ndim} "
            f"dimensions, file has {len(raw)})"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header_len
    if actual != expected:
        raise ValueError(
            f"path {path!r}: IDX payload has {actual} bytes but the header (shape {shape}, "
            f"dtype {dtype.newbyteorder('=').name}) requires {expected}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Writes ``array`` as an IDX file, gzipped if ``path`` ends in ``.gz``.

    The file is written to a temporary file in the same folder and then moved into place with
    ``os.replace``, so readers never see a partial file.

    Args:
        path: Destination file.
        array: At least 1-D array of dtype uint8, int8, int16, int32, float32 or float64 (no
            silent casting), each dimension below ``2**32``.

    Raises:
        ValueError: If ``array`` has an unsupported dtype or shape.

    Example:
        >>> import os, tempfile, numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "x-idx1-float")
        >>> write_idx(path, np.array([0.5, -1.0], np.float32))
        >>> read_idx(path)
        array([ 0.5, -1. ], dtype=float32)
    """
    path = os.fspath(path)
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    code = next((c for c, dt in _IDX_DTYPES.items() if dt.newbyteorder("=") == native), None)
    if code is None:
        supported = ", ".join(dt.newbyteorder("=").name for dt in _IDX_DTYPES.values())
        raise ValueError(f"array must have one of the dtypes {supported}; got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"array must have 1 to 255 dimensions; got shape {array.shape}")
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"array dimensions must be < 2**32; got shape {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    blob = header + payload
    if path.endswith(".gz"):
        blob = gzip.compress(blob, mtime=0)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".idx")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _candidate_dirs(data_dir: str | os.PathLike[str] | None) -> list[pathlib.Path]:
    if data_dir is not None:
        return [pathlib.Path(data_dir)]
    dirs = []
    env = os.environ.get(DATA_ENV_VAR, "").strip()
    if env:
        dirs += [pathlib.Path(env) / "fashion-mnist", pathlib.Path(env)]
    dirs.append(pathlib.Path(SYSTEM_DATA_DIR))
    return dirs


def _find_file(folder: pathlib.Path, stem: str) -> pathlib.Path | None:
    # Accept the canonical names, their gzipped forms, and the "train-images.idx3-ubyte" spelling
    # that some unpackers produce.
    alt = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", alt, alt + ".gz"):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def find_fashion_mnist_dir(
    data_dir: str | os.PathLike[str] | None = None,
) -> dict[str, pathlib.Path]:
    """Locates the four Fashion-MNIST IDX files (see the module docstring for the search order).

    Args:
        data_dir: Folder to search instead of the default locations.

    Returns:
        A dict mapping ``"train_images"``, ``"train_labels"``, ``"test_images"`` and
        ``"test_labels"`` to the files found (all in the same folder).

    Raises:
        ValueError: If no searched folder holds all four files. The message lists every folder
            searched (and which files a folder lacked, if it exists) and how to get the data.
    """
    searched = []
    for folder in _candidate_dirs(data_dir):
        if not folder.is_dir():
            searched.append(f"  {folder} (no such folder)")
            continue
        found = {key: _find_file(folder, stem) for key, stem in FILE_STEMS.items()}
        missing = [FILE_STEMS[k] + "[.gz]" for k, p in found.items() if p is None]
        if not missing:
            return {k: p for k, p in found.items() if p is not None}
        searched.append(f"  {folder} (missing {', '.join(missing)})")
    env_note = "" if os.environ.get(DATA_ENV_VAR, "").strip() else f" ({DATA_ENV_VAR} is not set)"
    raise ValueError(
        "Fashion-MNIST IDX files not found. Folders searched"
        + env_note
        + ":\n"
        + "\n".join(searched)
        + "\n"
        + _HOW_TO_GET
    )


def load_fashion_mnist(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    flatten: bool = False,
    normalize: bool = True,
) -> ArrayDataset:
    """Loads Fashion-MNIST (60,000 train and 10,000 test 28x28 grey images, 10 classes).

    Class names are in :data:`CLASS_NAMES`. The official train/test split is kept as is.

    Args:
        data_dir: Folder holding the four IDX files (gzipped or not). If ``None``, searches
            ``$LIONS_JAX_DATA/fashion-mnist``, ``$LIONS_JAX_DATA`` and :data:`SYSTEM_DATA_DIR`.
        flatten: If true, images have shape ``(784,)`` instead of ``(28, 28)``.
        normalize: If true, pixels are float32 in ``[0, 1]`` (divided by 255); otherwise float32
            with the raw values ``0..255``.

    Returns:
        An :class:`ArrayDataset` named ``"fashion-mnist"`` with ``num_classes=10``, ``x`` float32
        of shape ``(n, 28, 28)`` (or ``(n, 784)``), ``y`` int32.

    Raises:
        ValueError: If the files cannot be found (the message says where it looked and how to get
            them), or a file is not a valid IDX file of the expected dtype and shape.
    """
    files = find_fashion_mnist_dir(data_dir)
    arrays = {key: read_idx(path) for key, path in files.items()}
    for split in ("train", "test"):
        img_path, lab_path = files[f"{split}_images"], files[f"{split}_labels"]
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.dtype != np.uint8 or images.ndim != 3:
            raise ValueError(
                f"path {str(img_path)!r}: expected a uint8 image array of shape (n, rows, cols); "
                f"got {images.dtype} {images.shape}"
            )
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise ValueError(
                f"path {str(lab_path)!r}: expected a uint8 label array of shape (n,); "
                f"got {labels.dtype} {labels.shape}"
            )
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"path {str(img_path)!r} holds {images.shape[0]} images but {str(lab_path)!r} "
                f"holds {labels.shape[0]} labels"
            )
        if labels.size and labels.max() >= len(CLASS_NAMES):
            raise ValueError(
                f"path {str(lab_path)!r}: labels must be in [0, {len(CLASS_NAMES)}); "
                f"got max {labels.max()}"
            )

    def images(key: str) -> np.ndarray:
        x = arrays[key].astype(np.float32)
        if normalize:
            x /= 255.0
        return x.reshape(x.shape[0], -1) if flatten else x

    return ArrayDataset(
        x_train=images("train_images"),
        y_train=arrays["train_labels"].astype(np.int32),
        x_test=images("test_images"),
        y_test=arrays["test_labels"].astype(np.int32),
        num_classes=len(CLASS_NAMES),
        name="fashion-mnist",
    )
