"""Deterministic, realistic companies generated lazily from their id, and immutable snapshots.

Nothing is built up front: a company is a pure function of its id (plus the few overrides a
mutation made), so a million-company sandbox starts instantly and pages render on demand.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
import time
from array import array
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

_START = 1_546_300_800  # 2019-01-01T00:00:00Z: first created_at
_SPAN = 1_719_705_600 - _START  # created_at spread over 2019-01-01 .. 2024-06-30
_MASK = (1 << 64) - 1
VARIANTS = 8192  # distinct company profiles (names, industries, ...) shared out by id hash
_MAX_UPDATE_LAG = 180 * 86_400  # so every initial updated_at is before 2025
_LINKEDIN = "https://www.linkedin.com/company/"

_PREFIXES = (
    "Acme", "Blue", "Northwind", "Summit", "Vertex", "Bright", "Cedar", "Harbor", "Silver",
    "Nimbus", "Quantum", "Red", "Granite", "Maple", "Atlas", "Pioneer", "Lumen", "Orbit",
    "Evergreen", "Falcon", "Iron", "Golden", "Coastal", "Polar", "Crimson", "Sage",
)  # fmt: skip
_CORES = (
    "Analytics", "Logistics", "Robotics", "Labs", "Systems", "Health", "Foods", "Energy",
    "Media", "Capital", "Works", "Dynamics", "Networks", "Software", "Bio", "Studios",
    "Partners", "Textiles", "Motors", "Cloud", "Security", "Learning",
)  # fmt: skip
_SUFFIXES = ("Inc.", "LLC", "Ltd", "Group", "Co.", "", "", "")
# Non-ASCII companies: (name, domain, country, city).
_SPECIAL = (
    ("Société Générale", "societegenerale.fr", "France", "Paris"),
    ("Müller & Söhne GmbH", "mueller-soehne.de", "Germany", "München"),
    ("株式会社サンプル", "sample.co.jp", "Japan", "東京"),
    ("Café ☕ Collective", "cafe-collective.com", "Canada", "Montréal"),
    ("Øresund Shipping ApS", "oresund-shipping.dk", "Denmark", "København"),
    ("Ñandú Tecnologías S.A.", "nandu.com.ar", "Argentina", "Córdoba"),
)
_PLACES = (
    ("United States", ("New York", "San Francisco", "Austin", "Chicago", "Seattle")),
    ("United Kingdom", ("London", "Manchester", "Edinburgh")),
    ("France", ("Paris", "Lyon", "Toulouse")),
    ("Germany", ("Berlin", "München", "Köln", "Hamburg")),
    ("Brazil", ("São Paulo", "Rio de Janeiro")),
    ("Spain", ("Madrid", "A Coruña", "Barcelona")),
    ("Sweden", ("Malmö", "Göteborg", "Stockholm")),
    ("Japan", ("東京", "Osaka")),
    ("India", ("Bengaluru", "Mumbai")),
    ("Australia", ("Sydney", "Melbourne")),
)
_INDUSTRIES = (
    "Software", "Financial Services", "Healthcare", "Manufacturing", "Retail", "Logistics",
    "Education", "Energy", "Media", "Hospitality", "Biotechnology", "Consulting",
)  # fmt: skip
_STAGES = ("lead", "prospect", "opportunity", "customer", "churned", "partner")
_TAGS = (
    "enterprise", "smb", "priority", "partner", "inbound", "outbound",
    "churn-risk", "expansion", "vip", "trial",
)  # fmt: skip
_OWNERS = (
    {"id": 7, "name": "Zoë Martin", "email": "zoe.martin@example.com"},
    {"id": 12, "name": "Liam O'Brien", "email": "liam.obrien@example.com"},
    {"id": 19, "name": "Akira Tanaka", "email": "akira.tanaka@example.com"},
    {"id": 23, "name": "Chloé Dubois", "email": "chloe.dubois@example.com"},
    {"id": 31, "name": "Mateo García", "email": "mateo.garcia@example.com"},
    {"id": 42, "name": "Priya Raman", "email": "priya.raman@example.com"},
)
_DESCRIPTIONS = (
    "{name} builds tools for {industry} teams.",
    "Founded in {city}, {name} serves customers across {country}.",
    "{name} — « qualité et fiabilité » depuis toujours.",
    "{name}: Qualität aus {city}. Größer, schöner, schneller.",
    "{name} は{city}を拠点とする企業です。",
    "Café ☕ culture meets {industry} at {name}.",
    '{name} ("the {industry} people") — 100% remote, 0% boring.',
)


def _mix(value: int) -> int:
    """splitmix64: a fast, well-spread 64-bit hash of an int."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


