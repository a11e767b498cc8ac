"""Run the shop's real servers, drive them with scripted shoppers, and check its deploy files."""
