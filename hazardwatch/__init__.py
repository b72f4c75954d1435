"""hazardwatch: edge hazard detection on camera feeds and a central aggregator.

Sub-packages: `hazardwatch.contract` (the MQTT wire contract, dependency-light, imported by both
sides), `hazardwatch.edge`, `hazardwatch.central`, `hazardwatch.models`.
"""

__version__ = "0.1.0"
