"""registry/signature.py: whether an MLmodel has the signature Unity Catalog requires (pure)."""

from __future__ import annotations

import pytest

from mlflow_gitops.registry.signature import missing_signature

SIGNED = """\
artifact_path: model
flavors:
  python_function: {loader_module: mlflow.sklearn}
signature:
  inputs: '[{"type": "double", "name": "x", "required": true}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}]'
  params: null
"""


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (SIGNED, None),
        ("flavors:\n  python_function: {}\n", "the model was logged without a signature"),
        ("signature: null\n", "the model was logged without a signature"),
        (
            "signature:\n  inputs: ''\n  outputs: '[1]'\n",
            "the model was logged without a signature",
        ),
        (
            "signature:\n  inputs: '[1]'\n  outputs: null\n",
            "the model's signature has inputs but no outputs",
        ),
        ("signature:\n  inputs: '[1]'\n", "the model's signature has inputs but no outputs"),
        ("- a list\n", "its MLmodel file is not a model description"),
        ("signature: [unclosed\n", "its MLmodel file is not valid YAML"),
        ("", "its MLmodel file is not a model description"),
    ],
    ids=[
        "signed",
        "no signature key",
        "null signature",
        "empty inputs",
        "null outputs",
        "no outputs key",
        "not a mapping",
        "bad yaml",
        "empty file",
    ],
)
def test_missing_signature(text: str, reason: str | None) -> None:
    assert missing_signature(text) == reason


def test_the_mlmodel_mlflow_writes_for_an_unsigned_and_a_signed_model(tmp_path: object) -> None:
    """MLflow's own MLmodel files, not hand-written ones."""
    from pathlib import Path

    import numpy as np
    from mlflow.models import Model, infer_signature

    x, y = np.array([[1.0], [2.0]]), np.array([1.0, 2.0])
    folder = Path(str(tmp_path))
    unsigned = Model(artifact_path="model")
    unsigned.save(folder / "unsigned")
    signed = Model(artifact_path="model", signature=infer_signature(x, y))
    signed.save(folder / "signed")
    assert missing_signature((folder / "unsigned").read_text()) is not None
    assert missing_signature((folder / "signed").read_text()) is None
