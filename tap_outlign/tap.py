"""`TapOutlign`: the settings, the shared authenticator and the stream list."""

from __future__ import annotations

import copy
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from singer_sdk import Tap
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import (
    CapabilitiesEnum,
    PluginCapabilities,
    TapCapabilities,
)
from typing_extensions import override

from tap_outlign.auth import OutlignAuthenticator
from tap_outlign.errors import ConfigError
from tap_outlign.input_checks import (
    describe_config_errors,
    read_config_file,
    read_json_document,
)
from tap_outlign.pacing import RateLimitPacer
from tap_outlign.settings import CONFIG_SCHEMA, is_loopback
from tap_outlign.streams import CompaniesStream, MeStream, parse_timestamp
from tap_outlign.token_store import TokenStore
from tap_outlign.writer import BufferedMsgSpecWriter

if TYPE_CHECKING:
    from typing import IO

    import click
    from singer_sdk.plugin_base import _ConfigInput
    from singer_sdk.streams import Stream


def package_version() -> str:
    """The installed tap-outlign version (for the default User-Agent)."""
    try:
        return version("tap-outlign")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


class TapOutlign(Tap):
    """Singer tap for the Outlign API."""

    name = "tap-outlign"
    package_name = "tap-outlign"
    # A copy: the SDK adds its built-in settings to this dict in place.
    config_jsonschema = copy.deepcopy(CONFIG_SCHEMA)
    message_writer_class = BufferedMsgSpecWriter
    # The SDK's defaults minus BATCH: records stream through our own shaping, not files.
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        TapCapabilities.ACTIVATE_VERSION,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Load and validate settings; report bad ones in one line that names the setting."""
        try:
            super().__init__(*args, **kwargs)
        except ConfigValidationError as exc:
            raise ConfigError(describe_config_errors(exc.schema or {}, self._config)) from None
        if kwargs.get("validate_config", True):
            self._check_api_url()
            self._check_start_date()

    def _check_start_date(self) -> None:
        value = self.config.get("start_date")
        if value is not None and parse_timestamp(value) is None:
            msg = (
                "setting `start_date` is not an ISO 8601 date-time such as "
                "2024-01-01T00:00:00Z; fix it and run again"
            )
            raise ConfigError(msg)

    def _check_api_url(self) -> None:
        parts = urlsplit(str(self.config.get("api_url", "")))
        if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname)):
            return
        msg = (
            f"setting `api_url` must be an https:// URL (plain http only for a loopback "
            f"host such as a local sandbox), got {parts.scheme or 'no'} scheme"
        )
        raise ConfigError(msg)

    @cached_property
    def authenticator(self) -> OutlignAuthenticator:
        """One login per tap instance, shared by all its streams (and their threads)."""
        config = self.config
        return OutlignAuthenticator(
            api_url=config["api_url"],
            client_id=config["client_id"],
            client_secret=config["client_secret"],
            refresh_token=config.get("refresh_token"),
            access_token=config.get("access_token"),
            store=TokenStore(
                config.get("token_store_path"),
                api_url=config["api_url"],
                client_id=config["client_id"],
            ),
            user_agent=self.user_agent,
            timeout=float(config["request_timeout"]),
        )

    @cached_property
    def pacer(self) -> RateLimitPacer:
        """One request pacer per tap: Outlign throttles per user, not per endpoint."""
        return RateLimitPacer()

    @property
    def user_agent(self) -> str:
        """The configured User-Agent, or one naming the tap and its version."""
        return str(self.config.get("user_agent") or f"tap-outlign/{package_version()}")

    @override
    def discover_streams(self) -> list[Stream]:
        return [MeStream(self), CompaniesStream(self)]

    @classmethod
    @override
    def cb_config(
        cls,
        ctx: click.Context,
        param: click.Option,
        value: tuple[str, ...],
    ) -> _ConfigInput:
        """Read the --config files, naming any that is missing or not a JSON object."""
        for path in value:
            if path != "ENV":
                read_config_file(path)
        return super().cb_config(ctx, param, value)

    @classmethod
    @override
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: _ConfigInput | None = None,
        state: IO[str] | None = None,
        catalog: IO[str] | None = None,
    ) -> None:
        """Run the tap, first checking that the state and catalog files are readable JSON."""
        super().invoke(
            about=about,
            about_format=about_format,
            config=config,
            state=read_json_document(state, kind="state"),
            catalog=read_json_document(catalog, kind="catalog"),
        )
