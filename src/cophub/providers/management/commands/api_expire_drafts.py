"""`cophub api-expire-drafts`: remove provider drafts past COPHUB_API_DRAFT_HOURS, and old idempotency records."""

from django.core.management.base import BaseCommand

from cophub.providers.idempotency import forget_old
from cophub.providers.services import expire_drafts


class Command(BaseCommand):
    help = "Delete unfinished provider reports past their time, and idempotency records older than 24 hours."

    def handle(self, *args, **options):
        drafts = expire_drafts()
        records = forget_old()
        self.stdout.write(f"expired drafts: {drafts}, idempotency records removed: {records}")
