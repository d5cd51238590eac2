"""The plain extractor the benchmark compares the tap with: requests + orjson, nothing else.

It fetches the same pages the tap fetches (`/api/v1/me`, then `/api/v1/companies` page by
page, following Laravel's `meta.last_page`) and writes the same Singer RECORD lines, with
no schema handling, retries or state. The access token comes from OUTLIGN_ACCESS_TOKEN.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import sys

import orjson
import requests


def main() -> None:
    """Extract every company and the user once; write RECORD lines to stdout."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()
    session = requests.Session()
    session.headers.update(
        {
            "Authorization": f"Bearer {os.environ['OUTLIGN_ACCESS_TOKEN']}",
            "Accept": "application/json",
        }
    )
    # Buffered whatever PYTHONUNBUFFERED says (Meltano sets it), as the tap's writer is.
    out = io.BufferedWriter(io.FileIO(sys.stdout.fileno(), "wb", closefd=False), 256 * 1024)

    def emit(stream: str, record: object) -> None:
        now = dt.datetime.now(dt.timezone.utc).isoformat()
        message = {"type": "RECORD", "stream": stream, "record": record, "time_extracted": now}
        out.write(orjson.dumps(message) + b"\n")

    me = orjson.loads(session.get(f"{args.api_url}/api/v1/me", timeout=60).content)
    emit("me", me.get("data", me))
    page, last = 1, 1
    while page <= last:
        response = session.get(
            f"{args.api_url}/api/v1/companies",
            params={"page": page, "per_page": args.page_size},
            timeout=60,
        )
        body = orjson.loads(response.content)
        for record in body["data"]:
            emit("companies", record)
        last = body["meta"]["last_page"]
        page += 1
    out.flush()


if __name__ == "__main__":
    main()
