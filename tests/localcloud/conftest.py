"""pytest's fixtures for the local cloud's tests; the helpers the tests call are in testing.py."""

from __future__ import annotations

import pytest

from localcloud import testing


@pytest.fixture(scope="module")
def clouds():
    """The local clouds of a test module (testing.Clouds), stopped after its last test."""
    started = testing.Clouds()
    yield started
    started.stop()


@pytest.fixture
def cloud(clouds):
    """`cloud(template=TEMPLATE)`: the module's local cloud of the template, with the real function
    binaries (which must be built: `make functions`), reset. A test module whose tests want more of
    the cloud overrides this fixture."""
    return clouds.reset
