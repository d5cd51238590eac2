"""`OutlignStream`: requests, errors, retries and pacing shared by every Outlign endpoint."""

from __future__ import annotations

import logging
import random
import sys
import time
from datetime import datetime, timezone
from functools import cached_property
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import backoff
import orjson
import requests
from requests.utils import resolve_proxies
from singer_sdk import singerlib
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.streams import RESTStream
from singer_sdk.streams.rest import PageContext
from typing_extensions import override

from tap_outlign.errors import LOGIN_HINT, OutlignAPIError, OutlignError
from tap_outlign.pacing import RateLimitPacer, WaitBeyondDeadlineError, header_seconds
from tap_outlign.page_walk import PageWalk
from tap_outlign.pagination import (
    LaravelPaginator,
    Page,
    PageToken,
    UnexpectedShapeError,
    page_of,
    parse_page,
    remember_page,
)
from tap_outlign.record_shape import RecordShape, prepare

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable

    from backoff.types import Details
    from singer_sdk.helpers.types import Context
    from singer_sdk.tap_base import Tap

    from tap_outlign.auth import OutlignAuthenticator

#: Statuses worth retrying: the request may well succeed a moment later.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Longest wait between two retries (before a server-sent `Retry-After`, which wins).
MAX_BACKOFF_SECONDS = 30.0
_TRANSIENT_ERRORS = (
    RetriableAPIError,
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class TransientAPIError(RetriableAPIError):
    """A failure that may pass; `wait` is the server's `Retry-After` or 0 to retry at once."""

    def __init__(
        self,
        message: str,
        response: requests.Response | None = None,
        *,
        wait: float | None = None,
    ) -> None:
        """Keep the server's requested wait alongside the message."""
        super().__init__(message, response)
        self.wait = wait


def _api_message(response: requests.Response) -> str:
    """Outlign's own `message` (Laravel's error body), or the HTTP reason phrase."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, str) and message:
        return message[:200]
    return response.reason or "no message"


class _QuietKnownFailures(logging.Filter):
    """Drops the SDK's 'unhandled error' line for failures we report in one line ourselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            str(record.msg).startswith("An unhandled error occurred while syncing")
            and isinstance(sys.exc_info()[1], OutlignError)
        )


