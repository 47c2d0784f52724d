"""settings.py - the smallest Django settings that serve anymail's inbound webhooks.

Read from the environment (django_app.py sets them):
  APP_SIGNING_KEY     ANYMAIL["MAILGUN_WEBHOOK_SIGNING_KEY"] (unset: Mailgun posts get 500)
  APP_WEBHOOK_SECRET  ANYMAIL["WEBHOOK_SECRET"], "user:password" basic auth for every view
  APP_EVENTS_FILE     where recorder.py appends one JSON line per inbound event
No database, no middleware, no templates.
"""

import os

SECRET_KEY = "itest-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "urls"
INSTALLED_APPS = ["anymail"]
MIDDLEWARE = []
DATABASES = {}
USE_TZ = True
TIME_ZONE = "UTC"

ANYMAIL = {}
if os.environ.get("APP_SIGNING_KEY"):
    ANYMAIL["MAILGUN_WEBHOOK_SIGNING_KEY"] = os.environ["APP_SIGNING_KEY"]
if os.environ.get("APP_WEBHOOK_SECRET"):
    ANYMAIL["WEBHOOK_SECRET"] = os.environ["APP_WEBHOOK_SECRET"]

# Django's defaults are kept on purpose (they are what a real deployment has):
# DATA_UPLOAD_MAX_MEMORY_SIZE = 2.5 MiB of non-file form fields, so a bigger raw message
# in body-mime/email gets 400. APP_MAX_FORM_BYTES overrides it ("none": no limit).
if os.environ.get("APP_MAX_FORM_BYTES"):
    v = os.environ["APP_MAX_FORM_BYTES"]
    DATA_UPLOAD_MAX_MEMORY_SIZE = None if v == "none" else int(v)

# Errors and rejected requests (400s) to stderr, which django_app.py keeps as the log.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["stderr"], "level": "INFO"}},
}
