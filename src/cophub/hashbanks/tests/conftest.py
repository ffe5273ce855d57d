"""The provider API's fixtures (a provider at the district, its keys), for the feed's tests."""

from cophub.providers.tests.conftest import live, provider, sandbox  # noqa: F401
