"""Settings read from the environment, with safe defaults for one machine.

PORTAL_DATA_DIR holds the SQLite database and every stored file; DATABASE_URL switches to
PostgreSQL; REDIS_URL names the Celery broker. DJANGO_ENV=production turns on HTTPS-only
cookies, HSTS and the redirect to HTTPS behind a proxy (see docs/production.md).
"""

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from inference_worker.broker import transport_options

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


ENVIRONMENT = os.environ.get("DJANGO_ENV", "").strip().lower() or "development"
if ENVIRONMENT not in {"development", "production"}:
    raise ImproperlyConfigured(f"DJANGO_ENV must be 'production' or unset, not {ENVIRONMENT!r}")
PRODUCTION = ENVIRONMENT == "production"
if PRODUCTION and (
    missing := [n for n in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS") if not os.environ.get(n)]
):
    raise ImproperlyConfigured(
        f"DJANGO_ENV=production needs {' and '.join(missing)} in the environment: "
        "DJANGO_SECRET_KEY a random string of at least 50 characters, DJANGO_ALLOWED_HOSTS "
        "the comma-separated host names the portal answers to (see docs/production.md)"
    )

DATA_DIR = Path(os.environ.get("PORTAL_DATA_DIR", BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """An explicit key wins; otherwise one is made once and kept in the data folder."""
    if key := os.environ.get("DJANGO_SECRET_KEY"):
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = _env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]
# Where `manage.py run_portal` (`make run`) serves: http://127.0.0.1:PORTAL_PORT/.
PORTAL_PORT = _env_int("PORTAL_PORT", 8000)
# The web server (`manage.py serve_web`, portal.core.webserver): a client that sends or reads
# nothing for PORTAL_CLIENT_TIMEOUT_S seconds is disconnected; request bodies are received
# whole before one of PORTAL_WEB_THREADS threads runs the request, so a slow client holds a
# connection (at most PORTAL_WEB_CONNECTIONS), never a thread.
PORTAL_CLIENT_TIMEOUT_S = max(1, _env_int("PORTAL_CLIENT_TIMEOUT_S", 60))
PORTAL_WEB_THREADS = max(1, _env_int("PORTAL_WEB_THREADS", 8))
PORTAL_WEB_CONNECTIONS = max(10, _env_int("PORTAL_WEB_CONNECTIONS", 1000))

INSTALLED_APPS = [
    "portal.accounts.admin_config.PortalAdminConfig",  # django.contrib.admin, the portal's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "portal.core",
    "portal.accounts",
    "portal.ingest",
    "portal.predictions",
    "portal.review",
    "portal.validation",
    "portal.reports",
    "portal.pacs",
    "portal.learning",
    "portal.operations",
]

MIDDLEWARE = [
    # /healthz, before the host check and the HTTPS redirect (container health checks).
    "portal.core.health.HealthCheckMiddleware",
    "portal.core.proxies.UntrustedForwardedHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "portal.core.query.RefuseNulCharacters",
    # Before WhiteNoise, so that static files (the viewer's worker scripts) carry the policy too.
    "portal.core.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "portal" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.core.context_processors.demo_model",
                "portal.accounts.context_processors.navigation",
            ],
        },
    },
]

# SQLite in the data folder unless DATABASE_URL says otherwise (PostgreSQL in production).
# WAL and IMMEDIATE transactions let the web server and the worker write side by side.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}", conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so that the Celery worker in the tests sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# dumpdata and loaddata (backups and restores) keep every timestamp's microseconds.
SERIALIZATION_MODULES = {"json": "portal.core.exact_json"}
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]
# Every password check counts failures (portal.core.login_throttle).
AUTHENTICATION_BACKENDS = ["portal.core.authentication.ThrottledModelBackend"]
# Per (address, name) small, per name larger, per address much larger: one person's typos
# lock out that person only, not everyone behind the same NAT (portal.core.login_throttle).
LOGIN_THROTTLE = {
    "MAX_FAILURES_PER_ADDRESS_USER": _env_int("PORTAL_LOGIN_MAX_FAILURES_PER_ADDRESS_USER", 5),
    "MAX_FAILURES": _env_int("PORTAL_LOGIN_MAX_FAILURES", 50),
    "MAX_FAILURES_PER_ADDRESS": _env_int("PORTAL_LOGIN_MAX_FAILURES_PER_ADDRESS", 200),
    "WINDOW_SECONDS": _env_int("PORTAL_LOGIN_WINDOW_SECONDS", 900),
}
# X-Forwarded-For is believed only from these networks (portal.core.proxies); none by default.
PORTAL_TRUSTED_PROXIES = [
    p.strip() for p in os.environ.get("PORTAL_TRUSTED_PROXIES", "").split(",") if p.strip()
]
# Optional cap on the X-Forwarded-For entries read from a trusted proxy (0: no cap).
PORTAL_NUM_PROXIES = _env_int("PORTAL_NUM_PROXIES", 0)
SESSION_COOKIE_AGE = _env_int("PORTAL_SESSION_SECONDS", 8 * 3600)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# The portal is in English only: without the translation machinery every number and link a page
# renders skips a per-call language lookup (the review queue page at 128,000 images: 38 -> 23 ms).
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# PORTAL_FRONTEND_DIST points at another build of the front end (a second checkout's, or a build
# made with `vite build --outDir`), so that two builds can be tested side by side.
FRONTEND_DIST = Path(os.environ.get("PORTAL_FRONTEND_DIST") or BASE_DIR / "frontend" / "dist")
STATICFILES_DIRS = [FRONTEND_DIST] if FRONTEND_DIST.exists() else []

