"""The provider API under /api/v1/ (django-ninja): reports and their files.

Every operation answers JSON; every error is an RFC 9457 problem document
with a stable `code` (see problems.py and docs/api.md). Handlers return
HttpResponse objects so the idempotency layer can store and replay the exact
bytes that were sent.
"""

from __future__ import annotations

import logging
import re

import pydantic
from django.conf import settings
from django.http import Http404, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.utils import translation
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django_ratelimit.core import is_ratelimited
from ninja import NinjaAPI, Query
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import HttpBearer

from cophub.cases.services import opening_status, public_status
from cophub.hashbanks.api import router as hashes_router

from . import keys, services, webhooks
from .idempotency import idempotent
from .models import ApiKey, ProviderReport, ReportFile, ReportState, Scope, WebhookDelivery, WebhookEndpoint
from .problems import CONTENT_TYPE, ApiProblem, api_language, json_response, problem_response
from .schemas import (BatchIn, BatchOut, DeliveryPage, FileMetadata, FileOut, HashOnlyFileIn, Problem, ReportIn, ReportOut,
                      WebhookIn, WebhookList, WebhookOut)

log = logging.getLogger(__name__)

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _rate_period_seconds(rate: str) -> int:
    """The window of a django-ratelimit rate such as "600/m" or "10/10m"."""
    match = re.fullmatch(r"\d+/(\d*)([smhd])", rate.strip())
    if not match:
        return 60
    return int(match.group(1) or 1) * PERIODS[match.group(2)]


class ApiKeyBearer(HttpBearer):
    """`Authorization: Bearer cph_live_…`; also counts the key's rate limit."""

    def authenticate(self, request, token: str) -> ApiKey:
        # Runs before every operation: what follows (file refusals from the
        # vault included) speaks the client's language.
        translation.activate(api_language(request))
        key = keys.check_key(token)
        rate = settings.COPHUB_API_RATE
        if is_ratelimited(request, group="cophub.api", key=lambda group, req: key.prefix, rate=rate, increment=True):
            raise ApiProblem("request.rate_limited", format_lazy(_("More than {rate} requests for this API key."), rate=rate),
                             headers={"Retry-After": str(_rate_period_seconds(rate))})
        return key


# --- The OpenAPI document ------------------------------------------------------------
#
# Every error is an RFC 9457 problem document (problems.py), not the JSON the
# operations answer with. Operations declare the errors that are theirs
# (`problems(404, 409, …)`); `CophubApi.get_openapi_schema` adds, once for all,
# the errors any operation can give, writes every error as
# application/problem+json with the `Problem` schema and its headers, and
# documents the Idempotency-Key header on every POST.

# Any operation: an unreadable request, no/bad key, missing scope, a body over
# the size limit, the rate limit, a fault in the hub.
COMMON_ERRORS = (400, 401, 403, 413, 429, 500)
ERROR_TITLES = {400: "The request could not be read (request.bad)", 401: "No API key, or not a valid one (auth.*)",
                403: "The API key lacks the scope (auth.scope)", 404: "Not found for this API key",
                405: "The path exists for other methods only (request.method_not_allowed)",
                409: "Conflicts with the report's state, or the Idempotency-Key is still in use", 410: "The draft expired (report.expired)",
                413: "The request body is too large (request.too_large)", 422: "Not valid (validation.error, file.refused, idempotency.key_reused)",
                429: "Too many requests for this API key (request.rate_limited)", 500: "A fault in the hub (server.error)"}
