"""Datasets, cleaning transforms, training and model files for Provenance Ledger.

``ml`` knows nothing of chains: it produces hashes, canonical documents and model files, and
the ``ledger`` and ``api`` packages record and serve them. Submodules:

* :mod:`ml.hashing`: file hashes (as ``sha256sum``) and canonical JSON;
* :mod:`ml.datasets`: CSV loading, validation, schema and row digests;
* :mod:`ml.transforms`: declarative cleaning steps with a canonical hash;
* :mod:`ml.training`: deterministic training, metrics and metadata;
* :mod:`ml.artifacts`: verified, allowlisted model loading and prediction;
* :mod:`ml.errors`: :class:`MlError` and its subclasses.

Importing ``ml`` itself is cheap: scikit-learn is only imported with the training modules.
"""

from ml.errors import MlError

__all__ = ["MlError"]
