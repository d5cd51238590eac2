"""Outlign streams: one short declaration per endpoint."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from singer_sdk import typing as th
from singer_sdk.singerlib.catalog import REPLICATION_INCREMENTAL
from typing_extensions import override

from tap_outlign.client import OutlignStream
from tap_outlign.pagination import LaravelPaginator, Page, UnexpectedShapeError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.helpers.types import Context

#: `updated_at`/`created_at` as Laravel serialises them ("2024-01-01T00:00:00.000000Z").
TIMESTAMP = th.DateTimeType

USER = th.PropertiesList(
    th.Property("id", th.IntegerType, required=True),
    th.Property("email", th.StringType),
    th.Property("name", th.StringType),
    additional_properties=True,
)

# Assumed: Outlign does not document the company object; these are the fields we expect.
# `additional_properties` lets any field the API adds reach the target instead of vanishing.
COMPANY = th.PropertiesList(
    th.Property("id", th.IntegerType, required=True),
    th.Property("name", th.StringType),
    th.Property("domain", th.StringType),
    th.Property("website", th.StringType),
    th.Property("industry", th.StringType),
    th.Property("employee_count", th.IntegerType),
    th.Property("annual_revenue", th.NumberType),
    th.Property("country", th.StringType),
    th.Property("city", th.StringType),
    th.Property("linkedin_url", th.StringType),
    th.Property("description", th.StringType),
    th.Property("tags", th.ArrayType(th.StringType)),
    th.Property(
        "owner",
        th.ObjectType(
            th.Property("id", th.IntegerType),
            th.Property("name", th.StringType),
            th.Property("email", th.StringType),
            additional_properties=True,
        ),
    ),
    th.Property("created_at", TIMESTAMP),
    th.Property("updated_at", TIMESTAMP),
    additional_properties=True,
)


class MeStream(OutlignStream):
    """The logged-in user: `GET /api/v1/me`, a single object (bare, or under `data`)."""

    name = "me"
    path = "/api/v1/me"
    primary_keys = ("id",)
    schema = USER.to_dict()

    @override
    def get_new_paginator(self) -> LaravelPaginator | None:
        return None

    @override
    def get_url_params(self, context: Any, next_page_token: Any) -> dict[str, Any]:
        return {}

    @override
    def decode(self, body: Any) -> Page:
        user = body.get("data", body) if isinstance(body, dict) else None
        if not isinstance(user, dict) or "id" not in user:
            msg = "expected the user object with an `id`"
            raise UnexpectedShapeError(msg)
        return Page(records=[user])


class CompaniesStream(OutlignStream):
    """Companies: `GET /api/v1/companies`, a Laravel-paginated list.

    Incremental on `updated_at`. The API documents no server-side filter, so every page is
    read and only companies updated at or after the bookmark (or `start_date`) are
    emitted. Pages are in id order, not `updated_at` order, so the bookmark advances only
    once the whole list has been read (`is_sorted = False`).
    """

    name = "companies"
    path = "/api/v1/companies"
    primary_keys = ("id",)
    replication_key = "updated_at"
    is_sorted = False
    schema = COMPANY.to_dict()

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        records = super().get_records(context)
        since = (
            self.get_starting_timestamp(context)
            if self.replication_method == REPLICATION_INCREMENTAL
            else None
        )
        if since is None:
            yield from records
            return
        for record in records:
            updated = parse_timestamp(record.get("updated_at"))
            if updated is None or updated >= since:
                yield record


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as Laravel writes it ("...T12:00:00.000000Z"), or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
