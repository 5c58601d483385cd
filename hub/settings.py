"""fabhub settings, read from the environment (see docs/deploy.md for every variable).

The embedded default needs nothing outside this repository: SQLite and repositories under
``FABHUB_DATA_DIR``, tasks run in-process. ``DATABASE_URL`` and ``CELERY_BROKER_URL``
switch to the scaled set-up (PostgreSQL, Redis, separate Celery workers).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from hub.env import env_bool, env_int, env_list, env_mapping, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "fabhub-insecure-development-key"  # only ever used with DEBUG on

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Production behind a TLS-terminating reverse proxy (docs/deploy.md, "Reverse proxy").
BEHIND_HTTPS_PROXY = env_bool("BEHIND_HTTPS_PROXY")
if BEHIND_HTTPS_PROXY:
    # The proxy terminates TLS and says so in this header; trust it only when told to.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    # Plain http is answered by a redirect to https, and browsers are told to use https
    # only from then on (HSTS; a year by default, subdomains only when asked).
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    # The hub has a host of its own (hub.example.org): its subdomains are https too.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading binds the whole registrable domain in browsers for months: the
        # domain's owner decides it (SECURE_HSTS_PRELOAD=1), not the hub's default.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
# Links followed off the hub carry only the origin, never a private design's path.
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Where repositories, uploads and the SQLite database live.
DATA_DIR = Path(env_str("FABHUB_DATA_DIR", str(BASE_DIR / "var"))).resolve()
REPOS_DIR = DATA_DIR / "repos"
# SQLite cannot create its folder; every other path under DATA_DIR is made on use.
DATA_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "hub",
    "designs",
    "machines",
]

MIDDLEWARE = [
    "hub.middleware.HealthCheckMiddleware",
    "hub.middleware.RequestSizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a lockout raised during sign-in into its page.
    "axes.middleware.AxesMiddleware",
    # Its process_exception runs first: a database that went away is a 503, not a 500.
    "hub.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "hub.urls"
WSGI_APPLICATION = "hub.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{DATA_DIR / 'fabhub.sqlite3'}",
        # Kept open between requests (checked before reuse): opening one per request cost
        # ~7 % of a lab agent's sync (bench/agents.py), and a hub serves many of those.
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the single writer; the timeout makes a second writer
    # wait for the first instead of failing at once with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

# Per-process memory by default; REDIS_CACHE_URL shares the cache between machines.
if env_str("REDIS_CACHE_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env_str("REDIS_CACHE_URL"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_USER_MODEL = "hub.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Sign-in by password goes through django-axes first: after FABHUB_LOGIN_FAILURE_LIMIT
# wrong passwords for one username from one address, that pair is locked out for
# FABHUB_LOGIN_COOLOFF_MINUTES (docs/accounts.md). Tokens never pass through here.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("FABHUB_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("FABHUB_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "hub/locked_out.html"
# The page above, or the API's error shape under /api/ (the current-password checks of the
# account API count as sign-in attempts: hub.accounts).
AXES_LOCKOUT_CALLABLE = "hub.auth.lockout_response"
# The client's address: REMOTE_ADDR, or behind the proxy the address it appended to
# X-Forwarded-For (hub.auth.client_ip says why not django-ipware).
AXES_CLIENT_IP_CALLABLE = "hub.auth.client_ip"
# Sign-in counts by the `username` field of the login form and the admin's.
AXES_USERNAME_FORM_FIELD = "username"

# E-mail: password resets, address confirmations, notifications. SMTP when EMAIL_HOST is
# set; otherwise printed to the console under DEBUG (`make run`) and sent to a local SMTP
# server in production. A failed send is logged as one line (hub/mail.py), never a 500.
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS")
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "fabhub <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG and not env_str("EMAIL_HOST")
    else "django.core.mail.backends.smtp.EmailBackend",
)
# How long a password-reset link (Django's) and an e-mail confirmation link work.
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3 * 24 * 3600)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "design-list"
LOGOUT_REDIRECT_URL = "design-list"

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"

# Uploads: anything above the in-memory threshold spools to disk, and no single file may
# exceed FABHUB_MAX_UPLOAD_BYTES (checked before it reaches git).
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_HANDLERS = [
    "hub.uploads.SizeLimitUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
# Files over FABHUB_LFS_THRESHOLD_BYTES become Git LFS objects, so the limit per file can
# be that of a large CAD file rather than that of a git blob.
FABHUB_MAX_UPLOAD_BYTES = env_int("FABHUB_MAX_UPLOAD_BYTES", 1024 * 1024 * 1024)
FABHUB_MAX_REQUEST_BYTES = env_int("FABHUB_MAX_REQUEST_BYTES", 2 * 1024 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("FABHUB_MAX_FILES_PER_UPLOAD", 1000)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 5000

# Files over this size may not enter git history by push; they belong in Git LFS.
FABHUB_MAX_GIT_BLOB_BYTES = env_int("FABHUB_MAX_GIT_BLOB_BYTES", 50 * 1024 * 1024)
# Git LFS (designs/lfs.py): the largest object one upload may store, and the size above
# which a web or API upload is stored as an LFS object, the commit holding a pointer.
FABHUB_MAX_LFS_OBJECT_BYTES = env_int("FABHUB_MAX_LFS_OBJECT_BYTES", 5 * 1024**3)
FABHUB_LFS_THRESHOLD_BYTES = env_int("FABHUB_LFS_THRESHOLD_BYTES", 10 * 1024 * 1024)
# Files attached to releases (designs/services/releases.py): the largest one, and how
# many one release may hold.
FABHUB_RELEASE_ASSET_MAX_BYTES = env_int("FABHUB_RELEASE_ASSET_MAX_BYTES", 200 * 1024 * 1024)
FABHUB_RELEASE_ASSET_MAX_COUNT = env_int("FABHUB_RELEASE_ASSET_MAX_COUNT", 50)

# Public address used in clone URLs and links sent outside the hub.
FABHUB_PUBLIC_URL = env_str("FABHUB_PUBLIC_URL", "")
FABHUB_GIT_BINARY = env_str("FABHUB_GIT_BINARY", "git")
# Other hubs whose signed records this hub accepts (docs/portability.md): comma-separated
# `ISSUER=KEY [KEY …]`, the issuer as its address (https://hub.example.org/) or DID.
FABHUB_TRUSTED_ISSUERS = env_mapping("FABHUB_TRUSTED_ISSUERS")
# Account archives (hub/archives.py, docs/portability.md): how long an export is kept,
# the largest archive an import takes, and whether checking one may fetch the exporting
# hub's keys (did:web, over HTTPS through the outbound policy).
FABHUB_ARCHIVE_DAYS = env_int("FABHUB_ARCHIVE_DAYS", 7)
FABHUB_MAX_ARCHIVE_BYTES = env_int("FABHUB_MAX_ARCHIVE_BYTES", 10 * 1024**3)
FABHUB_ARCHIVE_ONLINE_CHECKS = env_bool("FABHUB_ARCHIVE_ONLINE_CHECKS", default=True)
# Embedded set-up (no beat): a web-server thread deletes expired archives this often (0: off).
FABHUB_ARCHIVE_TICK_S = env_int("FABHUB_ARCHIVE_TICK_S", 3600)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "hub.auth.AccessTokenAuthentication",
        "hub.auth.SessionCredentialAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticatedOrReadOnly",
        "hub.permissions.CredentialScope",
    ],
    "DEFAULT_PAGINATION_CLASS": "hub.pagination.PageNumberPagination",
    "PAGE_SIZE": 30,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "hub.schema.HubAutoSchema",
    "EXCEPTION_HANDLER": "hub.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Throttles count by client address: the socket's peer, or behind the proxy the
    # address it appended to X-Forwarded-For (never what the client wrote there).
    "NUM_PROXIES": 1 if BEHIND_HTTPS_PROXY else 0,
    "DEFAULT_THROTTLE_RATES": {
        # Asking for reset links and using them, per address (hub/account_api.py).
        "password-reset": env_str("FABHUB_PASSWORD_RESET_RATE", "10/hour"),
        # Checking signed records, per address (hub/record_api.py).
        "record-verify": env_str("FABHUB_RECORD_VERIFY_RATE", "120/minute"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "fabhub API",
    "DESCRIPTION": "Versioned open-hardware designs backed by git, and shared lab machines.",
    "VERSION": "0.1.0",
    "LICENSE": {"name": "AGPL-3.0-or-later"},
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One name per choice set, where several models name a field the same way.
    "ENUM_NAME_OVERRIDES": {
        "TokenScopeEnum": "hub.models.AccessToken.Scope",
        "FeedScopeEnum": "machines.models.CalendarFeed.Scope",
        "CollaboratorRoleEnum": "designs.models.Collaborator.Role",
        "LabRoleEnum": "machines.models.LabMembership.Role",
        "MembershipStatusEnum": "machines.models.LabMembership.Status",
        "AnalysisStatusEnum": "designs.models.MeshAnalysis.Status",
        "ProposalStatusEnum": "designs.models.ChangeProposal.Status",
        "MachineStatusEnum": "machines.models.Machine.Status",
        "MachineKindEnum": "machines.models.Machine.Kind",
        "BookingKindEnum": "machines.models.Booking.Kind",
        "BookingStatusEnum": "machines.models.Booking.Status",
        "PrintJobStatusEnum": "machines.models.PrintJob.Status",
    },
}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or None
# No broker: the embedded set-up runs tasks on a worker thread of the web process
# (hub/queue.py); Celery's eager mode is what that thread, and the tests, use.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
FABHUB_EMBEDDED_WORKER = not CELERY_BROKER_URL and env_bool("FABHUB_EMBEDDED_WORKER", default=True)
CELERY_TASK_EAGER_PROPAGATES = env_bool("CELERY_TASK_EAGER_PROPAGATES", default=False)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task whose worker vanished is handed out again after this long (Redis); the mesh
# sweeper usually notices sooner. It must outlast every task's time limit (the longest:
# archive builds and imports, 6 h), or Redis hands a running task to a second worker:
# `manage.py check` says so (hub/checks.py).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 7 * 3600)}
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3600)
CELERY_BEAT_SCHEDULE = {
    # Re-queues analyses whose worker died mid-way (designs/services/analysis.py).
    "sweep-stale-analyses": {"task": "designs.tasks.sweep_stale_analyses", "schedule": 300.0},
}

# Mesh analysis (designs/meshes/, run by designs/meshes/worker.py): per file.
FABHUB_MESH_TIME_LIMIT_S = env_int("FABHUB_MESH_TIME_LIMIT_S", 120)
FABHUB_MESH_MEMORY_LIMIT_BYTES = env_int("FABHUB_MESH_MEMORY_LIMIT_BYTES", 3 * 1024**3)
FABHUB_MESH_BATCH_SIZE = env_int("FABHUB_MESH_BATCH_SIZE", 200)

# Labs and bookings (machines/, docs/labs.md): machine connection settings are encrypted
# with this Fernet key (empty: derived from SECRET_KEY; see machines/secrets.py), and a
# booking's member is checked again (qualification) this many minutes before it starts.
FABHUB_ENCRYPTION_KEY = env_str("FABHUB_ENCRYPTION_KEY", "")
FABHUB_BOOKING_START_CHECK_MINUTES = env_int("FABHUB_BOOKING_START_CHECK_MINUTES", 15)
# Off: a signed-in user requests a lab and a site administrator approves it (admin site,
# "Approve"); on: anyone signed in opens one at once (docs/deploy.md).
FABHUB_OPEN_LAB_CREATION = env_bool("FABHUB_OPEN_LAB_CREATION", default=False)
# Notifications are stored for the hub's pages and also e-mailed (Django's mail backend).
FABHUB_EMAIL_NOTIFICATIONS = env_bool("FABHUB_EMAIL_NOTIFICATIONS", default=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Range fields and lookups for the bookings' exclusion constraint.
    INSTALLED_APPS.append("django.contrib.postgres")
CELERY_BEAT_SCHEDULE["check-starting-bookings"] = {
    "task": "machines.tasks.check_starting_bookings",
    "schedule": 60.0,
}
# Priced bookings that ended are charged (machines/credits.py); the embedded ticker runs it
# with the print queue's sweep.
CELERY_BEAT_SCHEDULE["settle-bookings"] = {"task": "machines.tasks.settle_bookings", "schedule": 300.0}

# Every outbound connection (hub/outbound.py): networks the hub may reach although they
# are not global, as CIDR blocks (a lab's printer LAN, 127.0.0.0/8 for a local demo).
FABHUB_OUTBOUND_ALLOWED_NETWORKS = env_list("FABHUB_OUTBOUND_ALLOWED_NETWORKS", [])

# Mirrors between hubs and git hosts (designs/services/mirrors.py, designs/remotes.py;
# docs/federation.md). Remote addresses are checked against these lists: `host` or
# `*.domain`; with an allow list, only those hosts, which may then be on private networks.
FABHUB_MIRROR_ALLOWED_HOSTS = env_list("FABHUB_MIRROR_ALLOWED_HOSTS", [])
FABHUB_MIRROR_DENIED_HOSTS = env_list("FABHUB_MIRROR_DENIED_HOSTS", [])
# Off: the server never connects to loopback, private, link-local or reserved addresses
# for a mirror (server-side request forgery). Turn on only where every such host is trusted.
FABHUB_MIRROR_ALLOW_PRIVATE_NETWORKS = env_bool("FABHUB_MIRROR_ALLOW_PRIVATE_NETWORKS", default=False)
FABHUB_MIRROR_INTERVAL_S = env_int("FABHUB_MIRROR_INTERVAL_S", 3600)
FABHUB_MIRROR_MIN_INTERVAL_S = env_int("FABHUB_MIRROR_MIN_INTERVAL_S", 300)
FABHUB_MIRROR_TIMEOUT_S = env_int("FABHUB_MIRROR_TIMEOUT_S", 900)
# Failed pushes to a push mirror are retried after 1, 2, 4, … minutes, at most this long apart.
FABHUB_PUSH_MIRROR_MAX_BACKOFF_S = env_int("FABHUB_PUSH_MIRROR_MAX_BACKOFF_S", 6 * 3600)
# Embedded set-up (no beat): a web-server thread runs the mirrors' schedule this often (0: off).
FABHUB_MIRROR_TICK_S = env_int("FABHUB_MIRROR_TICK_S", 60)
CELERY_BEAT_SCHEDULE["mirrors-tick"] = {"task": "designs.tasks.mirrors_tick", "schedule": 60.0}

# Print queue (machines/printing/; docs/print-queue.md). The slicer
# runs with these limits; the embedded ticker (machines/printing/ticker.py) runs the dispatcher,
# the printer poller and the sweeper every FABHUB_PRINT_TICK_S seconds (0: off; Celery
# beat runs them instead in the scaled set-up).
FABHUB_SLICER_COMMAND = env_str("FABHUB_SLICER_COMMAND", "prusa-slicer")
FABHUB_SLICER_TIME_LIMIT_S = env_int("FABHUB_SLICER_TIME_LIMIT_S", 300)
FABHUB_SLICER_MEMORY_LIMIT_BYTES = env_int("FABHUB_SLICER_MEMORY_LIMIT_BYTES", 4 * 1024**3)
FABHUB_PRINT_TICK_S = env_int("FABHUB_PRINT_TICK_S", 5)
FABHUB_PRINT_POLL_THREADS = env_int("FABHUB_PRINT_POLL_THREADS", 16)
# A job still "sending" after this long had its worker die: the sweeper takes it over.
FABHUB_PRINT_DISPATCH_TIMEOUT_S = env_int("FABHUB_PRINT_DISPATCH_TIMEOUT_S", 300)
# A queued job waiting longer than this goes ahead of every priority (starvation guard).
FABHUB_PRINT_STARVATION_HOURS = env_int("FABHUB_PRINT_STARVATION_HOURS", 24)
# A printer whose last answer is older than this is not trusted to be idle.
FABHUB_PRINT_STATE_MAX_AGE_S = env_int("FABHUB_PRINT_STATE_MAX_AGE_S", 60)
# A print holds its machine's timeline for the slicer's estimate plus this share.
FABHUB_PRINT_TIMELINE_MARGIN_PERCENT = env_int("FABHUB_PRINT_TIMELINE_MARGIN_PERCENT", 10)
# Lab agents (docs/agent.md): how often an agent syncs (the hub tells it at every sync),
# after how long without a sync its printers count as offline, and how long the send task
# waits for an agent to start a job (download and upload included) or to answer a command.
FABHUB_AGENT_POLL_S = env_int("FABHUB_AGENT_POLL_S", 3)
FABHUB_AGENT_SILENT_S = env_int("FABHUB_AGENT_SILENT_S", 30)
FABHUB_AGENT_START_WAIT_S = env_int("FABHUB_AGENT_START_WAIT_S", 180)
FABHUB_AGENT_COMMAND_WAIT_S = env_int("FABHUB_AGENT_COMMAND_WAIT_S", 30)
CELERY_BEAT_SCHEDULE["print-dispatch"] = {"task": "machines.tasks.dispatch_print_jobs", "schedule": 10.0}
CELERY_BEAT_SCHEDULE["print-poll"] = {"task": "machines.tasks.poll_printers", "schedule": 5.0}
CELERY_BEAT_SCHEDULE["print-sweep"] = {"task": "machines.tasks.sweep_print_queue", "schedule": 60.0}
# Account archives past their time (hub/archives.py), with a broker.
CELERY_BEAT_SCHEDULE["archives-expire"] = {"task": "hub.tasks.archives_expire", "schedule": 3600.0}

# Content-Security-Policy on every page (django-csp): scripts, styles, images and
# connections from this origin only; no inline script or style anywhere (docs/deploy.md).
# Mesh thumbnails are data: and blob: images; the API's Redoc page relaxes style-src
# for itself only (hub/urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'", "blob:"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
