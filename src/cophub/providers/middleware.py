"""Under /api/, errors made outside the API's own code are problem documents too.

Django answers an unknown path (404), a wrong method (405) and, through
core's RequestSizeLimitMiddleware, an oversized body (413) with HTML pages;
an API client needs the same problem+json as from the API itself.
"""

from __future__ import annotations

from .problems import CONTENT_TYPE, ApiProblem, problem_response

API_PREFIX = "/api/"
CODES = {400: "request.bad", 404: "request.not_found", 405: "request.method_not_allowed", 413: "request.too_large",
         429: "request.rate_limited", 500: "server.error"}


class ApiProblemMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith(API_PREFIX) or response.status_code < 400:
            return response
        content_type = response.get("Content-Type", "")
        if content_type.startswith((CONTENT_TYPE, "application/json")):
            return response
        code = CODES.get(response.status_code, "server.error" if response.status_code >= 500 else "request.bad")
        problem = ApiProblem(code)
        problem.status = response.status_code
        converted = problem_response(problem, request)
        for header in ("Allow", "Retry-After"):
            if header in response:
                converted[header] = response[header]
        return converted
