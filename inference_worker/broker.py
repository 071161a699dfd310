"""Broker settings derived from the one hard time limit, shared by the portal's Celery app and the
inference workers' (torch-free): they consume from one Redis, and a consumer restores another's
unacknowledged messages after its own visibility timeout."""


def transport_options(hard_limit_s: int) -> dict:
    """Visibility timeout = 1.1 x the hard limit; short timeouts (tests) are swept for often
    enough to matter, and the sweep's lock, which a worker killed mid-sweep keeps until it
    expires, never outlives the timeout."""
    visibility_s = int(hard_limit_s * 1.1)
    return {
        "visibility_timeout": visibility_s,
        "unacked_restore_interval": min(10, max(1, visibility_s // 10)),
        "unacked_restore_throttle": 1 if visibility_s < 600 else 10,
        "unacked_mutex_expire": min(300, visibility_s),
    }
