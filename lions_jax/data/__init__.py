"""Shared datasets for lions_jax: offline, deterministic, numpy in and numpy/JAX out.

Nothing here downloads anything. The datasets and where each comes from:

* ``digits`` (:func:`load_digits`): 1,797 8x8 handwritten digits, 10 classes; bundled with
  scikit-learn (UCI ML hand-written digits).
* ``breast-cancer`` (:func:`load_breast_cancer`): 569 examples, 30 features, 2 classes; bundled
  with scikit-learn (UCI Wisconsin diagnostic breast cancer).
* ``moons`` (:func:`load_moons`): two interleaving half-circles, generated from a seed by
  ``sklearn.datasets.make_moons``.
* ``fashion-mnist`` (:func:`load_fashion_mnist`): 70,000 28x28 clothing images, 10 classes
  (Zalando Research), read from local IDX files: ``data_dir``, ``$LIONS_JAX_DATA/fashion-mnist``,
  ``$LIONS_JAX_DATA`` or ``/usr/share/datasets/fashion-mnist`` (Debian/Ubuntu package
  ``dataset-fashion-mnist``). If none is found, the error says how to get the files.
* ``python-docs`` text (:func:`load_text_corpus`): the help topics of the Python documentation,
  shipped with CPython as ``pydoc_data.topics``; tokenize with :class:`ByteTokenizer` and cut with
  :func:`lm_sequences`.

Classification sets are :class:`ArrayDataset` objects (float32 inputs, int32 labels, a seeded
stratified train/test split, standardization fitted on the train split). Minibatches come from
:func:`batch_iterator` (host, numpy) or :func:`sample_batch` (in-graph, jittable, key first).
"""

from lions_jax.data.fashion_mnist import CLASS_NAMES as FASHION_MNIST_CLASS_NAMES
from lions_jax.data.fashion_mnist import (
    find_fashion_mnist_dir,
    load_fashion_mnist,
    read_idx,
    write_idx,
)
from lions_jax.data.iterators import batch_iterator, epoch_permutation, num_batches, sample_batch
from lions_jax.data.sklearn_sets import (
    DATASET_NAMES,
    ArrayDataset,
    load_breast_cancer,
    load_dataset,
    load_digits,
    load_moons,
)
from lions_jax.data.text import (
    TEXT_CORPUS_NAMES,
    ByteTokenizer,
    TextCorpus,
    lm_sequences,
    load_text_corpus,
)

__all__ = [
    "DATASET_NAMES",
    "FASHION_MNIST_CLASS_NAMES",
    "TEXT_CORPUS_NAMES",
    "ArrayDataset",
    "ByteTokenizer",
    "TextCorpus",
    "batch_iterator",
    "epoch_permutation",
    "find_fashion_mnist_dir",
    "lm_sequences",
    "load_breast_cancer",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_moons",
    "load_text_corpus",
    "num_batches",
    "read_idx",
    "sample_batch",
    "write_idx",
]
