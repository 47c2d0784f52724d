"""recorder.py - receiver of anymail's inbound signal: appends one JSON line per event to
the file named by APP_EVENTS_FILE, for the tests to read."""

import base64
import json
import os
import threading

from anymail.signals import inbound
from django.dispatch import receiver

_lock = threading.Lock()  # runserver is threaded


def _b64(b):
    return None if b is None else base64.b64encode(b).decode("ascii")


def _addr(a):
    return {"display_name": a.display_name, "addr_spec": a.addr_spec}


def _raw_field(request):
    """The raw-MIME form field as Django decoded it, encoded back to UTF-8: exactly the
    bytes anymail's parse_raw_mime parsed."""
    for name in ("body-mime", "email"):
        if name in request.POST:
            return request.POST[name].encode("utf-8")
    return None


def _form(request):
    """The other form fields as Django parsed them (the envelope, recipient, token...)."""
    return {k: request.POST.getlist(k) for k in request.POST if k not in ("body-mime", "email")}


@receiver(inbound)
def record(sender, event, esp_name, **kwargs):
    m = event.message
    frm = m.from_email
    rec = {
        "esp_name": esp_name,
        "event_type": event.event_type,
        "event_id": event.event_id,
        "timestamp": event.timestamp.isoformat() if event.timestamp else None,
        "envelope_sender": m.envelope_sender,
        "envelope_recipient": m.envelope_recipient,
        "from": [_addr(a) for a in (frm if isinstance(frm, list) else [frm] if frm else [])],
        "to": [_addr(a) for a in m.to],
        "cc": [_addr(a) for a in m.cc],
        "subject": m.subject,
        "headers": [[k, str(v)] for k, v in m.items()],
        "text": m.text,
        "html": m.html,
        "attachments": [{"filename": a.get_filename(), "content_type": a.get_content_type(),
                         "content_b64": _b64(a.get_content_bytes())} for a in m.attachments],
        "spam_score": m.spam_score,
        "field_b64": _b64(_raw_field(event.esp_event)),
        "form": _form(event.esp_event),
    }
    # anymail keeps no raw bytes; these are the parsed message serialized again
    for key, fn in (("as_bytes_b64", lambda: m.as_bytes()),
                    ("as_bytes_smtp_b64", lambda: m.as_bytes(policy=m.policy.clone(linesep="\r\n")))):
        try:
            rec[key] = _b64(fn())
        except Exception as e:  # record, don't fail the webhook
            rec[key] = None
            rec[key + "_error"] = repr(e)
    line = json.dumps(rec) + "\n"
    with _lock, open(os.environ["APP_EVENTS_FILE"], "a", encoding="utf-8") as f:
        f.write(line)
