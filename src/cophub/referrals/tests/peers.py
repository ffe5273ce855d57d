"""Real peers on loopback for referral tests and the outbox benchmark: a webhook receiver and an SMTP server.

Both behave like careful receivers: they verify what they are sent, keep the
first copy of each delivery (by Cophub-Event-Id, by Message-ID) and answer a
repeat as a success without keeping it twice. Modes let a test make them
hang mid-request, refuse connections, or answer errors for a while.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from cophub.providers.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, verify_signature


class WebhookReceiver:
    """An agency's endpoint. Modes: "up" (verify, keep once, 200), "error" (503), "hang" (keep, then hold the answer)."""

    def __init__(self, port: int = 0, secret: str = ""):
        self.secret = secret
        self.mode = "up"
        self.fail_first = 0
        self.requests: list[dict] = []
        self.accepted: list[dict] = []  # first copies only, in arrival order
        self.accepted_at: dict[str, float] = {}
        self.rejected: list[str] = []
        self.seen: set[str] = set()
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.hanging = threading.Event()
        self._port = port
        self.start()

    def start(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler())
        self.server.daemon_threads = True
        self._port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Close the listening socket: senders get "connection refused" until start()."""
        self.server.shutdown()
        self.server.server_close()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/cophub/referrals"

    def handle(self, headers: dict, body: bytes) -> tuple[int, bytes]:
        event_id = headers.get(EVENT_ID_HEADER, "")
        with self.lock:
            self.requests.append({"event_id": event_id, "at": time.time()})
            if self.mode == "error" or self.fail_first > 0:
                self.fail_first = max(0, self.fail_first - 1)
                return 503, b""
            if self.secret and not verify_signature(self.secret, headers.get(SIGNATURE_HEADER, ""), body):
                self.rejected.append(event_id)
                return 401, b""
            document = json.loads(body)
            first = event_id not in self.seen
            if first:
                self.seen.add(event_id)
                self.accepted.append(document)
                self.accepted_at[event_id] = time.time()
            hang = self.mode == "hang"
        if hang:
            # Kept, but the sender never hears back (a sender killed mid-delivery looks like this).
            self.hanging.set()
            self.release.wait(120)
        return 200, json.dumps({"reference": f"TICKET-{len(self.accepted)}" if first else "repeat"}).encode()

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, answer = receiver.handle(dict(self.headers), body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the sender went away while we held the answer

            def log_message(self, *args):
                pass

        return Handler


class _MailHandler:
    def __init__(self, server: "SmtpServer"):
        self.server = server

    async def handle_RCPT(self, server, session, envelope: Envelope, address, rcpt_options):
        if address.endswith("@refused.invalid"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope: Envelope):
        return self.server.take(envelope)


class SmtpServer:
    """aiosmtpd on loopback; keeps each message once by Message-ID; `fail_first` answers 451 at DATA."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.received = 0
        self.fail_first = 0
        self.seen: set[str] = set()
        self.lock = threading.Lock()
        self.port = _free_port()
        self.controller = Controller(_MailHandler(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def take(self, envelope: Envelope) -> str:
        with self.lock:
            self.received += 1
            if self.fail_first > 0:
                self.fail_first -= 1
                return "451 4.3.0 try again later"
            message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
            message_id = message["Message-ID"] or ""
            if message_id not in self.seen:
                self.seen.add(message_id)
                message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
                self.messages.append(message)
        return "250 Message accepted for delivery"

    def stop(self) -> None:
        self.controller.stop()

    def settings(self) -> dict:
        return {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": self.port,
                "EMAIL_USE_TLS": False, "EMAIL_USE_SSL": False, "EMAIL_HOST_USER": "", "EMAIL_HOST_PASSWORD": "", "EMAIL_TIMEOUT": 10}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