# Uploads stream to disk (never into memory), each part to its own file that is closed when
# the part ends (no descriptor per file: 20,000 files in a request fit a 1,024-descriptor
# host), so that moving them into the upload's staging folder is a rename. Sizes are checked
# while the body streams: a file over the limit is reported as rejected, not stored; a
# request over its limit answers 413. The file limit also holds for the CLI and ZIP entries.
FILE_UPLOAD_HANDLERS = ["portal.ingest.uploadhandler.StagingUploadHandler"]
PORTAL_MAX_FILE_BYTES = _env_int("PORTAL_MAX_FILE_BYTES", 512 * 1024**2)
PORTAL_MAX_REQUEST_BYTES = _env_int("PORTAL_MAX_REQUEST_BYTES", 8 * 1024**3)
# Identified files wait in staging until ingest de-identifies them: keep it out of anything
# GPU workers mount (they see only images/, heatmaps/ and models/). Received parts land in
# its incoming/ folder, on the same file system, so that staging them is a rename.
STAGING_DIR = Path(os.environ.get("PORTAL_STAGING_DIR") or DATA_DIR / "staging").resolve()
FILE_UPLOAD_TEMP_DIR = str(STAGING_DIR / "incoming")
STAGING_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
Path(FILE_UPLOAD_TEMP_DIR).mkdir(mode=0o700, exist_ok=True)
DATA_UPLOAD_MAX_NUMBER_FILES = _env_int("PORTAL_MAX_FILES_PER_REQUEST", 20000)
DATA_UPLOAD_MAX_NUMBER_FIELDS = _env_int("PORTAL_MAX_FIELDS_PER_REQUEST", 50000)
# This portal's Ed25519 key, which signs its exports (portal.core.signing; made on first use,
# owner-only). Unset: `signing_key.pem` in the data folder, wherever that is at the time.
SIGNING_KEY_FILE = os.environ.get("PORTAL_SIGNING_KEY_FILE") or None

# Ingest limits (see docs/ingest.md, "What is accepted").
INGEST = {
    "MIN_DIMENSION": _env_int("PORTAL_MIN_DIMENSION", 64),
    "MAX_DIMENSION": _env_int("PORTAL_MAX_DIMENSION", 8192),
    "MAX_ASPECT_RATIO": float(os.environ.get("PORTAL_MAX_ASPECT_RATIO", "4")),
    "ZIP_MAX_UNCOMPRESSED_BYTES": _env_int("PORTAL_ZIP_MAX_UNCOMPRESSED_BYTES", 64 * 1024**3),
    "ZIP_MAX_RATIO": float(os.environ.get("PORTAL_ZIP_MAX_RATIO", "200")),
    "ZIP_MAX_ENTRIES": _env_int("PORTAL_ZIP_MAX_ENTRIES", 200_000),
    # Processes that read and de-identify files side by side; small uploads stay in-process.
    "WORKERS": _env_int("PORTAL_INGEST_WORKERS", os.cpu_count() or 1),
    "PARALLEL_MIN_FILES": _env_int("PORTAL_INGEST_PARALLEL_MIN_FILES", 32),
    # An upload left open (no submit) this long after its last batch expires with its files.
    "UPLOAD_EXPIRY_HOURS": float(os.environ.get("PORTAL_UPLOAD_EXPIRY_HOURS", "24")),
}

