"""The Unity Catalog fakes' fixtures (tests/uc/harness.py) for the tests in this folder; tests
elsewhere import them from tests.uc.harness."""

from tests.uc.harness import uc, uc_env, uc_two, uc_two_env  # noqa: F401 - fixtures
