"""RFC 9457 problem documents with stable machine codes.

Services raise `ApiProblem`; the API turns it (and every other error under
/api/) into `application/problem+json`. Codes and titles (English) never
change once published; `detail` is written in the request's language
(Accept-Language; Vietnamese when none is asked for), so it is translated
only when the document is rendered.
"""

from __future__ import annotations

import json

from django.http import HttpResponse
from django.utils import translation
from django.utils.translation import gettext_lazy as _

CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://cophub.vn/problems/"

# code -> (status, title, default detail)
PROBLEMS: dict[str, tuple[int, str, str]] = {
    "auth.missing_key": (401, "An API key is required", _("Send the API key as 'Authorization: Bearer <key>'.")),
    "auth.invalid_key": (401, "The API key is not valid", _("This API key is not known to the hub.")),
    "auth.revoked_key": (401, "The API key has been revoked", _("This API key has been revoked; ask the hub for a new one.")),
    "auth.expired_key": (401, "The API key has expired", _("This API key has expired; ask the hub for a new one.")),
    "auth.scope": (403, "The API key lacks the scope this operation needs", _("This API key may not do this operation.")),
    "report.not_found": (404, "No such report", _("There is no report with this id for this API key.")),
    "report.already_finished": (409, "The report is already finished", _("This report has been filed; it can no longer be changed or retracted.")),
    "report.already_retracted": (409, "The report is already retracted", _("This report was retracted.")),
    "report.expired": (410, "The draft report expired before it was finished", _("This draft was not finished in time and has expired.")),
    "webhook.not_found": (404, "No such webhook endpoint", _("There is no webhook endpoint with this id for this API key.")),
    "file.refused": (422, "The file was refused", _("The file was refused.")),
    "validation.error": (422, "The request is not valid", _("Some fields are missing or not valid; see errors.")),
    "idempotency.key_reused": (422, "The Idempotency-Key was used with a different request", _("This Idempotency-Key was used with a different request; use a new key.")),
    "idempotency.in_progress": (409, "A request with this Idempotency-Key is still being processed", _("The first request with this key is still running; retry shortly.")),
    "request.too_large": (413, "The request body is too large", _("What was sent is larger than the hub accepts.")),
    "request.rate_limited": (429, "Too many requests for this API key", _("Too many requests for this API key; wait as Retry-After says.")),
    "request.not_found": (404, "No such API path", _("There is no such path in the API.")),
    "request.method_not_allowed": (405, "Method not allowed on this path", _("This path does not accept this method.")),
    "request.bad": (400, "The request could not be read", _("The request could not be read.")),
    "server.error": (500, "Internal error", _("An internal error occurred; retrying with the same Idempotency-Key is safe.")),
}


class ApiProblem(Exception):
    def __init__(self, code: str, detail="", *, headers: dict | None = None, **extra):
        super().__init__(code)
        self.code = code
        self.status, self.title, default_detail = PROBLEMS[code]
        self.detail = detail or default_detail
        self.headers = headers or {}
        self.extra = extra

    def document(self, request=None) -> dict:
        """The problem as JSON data, its detail in the request's language."""
        with translation.override(api_language(request)):
            doc = {"type": TYPE_BASE + self.code, "title": self.title, "status": self.status, "detail": str(self.detail), "code": self.code}
        if request is not None:
            doc["instance"] = request.path
        doc.update(self.extra)
        return doc


def api_language(request) -> str:
    """The language an API client asks for; Vietnamese, the hub's language, otherwise."""
    if request is None:
        return translation.get_language() or "vi"
    return translation.get_language_from_request(request)


def problem_response(problem: ApiProblem, request=None) -> HttpResponse:
    response = HttpResponse(json.dumps(problem.document(request), ensure_ascii=False), status=problem.status, content_type=CONTENT_TYPE)
    response["Content-Language"] = api_language(request)
    response["Vary"] = "Accept-Language"
    for name, value in problem.headers.items():
        response[name] = value
    return response


def json_response(data, status: int = 200) -> HttpResponse:
    return HttpResponse(json.dumps(data, ensure_ascii=False, default=str), status=status, content_type="application/json")
