"""End to end in a real browser, as a child and a case handler would use cophub.

Playwright drives Debian's Chromium (never a downloaded browser) at a phone's
360×740 viewport against a real `cophub serve` with the demo data, on the
database the suite runs on. Screenshots go to test-artifacts/browser/.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image, ImageDraw

from cophub.core.livehub import LiveHub

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[4] / "test-artifacts" / "browser"
PHONE = {"width": 360, "height": 740}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def _require_chromium() -> None:
    if os.path.exists(CHROMIUM):
        return
    message = "Debian's chromium is not installed: run scripts/setup-system as root"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def hub():
    with LiveHub() as live:
        yield live


@pytest.fixture(scope="module")
def browser():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def screenshot(request):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    counter = iter(range(1, 100))

    def take(page, name: str) -> None:
        test = re.sub(r"[^\w-]+", "_", request.node.name)
        page.screenshot(path=str(ARTIFACTS / f"{test}-{next(counter):02d}-{name}.png"), full_page=True)

    return take


def picture(path: Path) -> Path:
    """A harmless drawn 'screenshot of a chat' to upload."""
    image = Image.new("RGB", (640, 480), (245, 245, 250))
    draw = ImageDraw.Draw(image)
    for row in range(6):
        top = 30 + row * 70
        left = 40 if row % 2 else 220
        draw.rounded_rectangle((left, top, left + 380, top + 50), 14, fill=(0, 132, 255) if row % 2 else (230, 230, 235))
    image.save(path, format="PNG")
    return path


def new_page(browser, *, javascript: bool = True):
    context = browser.new_context(viewport=PHONE, java_script_enabled=javascript, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def choose_language(page, hub, lang: str, then: str = "/") -> None:
    page.goto(f"{hub.url}/lang/{lang}/?next={then}")
    assert page.locator("html").get_attribute("lang") == lang


def file_child_report(page, hub, lang: str, description: str, image: Path | None, shot) -> tuple[str, str]:
    choose_language(page, hub, lang)
    shot(page, "home")
    page.click("a.big-choice.child")
    page.check("#category-grooming")
    page.check("#age-9_12")
    shot(page, "step1")
    page.click("button[name=next]")
    page.fill("input[name=where_app]", "Roblox")
    shot(page, "step2")
    page.click("button[name=next]")
    page.fill("textarea[name=description]", description)
    if image is not None:
        page.set_input_files("#id_files", str(image))
    shot(page, "step3")
    page.click("button[name=next]")
    code = page.inner_text("#receipt-code").strip()
    phrase = page.inner_text("#receipt-phrase").strip()
    shot(page, "receipt")
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}", code)
    assert len(phrase.split()) == 4
    return code, phrase


def totp_now(secret: str) -> str:
    from django_otp.oath import totp

    return f"{totp(base64.b32decode(secret)):06d}"


def log_in(page, hub, username: str, lang: str) -> None:
    choose_language(page, hub, lang, then="/console/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", hub.logins[username])
    page.click("form[action$='/console/login/'] button[type=submit]")
    if "/two-factor/" in page.url:
        enter_code(page, hub.totp[username])
    assert urlsplit(page.url).path == "/console/", page.url


def enter_code(page, secret: str) -> None:
    """Type the current TOTP code; a code already used (by an earlier login in
    the same 30-second step) is refused, so then wait for the next step."""
    for _ in range(2):
        page.fill("input[name=otp_token]", totp_now(secret))
        page.locator("input[name=otp_token]").press("Enter")
        page.wait_for_load_state()
        if "/two-factor/" not in page.url:
            return
        page.wait_for_timeout((30 - time.time() % 30 + 1) * 1000)
    pytest.fail("the two-factor code was refused twice")


def open_case(page, hub, code: str) -> None:
    page.goto(f"{hub.url}/console/?state=all&q={code}")
    links = page.locator("table.queue a[href*='/console/cases/']")
    assert links.count() == 1, "the new report's case is in the handler's queue"
    links.first.click()


def wait_for_preview(page, hub, shot) -> None:
    """The preview is made by the task worker: reload until it is there."""
    for _ in range(40):
        if page.locator("img[src*='/preview/']").count():
            break
        page.wait_for_timeout(500)
        page.reload()
    preview = page.locator("img[src*='/preview/']").first
    preview.scroll_into_view_if_needed()
    assert preview.evaluate("img => img.complete && img.naturalWidth > 0")
    shot(page, "case-preview")
    response = page.request.get(hub.url + preview.get_attribute("src"))
    assert response.ok
    image = Image.open(io.BytesIO(response.body()))
    assert image.mode == "L", "the default preview is grey"
    assert max(image.size) <= 400


def move_to(page, state: str, reason: str) -> None:
    form = page.locator("form[action$='/transition/']")
    form.locator("select[name=target]").select_option(state)
    form.locator("textarea[name=reason], input[name=reason]").fill(reason)
    form.locator("button[type=submit]").click()
    assert page.locator(f".state-pill.state-{state}, [data-state='{state}']").count() or state in page.content()


def read_status(page, hub, code: str, phrase: str, shot) -> str:
    page.goto(f"{hub.url}/track/")
    page.fill("input[name=code]", code.lower().replace("-", ""))
    page.fill("input[name=phrase]", phrase)
    page.click("form[action$='/track/'] button[type=submit]")
    shot(page, "status")
    return page.inner_text("main")


TEXTS = {
    "vi": {
        "report": "Có người lạ trên Roblox hỏi em ở đâu và bảo em đừng kể với bố mẹ.",
        "message": "Cảm ơn em. Cô tư vấn đã gặp bố mẹ em và tài khoản kia đã bị khoá.",
        "done": "Chúng tôi đã xử lý xong phản ánh",
    },
    "en": {
        "report": "A stranger on Roblox asked where I live and told me not to tell my parents.",
        "message": "Thank you. The counsellor met your parents and that account has been closed.",
        "done": "We have finished dealing with your report.",
    },
}


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_child_reports_and_sees_the_handlers_message(hub, browser, screenshot, tmp_path, lang):
    texts = TEXTS[lang]
    child = new_page(browser)
    code, phrase = file_child_report(child, hub, lang, texts["report"], picture(tmp_path / "chat.png"), screenshot)

    handler = new_page(browser)
    log_in(handler, hub, "handler", lang)
    open_case(handler, hub, code)
    assert texts["report"] in handler.inner_text("main")
    assert "P2" in handler.inner_text("main")
    wait_for_preview(handler, hub, screenshot)
    handler.click("button[name=assign_to_me]")
    assert "handler" in handler.inner_text("main")
    for state in ("triaged", "assessing"):
        move_to(handler, state, "grooming: Roblox account")
    message_form = handler.locator("form[action$='/message/']")
    message_form.locator("textarea[name=text]").fill(texts["message"])
    message_form.locator("button[type=submit]").click()
    move_to(handler, "resolved", "account closed, parents informed")
    screenshot(handler, "case-resolved")
    handler.context.close()

    status = read_status(child, hub, code, phrase, screenshot)
    assert texts["message"] in status
    assert texts["done"] in status
    assert "handler" not in status, "staff names never reach the reporter"
    child.context.close()


def test_report_without_javascript(hub, browser, screenshot, tmp_path):
    page = new_page(browser, javascript=False)
    code, phrase = file_child_report(page, hub, "vi", "Một nhóm trên Zalo chế ảnh của em để trêu.", picture(tmp_path / "p.png"), screenshot)
    status = read_status(page, hub, code, phrase, screenshot)
    assert code in status
    page.goto(hub.url + "/")
    page.click(".danger-bar button[type=submit]")
    screenshot(page, "danger")
    assert page.locator("a[href='tel:111']").count() and page.locator("a[href='tel:113']").count()
    page.context.close()
