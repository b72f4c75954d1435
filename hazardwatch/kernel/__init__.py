"""What edge and central share below their own code: config building blocks, MQTT client set-up,
pure geometry. Imports nothing of edge, central or models, so either side can depend on it."""
