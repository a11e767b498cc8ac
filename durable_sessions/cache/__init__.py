"""Guard the session cache: Redis that fails is skipped, and never serves what it failed to change.

Redis is the fast copy of the sessions; PostgreSQL is the truth. Two things can
go wrong when Redis is unreachable, and this package handles both:

* **Every request paying a timeout.** A circuit breaker per process
  (``breaker.py``) counts consecutive failures; after
  ``DURABLE_SESSIONS_BREAKER_FAIL_MAX`` it opens and the cache answers "miss"
  at once (sessions come from PostgreSQL). Every
  ``DURABLE_SESSIONS_BREAKER_RESET_TIMEOUT`` seconds one request probes Redis.
* **Resurrection.** Redis can be unreachable while still holding its data
  (paused, partitioned). A session ended or changed meanwhile must not come back
  from the old copy. Every SET or DELETE that fails, or is skipped while the
  breaker is open, is journaled in PostgreSQL (``journal.py``). A probe closes
  the breaker only after deleting every journaled key from Redis. A watcher
  thread in each process opens its breaker when the journal is not empty, so a
  process that never saw the outage does not read a stale copy either.

Under Sentinel, a write also waits for a replica's acknowledgement
(``replication.py``); ``backend.py`` is the cache API the store calls. On a
Redis Cluster (``cluster.py`` connects django-redis to it), ``shards.py``
keeps a breaker per primary and the journal per slot, so one primary out of
reach costs only its own keys their cache.
"""
