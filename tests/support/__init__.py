"""What only the tests need: CAP samples, the dashboard stack, a tile server (the shared harness is
hazardwatch/harness/)."""
