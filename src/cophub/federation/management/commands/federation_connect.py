"""`cophub federation-connect`: give this hub an upstream hub (its live API key there) and register the webhook receiver."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from cophub.client import CophubError
from cophub.federation import services


class Command(BaseCommand):
    help = "Connect this hub to an upstream hub: store its address and API key (sealed) and register this hub's webhook receiver there."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="A name for the upstream hub (unique on this hub).")
        parser.add_argument("--url", required=True, help="The upstream hub's address, e.g. https://district.example")
        parser.add_argument("--key", required=True, help="The live API key the upstream issued to this hub.")
        parser.add_argument("--public-url", default=None, help="This hub's public address (default: COPHUB_PUBLIC_URL).")
        parser.add_argument("--no-webhook", action="store_true", help="Do not register the webhook receiver.")

    def handle(self, *args, **options):
        try:
            upstream = services.connect(options["name"], options["url"], options["key"], options["public_url"],
                                        register_webhook=not options["no_webhook"])
        except (CophubError, ValueError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"upstream {upstream.pk}: {upstream.name} {upstream.base_url} webhook {upstream.webhook_id or '-'}")
