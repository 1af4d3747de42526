"""The shared connector base, exercised through a minimal example platform ("shop").

The shop serves products as `GET /products?offset=&limit=` pages with a `next_offset` (null after the last
page) and authenticates with an `X-Api-Key` header. It is also the smallest complete example of a
connector and simulator built on the base.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any, ClassVar

import polars as pl
import pytest

from driftwatch import connectors
from driftwatch.connectors._checkpoint import Staging
from driftwatch.connectors._http import HttpClient, HttpSettings, RateLimiter, retry_after_seconds
from driftwatch.connectors.base import BaseConnector
from driftwatch.errors import UserError
from driftwatch.normalize import coerce
from driftwatch.simulators import SIMULATORS
from driftwatch.simulators._base import Request, Response, Simulator
from tests.slow_answers import CLIENT_TIMEOUT, LATE_ANSWER

SHOP_KEY = "shop-secret-key-0123456789"


class ShopSimulator(Simulator):
    name = "shop"

    def authenticate(self, request: Request) -> Response | None:
        if request.headers.get("x-api-key") != SHOP_KEY:
            return Response(401, {"message": "invalid api key"})
        return None

    def bucket(self, request: Request) -> str | None:
        return "list"

    def handle(self, request: Request) -> Response:
        products = self.dataset["products"].sort("sku")
        offset, limit = int(request.query.get("offset", 0)), int(request.query.get("limit", 10))
        following = offset + limit if offset + limit < products.height else None
        response = Response(200, {"items": products.slice(offset, limit).to_dicts(), "next_offset": following})
        self.page_served()
        return response

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {"base_url": self.url, "api_key_env": "SHOP_API_KEY", "page_size": 10, **overrides}

    @property
    def env(self) -> dict[str, str]:
        return {"SHOP_API_KEY": SHOP_KEY}


class ShopConnector(BaseConnector):
    name = "shop"
    entities = ("products",)
    incremental: ClassVar[dict[str, str]] = {"products": "the shop's `since` parameter"}

    def __init__(self, settings: dict[str, Any], **kwargs: Any):
        super().__init__(settings, **kwargs)
        key = self.credential("api_key_env")
        windows = self.setting("rate_limit", ())
        self.http = HttpClient(
            self.name,
            self.setting("base_url"),
            settings=self.http_settings,
            headers={"X-Api-Key": key},
            secrets=[key],
            limiters={"list": RateLimiter(windows, margin=0.01)} if windows else {},
            error_text=lambda response: response.json()["message"],
        )
        self.fail_after_pages: int | None = None

    def pull_entity(self, entity: str, *, since: datetime | None) -> pl.DataFrame:
        limit = self.setting("page_size")
        bucket = "list" if self.setting("rate_limit", ()) else None

        def fetch(cursor: dict[str, Any] | None) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
            offset = cursor["offset"] if cursor else 0
            if self.fail_after_pages is not None and offset >= self.fail_after_pages * limit:
                raise KeyboardInterrupt  # the operator pressed Ctrl-C mid-pull
            body = self.http.request_json("GET", "/products", params={"offset": offset, "limit": limit}, bucket=bucket)
            following = body["next_offset"]
            return body["items"], None if following is None else {"offset": following}

        return self.paginate(entity, fetch, params={"since": since})


def make_products(count: int) -> pl.DataFrame:
    rows = [
        {
            "sku": f"{i:05d}-010-M",
            "name": f"Shirt {i}",
            "price": Decimal("19.90") + i,
            "currency": "EUR",
            "status": "active" if i % 3 else "discontinued",
            "updated_at": datetime(2026, 11, 1, 12, i % 60, tzinfo=UTC),
        }
        for i in range(count)
    ]
    return coerce(pl.DataFrame(rows), "products").good


@pytest.fixture
def shop():
    with ShopSimulator({"products": make_products(35)}) as sim:
        yield sim


@pytest.fixture
def connect(shop, fast_http, tmp_path):
    """connect(**settings): a shop connector on the simulator, checkpointing under tmp_path."""

    def make(**overrides: Any) -> ShopConnector:
        return ShopConnector(shop.settings(**{**fast_http, **overrides}), env=shop.env, checkpoint_dir=tmp_path)

    return make


def test_pull_returns_every_record_the_platform_holds(shop, connect, canonical):
    pulled = connect().pull()
    assert pulled.source == "shop"
    assert pulled.captured_at.tzinfo is not None
    assert canonical(pulled.frames["products"], "products").equals(canonical(shop.dataset["products"], "products"))
    assert shop.count(path="/products") == 4


@pytest.mark.parametrize("retry_after", [0.01, None], ids=["retry-after", "no-retry-after"])
def test_429_storm_is_retried(shop, connect, canonical, retry_after):
    shop.faults.set(rate_limit_storm=3, storm_retry_after=retry_after)
    frame = connect().pull().frames["products"]
    assert canonical(frame, "products").equals(canonical(shop.dataset["products"], "products"))
    assert shop.count(status=429) == 3


@pytest.mark.parametrize(
    "fault", [{"server_errors": 2}, {"timeouts": 1, "timeout_delay": LATE_ANSWER}, {"truncated": 2}], ids=str
)
def test_transient_faults_are_retried(shop, connect, canonical, fault):
    shop.faults.set(**fault)
    frame = connect(timeout=CLIENT_TIMEOUT).pull().frames["products"]
    assert canonical(frame, "products").equals(canonical(shop.dataset["products"], "products"))


def test_persistent_server_errors_give_a_user_error(shop, connect):
    shop.faults.set(server_errors=100)
    with pytest.raises(UserError, match=r"gave up after 5 attempts.*503"):
        connect().pull()
    assert shop.count(status=503) == 5


def test_retry_after_is_honoured_when_present(shop, connect):
    shop.faults.set(rate_limit_storm=1, storm_retry_after=0.3)
    connector = connect(backoff_initial=0.0, backoff_max=0.0)
    started = datetime.now(UTC)
    connector.pull()
    assert datetime.now(UTC) - started >= timedelta(seconds=0.3)


def test_client_rate_limiter_keeps_within_the_platform_limit(fast_http, tmp_path, canonical):
    windows = [(3, 0.1), (8, 0.4)]
    with ShopSimulator({"products": make_products(100)}, rate_limits={"list": windows}) as sim:
        connector = ShopConnector(sim.settings(**fast_http, rate_limit=windows), env=sim.env, checkpoint_dir=tmp_path)
        frame = connector.pull().frames["products"]
        assert sim.count(status=429) == 0
        assert sim.count(status=200) == 10
    assert canonical(frame, "products").height == 100


def test_simulator_enforces_its_rate_limit_with_retry_after(fast_http, tmp_path):
    with ShopSimulator(
        {"products": make_products(100)}, rate_limits={"list": [(3, 1.0)]}, retry_after="fractional"
    ) as sim:
        ShopConnector(sim.settings(**fast_http), env=sim.env, checkpoint_dir=tmp_path).pull()
        assert sim.count(status=429) >= 1
        assert sim.count(status=200) == 10


def test_interrupted_pull_resumes_without_losing_or_duplicating(shop, connect, canonical, tmp_path):
    connector = connect()
    connector.fail_after_pages = 2
    with pytest.raises(KeyboardInterrupt):
        connector.pull()
    assert shop.count(path="/products") == 2
    assert list((tmp_path / "shop" / "products").glob("page-*.parquet"))

    frame = connect().pull().frames["products"]
    assert shop.count(path="/products") == 4  # two pages staged, two fetched on resume
    assert canonical(frame, "products").equals(canonical(shop.dataset["products"], "products"))
    assert not (tmp_path / "shop" / "products").exists()


def test_a_pull_with_other_parameters_does_not_resume(shop, connect):
    connector = connect()
    connector.fail_after_pages = 2
    with pytest.raises(KeyboardInterrupt):
        connector.pull()
    connect().pull(since=datetime(2026, 1, 1, tzinfo=UTC))
    assert shop.count(path="/products") == 2 + 4


def test_records_moving_between_pages_are_kept_once(shop, connect, canonical):
    def insert_before_cursor(sim: Simulator) -> None:
        # A record sorted before the cursor pushes one already served onto the next page.
        extra = make_products(1).with_columns(sku=pl.lit("00000-000-A"), name=pl.lit("Inserted"))
        sim.dataset["products"] = pl.concat([sim.dataset["products"], extra])

    shop.faults.set(between_pages=(1, insert_before_cursor))
    frame = connect().pull().frames["products"]
    pulled = canonical(frame, "products")
    assert pulled["sku"].is_duplicated().sum() == 0
    assert "00000-000-A" not in pulled["sku"].to_list()  # inserted behind the cursor: the next pull sees it
    assert pulled.height == 35


def test_missing_credential_names_the_variable(shop, fast_http):
    with pytest.raises(UserError, match="SHOP_API_KEY"):
        ShopConnector(shop.settings(**fast_http), env={})


def test_bad_credential_is_a_clear_user_error_without_the_secret(shop, fast_http, assert_no_secret):
    wrong = "wrong-key-that-must-not-leak"
    connector = ShopConnector(shop.settings(**fast_http), env={"SHOP_API_KEY": wrong})
    with pytest.raises(UserError, match="401: invalid api key") as raised:
        connector.pull()
    assert_no_secret(wrong, str(raised.value))


def test_secrets_never_reach_logs_or_errors(shop, fast_http, assert_no_secret, caplog):
    with HttpClient(
        "shop",
        shop.url,
        settings=HttpSettings.from_settings(fast_http),
        headers={"X-Api-Key": SHOP_KEY},
        secrets=[SHOP_KEY],
        secret_params=["token"],
    ) as client:
        shop.faults.set(server_errors=100)
        with pytest.raises(UserError) as raised:
            client.request("GET", "/products", params={"token": SHOP_KEY, "offset": 0})
    assert "offset=0" in str(raised.value)
    assert any("503" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)  # httpx logged, redacted
    assert_no_secret(SHOP_KEY, str(raised.value))


def test_a_write_sent_once_is_never_repeated_after_it_may_have_landed(shop, fast_http):
    settings = HttpSettings.from_settings({**fast_http, "timeout": CLIENT_TIMEOUT})
    with HttpClient("shop", shop.url, settings=settings, headers={"X-Api-Key": SHOP_KEY}) as client:
        shop.faults.set(server_errors=1)
        with pytest.raises(UserError, match="503; not sent again"):
            client.request("POST", "/products", once=True)
        shop.faults.set(timeouts=1, timeout_delay=LATE_ANSWER)
        with pytest.raises(UserError, match=r"timed out.*not sent again"):
            client.request("POST", "/products", once=True)
        shop.faults.set(rate_limit_storm=2, storm_retry_after=0.01)
        assert client.request("POST", "/products", once=True).status_code == 200  # a 429 was never applied
        shop.faults.set(server_errors=1)
        assert client.request("POST", "/products").status_code == 200  # an idempotent write is retried
    assert [r.status for r in shop.requests if r.method == "POST"] == [503, 200, 429, 429, 200, 503, 200]


def test_progress_shows_records_and_pages_only_when_asked(shop, fast_http, tmp_path, capsys):
    ShopConnector(shop.settings(**fast_http), env=shop.env, progress=True).pull()
    shown = capsys.readouterr().err
    assert "shop products" in shown and "35 records" in shown and "4 pages" in shown
    ShopConnector(shop.settings(**fast_http), env=shop.env, progress=False).pull()
    assert capsys.readouterr().err == ""


def test_retry_after_accepts_seconds_and_http_dates():
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds("0.25") == 0.25
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 55 <= retry_after_seconds(in_a_minute) <= 60


def test_rate_limiter_never_exceeds_a_window():
    limiter = RateLimiter([(5, 0.2)], margin=0.0)
    sent = []
    for _ in range(12):
        limiter.acquire()
        sent.append(time.monotonic())
    for i in range(len(sent) - 5):
        assert sent[i + 5] - sent[i] >= 0.2


def test_rate_limiter_counts_a_request_from_its_answer_so_a_slow_one_never_crowds_the_next():
    """A platform counts a request when it arrives, which on a busy machine can be long after we started
    sending it: the next turn waits a full period after the last answer, not after the last start."""
    limiter = RateLimiter([(1, 0.2)], margin=0.0)
    with limiter.turn():
        time.sleep(0.3)  # the request is held up for longer than the whole period
    answered = time.monotonic()
    with limiter.turn():
        started = time.monotonic()
    assert started - answered >= 0.2


class SlowToArrive(ShopSimulator):
    """Every other request reaches the platform 0.2 s after it was sent (a busy machine, a slow route), and
    the platform counts it only then; the others arrive at once."""

    arrivals = 0

    def authenticate(self, request: Request) -> Response | None:
        self.arrivals += 1
        if self.arrivals % 2:
            time.sleep(0.2)
        return super().authenticate(request)


def test_a_client_keeps_to_the_platforms_window_when_some_requests_arrive_late(fast_http):
    """A request that arrives late is counted late: the next one, sent at once, must not land in its window.
    Counting each request from its answer keeps them apart whatever the delays."""
    with SlowToArrive({"products": make_products(3)}, rate_limits={"list": [(1, 0.15)]}) as platform:
        settings = HttpSettings.from_settings({**fast_http, "max_attempts": 1})
        limiters = {"list": RateLimiter([(1, 0.15)], margin=0.01)}
        with HttpClient(
            "shop", platform.url, settings=settings, headers={"X-Api-Key": SHOP_KEY}, limiters=limiters
        ) as client:
            for _ in range(6):
                client.request("GET", "/products", bucket="list")
    assert platform.count(status=429) == 0 and platform.count(status=200) == 6


def test_staging_without_a_directory_keeps_pages_in_memory():
    staging = Staging(None, "shop", "products", ("sku",), {"since": None})
    staging.save(pl.DataFrame({"sku": ["a", "b"], "name": ["1", "2"]}), {"offset": 2})
    staging.save(pl.DataFrame({"sku": ["b", "c"], "name": ["2 again", "3"]}), None)
    assert staging.done
    assert staging.frame().to_dicts() == [
        {"sku": "a", "name": "1"},
        {"sku": "b", "name": "2 again"},
        {"sku": "c", "name": "3"},
    ]


def test_staging_batches_pages_and_resumes_after_the_last_batch(tmp_path):
    def stage(flush_rows: int) -> Staging:
        return Staging(tmp_path, "shop", "products", ("sku",), {"since": None}, flush_rows=flush_rows)

    staging = stage(flush_rows=4)
    for n in range(3):
        staging.save(pl.DataFrame({"sku": [f"{n}a", f"{n}b"]}), {"offset": 2 * (n + 1)})
    # Two pages reached four rows and went to disk together; the third is only in memory.
    assert len(list((tmp_path / "shop" / "products").glob("page-*.parquet"))) == 1
    resumed = stage(flush_rows=4)
    assert resumed.cursor == {"offset": 4}
    assert sorted(resumed.frame()["sku"]) == ["0a", "0b", "1a", "1b"]
    resumed.save(pl.DataFrame({"sku": ["2a", "2b"]}), None)  # the last page always goes to disk
    assert stage(flush_rows=4).done


def test_registry_rejects_unknown_sources():
    with pytest.raises(UserError, match="unknown platform 'nowhere'"):
        connectors.get("nowhere")
    assert "klaviyo" in SIMULATORS


def test_rate_limiter_shared_by_threads_waits_for_the_answer_a_turn_depends_on():
    """Requests sent at once from several threads: a turn whose window holds a request still unanswered
    waits for that answer (the platform may count it as late as then), then a full period."""
    limiter = RateLimiter([(1, 0.2)], margin=0.0)
    answered: list[float] = []

    def slow() -> None:
        with limiter.turn():
            time.sleep(0.3)
            answered.append(time.monotonic())  # the answer is in: no later than the turn counts it

    first = threading.Thread(target=slow)
    first.start()
    time.sleep(0.05)  # the first request is on its way
    with limiter.turn():
        started = time.monotonic()
    first.join()
    assert started - answered[0] >= 0.2
