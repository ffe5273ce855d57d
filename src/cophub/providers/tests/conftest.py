"""Fixtures for the provider API: a provider at the district with live and sandbox keys."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from cophub.providers import keys
from cophub.providers.models import Provider

WRITE = ["reports:write"]


class ApiClient:
    """The Django test client speaking the API with real Authorization headers."""

    def __init__(self, token: str):
        self.client = Client()
        self.token = token

    def headers(self, extra=None) -> dict:
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    def post(self, path: str, body=None, *, idempotency_key: str | None = None, **kwargs):
        extra = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        if "data" in kwargs:  # multipart
            return self.client.post(path, headers=self.headers(extra), **kwargs)
        return self.client.post(path, data=json.dumps(body if body is not None else {}), content_type="application/json", headers=self.headers(extra))

    def get(self, path: str):
        return self.client.get(path, headers=self.headers())


@pytest.fixture
def provider(units):
    return Provider.objects.create(name="Nền tảng A", contact_email="api@a.example", unit=units["district"])


@pytest.fixture
def other_provider(units):
    return Provider.objects.create(name="Nền tảng B", unit=units["school_c"])


@pytest.fixture
def live(provider):
    return ApiClient(keys.issue_key(provider, WRITE)[1])


@pytest.fixture
def sandbox(provider):
    return ApiClient(keys.issue_key(provider, WRITE, sandbox=True)[1])


@pytest.fixture
def other(other_provider):
    return ApiClient(keys.issue_key(other_provider, WRITE)[1])


def minimal_report(**extra) -> dict:
    return {"incident_type": "grooming", "incident_time": "2026-11-20T21:15:00+07:00", **extra}