PROBLEM_HEADERS = {
    401: {"WWW-Authenticate": {"description": "`Bearer`, when no key was sent.", "schema": {"type": "string"}}},
    409: {"Retry-After": {"description": "Seconds; with idempotency.in_progress.", "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
    429: {"Retry-After": {"description": "Seconds until the rate window ends.", "required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
}
IDEMPOTENCY_PARAMETER = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Any string up to 255 characters (a UUID is a good choice): the same key and request within 24 hours runs once "
                   "and gets the stored answer back (Idempotent-Replayed: true); see docs/api.md, Idempotency.",
    "schema": {"type": "string", "maxLength": 255},
}


def problems(*statuses: int) -> dict:
    """The `response=` entries of an operation's own errors (COMMON_ERRORS come on top)."""
    return {status: Problem for status in statuses}


def _segments_match(template: list[str], other: list[str]) -> bool:
    return len(template) == len(other) and all(a == b or a.startswith("{") for a, b in zip(template, other))


class CophubApi(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        problem_ref = {"$ref": "#/components/schemas/Problem"}
        paths = schema["paths"]
        for path, item in paths.items():
            segments = path.strip("/").split("/")
            for method, operation in item.items():
                if method not in ("get", "post", "put", "patch", "delete"):
                    continue
                responses = {int(status): value for status, value in operation.get("responses", {}).items()}
                statuses = set(COMMON_ERRORS)
                # A path parameter can take the value of a fixed path (GET /reports/batch,
                # DELETE /webhooks/deliveries): Django routes it there, and that path has no such method.
                for other_path, other_item in paths.items():
                    if other_path != path and _segments_match(segments, other_path.strip("/").split("/")) and method not in other_item:
                        statuses.add(405)
                for status in sorted(statuses | {int(s) for s in responses if int(s) >= 400}):
                    response = {"description": ERROR_TITLES.get(status, "A problem document"),
                                "content": {CONTENT_TYPE: {"schema": problem_ref}}}
                    if status in PROBLEM_HEADERS:
                        response["headers"] = PROBLEM_HEADERS[status]
                    if status == 405:
                        response["headers"] = {"Allow": {"description": "The methods the path accepts.", "required": True, "schema": {"type": "string"}}}
                    responses[status] = response
                operation["responses"] = dict(sorted(responses.items()))
                if method == "post":
                    operation.setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
        schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in Problem.model_json_schema(ref_template="#/components/schemas/{model}").get("$defs", {}).items():
            schema["components"]["schemas"].setdefault(name, definition)
        schema["components"]["schemas"]["Problem"] = {k: v for k, v in Problem.model_json_schema(ref_template="#/components/schemas/{model}").items() if k != "$defs"}
        return schema


api = CophubApi(
    title="cophub provider API",
    version="1",
    description="Automatic reporting of harmful content by content providers. See docs/api.md.",
    urls_namespace="api-v1",
    docs_url="/docs",
    openapi_url="/openapi.json",
    auth=ApiKeyBearer(),
)
api.add_router("", hashes_router)


# --- Errors as problem documents ---------------------------------------------------


@api.exception_handler(ApiProblem)
def _on_problem(request, exc: ApiProblem):
    return problem_response(exc, request)


@api.exception_handler(AuthenticationError)
def _on_missing_auth(request, exc):
    return problem_response(ApiProblem("auth.missing_key", headers={"WWW-Authenticate": "Bearer"}), request)


def _clean_errors(errors) -> list[dict]:
    """Pydantic's error list without what JSON cannot carry (exceptions in ctx)."""
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in errors]


@api.exception_handler(NinjaValidationError)
def _on_validation(request, exc):
    return problem_response(ApiProblem("validation.error", errors=_clean_errors(exc.errors)), request)


@api.exception_handler(Http404)
def _on_404(request, exc):
    return problem_response(ApiProblem("request.not_found"), request)


@api.exception_handler(HttpError)
def _on_http_error(request, exc: HttpError):
    code = {404: "request.not_found", 405: "request.method_not_allowed", 413: "request.too_large", 429: "request.rate_limited"}.get(exc.status_code, "request.bad")
    return problem_response(ApiProblem(code), request)


@api.exception_handler(MultiPartParserError)
def _on_bad_multipart(request, exc):
    # e.g. `Content-Type: multipart/form-data` without a boundary: the client's fault, not the hub's.
    return problem_response(ApiProblem("request.bad"), request)


@api.exception_handler(Exception)
def _on_crash(request, exc):
    log.exception("provider API error on %s", request.path)
    return problem_response(ApiProblem("server.error"), request)


# --- Documents ---------------------------------------------------------------------


def _file_document(file: ReportFile) -> dict:
    return {"id": file.public_id, "sha256": file.sha256, "md5": file.md5, "size": file.size,
            "original_name": file.original_name, "hash_only": file.blob_id is None, "metadata": file.metadata}


def _case_document(report: ProviderReport) -> dict | None:
    """The case's public step only: no notes, no staff names, no messages."""
    if report.submission is None:
        return None
    opened = getattr(report, "case_opened", None)
    status = opening_status(opened) if opened is not None else public_status(report.submission)
    if status is None:
        return None
    return {"step": status.step, "text": status.text, "updated_at": status.updated_at.isoformat()}


def _files_of(report: ProviderReport):
    # A report just written carries its files (services.open_report): no need to read them back.
    fresh = getattr(report, "fresh_files", None)
    return fresh if fresh is not None else report.files.all()


def report_document(report: ProviderReport) -> dict:
    base = f"/api/v1/reports/{report.public_id}"
    state = "expired" if report.is_expired() else report.state
    links = {"self": base}
    if state == ReportState.DRAFT:
        links.update(files=f"{base}/files", finish=f"{base}/finish", retract=f"{base}/retract")
    return {
        "id": report.public_id, "state": state, "sandbox": report.sandbox, "incident_type": report.incident_type,
        "incident_time": report.incident_time.isoformat(), "created_at": report.created_at.isoformat(),
        "expires_at": report.expires_at.isoformat() if report.state == ReportState.DRAFT else None,
        "finished_at": report.finished_at.isoformat() if report.finished_at else None,
        "retracted_at": report.retracted_at.isoformat() if report.retracted_at else None,
        "files": [_file_document(f) for f in _files_of(report)],
        "case": _case_document(report),
        # Filled by takedown work (issue 5); present now so clients can rely on it.
        "takedown_requests": [],
        "links": links,
    }


def _writer(request) -> ApiKey:
    keys.require_scope(request.auth, Scope.REPORTS_WRITE)
    return request.auth


# --- Operations -----------------------------------------------------------------------


@api.post("/reports", response={201: ReportOut, **problems(409, 422)}, summary="Open a report (or file it at once with finish: true)", tags=["reports"])
def create_report(request, payload: ReportIn):
    key = _writer(request)
    return idempotent(request, key.provider, lambda: json_response(report_document(services.open_report(key, payload)), 201))


@api.post("/reports/batch", response={200: BatchOut, 201: BatchOut, **problems(409, 422)}, summary="Open up to 100 reports, each on its own", tags=["reports"])
def create_batch(request, payload: BatchIn):
    key = _writer(request)
    return idempotent(request, key.provider, lambda: _run_batch(request, key, payload.reports))


def _run_batch(request, key: ApiKey, items: list[dict]):
    """Each item in its own transaction: one bad item does not stop the others."""
    results = []
    for index, item in enumerate(items):
        try:
            report = services.open_report(key, ReportIn.model_validate(item))
            results.append({"index": index, "status": 201, "report": report_document(report)})
        except pydantic.ValidationError as exc:
            problem = ApiProblem("validation.error", format_lazy(_("Item {index} is not valid; see errors."), index=index), errors=_clean_errors(exc.errors()))
            results.append({"index": index, "status": problem.status, "problem": problem.document(request)})
        except ApiProblem as problem:
            results.append({"index": index, "status": problem.status, "problem": problem.document(request)})
    failed = sum(1 for r in results if r["status"] >= 400)
    return json_response({"succeeded": len(results) - failed, "failed": failed, "results": results}, 200 if failed else 201)


@api.get("/reports/{report_id}", response={200: ReportOut, **problems(404)}, summary="A report's state as its provider may see it", tags=["reports"])
def read_report(request, report_id: str):
    key = _writer(request)
    return json_response(report_document(services.get_report(key.provider, report_id)))


FILE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary"},
            "metadata": {**FileMetadata.model_json_schema(), "description": "Optional: a JSON object with the fields of the JSON form except the hashes."}}},
            "encoding": {"metadata": {"contentType": "application/json"}}},
        # Inlined: the operation reads its body itself, so ninja does not list the model.
        "application/json": {"schema": HashOnlyFileIn.model_json_schema()},
    },
}


