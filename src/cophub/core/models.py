from django.db import models


class WorkerHeartbeat(models.Model):
    """A task worker's sign of life, written every few seconds.

    /healthz reads it; a worker whose heartbeat is stale is dead, and the
    tasks it had claimed are put back in the queue by the next worker.
    """

    worker_id = models.CharField(max_length=64, primary_key=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)
