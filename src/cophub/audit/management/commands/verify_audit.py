from django.core.management.base import BaseCommand, CommandError

from cophub.audit.services import verify


class Command(BaseCommand):
    help = "Verify the audit log's hash chain and report the first broken link."

    def handle(self, *args, **options):
        result = verify()
        if result.ok:
            self.stdout.write(self.style.SUCCESS(f"audit log intact: {result.checked} events verified"))
            return
        raise CommandError(f"audit log broken at event #{result.broken_seq}: {result.reason} ({result.checked} events verified before it)")