class OutlignStream(RESTStream[PageToken | None]):
    """Base for Outlign streams: one request path, one decoder, retries and pacing."""

    def __init__(self, tap: Tap, *args: Any, **kwargs: Any) -> None:
        """Share the tap's login and request pacer (Outlign throttles per user)."""
        super().__init__(tap, *args, **kwargs)
        self.pacer: RateLimitPacer = tap.pacer  # type: ignore[attr-defined]
        self._undocumented_seen: set[str] = set()
        self._page_extracted_at = datetime.now(timezone.utc)
        self._proxies: dict[str, str] | None = None
        if not any(isinstance(f, _QuietKnownFailures) for f in self.logger.filters):
            self.logger.addFilter(_QuietKnownFailures())

    @property
    @override
    def url_base(self) -> str:
        return str(self.config["api_url"]).rstrip("/")

    @property
    @override
    def authenticator(self) -> OutlignAuthenticator:
        # The tap's one login, fetched on first use: discovery needs no credentials.
        return self._tap.authenticator  # type: ignore[attr-defined,no-any-return]

    @cached_property
    @override
    def user_agent(self) -> str:
        return str(self._tap.user_agent)  # type: ignore[attr-defined]

    @property
    @override
    def http_headers(self) -> dict[str, str]:
        return {"Accept": "application/json"}

    @property
    @override
    def timeout(self) -> int:
        return int(self.config["request_timeout"])

    @override
    def get_new_paginator(self) -> LaravelPaginator | None:
        return LaravelPaginator()

    @override
    def get_url_params(
        self,
        context: Context | None,
        next_page_token: PageToken | None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"per_page": self.config["page_size"]}
        if next_page_token is not None:
            params.update(next_page_token.params())
        return params

    def decode(self, body: Any) -> Page:
        """Turn a decoded JSON body into a page of records (lists by default)."""
        return parse_page(body)

    # -- responses ----------------------------------------------------------------------

    @override
    def validate_response(self, response: requests.Response) -> None:
        status = response.status_code
        if status == HTTPStatus.UNAUTHORIZED:
            self._handle_unauthorized(response)
        if status in RETRY_STATUSES:
            wait = header_seconds(response, "Retry-After")
            msg = f"Outlign answered {status} ({_api_message(response)})"
            raise TransientAPIError(msg, response, wait=wait)
        if status >= HTTPStatus.BAD_REQUEST:
            raise OutlignAPIError(self._fatal_status_message(response))
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            msg = f"Outlign answered {status} with a body that is not complete JSON"
            raise TransientAPIError(msg, response) from exc
        try:
            remember_page(response, self.decode(body))
        except UnexpectedShapeError as exc:
            msg = (
                f"stream '{self.name}': unexpected answer from {self.path}: {exc}; "
                "the Outlign API may have changed: please report it to tap-outlign"
            )
            raise OutlignAPIError(msg) from exc

    def _handle_unauthorized(self, response: requests.Response) -> None:
        used = response.request.headers.get("Authorization", "").removeprefix("Bearer ")
        if used and self.authenticator.reject(used):
            msg = "Outlign answered 401: refreshing the access token and retrying"
            raise TransientAPIError(msg, response, wait=0.0)
        msg = (
            f"stream '{self.name}': Outlign answered 401 {_api_message(response)} even with a "
            f"freshly refreshed access token: {LOGIN_HINT}"
        )
        raise OutlignAPIError(msg)

    def _fatal_status_message(self, response: requests.Response) -> str:
        status = response.status_code
        advice = {
            HTTPStatus.FORBIDDEN: "the logged-in Outlign user may not read this; ask an "
            "Outlign admin for access, or deselect the stream",
            HTTPStatus.NOT_FOUND: "check `api_url` (the base URL, without /api/v1)",
        }.get(HTTPStatus(status), "check the settings, then run again")
        return (
            f"stream '{self.name}': Outlign answered {status} {_api_message(response)} "
            f"for GET {self.path}: {advice}"
        )

    @override
    def parse_response(self, response: requests.Response) -> Iterable[dict[str, Any]]:
        return page_of(response).records

    # -- requests, retries, pacing ------------------------------------------------------

    @override
    def backoff_wait_generator(self) -> Generator[float, Any, None]:
        """Wait what the server asked (`Retry-After`), else capped exponential with jitter."""
        exponential = backoff.expo(base=2, factor=0.5, max_value=MAX_BACKOFF_SECONDS)
        next(exponential)
        error = yield 0.0
        while True:
            server_wait = getattr(error, "wait", None)
            if server_wait is not None:
                # The pacer already holds every request until Retry-After has passed.
                error = yield 0.0
            else:
                error = yield random.uniform(0.5, 1.0) * next(exponential)  # noqa: S311

    @override
    def backoff_max_tries(self) -> int:
        return int(self.config["max_request_attempts"])

    @override
    def request_decorator(self, func: Callable[..., Any]) -> Callable[..., Any]:
        return backoff.on_exception(
            self.backoff_wait_generator,
            _TRANSIENT_ERRORS,
            max_tries=self.backoff_max_tries,
            max_time=float(self.config["retry_budget_seconds"]),
            jitter=None,
            on_backoff=self.backoff_handler,
            raise_on_giveup=True,
            logger=None,
        )(func)

    @override
    def backoff_handler(self, details: Details) -> None:
        error = details.get("exception")
        self.logger.warning(
            "stream '%s': %s; retry %d in %.1f s",
            self.name,
            error,
            details.get("tries", 0),
            details.get("wait", 0.0),
        )

    @cached_property
    def _send_with_retries(self) -> Callable[..., requests.Response]:
        """`_send` wrapped in this stream's retry policy, built once rather than per page."""
        return self.request_decorator(self._send)

    def fetch_page(self, context: Context | None, token: PageToken | None) -> Page:
        """One page, with retries; a failure that outlasts them ends the run clearly."""
        budget = float(self.config["retry_budget_seconds"])
        try:
            response = self._send_with_retries(context, token, time.monotonic() + budget)
        except WaitBeyondDeadlineError as exc:
            msg = (
                f"stream '{self.name}': Outlign asked to wait {exc.wait:.0f} s before the next "
                f"request to {self.path} (Retry-After), longer than `retry_budget_seconds` "
                f"({budget:g} s); run again later, or raise the budget"
            )
            raise OutlignAPIError(msg) from exc
        except (*_TRANSIENT_ERRORS, FatalAPIError) as exc:
            if isinstance(exc, OutlignAPIError):
                raise
            msg = (
                f"stream '{self.name}': gave up on GET {self.path} after "
                f"{self.config['max_request_attempts']} attempts or "
                f"{self.config['retry_budget_seconds']} s: {exc}. Outlign may be down; run "
                "again later (state was not advanced past the records emitted)"
            )
            raise OutlignAPIError(msg) from exc
        return page_of(response)

    def _send(
        self, context: Context | None, token: PageToken | None, deadline: float | None = None
    ) -> requests.Response:
        request = self.get_http_request(
            page=PageContext(stream_context=context, next_page_token=token)
        )
        prepared = self.build_prepared_request(
            method=request.method,
            url=request.url,
            params=request.encode_params(),
            headers=request.headers,
        )
        if self._proxies is None:
            # requests re-reads proxy variables from the environment on every send
            # (~1 ms a page); every request of a stream goes to one host, so once will do.
            session = self.requests_session
            self._proxies = resolve_proxies(prepared, dict(session.proxies), session.trust_env)
        sent_at = self.pacer.wait_turn(deadline)
        try:
            response = self.requests_session.send(
                prepared, timeout=self.timeout, proxies=self._proxies
            )
        except requests.RequestException:
            self.pacer.record(None, sent_at=sent_at)
            raise
        self.pacer.record(response, sent_at=sent_at)
        self.validate_response(response)
        return response

    @override
    def request_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        walk = PageWalk(
            lambda token: self.fetch_page(context, token),
            paginated=self.get_new_paginator() is not None,
            concurrency=int(self.config["max_concurrency"]),
            logger=self.logger,
        )
        with self.get_http_request_counter() as request_counter:
            request_counter.with_context(context)
            for records in walk.pages():
                request_counter.increment()
                self._page_extracted_at = datetime.now(timezone.utc)
                if records:
                    self._note_undocumented_fields(records[0])
                yield from records

    @cached_property
    def record_shape(self) -> RecordShape:
        """Deselection and conformance for this stream's records, worked out once."""
        mask = self.mask
        return prepare(self.effective_schema, lambda breadcrumb: mask[breadcrumb])

    @override
    def _generate_record_messages(
        self,
        record: dict[str, Any],
    ) -> Generator[singerlib.RecordMessage, None, None]:
        """RECORD messages, shaped by the prepared `record_shape`.

        Replaces the SDK's generic per-record schema walk (pinned to singer-sdk 0.54.x,
        whose private hook this is); records are stamped with their page's fetch time.
        """
        shape = self.record_shape
        if not shape.is_identity:
            record = shape.apply(record)
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                yield singerlib.RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=self._page_extracted_at,
                )

    @override
    def generate_child_contexts(
        self,
        record: dict[str, Any],
        context: Context | None,
    ) -> Iterable[Context | None]:
        # No Outlign stream has children: skip the SDK's per-record child bookkeeping.
        return ()

    def _note_undocumented_fields(self, record: dict[str, Any]) -> None:
        """Warn once per field the schema does not declare (it still reaches the target)."""
        new = record.keys() - self.schema["properties"].keys() - self._undocumented_seen
        if new:
            self._undocumented_seen.update(new)
            self.logger.warning(
                "stream '%s': Outlign returned field(s) the schema does not declare: %s. "
                "They are passed through in each record, but SQL targets load only "
                "declared columns: to load them, declare them in the catalog (with "
                "Meltano, the `schema` extra of tap-outlign in meltano.yml)",
                self.name,
                ", ".join(sorted(new)),
            )