class _Draws:
    """Deterministic draws peeled off a 512-bit hash of a seed (no global random state)."""

    __slots__ = ("pool",)

    def __init__(self, seed: int) -> None:
        digest = hashlib.blake2b(seed.to_bytes(8, "little"), person=b"outlign").digest()
        self.pool = int.from_bytes(digest, "little")

    def below(self, n: int) -> int:
        """A draw in [0, n); the pool holds ~50 small draws, ample for one profile."""
        self.pool, value = divmod(self.pool, n)
        return value

    def chance(self, percent: int) -> bool:
        return self.below(100) < percent


@functools.cache
def _day(days: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(days * 86_400))


@functools.cache
def _clock(seconds: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(seconds))


def laravel_time(epoch_us: int) -> str:
    """Format epoch microseconds the way Laravel serialises dates: 2024-01-01T00:00:00.000000Z."""
    seconds, micros = divmod(epoch_us, 1_000_000)
    days, seconds = divmod(seconds, 86_400)
    return f"{_day(days)}T{_clock(seconds)}.{micros:06d}Z"


@functools.lru_cache(maxsize=8192)
def _slug(text: str) -> str:
    return "".join(ch for ch in text.lower().replace(" ", "-") if ch.isalnum() or ch == "-")


def initial_times(company_id: int, base_count: int) -> tuple[int, int]:
    """(created_at, updated_at) in epoch microseconds: increasing-ish by id, all in the past."""
    step = max(_SPAN // max(base_count, 1), 1)
    bits, jitter = divmod(_mix(company_id ^ 0x7135), step)
    bits, roll = divmod(bits, 100)
    created = _START + (company_id - 1) * step + jitter
    updated = created + (bits % _MAX_UPDATE_LAG if roll < 70 else 0)  # noqa: PLR2004 - 70 %
    return created * 1_000_000, updated * 1_000_000


@functools.cache
def _profile(variant: int) -> str:
    """JSON members of every field but id and timestamps; ids share VARIANTS profiles.

    Sharing pre-serialised profiles keeps a record at a few microseconds, so even a
    million-company sandbox renders pages far faster than any client reads them.
    """
    draws = _Draws(variant)
    if draws.chance(4):
        name, domain, country, city = _SPECIAL[draws.below(len(_SPECIAL))]
    else:
        core = _CORES[draws.below(len(_CORES))]
        stem = f"{_PREFIXES[draws.below(len(_PREFIXES))]} {core}"
        suffix = _SUFFIXES[draws.below(len(_SUFFIXES))]
        name = f"{stem} {suffix}".strip()
        domain = f"{_slug(stem)}.{('com', 'io', 'co', 'net')[draws.below(4)]}"
        country, cities = _PLACES[draws.below(len(_PLACES))]
        city = cities[draws.below(len(cities))]
    industry = None if draws.chance(8) else _INDUSTRIES[draws.below(len(_INDUSTRIES))]
    description = None
    if not draws.chance(25):
        template = _DESCRIPTIONS[draws.below(len(_DESCRIPTIONS))]
        description = template.format(
            name=name, industry=industry or "business", city=city, country=country
        )
    tags = sorted({_TAGS[draws.below(len(_TAGS))] for _ in range(draws.below(4))})
    profile = {
        "name": name,
        "domain": domain,
        "website": None if draws.chance(10) else f"https://www.{domain}",
        "industry": industry,
        "employee_count": None if draws.chance(12) else 1 + draws.below(50_000),
        "annual_revenue": None if draws.chance(20) else draws.below(5_000_000_000) / 100,
        "country": country,
        "city": None if draws.chance(5) else city,
        "linkedin_url": None if draws.chance(15) else f"{_LINKEDIN}{_slug(name)}",
        "description": description,
        "tags": tags,
        "owner": None if draws.chance(18) else _OWNERS[draws.below(len(_OWNERS))],
        "lifecycle_stage": _STAGES[draws.below(len(_STAGES))],
    }  # fmt: skip
    return json.dumps(profile, ensure_ascii=False, separators=(",", ":"))[1:-1]


def company_json(company_id: int, base_count: int, times: tuple[int, int] | None = None) -> str:
    """Company `company_id` as compact JSON (same id, same record); `times` overrides dates."""
    created, updated = times or initial_times(company_id, base_count)
    return (
        f'{{"id":{company_id},{_profile(_mix(company_id) % VARIANTS)},'
        f'"created_at":"{laravel_time(created)}","updated_at":"{laravel_time(updated)}"}}'
    )


def make_company(company_id: int, base_count: int) -> dict[str, Any]:
    """Company `company_id` as a dict."""
    value: dict[str, Any] = json.loads(company_json(company_id, base_count))
    return value


def _pick(ids: Sequence[int], spec: Any, exclude: set[int]) -> list[int]:
    """Resolve a mutation spec (a list of ids, or a count of the lowest live ids)."""
    if isinstance(spec, bool):
        msg = "mutation values must be a list of ids or a count"
        raise TypeError(msg)
    if isinstance(spec, int) and spec >= 0:
        picked: list[int] = []
        for company_id in ids:
            if len(picked) >= spec:
                break
            if company_id not in exclude:
                picked.append(company_id)
        return picked
    if isinstance(spec, list) and all(isinstance(i, int) for i in spec):
        wanted = sorted(set(spec) - exclude)
        return [i for i in wanted if _contains(ids, i)]
    msg = "mutation values must be a list of ids or a count"
    raise TypeError(msg)


def _contains(ids: Sequence[int], company_id: int) -> bool:
    index = bisect.bisect_left(ids, company_id)
    return index < len(ids) and ids[index] == company_id


@dataclass(frozen=True)
class Dataset:
    """An immutable snapshot of the companies: readers keep it while a mutation builds the next."""

    base_count: int
    ids: Sequence[int]  # ascending; a range until the first mutation
    times: Mapping[int, tuple[int, int]] = field(default_factory=dict)  # id -> (created, updated)
    next_id: int = 1
    max_updated_us: int = 0
    version: int = 0

    @classmethod
    def initial(cls, count: int) -> Dataset:
        """Companies 1..count, untouched."""
        return cls(
            base_count=count,
            ids=range(1, count + 1),
            next_id=count + 1,
            max_updated_us=(_START + _SPAN + _MAX_UPDATE_LAG) * 1_000_000,  # an upper bound
        )

    def __len__(self) -> int:
        """Number of live companies."""
        return len(self.ids)

    def json_array(self, ids: Iterable[int]) -> str:
        """The given companies as one JSON array, in order (with mutation timestamps)."""
        base, times = self.base_count, self.times
        return "[" + ",".join([company_json(i, base, times.get(i)) for i in ids]) + "]"

    def records(self, ids: Iterable[int]) -> list[dict[str, Any]]:
        """The given companies as dicts, in order."""
        value: list[dict[str, Any]] = json.loads(self.json_array(ids))
        return value

    def index_after(self, company_id: int) -> int:
        """Position of the first live id greater than `company_id`."""
        return bisect.bisect_right(self.ids, company_id)

    def index_before(self, company_id: int) -> int:
        """Position just past the last live id smaller than `company_id`."""
        return bisect.bisect_left(self.ids, company_id)

    def mutate(
        self, update: Any = None, delete: Any = None, create: Any = None
    ) -> tuple[Dataset, dict[str, list[int]]]:
        """Delete, then update, then create; return the next snapshot and the ids touched."""
        if create is not None and (isinstance(create, bool) or not isinstance(create, int)):
            msg = "create must be a count"
            raise TypeError(msg)
        deleted = _pick(self.ids, delete, set()) if delete is not None else []
        gone = set(deleted)
        updated = _pick(self.ids, update, gone) if update is not None else []
        now_us = max(time.time_ns() // 1000, self.max_updated_us + 1)
        created = list(range(self.next_id, self.next_id + (create or 0)))
        times = dict(self.times)
        for company_id in updated:
            created_us = times.get(company_id, initial_times(company_id, self.base_count))[0]
            times[company_id] = (created_us, now_us)
        for company_id in created:
            times[company_id] = (now_us, now_us)
        for company_id in deleted:
            times.pop(company_id, None)
        ids = array("q", (i for i in self.ids if i not in gone)) if gone else array("q", self.ids)
        ids.extend(created)
        touched = bool(deleted or updated or created)
        nxt = replace(
            self,
            ids=ids if touched else self.ids,
            times=times,
            next_id=self.next_id + len(created),
            max_updated_us=now_us if updated or created else self.max_updated_us,
            version=self.version + int(touched),
        )
        return nxt, {"updated": updated, "deleted": deleted, "created": created}
