"""mmsa_core — the MSA model core: data, shared encoders, methods, metrics and a single-run trainer.

It imports neither Ray, MLflow nor Optuna, and importing the package does not import torch:
submodules load their heavy dependencies when used. Methods live in `mmsa_core.methods`, one
package each, found through its registry.
"""

from mmsa_core.config import RunConfig
from mmsa_core.methods import get_method, method_names
from mmsa_core.methods.base import MODALITY_SUBSETS

__all__ = ["RunConfig", "MODALITY_SUBSETS", "get_method", "method_names", "load_model"]


def load_model(directory, data=None, *, device: str = "cpu"):
    """A saved model (a sweep's ``model/`` artifact), ready to predict: `mmsa_core.saved_model.load_model`."""
    from mmsa_core.saved_model import load_model as load

    return load(directory, data, device=device)
__version__ = "0.2.0"
