"""Test support: private brokers, RTSP servers and prepared media, so tests never touch shared services."""
