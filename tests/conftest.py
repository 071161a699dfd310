"""Shared fixtures: an isolated data folder per test, a real Redis, real Celery workers."""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import connection, connections, transaction
from django.db.backends.base.operations import BaseDatabaseOperations
from django.test import override_settings

from portal.celery import app as celery_app
from portal.core.processes import free_port, local_redis
from portal.ingest.services import site_create

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path: Path) -> Path:
    """Every test stores its files in its own folder, staging included (where the tests'
    Celery workers, started with PORTAL_DATA_DIR and no PORTAL_STAGING_DIR, look for it).
    Only the folder itself is made, as settings makes PORTAL_DATA_DIR: every sub-folder is
    left to the code that writes into it, so that a fresh data folder is what is tested."""
    path = tmp_path / "data"
    path.mkdir()
    settings.DATA_DIR = path
    settings.STAGING_DIR = path / "staging"
    return path


@pytest.fixture
def staging_dir(settings, data_dir: Path) -> Path:
    return settings.STAGING_DIR


@pytest.fixture(autouse=True)
def fast_passwords(settings) -> None:
    """The tests make many users; the production hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",  # what manage.py subprocesses use
    ]


@pytest.fixture(scope="session", autouse=True)
def memory_cache() -> Iterator[None]:
    """This process counts login failures and API rates in its own memory, whatever REDIS_URL
    the shell has (settings would pick it, and `cache.clear()` flushes the Redis it names);
    the servers the tests start count in the tests' own Redis (REDIS_URL, below)."""
    locmem = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "KEY_PREFIX": "portal"}
    with override_settings(CACHES={"default": locmem}):
        yield


@pytest.fixture(autouse=True)
def empty_cache(memory_cache) -> Iterator[None]:
    """Login failures and API throttles are counted in the cache: none carry over."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="session", autouse=True)
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server of our own on a free port, for the whole session; everything the
    tests send goes there, never to a Redis the machine happens to run."""
    with local_redis(tmp_path_factory.mktemp("redis")) as url:
        celery_app.conf.broker_url = url
        os.environ["REDIS_URL"] = url  # for the manage.py subprocesses too
        yield url


def _suspend_triggers(ops: BaseDatabaseOperations, cursor) -> list[str]:
    """Switch off every trigger of the schema for the rest of this transaction; returns the
    statements that switch them on again."""
    if ops.connection.vendor == "postgresql":
        cursor.execute(
            "SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace"
        )
        tables = [ops.quote_name(name) for (name,) in cursor.fetchall()]
        for table in tables:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        return [f"ALTER TABLE {table} ENABLE TRIGGER USER" for table in tables]
    cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
    triggers = cursor.fetchall()
    for name, _ in triggers:
        cursor.execute(f"DROP TRIGGER {ops.quote_name(name)}")
    return [sql for _, sql in triggers]