@api.post("/reports/{report_id}/files", response={201: FileOut, **problems(404, 409, 410, 422)}, summary="Upload a file, or declare one by its hashes",
          tags=["reports"], openapi_extra={"requestBody": FILE_BODY})
def add_file(request, report_id: str):
    key = _writer(request)
    return idempotent(request, key.provider, lambda: json_response(_file_document(_store_file(request, key, report_id)), 201))


def _store_file(request, key: ApiKey, report_id: str) -> ReportFile:
    try:
        if request.content_type == "multipart/form-data":
            upload = request.FILES.get("file")
            if upload is None:
                raise ApiProblem("validation.error", _("A multipart upload needs a 'file' field."), errors=[{"loc": ["file"], "msg": "Field required", "type": "missing"}])
            metadata = FileMetadata.model_validate_json(request.POST.get("metadata") or "{}")
            return services.add_uploaded_file(key.provider, report_id, upload, metadata)
        return services.add_hash_only_file(key.provider, report_id, HashOnlyFileIn.model_validate_json(request.body or b"{}"))
    except pydantic.ValidationError as exc:
        raise ApiProblem("validation.error", _("The file details are not valid; see errors."), errors=_clean_errors(exc.errors())) from exc


@api.post("/reports/{report_id}/finish", response={200: ReportOut, **problems(404, 409, 410, 422)}, summary="File the report into the hub", tags=["reports"])
def finish_report(request, report_id: str):
    key = _writer(request)
    return idempotent(request, key.provider, lambda: json_response(report_document(services.finish_report(key.provider, report_id))))


