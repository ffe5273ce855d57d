"""cophub settings, read from the environment.

Everything a deployment changes comes from an environment variable; the
defaults are the embedded set-up (SQLite in WAL mode, a local data folder,
the database task worker) so that one command runs a school's hub.
See docs/configuration.md for the full list.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


# --- Data folder: database, vault, keys, cache -----------------------------

DATA_DIR = Path(env("COPHUB_DATA_DIR", str(Path.cwd() / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("COPHUB_DEBUG", False)


def _secret_key() -> str:
    """The Django secret key: from the environment, else a file made once."""
    from_env = env("COPHUB_SECRET_KEY")
    if from_env:
        return from_env
    path = DATA_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = [h.strip() for h in env("COPHUB_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env("COPHUB_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "cophub.core.admin_apps.HubAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_tasks",
    "django_tasks_db",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "cophub.core",
    "cophub.orgs",
    "cophub.audit",
    "cophub.evidence",
    "cophub.intake",
    "cophub.cases",
    "cophub.providers",
    "cophub.federation",
    "cophub.hashbanks",
    "cophub.detection",
    "cophub.triage",
    "cophub.alerts",
    "cophub.referrals",
    "cophub.netfilter",
    "ninja",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "cophub.providers.middleware.ApiProblemMiddleware",
    "cophub.core.middleware.RequestSizeLimitMiddleware",
    "cophub.evidence.uploads.DiscardUnclaimedUploadsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "cophub.core.middleware.CookieLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "cophub.core.middleware.SecurityHeadersMiddleware",
    "django_ratelimit.middleware.RatelimitMiddleware",
]

ROOT_URLCONF = "cophub.urls"
WSGI_APPLICATION = "cophub.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "cophub.core.context_processors.hub",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------

DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{DATA_DIR / 'cophub.sqlite3'}"),
        conn_max_age=env_int("COPHUB_DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env("COPHUB_DB_SERVER_SIDE_BINDING", "1") == "1":
    # Parameters bound by the server, and statements repeated on a kept
    # connection prepared once (psycopg does it after a few runs): about a
    # fifth less CPU per provider report (docs/performance.md). Set it to 0
    # behind a pooler in transaction mode (PgBouncer), where prepared
    # statements do not survive from one transaction to the next.
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE transactions take
    # the write lock up front so that concurrent writers queue on the busy
    # timeout instead of failing with "database is locked" half-way.
    # Connections are kept (CONN_MAX_AGE, as on PostgreSQL): opening one
    # costs four PRAGMAs, a fifth of a small request's time.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": (
            "PRAGMA journal_mode=WAL;"
            "PRAGMA synchronous=NORMAL;"
            "PRAGMA foreign_keys=ON;"
            "PRAGMA busy_timeout=30000;"
        ),
    }
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-cophub.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Background tasks ---------------------------------------------------------

TASKS = {
    "default": {
        "BACKEND": env("COPHUB_TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default"],
    }
}
# A worker that has not written its heartbeat for this long is taken as dead:
# /healthz reports it and its claimed tasks are put back in the queue.
COPHUB_WORKER_STALE_AFTER = timedelta(seconds=env_int("COPHUB_WORKER_STALE_SECONDS", 30))
# Every task worker runs these now and then (each is safe to run twice and
# from several workers at once): removal of what has expired.
COPHUB_HOUSEKEEPING = [
    "cophub.providers.services.expire_drafts",
    "cophub.providers.idempotency.forget_old",
    "cophub.detection.indexes.save_snapshots",
]
# Run by each worker before it claims its first task, and when it stops.
COPHUB_WORKER_STARTUP = ["cophub.detection.indexes.warm"]
COPHUB_WORKER_SHUTDOWN = ["cophub.detection.indexes.save_snapshots"]
COPHUB_HOUSEKEEPING_EVERY = timedelta(seconds=env_int("COPHUB_HOUSEKEEPING_SECONDS", 600))
# Jobs with deadlines (SLA warnings, takedown re-checks, referral recovery)
# run every COPHUB_SCHEDULE_EVERY; each is safe to run from several workers at once.
COPHUB_SCHEDULE: list[str] = [
    "cophub.alerts.sla.sweep",
    "cophub.alerts.services.send_pending_emails",
    "cophub.referrals.outbox.sweep",
    "cophub.referrals.takedown.schedule",
    "cophub.netfilter.tasks.schedule",
]
COPHUB_SCHEDULE_EVERY = timedelta(seconds=env_int("COPHUB_SCHEDULE_SECONDS", 60))

# --- Cache (rate limits) --------------------------------------------------------

_cache_url = env("COPHUB_CACHE_URL")
if _cache_url and _cache_url.startswith("redis"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _cache_url}}
else:
    # A file cache is shared by every server process on the machine, which the
    # per-client rate limits need; Redis takes over on larger deployments.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
            "OPTIONS": {"MAX_ENTRIES": 20000},
        }
    }

RATELIMIT_ENABLE = env_bool("COPHUB_RATELIMIT", True)
RATELIMIT_VIEW = "cophub.core.views.rate_limited"
# Behind a reverse proxy set COPHUB_CLIENT_IP_HEADER=HTTP_X_REAL_IP (or similar).
COPHUB_CLIENT_IP_HEADER = env("COPHUB_CLIENT_IP_HEADER", "REMOTE_ADDR")
RATELIMIT_IP_META_KEY = "cophub.core.ratelimits.client_ip"
COPHUB_RATE_SUBMIT = env("COPHUB_RATE_SUBMIT", "10/10m")
COPHUB_RATE_TRACK = env("COPHUB_RATE_TRACK", "20/10m")
COPHUB_RATE_LOGIN = env("COPHUB_RATE_LOGIN", "10/10m")
# Codes tried at the two-factor step, counted per account and per client address.
COPHUB_RATE_OTP = env("COPHUB_RATE_OTP", "10/10m")

# --- Auth ------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:queue"
LOGOUT_REDIRECT_URL = "console:login"

# Two-factor login (TOTP) for staff who can see evidence: "required" or "off".
COPHUB_STAFF_2FA = env("COPHUB_STAFF_2FA", "required").strip().lower()
if COPHUB_STAFF_2FA not in {"required", "off"}:
    # A typo must not switch the second factor off silently.
    raise ImproperlyConfigured(f'COPHUB_STAFF_2FA must be "required" or "off", not "{COPHUB_STAFF_2FA}"')
# The name authenticator apps show beside the account.
OTP_TOTP_ISSUER = env("COPHUB_TOTP_ISSUER", "cophub")
# The admin lists devices (to delete a lost one) without showing their secret keys.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 60 * 60 * 8
SESSION_COOKIE_SECURE = env_bool("COPHUB_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Behind a TLS reverse proxy: trust its X-Forwarded-Proto, and tell browsers
# to come back over HTTPS only (set both once HTTPS works for the whole site).
if env_bool("COPHUB_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("COPHUB_HSTS_SECONDS", 0)
SECURE_CONTENT_TYPE_NOSNIFF = True
# Not "no-referrer": with it browsers send "Origin: null" on same-origin form
# posts, which the CSRF check rightly refuses. "same-origin" still sends
# nothing to other sites.
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Languages ------------------------------------------------------------------

LANGUAGE_CODE = "vi"
LANGUAGES = [("vi", _("Vietnamese")), ("en", _("English"))]
# Each app keeps its own catalog in <app>/locale (see docs/translating.md).
LOCALE_PATHS: list = []
LANGUAGE_COOKIE_NAME = "cophub_lang"
LANGUAGE_COOKIE_AGE = 60 * 60 * 24 * 365
USE_I18N = True
USE_TZ = True
TIME_ZONE = "Asia/Ho_Chi_Minh"

# --- Static files -----------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Uploads and the evidence vault -------------------------------------------------

# Per file and per request. Bigger bodies are refused before they are read.
COPHUB_MAX_FILE_BYTES = env_int("COPHUB_MAX_FILE_MB", 25) * 1024 * 1024
COPHUB_MAX_FILES_PER_SUBMISSION = env_int("COPHUB_MAX_FILES", 5)
COPHUB_MAX_REQUEST_BYTES = COPHUB_MAX_FILE_BYTES * COPHUB_MAX_FILES_PER_SUBMISSION + 1024 * 1024
COPHUB_MAX_TEXT_CHARS = env_int("COPHUB_MAX_TEXT_CHARS", 200_000)
# Images larger than this many pixels are refused unread (decompression bombs).
COPHUB_MAX_IMAGE_PIXELS = env_int("COPHUB_MAX_IMAGE_PIXELS", 40_000_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200
FILE_UPLOAD_HANDLERS = ["cophub.evidence.uploads.EncryptingUploadHandler"]
FILE_UPLOAD_MAX_MEMORY_SIZE = 0

COPHUB_VAULT_DIR = Path(env("COPHUB_VAULT_DIR", str(DATA_DIR / "vault")))
# The master key lives outside the database (a file, or a secret mount).
COPHUB_MASTER_KEY_FILE = Path(env("COPHUB_MASTER_KEY_FILE", str(DATA_DIR / "keys" / "master.key")))

# --- The hub itself ----------------------------------------------------------------

# The unit whose public pages this deployment serves (its code); reports from
# the public form land there unless a school's own link was used.
COPHUB_HOME_UNIT = env("COPHUB_HOME_UNIT", "")
COPHUB_HOTLINE = "111"
COPHUB_EMERGENCY = "113"
# Hours to the first response, per priority (P1 immediate danger … P4 informational).
COPHUB_SLA_HOURS = {
    "P1": env_int("COPHUB_SLA_P1_HOURS", 1),
    "P2": env_int("COPHUB_SLA_P2_HOURS", 24),
    "P3": env_int("COPHUB_SLA_P3_HOURS", 72),
    "P4": env_int("COPHUB_SLA_P4_HOURS", 168),
}
# Staff are warned when the time left is at most this share of the priority's SLA hours.
COPHUB_SLA_WARN_FRACTION = float(env("COPHUB_SLA_WARN_FRACTION", "0.25"))

# --- Detection and triage (docs/detection.md) ------------------------------------------
# Snapshots of the in-memory PDQ indexes (the worker reloads them at start).
COPHUB_INDEX_DIR = Path(env("COPHUB_INDEX_DIR", str(DATA_DIR / "indexes")))
# PDQ hashes under this quality are not matched (HMA's default: 50).
COPHUB_PDQ_MIN_QUALITY = env_int("COPHUB_PDQ_MIN_QUALITY", 50)
# Videos are hashed (vPDQ, one frame a second) up to this length.
COPHUB_VIDEO_MAX_SECONDS = env_int("COPHUB_VIDEO_MAX_SECONDS", 600)
# Text classifiers (dotted paths); an image classifier such as
# "cophub.detection.classifiers.NudeNetClassifier" needs the AGPL extra cophub[nudity].
COPHUB_TEXT_CLASSIFIERS = [c for c in env("COPHUB_TEXT_CLASSIFIERS", "cophub.detection.classifiers.LexiconClassifier").split(",") if c]
COPHUB_IMAGE_CLASSIFIERS = [c for c in env("COPHUB_IMAGE_CLASSIFIERS", "").split(",") if c]
# A classifier's label counts in triage from this score (0..1).
COPHUB_CLASSIFIER_MIN_SCORE = float(env("COPHUB_CLASSIFIER_MIN_SCORE", "0.7"))
# Cases of these categories go to the nearest unit of this kind above the one
# that received them (a school does not handle abuse material itself).
COPHUB_TRIAGE_ROUTES = {"csam": env("COPHUB_ROUTE_CSAM", "province")}
# Previews and clear files opened in 7 days above which a reviewer is flagged to their lead.
COPHUB_WELLBEING_WEEKLY_MARK = env_int("COPHUB_WELLBEING_WEEKLY_MARK", 150)
# The summed weight of a text category's indicators that makes it count in triage.
COPHUB_TEXT_MIN_SCORE = float(env("COPHUB_TEXT_MIN_SCORE", "1.0"))

# --- Referrals and takedown (issue 5) ------------------------------------------------------
# Let the hub fetch private and loopback addresses when it re-checks reported
# links: only for tests and a lab, never in production (docs/design.md).
COPHUB_FETCH_ALLOW_PRIVATE = env_bool("COPHUB_FETCH_ALLOW_PRIVATE", False)
COPHUB_URL_REVIEW_DAYS = env_int("COPHUB_URL_REVIEW_DAYS", 180)  # a listed harmful URL/domain is due for review this many days after its last one

# How often the hub looks again at a reported link it asked to have removed,
# and how long after a notice it sends it again while the content is still up
# (Decree 147/2024 gives platforms 24 hours).
COPHUB_TAKEDOWN_CHECK_MINUTES = env_int("COPHUB_TAKEDOWN_CHECK_MINUTES", 60)
COPHUB_TAKEDOWN_RESEND_HOURS = env_int("COPHUB_TAKEDOWN_RESEND_HOURS", 24)
COPHUB_TAKEDOWN_LEGAL_HOURS = env_int("COPHUB_TAKEDOWN_LEGAL_HOURS", 24)
# Referral deliveries: attempts before the dead letter, backoff as for webhooks.
COPHUB_REFERRAL_MAX_ATTEMPTS = env_int("COPHUB_REFERRAL_MAX_ATTEMPTS", 10)
# How long a sender holds a delivery it claimed; longer than one attempt can take.
COPHUB_REFERRAL_CLAIM_SECONDS = env_int("COPHUB_REFERRAL_CLAIM_SECONDS", 120)
# The issuing body printed on referral letters (the hub's unit when empty).
COPHUB_LETTER_ISSUER = env("COPHUB_LETTER_ISSUER", "")
COPHUB_LETTER_PLACE = env("COPHUB_LETTER_PLACE", "")

# --- Email ------------------------------------------------------------------------------
# With COPHUB_SMTP_HOST set, mail goes out through that server; without it,
# each message is written as a file to <data>/mail, so nothing is lost on a
# hub that has no mail server yet (docs/configuration.md).
COPHUB_SMTP_HOST = env("COPHUB_SMTP_HOST", "")
if COPHUB_SMTP_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = COPHUB_SMTP_HOST
    EMAIL_PORT = env_int("COPHUB_SMTP_PORT", 587)
    EMAIL_HOST_USER = env("COPHUB_SMTP_USER", "")
    EMAIL_HOST_PASSWORD = env("COPHUB_SMTP_PASSWORD", "")
    _smtp_security = env("COPHUB_SMTP_SECURITY", "starttls").strip().lower()
    if _smtp_security not in {"starttls", "ssl", "none"}:
        raise ImproperlyConfigured(f'COPHUB_SMTP_SECURITY must be "starttls", "ssl" or "none", not "{_smtp_security}"')
    EMAIL_USE_TLS = _smtp_security == "starttls"
    EMAIL_USE_SSL = _smtp_security == "ssl"
    EMAIL_TIMEOUT = env_int("COPHUB_SMTP_TIMEOUT", 20)
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(DATA_DIR / "mail")
DEFAULT_FROM_EMAIL = env("COPHUB_EMAIL_FROM", "cophub <cophub@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Provider API ---------------------------------------------------------------------

# Requests per API key (django-ratelimit syntax); over it the API answers 429.
COPHUB_API_RATE = env("COPHUB_API_RATE", "600/m")
# Unfinished provider reports are discarded after this many hours.
COPHUB_API_DRAFT_HOURS = env_int("COPHUB_API_DRAFT_HOURS", 72)
# Webhook deliveries: attempts before a delivery is marked failed, and the
# backoff between attempts (base × factor^(n-1), ±20 % jitter, capped).
COPHUB_WEBHOOK_MAX_ATTEMPTS = env_int("COPHUB_WEBHOOK_MAX_ATTEMPTS", 12)
COPHUB_WEBHOOK_BACKOFF_BASE = env_int("COPHUB_WEBHOOK_BACKOFF_BASE", 10)
COPHUB_WEBHOOK_BACKOFF_FACTOR = env_int("COPHUB_WEBHOOK_BACKOFF_FACTOR", 3)
COPHUB_WEBHOOK_BACKOFF_MAX = env_int("COPHUB_WEBHOOK_BACKOFF_MAX", 3600)
# Plain-http endpoints on loopback: for tests and a receiver on the same machine only.
COPHUB_WEBHOOK_ALLOW_HTTP_LOOPBACK = env_bool("COPHUB_WEBHOOK_ALLOW_HTTP_LOOPBACK", False)
# This hub's public address (https://hub.example), for the webhook receiver it registers at its upstream hubs.
COPHUB_PUBLIC_URL = env("COPHUB_PUBLIC_URL", "")

# --- School network filter (cophub dns) -------------------------------------------

# Where the hub writes the filter's policy and compiled lists and the resolver
# writes its query log and status (docs/netfilter.md).
COPHUB_NETFILTER_DIR = Path(env("COPHUB_NETFILTER_DIR", str(DATA_DIR / "netfilter"))).resolve()

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("COPHUB_LOG_LEVEL", "WARNING")},
    "loggers": {"cophub": {"level": env("COPHUB_LOG_LEVEL", "INFO"), "propagate": True}},
}

CSRF_FAILURE_VIEW = "cophub.core.views.csrf_failure"
