"""Background work of the network filter (run by `cophub worker`); each task is safe to run twice.

`schedule()` is on COPHUB_SCHEDULE: it runs every minute in each worker's
heartbeat thread and only enqueues (no network, no file parsing there),
and only what is not already waiting in the queue.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.utils import timezone
from django_tasks import task

logger = logging.getLogger(__name__)


@task()
def refresh_lists() -> dict:
    """Download every subscription that is due by its `refresh_hours`."""
    from . import services

    outcome = services.refresh_due_lists()
    if outcome:
        logger.info("netfilter lists refreshed: %s", outcome)
    return outcome


@task()
def refresh_list(list_id: int) -> str:
    """Download one subscription now (a new list, or "refresh" in the console), due or not."""
    from . import services

    return services.refresh_subscription(list_id, force=True)


@task()
def compile_rules() -> str:
    """Compile the enabled lists into a new table and publish it."""
    from . import services

    return services.compile_now().version


compile_lists_task = compile_rules


@task()
def ingest_query_logs() -> dict:
    """Move the resolver's query-log files into the database, then the counsellor check."""
    from . import services

    return services.ingest_query_logs().as_dict()


@task()
def expire() -> dict:
    """Query-log retention; publish again when an unblock in the snapshot has run out."""
    from . import services

    return services.expire()


def _has_log_files() -> bool:
    from . import services, snapshot

    log_dir = services.state_dir() / snapshot.LOG
    return any(log_dir.glob(services.LOG_GLOB))


def _hub_list_stale() -> bool:
    """The hub's confirmed list changed since the last compile (three small queries)."""
    from . import services
    from .models import FilterList, ListSource

    if not FilterList.objects.filter(source=ListSource.HUB, enabled=True).exists():
        return False
    compiled = services.current_compiled()
    return compiled is None or compiled.get("hub_tag") != services._hub_tag()


def _unblock_ran_out() -> bool:
    from . import services

    now = timezone.now()
    policy = services.published_policy() or {}
    for group in policy.get("groups", []):
        for unblock in group.get("unblocks", []):
            try:
                if datetime.fromisoformat(unblock["until"]) <= now:
                    return True
            except (KeyError, TypeError, ValueError):
                return True
    return False


def _log_past_retention() -> bool:
    """One indexed look: is any query-log row older than the retention?"""
    from . import services
    from .models import QueryLog

    days = max(1, services.settings_row().log_retention_days)
    return QueryLog.objects.filter(ts__lt=timezone.now() - timedelta(days=days)).exists()


def schedule() -> dict[str, bool]:
    """Enqueue what is due: ingestion when there are log files, list refreshes, a compile when the hub's list changed,
    the retention sweep when some of the log is past it or an unblock has run out. Each at most once while one waits."""
    from . import services

    done: dict[str, bool] = {}
    if _has_log_files():
        done["ingest"] = services._enqueue_once(ingest_query_logs)
    if services._due_subscriptions(timezone.now()):
        done["refresh"] = services._enqueue_once(refresh_lists)
    if _hub_list_stale():
        done["compile"] = services._enqueue_once(compile_rules)
    if _unblock_ran_out() or _log_past_retention():
        done["expire"] = services._enqueue_once(expire)
    return {key: value for key, value in done.items() if value}
