"""Keep sessions in Redis first and PostgreSQL always, so that any instance serves any request."""
