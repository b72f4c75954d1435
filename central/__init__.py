"""Central aggregator (issue 4). Installed as `hazardwatch.central`."""
