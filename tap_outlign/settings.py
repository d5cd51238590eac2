"""The settings contract: names are fixed, other tools and docs depend on them."""

from __future__ import annotations

import ipaddress

from singer_sdk import typing as th

DEFAULT_API_URL = "https://go.outlign.co"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8976/callback"

CONFIG_SCHEMA = th.PropertiesList(
    th.Property(
        "api_url",
        th.StringType,
        default=DEFAULT_API_URL,
        title="API URL",
        description="Outlign base URL (without /api/v1); must be https:// unless the host "
        "is loopback.",
    ),
    th.Property(
        "client_id",
        th.StringType,
        required=True,
        title="Client ID",
        description="ID of the OAuth client registered in Outlign.",
    ),
    th.Property(
        "client_secret",
        th.StringType,
        required=True,
        secret=True,
        title="Client secret",
        description="Secret of the OAuth client registered in Outlign.",
    ),
    th.Property(
        "refresh_token",
        th.StringType,
        secret=True,
        title="Refresh token",
        description="Seed refresh token from `tap-outlign-auth login`. Outlign rotates it on "
        "every refresh; the current one lives in the token store.",
    ),
    th.Property(
        "access_token",
        th.StringType,
        secret=True,
        title="Access token",
        description="Optional access token, used while it is valid; never required.",
    ),
    th.Property(
        "token_store_path",
        th.StringType,
        title="Token store path",
        description="File that keeps the current (rotated) tokens between runs. Default: "
        "$XDG_STATE_HOME/tap-outlign/tokens.json (~/.local/state/...). In containers, "
        "point it at a persistent volume.",
    ),
    th.Property(
        "redirect_uri",
        th.StringType,
        default=DEFAULT_REDIRECT_URI,
        title="Redirect URI",
        description="Where `tap-outlign-auth login` receives the authorization code; must "
        "match the one registered with the Outlign OAuth client.",
    ),
    th.Property(
        "page_size",
        th.IntegerType(minimum=1, maximum=1000),
        default=100,
        title="Page size",
        description="Records per page asked for (sent as `per_page`).",
    ),
    th.Property(
        "start_date",
        th.DateTimeType,
        title="Start date",
        description="Earliest `updated_at` to extract on the first incremental run.",
    ),
    th.Property(
        "user_agent",
        th.StringType,
        title="User agent",
        description="User-Agent sent on every request (default: tap-outlign/<version>).",
    ),
    th.Property(
        "request_timeout",
        th.IntegerType(minimum=1),
        default=60,
        title="Request timeout",
        description="Seconds to wait for a connection or a response before retrying.",
    ),
    th.Property(
        "max_request_attempts",
        th.IntegerType(minimum=1),
        default=8,
        title="Max request attempts",
        description="Attempts per request (first try plus retries) on transient failures.",
    ),
    th.Property(
        "retry_budget_seconds",
        th.IntegerType(minimum=0),
        default=600,
        title="Retry budget",
        description="Longest time, in seconds, spent retrying one request before the run "
        "ends with an error.",
    ),
    th.Property(
        "max_concurrency",
        th.IntegerType(minimum=1, maximum=16),
        default=4,
        title="Max concurrency",
        description="Pages requested in parallel when the page count is known; pacing "
        "still keeps within the API's rate limit.",
    ),
).to_dict()


def is_loopback(host: str | None) -> bool:
    """Whether `host` names this machine (plain http is allowed only there)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
