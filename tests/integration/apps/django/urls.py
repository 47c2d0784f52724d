"""urls.py - anymail's webhook URLs under /anymail/, e.g. /anymail/mailgun/inbound_mime/
and /anymail/sendgrid/inbound/."""

from django.urls import include, path

import recorder  # noqa: F401  (connects the inbound signal receiver)

urlpatterns = [path("anymail/", include("anymail.urls"))]
