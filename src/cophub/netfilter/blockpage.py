"""The block page: what a pupil sees when a blocked name answers with the page's address.

Served by the resolver itself (it knows which rule blocked the name for this
device's group), over plain HTTP: a browser that asked for an https address
shows a certificate warning instead, as with every DNS filter. The page is in
Vietnamese, or in English when the browser prefers it, from the app's own
message catalogs (stdlib gettext: the resolver carries no Django).
"""

from __future__ import annotations

import asyncio
import gettext
import html
import logging
import socket
from pathlib import Path
from urllib.parse import urlencode

from . import engine, netsock

log = logging.getLogger("cophub.netfilter.blockpage")

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
MAX_HEAD = 8192
READ_SECONDS = 5


def _(text: str) -> str:
    """Marks texts for the catalog; translated per request in `render`."""
    return text


TEXTS = {
    "title": _("This page is blocked"),
    "lead": _("The school's network filter blocked %(name)s."),
    "rule": _("Rule"),
    "list": _("List"),
    "category": _("Category"),
    "group": _("Device group"),
    "mistake": _("This is a mistake"),
    "help": _("I need help"),
    "hotline": _("Call 111, the free child protection hotline, any time."),
    "not_blocked": _("%(name)s is not blocked for this device. Try again in a minute."),
    "schedule": _("At this time of day the internet is off for this group."),
}

CATEGORY_NAMES = {
    "harmful": _("Confirmed harmful (this hub)"), "adult": _("Adult content"), "gambling": _("Gambling"),
    "violence": _("Violence"), "self_harm": _("Self-harm and suicide"), "drugs": _("Drugs"),
    "social": _("Social networks"), "games": _("Games"), "video": _("Video and streaming"),
    "chat": _("Chat and dating"), "ads": _("Ads and tracking"), "malware": _("Malware and phishing"),
    "other": _("Other"), "service": _("Blocked service"), "schedule": _("Schedule"), "custom": _("The school's own rule"),
}


def _translator(accept_language: str):
    language = "vi"
    for part in accept_language.split(","):
        code = part.split(";")[0].strip().lower()
        if code.startswith("vi"):
            break
        if code.startswith("en"):
            language = "en"
            break
    if language == "en":
        return language, (lambda text: text)
    return language, gettext.translation("django", LOCALE_DIR, languages=["vi"], fallback=True).gettext


def render(resolver, name: str, client_address: str, accept_language: str = "") -> str:
    """The page's HTML for `name` as seen by the device at `client_address`."""
    lang, t = _translator(accept_language)
    policy = resolver.policy
    client = policy.client(client_address)
    group = client.group
    lowered = name.strip().rstrip(".").lower()
    decision, list_name = group.explain(lowered.encode("idna") if lowered else b"")
    esc = html.escape
    shown = esc(lowered)
    rows = []
    if decision.kind == engine.BLOCK:
        lead = t(TEXTS["lead"]) % {"name": f"<strong>{shown}</strong>"}
        rows.append((t(TEXTS["rule"]), decision.rule))
        if list_name:
            rows.append((t(TEXTS["list"]), list_name))
        if decision.category:
            rows.append((t(TEXTS["category"]), t(CATEGORY_NAMES.get(decision.category, decision.category))))
    else:
        lead = t(TEXTS["not_blocked"]) % {"name": f"<strong>{shown}</strong>"}
    if group.name:
        rows.append((t(TEXTS["group"]), group.name))
    hub = (policy.hub_url or "").rstrip("/")
    mistake = f"{hub}/netfilter/mistake/?" + urlencode({"name": lowered, "rule": decision.rule, "group": group.id})
    help_link = f"{hub}/" if hub else "tel:111"
    table = "".join(f"<tr><th>{esc(label)}</th><td>{esc(value)}</td></tr>" for label, value in rows)
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(t(TEXTS["title"]))}</title>
<style>body{{font-family:system-ui,"Noto Sans",sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}}
h1{{color:#8a1c1c}}th{{text-align:left;padding-right:1rem}}a.button{{display:inline-block;margin:1rem .5rem 0 0;padding:.6rem 1rem;border-radius:.4rem;background:#1d4f91;color:#fff;text-decoration:none}}</style>
</head><body><h1>{esc(t(TEXTS["title"]))}</h1><p>{lead}</p><table>{table}</table>
<p><a class="button" href="{esc(mistake)}">{esc(t(TEXTS["mistake"]))}</a><a class="button" href="{esc(help_link)}">{esc(t(TEXTS["help"]))}</a></p>
<p>{esc(t(TEXTS["hotline"]))} <a href="tel:111">111</a></p></body></html>"""


async def _serve(resolver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peer = writer.get_extra_info("peername")
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_SECONDS)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
        writer.close()
        return
    try:
        lines = head.decode("latin-1").split("\r\n")
        method = lines[0].split(" ", 1)[0]
        headers = {}
        for line in lines[1:]:
            key, _sep, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        host = headers.get("host", "").rsplit(":", 1)[0] if not headers.get("host", "").startswith("[") else ""
        body = render(resolver, host, peer[0], headers.get("accept-language", "")).encode("utf-8")
        status = "200 OK"
    except Exception:  # a hostile request gets a plain error, never a crash
        log.exception("block page failed")
        body, status, method = b"Bad request", "400 Bad Request", "GET"
    header = (
        f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\n\r\n"
    ).encode()
    writer.write(header + (b"" if method == "HEAD" else body))
    try:
        await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def start_block_page(resolver, hosts: list[str], port: int) -> list:
    servers = []
    for host in hosts:
        sock = netsock.listening(host, port, socket.SOCK_STREAM)
        servers.append(await asyncio.start_server(lambda r, w: _serve(resolver, r, w), sock=sock, limit=MAX_HEAD))
    return servers
