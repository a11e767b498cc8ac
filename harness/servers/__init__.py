"""Start and stop the real servers tests and operators run the shop on."""