# The DICOM receiver (`manage.py dicom_listen`, `portal.pacs`): its ports, how many
# associations at once, how long a silent peer is waited for, and DICOM over TLS (on when a
# certificate is given; peers' certificates are required and checked when a CA is given).
DICOM = {
    "HOST": os.environ.get("PORTAL_DICOM_HOST", "127.0.0.1"),
    "PORT": _env_int("PORTAL_DICOM_PORT", 11112),
    "TLS_PORT": _env_int("PORTAL_DICOM_TLS_PORT", 2762),
    "MAX_ASSOCIATIONS": _env_int("PORTAL_DICOM_MAX_ASSOCIATIONS", 10),
    "TIMEOUT_S": float(os.environ.get("PORTAL_DICOM_TIMEOUT_S", "60")),
    # 0: each association is one upload; else a sender's associations within this many
    # seconds of each other fill one upload (modalities that send an image per association).
    "UPLOAD_WINDOW_S": float(os.environ.get("PORTAL_DICOM_UPLOAD_WINDOW_S", "0")),
    "TLS_CERT": os.environ.get("PORTAL_DICOM_TLS_CERT", ""),
    "TLS_KEY": os.environ.get("PORTAL_DICOM_TLS_KEY", ""),
    "TLS_CA": os.environ.get("PORTAL_DICOM_TLS_CA", ""),
}

# Login failures and API throttles are counted in this cache; every web process must share it
# (Redis), or each would keep its own count: Redis whenever a REDIS_URL is given (`make run`
# passes its own Redis to the web server) or in production; per-process memory only for a lone
# process without one (`manage.py runserver`, tests).
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def _next_database(url: str) -> str:
    """The broker's Redis with the next database number: clearing the cache (FLUSHDB) must
    never drop queued tasks."""
    parts = urlsplit(url)
    number = parts.path.strip("/")
    following = (int(number) + 1) % 16 if number.isdigit() else 1
    return urlunsplit(parts._replace(path=f"/{following}"))


_CACHE_URL = os.environ.get(
    "PORTAL_CACHE_URL",
    _next_database(REDIS_URL) if PRODUCTION or "REDIS_URL" in os.environ else "",
)
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _CACHE_URL}
        if _CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
CACHES["default"]["KEY_PREFIX"] = "portal"


def _throttle_rates() -> dict[str, str | None]:
    """`PORTAL_THROTTLE_ANON` / `_USER`: DRF rates (`100/minute`); `off` for none."""
    rates = {
        "anon": os.environ.get("PORTAL_THROTTLE_ANON", "100/minute"),
        "user": os.environ.get("PORTAL_THROTTLE_USER", "3000/minute"),
    }
    return {scope: None if rate.lower() == "off" else rate for scope, rate in rates.items()}


