import pytest

from .http_server import LocalHttpServer


@pytest.fixture
def http_server():
    with LocalHttpServer() as server:
        yield server
