"""`cophub dns`: the school network filter's resolver (docs/netfilter.md).

Publishes a fresh snapshot of the policy (compiling the lists first when no
compiled table exists yet), then replaces itself with the lean resolver
(`python -m cophub.netfilter.resolver`), which imports no Django and never
touches the database: its memory is the lists and the cache.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

RESOLVER_MODULE = "cophub.netfilter.resolver"


def resolver_argv(state_dir: Path, hosts: list[str], port: int, block_page_port: int | None) -> list[str]:
    """The command line the resolver is started with (exactly the options it accepts)."""
    argv = [sys.executable, "-m", RESOLVER_MODULE, "--state-dir", str(state_dir)]
    for host in hosts:
        argv += ["--host", host]
    argv += ["--port", str(port)]
    if block_page_port is not None:
        argv += ["--block-page-port", str(block_page_port)]
    return argv


def exec_resolver(argv: list[str]) -> None:
    """Replace this process with the resolver (the database connections are closed first: it never uses them)."""
    connections.close_all()
    os.execv(argv[0], argv)


class Command(BaseCommand):
    help = "Run the school network filter: a filtering DNS resolver fed by the console's policy and block lists."

    def add_arguments(self, parser):
        parser.add_argument("--host", action="append", dest="hosts", metavar="ADDRESS",
                            help='Address to listen on; repeat for several (default "::", both IPv6 and IPv4).')
        parser.add_argument("--port", type=int, default=53, help="DNS port (default 53).")
        parser.add_argument("--block-page-port", type=int, default=None,
                            help='Port of the block page (HTTP) for the "page" answer mode; off when not given.')
        parser.add_argument("--state-dir", default=None,
                            help="The state folder shared with the hub (default COPHUB_NETFILTER_DIR).")

    def handle(self, *args, hosts, port, block_page_port, state_dir, **options):
        if not 0 < port < 65536:
            raise CommandError("--port must be between 1 and 65535")
        if block_page_port is not None and not 0 < block_page_port < 65536:
            raise CommandError("--block-page-port must be between 1 and 65535")
        if state_dir:
            settings.COPHUB_NETFILTER_DIR = Path(state_dir).resolve()
        from cophub.netfilter import services
        from cophub.orgs.services import home_unit

        directory = services.state_dir()
        had_hub_list = services.FilterList.objects.filter(source=services.ListSource.HUB).exists()
        unit = home_unit()
        if unit is not None:
            services.ensure_hub_list(unit)
        if services.current_compiled() is None or not had_hub_list and unit is not None:
            compiled = services.compile_now()
            self.stdout.write(f"compiled the block lists: {compiled.version}")
            version = (services.published_policy() or {}).get("version", "")
        else:
            version = services.publish()
        self.stdout.write(f"published policy {version} to {directory}")
        argv = resolver_argv(directory, hosts or ["::"], port, block_page_port)
        self.stdout.flush()
        sys.stderr.flush()
        exec_resolver(argv)
