"""`cophub netfilter-lists`: the network filter's list and log work by hand (what the worker does on its schedule).

For an operator, a cron job on a hub without a worker, or a first set-up:
`--refresh` downloads the due subscriptions (all of them with `--force`),
`--compile` compiles the enabled lists and publishes, `--ingest` moves the
resolver's query-log files into the database, `--expire` applies the log
retention. With no option it publishes the policy again.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Refresh, compile and publish the network filter's block lists; ingest and expire its query log."

    def add_arguments(self, parser):
        parser.add_argument("--refresh", action="store_true", help="Download the subscriptions that are due.")
        parser.add_argument("--force", action="store_true", help="With --refresh: download every enabled subscription now.")
        parser.add_argument("--compile", action="store_true", help="Compile the enabled lists and publish.")
        parser.add_argument("--ingest", action="store_true", help="Ingest the resolver's query-log files.")
        parser.add_argument("--expire", action="store_true", help="Delete the query log past its retention.")

    def handle(self, *args, refresh, force, compile, ingest, expire, **options):
        from cophub.netfilter import services
        from cophub.netfilter.models import FilterList, ListSource

        if refresh:
            if force:
                lists = FilterList.objects.filter(source=ListSource.SUBSCRIPTION, enabled=True).exclude(url="").order_by("pk")
                for filter_list in lists:
                    outcome = services.refresh_subscription(filter_list.pk, force=True)
                    self.stdout.write(f"{filter_list.pk} {filter_list.name}: {outcome}")
            else:
                self.stdout.write(f"refreshed: {services.refresh_due_lists() or 'nothing due'}")
        if compile:
            compiled = services.compile_now()
            self.stdout.write(f"compiled {compiled.version}: {compiled.counts.get('entries', 0)} names, "
                              f"{compiled.counts.get('patterns', 0)} patterns")
        if ingest:
            self.stdout.write(f"ingested: {services.ingest_query_logs().as_dict()}")
        if expire:
            self.stdout.write(f"expired: {services.expire()}")
        if not (refresh or compile or ingest or expire):
            self.stdout.write(f"published {services.publish()}")
