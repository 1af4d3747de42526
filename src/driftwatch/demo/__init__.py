"""A demo retailer for driftwatch: see `driftwatch.demo.generator`."""
