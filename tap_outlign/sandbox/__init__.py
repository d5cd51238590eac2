"""A local Outlign-compatible API (OAuth2 + /api/v1) for tests, benchmarks and the demo.

Standard library only. Start one in a test with::

    with SandboxServer(SandboxConfig(companies=1000, shape="cursor")) as server:
        config = server.tap_config()  # api_url, client_id, client_secret, refresh_token
"""

from tap_outlign.sandbox.config import SHAPES, SandboxConfig
from tap_outlign.sandbox.core import Sandbox
from tap_outlign.sandbox.server import SandboxServer

__all__ = ["SHAPES", "Sandbox", "SandboxConfig", "SandboxServer"]