@pytest.fixture(scope="session", autouse=True)
def flush_past_append_only_triggers() -> Iterator[None]:
    """Transactional tests end with Django's flush (TRUNCATE on PostgreSQL, DELETE on SQLite),
    which the append-only triggers refuse (portal.core.models.append_only_triggers). Only here,
    in the test process, the flush switches the triggers off and on again around itself, in its
    own transaction (no other connection ever sees them off), as the tables' owner: the one who
    may drop the triggers anyway. Production has no such switch: no setting or session
    variable, so neither the portal's code nor an SQL client without ownership gets past them."""
    original = BaseDatabaseOperations.execute_sql_flush

    def execute_sql_flush(self: BaseDatabaseOperations, sql_list: list[str]) -> None:
        with transaction.atomic(using=self.connection.alias), self.connection.cursor() as cursor:
            switch_on = _suspend_triggers(self, cursor)
            original(self, sql_list)
            for sql in switch_on:
                cursor.execute(sql)

    BaseDatabaseOperations.execute_sql_flush = execute_sql_flush
    yield
    BaseDatabaseOperations.execute_sql_flush = original


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    """A real `celery worker` process against the test database and the test Redis."""

    def __init__(
        self,
        *,
        redis_url: str,
        data_dir: Path,
        queues: str,
        name: str,
        pool: str = "prefork",
        app: str = "portal",
        env: dict | None = None,
    ) -> None:
        # The worker ingests with its process pool even for the tests' small uploads.
        env = {
            **os.environ,
            "PORTAL_INGEST_WORKERS": "2",
            "PORTAL_INGEST_PARALLEL_MIN_FILES": "1",
            "REDIS_URL": redis_url,
            "PORTAL_DATA_DIR": str(data_dir),
            "DATABASE_URL": _database_url(),
            "PYTHONUNBUFFERED": "1",
            "INFERENCE_DATA_DIR": str(data_dir),
            "INFERENCE_THREADS": "1",
            **(env or {}),
        }
        self.log = data_dir / f"worker-{name}.log"
        self.starts_before = self.log.read_text().count("ready.") if self.log.exists() else 0
        celery = str(Path(sys.executable).parent / "celery")
        self.proc = subprocess.Popen(
            [
                celery,
                "-A",
                app,
                "worker",
                "-Q",
                queues,
                "-n",
                f"{name}@%h",
                "--concurrency",
                "1",
                "--pool",
                pool,
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited:\n{self.log.read_text()}")
            if self.log.read_text(errors="replace").count("ready.") > self.starts_before:
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once, as a crash would."""
        children = psutil.Process(self.proc.pid).children(recursive=True)
        for proc in [self.proc, *children]:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=20)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def default_worker(transactional_db, redis_url: str, data_dir: Path) -> Iterator[Worker]:
    worker = Worker(
        redis_url=redis_url, data_dir=data_dir, queues="default", name="default", pool="threads"
    )
    yield worker
    worker.stop()


@pytest.fixture
def start_worker(transactional_db, redis_url: str, data_dir: Path) -> Iterator:
    """Start real workers by name: `start_worker("inference", app="inference_worker", ...)`."""
    started: list[Worker] = []

    def start(queues: str, name: str, **kwargs) -> Worker:
        worker = Worker(redis_url=redis_url, data_dir=data_dir, queues=queues, name=name, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def at_once(*calls: Callable[[], object], timeout_s: float = 60) -> list:
    """Run each call in its own thread, with its own database connection, all released at the
    same moment by a barrier; their results in order (the first error is raised). Needs
    committed data: use `transactional_db`."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int, call: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=timeout_s)
            results[i] = call()
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)
        finally:
            connections.close_all()  # this thread's own connections

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout_s)
    assert not any(t.is_alive() for t in threads), "a call did not finish"
    if errors:
        raise errors[0]
    return results


def run_portal(port: int, env: dict) -> subprocess.Popen:
    """`manage.py run_portal` (no demo model) in a real subprocess, its output piped; its DICOM
    receiver on a free port unless `env` names one."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_portal", "--port", str(port), "--skip-demo-model"],
        cwd=ROOT,
        env={"PORTAL_DICOM_PORT": str(free_port()), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_for(predicate, *, timeout_s: float = 60, interval_s: float = 0.2, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what or predicate}")


@pytest.fixture
def site(db):
    return site_create(slug="north", name="North Children's Hospital")


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("lead", password="lead-password-123")


def pytest_report_header(config) -> str:
    return f"database: {django_settings.DATABASES['default']['ENGINE']}"


def manage(
    *args: str, data_dir: Path, database_url: str | None = None, **kwargs
) -> subprocess.CompletedProcess:
    """Run `manage.py` in a real subprocess against the test database (or `database_url`)."""
    env = dict(
        os.environ, PORTAL_DATA_DIR=str(data_dir), DATABASE_URL=database_url or _database_url()
    )
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )
