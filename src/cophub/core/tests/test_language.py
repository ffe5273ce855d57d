"""Vietnamese first, whatever the phone's language; English when chosen."""

import pytest


@pytest.mark.django_db
def test_vietnamese_even_for_a_phone_set_to_english(client, units):
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert response["Content-Language"] == "vi"
    assert '<html lang="vi">' in response.content.decode()


@pytest.mark.django_db
def test_english_after_the_switch(client, units):
    client.get("/lang/en/?next=/")
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="vi")
    assert response["Content-Language"] == "en"
    client.get("/lang/vi/?next=/")
    assert client.get("/")["Content-Language"] == "vi"


def test_switch_refuses_foreign_redirects(client):
    response = client.get("/lang/en/?next=https://evil.example/")
    assert response.status_code == 302 and response["Location"] == "/"
