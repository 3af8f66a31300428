"""The fuzz tier's world: a fresh database per module (the contract tier's fixture)."""

from tests.contract.conftest import fresh_database  # noqa: F401  (a fixture, used by name)