REST_FRAMEWORK = {
    # Basic first: its header makes failed authentication 401 rather than 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.core.authentication.ThrottledBasicAuthentication",
        "portal.core.authentication.ThrottledTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Counted by portal.core.proxies.client_address (PORTAL_TRUSTED_PROXIES), not NUM_PROXIES.
    "DEFAULT_THROTTLE_CLASSES": [
        "portal.core.throttles.AnonThrottle",
        "portal.core.throttles.UserThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": _throttle_rates(),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CXR-Age Portal API",
    "DESCRIPTION": "Upload pediatric chest X-rays, follow their ingest and predictions, and "
    "review the outliers. Every call sees only the caller's sites.",
    "VERSION": "0.1.0",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI and ReDoc from the packaged copy (drf-spectacular-sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.core.schema.document_common_errors",
    ],
    "ENUM_NAME_OVERRIDES": {
        "ReviewStatusEnum": "portal.ingest.models.ReviewStatus",
        "UploadStatusEnum": "portal.ingest.models.Upload.Status",
        # Prediction jobs and exports share these states.
        "TaskStateEnum": "portal.predictions.models.PredictionJob.State",
        "ReportStateEnum": "portal.reports.models.Report.State",
    },
}

# In production the portal sits behind a TLS-terminating proxy that sets X-Forwarded-Proto
# (and strips any the client sent); development stays on plain http.
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = _env_bool("PORTAL_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = _env_int("PORTAL_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("PORTAL_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = _env_bool("PORTAL_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# In development too, so that the tests run under it. Inline styles stay allowed: the report
# template and Swagger UI use them; no page has an inline script.
CONTENT_SECURITY_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'", "'wasm-unsafe-eval'"],
    "worker-src": ["'self'", "blob:"],
    "img-src": ["'self'", "data:", "blob:"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}

# Celery: one number sets the hard limit; soft limit and broker visibility follow from it.
# The inference workers read the same TASK_HARD_LIMIT_S: they share the broker, and a consumer
# restores unacknowledged messages after its own visibility timeout.
TASK_HARD_LIMIT_S = _env_int("TASK_HARD_LIMIT_S", 6 * 3600)
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = TASK_HARD_LIMIT_S
CELERY_TASK_SOFT_TIME_LIMIT = int(TASK_HARD_LIMIT_S * 0.9)
# A send is a nudge (docs/reliability.md, "When the broker is down"): with the broker down
# it fails within about a second (connection refused) or a few (no answer), and the request
# answers as usual.
CELERY_BROKER_CONNECTION_TIMEOUT = 2.0
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **transport_options(TASK_HARD_LIMIT_S),
    "socket_connect_timeout": CELERY_BROKER_CONNECTION_TIMEOUT,
}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
PREDICT_BATCH_SIZE = _env_int("PORTAL_PREDICT_BATCH_SIZE", 16)
# Prediction jobs (docs/predictions.md): batches sent per dispatch task run; a job with no
# progress for this many minutes while nothing holds its messages is re-dispatched, and failed
# after this many dispatch rounds.
PREDICT_DISPATCH_CHUNK = _env_int("PORTAL_DISPATCH_CHUNK_BATCHES", 200)
JOB_STALL_MINUTES = _env_int("PORTAL_JOB_STALL_MINUTES", 10)
JOB_MAX_DISPATCHES = max(1, _env_int("PORTAL_JOB_MAX_DISPATCHES", 3))
# Uploads, exports and reports still waiting for a worker this long after their last send are
# sent again by the sweeps below (docs/reliability.md, "When the broker is down").
RESEND_AFTER_S = _env_int("PORTAL_RESEND_AFTER_SECONDS", 300)
# Periodic tasks, run by `celery -A portal beat` (started by `make run` and the compose file).
CELERY_BEAT_SCHEDULE = {
    "predictions-sweep-stalled-jobs": {"task": "portal.predictions.sweep", "schedule": 60.0},
    "ingest-resend-submitted-uploads": {"task": "portal.ingest.resend", "schedule": 60.0},
    "validation-resend-queued-exports": {"task": "portal.validation.resend", "schedule": 60.0},
    "reports-resend-waiting-reports": {"task": "portal.reports.resend", "schedule": 60.0},
    "learning-resend-queued-training": {"task": "portal.learning.resend", "schedule": 60.0},
    # Open uploads past PORTAL_UPLOAD_EXPIRY_HOURS expire with their staged files.
    "ingest-expire-open-uploads": {"task": "portal.ingest.upload_expire_stale", "schedule": 900.0},
}

# Review (see docs/review.md): which cases enter the queue, how long a lease holds a case,
# and how far apart two corrected ages may be before a double-read case is disputed.
# The outlier rule `portal.predictions.services.outlier_score` applies: "expected_error" (the
# residual over the card's expected error) or "interval" (the residual over the calibrated
# interval's reach on its side: over 1 = recorded age outside the interval; uncalibrated
# versions keep the expected-error rule). The queue threshold follows the rule.
OUTLIER_RULES = ("expected_error", "interval")
OUTLIER_RULE = os.environ.get("PORTAL_OUTLIER_RULE", "expected_error").strip().lower()
if OUTLIER_RULE not in OUTLIER_RULES:
    raise ImproperlyConfigured(f"PORTAL_OUTLIER_RULE must be one of {', '.join(OUTLIER_RULES)}")
REVIEW = {
    "QUEUE_THRESHOLD": float(
        os.environ.get("PORTAL_QUEUE_THRESHOLD", "1.0" if OUTLIER_RULE == "interval" else "2.0")
    ),
    "LEASE_SECONDS": _env_int("PORTAL_LEASE_SECONDS", 300),
    "DOUBLE_READ_TOLERANCE_MONTHS": float(
        os.environ.get("PORTAL_DOUBLE_READ_TOLERANCE_MONTHS", "3")
    ),
}

# Logs never carry PHI: ingest logs upload ids and file positions (#3), never names or tag
# values.
# pydicom's warnings and log messages (they quote the file's path and tag values) reach no log
# and no stderr in any process that loads these settings (web, manage.py, Celery worker and
# beat): `quiet_pydicom` configures the "pydicom" logger and Python's warnings after LOGGING.
LOGGING_CONFIG = "inference_worker.quiet_pydicom.configure_logging"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("PORTAL_LOG_LEVEL", "INFO")},
    # WeasyPrint (the report PDF) logs every layout step and fontTools every glyph at INFO.
    "loggers": {
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}
