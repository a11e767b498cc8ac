"""Drive the shop with scripted shoppers: fault scenarios, benchmarks and profiles."""
