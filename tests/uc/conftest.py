"""The Unity Catalog fakes' fixtures (tests/uc/harness.py) for the tests in this folder."""

from tests.uc.harness import uc, uc_env  # noqa: F401 - fixtures
