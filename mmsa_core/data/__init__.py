"""MMSA data: safe loading, validation, the synthetic generator, batching and corruption.

``load_dataset(source)`` is the entry point (a synthetic name, an MMSA pickle or a converted
directory -> `MSADataset` of NumPy arrays). Importing this package imports neither torch nor
transformers; `mmsa_core.data.batching` (torch) and the tokenizer load when used.
"""

from mmsa_core.data.corruption import Corruption, apply_corruption
from mmsa_core.data.arrays import MSADataset, SplitArrays
from mmsa_core.data.dataset import load_dataset
from mmsa_core.data.pickle_io import DataFileError, UnsafePickleError, convert_to_npz
from mmsa_core.data.synthetic import make_synthetic
from mmsa_core.data.validate import DataValidationError, validate_dataset, validate_raw

__all__ = [
    "load_dataset", "MSADataset", "SplitArrays", "DataValidationError", "UnsafePickleError",
    "DataFileError", "make_synthetic", "Corruption", "apply_corruption", "convert_to_npz",
    "validate_raw", "validate_dataset",
]
