"""Request-size limits and security headers for every response."""

from __future__ import annotations

from django.conf import settings
from django.middleware.locale import LocaleMiddleware
from django.utils import translation


class RequestSizeLimitMiddleware:
    """Refuse bodies over the limit before anything reads them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.COPHUB_MAX_REQUEST_BYTES:
            from .views import request_too_large

            return request_too_large(request)
        return self.get_response(request)


CSP = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data:",
        "style-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class SecurityHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()")
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if not request.path.startswith(settings.STATIC_URL):
            # Reports, receipts and case pages must not linger in shared caches
            # or a shared phone's back button history.
            response.headers.setdefault("Cache-Control", "no-store")
        return response


class CookieLocaleMiddleware(LocaleMiddleware):
    """Vietnamese unless the person chose English with the switch.

    Django's LocaleMiddleware also follows the browser's Accept-Language;
    many Vietnamese children's phones are set to English, and the programme
    asks for Vietnamese first, so only the language cookie counts here.
    """

    def process_request(self, request):
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
        language = chosen if chosen in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