@api.post("/reports/{report_id}/retract", response={200: ReportOut, **problems(404, 409, 410, 422)}, summary="Withdraw a draft (a filed report cannot be)", tags=["reports"])
def retract_report(request, report_id: str):
    key = _writer(request)
    return idempotent(request, key.provider, lambda: json_response(report_document(services.retract_report(key.provider, report_id))))


# --- Webhooks ---------------------------------------------------------------------------

DELIVERY_PAGE = 100


def _webhook_document(endpoint: WebhookEndpoint, secret: str | None = None) -> dict:
    document = {"id": endpoint.public_id, "url": endpoint.url, "event_types": endpoint.event_types, "active": endpoint.active,
                "sandbox": endpoint.sandbox, "created_at": endpoint.created_at.isoformat(),
                "links": {"self": f"/api/v1/webhooks/{endpoint.public_id}"}}
    if secret is not None:
        document["secret"] = secret
    return document


def _delivery_document(delivery: WebhookDelivery) -> dict:
    def when(value):
        return value.isoformat() if value else None

    return {"id": delivery.public_id, "endpoint_id": delivery.endpoint.public_id, "event_id": delivery.event.public_id,
            "event_type": delivery.event.type, "state": delivery.state, "attempts": delivery.attempts,
            "last_status": delivery.last_status, "last_error": delivery.last_error, "created_at": when(delivery.created_at),
            "delivered_at": when(delivery.delivered_at), "next_attempt_at": when(delivery.next_attempt_at)}


@api.post("/webhooks", response={201: WebhookOut, **problems(409, 422)}, summary="Register a webhook endpoint (the answer holds its secret, once)", tags=["webhooks"])
def create_webhook(request, payload: WebhookIn):
    key = _writer(request)

    def register():
        endpoint, secret = webhooks.register_endpoint(key, payload.url, payload.event_types)
        return json_response(_webhook_document(endpoint, secret), 201)

    return idempotent(request, key.provider, register)


@api.get("/webhooks", response={200: WebhookList}, summary="The key's webhook endpoints", tags=["webhooks"])
def list_webhooks(request):
    key = _writer(request)
    return json_response({"webhooks": [_webhook_document(e) for e in webhooks.endpoints_of(key)]})


@api.get("/webhooks/deliveries", response={200: DeliveryPage, **problems(422)}, summary="The delivery log, newest first", tags=["webhooks"])
def list_deliveries(request, cursor: str = Query("", pattern=r"^[0-9]*$", max_length=20, description="next_cursor of the previous page.")):
    key = _writer(request)
    deliveries = webhooks.deliveries_of(key).order_by("-pk")
    if cursor:
        # The cursor is the last row id of the previous page; anything else is a bad request.
        if not cursor.isdigit():
            raise ApiProblem("validation.error", _("The cursor is not valid."), errors=[{"loc": ["query", "cursor"], "msg": "not a cursor", "type": "value_error"}])
        deliveries = deliveries.filter(pk__lt=int(cursor))
    page = list(deliveries[:DELIVERY_PAGE + 1])
    next_cursor = str(page[DELIVERY_PAGE - 1].pk) if len(page) > DELIVERY_PAGE else None
    return json_response({"deliveries": [_delivery_document(d) for d in page[:DELIVERY_PAGE]], "next_cursor": next_cursor})


@api.delete("/webhooks/{webhook_id}", response={204: None, **problems(404)}, summary="Delete an endpoint: it gets nothing more", tags=["webhooks"])
def delete_webhook(request, webhook_id: str):
    key = _writer(request)
    webhooks.delete_endpoint(key, webhook_id)
    return HttpResponse(status=204)
