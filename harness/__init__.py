"""Start and stop the real servers the shop runs on, for tests and operators."""
