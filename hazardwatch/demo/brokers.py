"""The demo's MQTT broker: a private Mosquitto when installed, else amqtt (pure Python, MQTT 3.1.1)."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from hazardwatch.demo.supervisor import Demo, DemoError
from hazardwatch.procs import HOST, free_port, mosquitto_binary, mosquitto_config, port_open


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    protocol: str = "5"  # "3.1.1" for amqtt


def start_broker(demo: Demo, kind: str) -> tuple[Broker, str]:
    """The embedded broker: Mosquitto when installed (or asked for), else amqtt."""
    if kind == "mosquitto" or (kind == "auto" and mosquitto_binary()):
        host, port = start_mosquitto(demo)
        return Broker(host, port), "embedded Mosquitto"
    return start_amqtt(demo), "embedded amqtt, MQTT 3.1.1"


def start_amqtt(demo: Demo) -> Broker:
    """A private amqtt broker on a free loopback port (the fallback when Mosquitto is not installed)."""
    binary = shutil.which("amqtt") or str(Path(sys.executable).with_name("amqtt"))
    if not Path(binary).exists():
        raise DemoError(
            "the demo needs an MQTT broker and neither Mosquitto nor amqtt is installed: run "
            "`.venv/bin/pip install -e '.[edge,demo]'` (or `sudo apt-get install mosquitto`), "
            "or pass --broker HOST:PORT"
        )
    port = free_port()
    conf = demo.workdir / "amqtt.yaml"
    conf.write_text(
        yaml.safe_dump(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{port}"}},
                "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
            }
        )
    )
    child = demo.spawn("amqtt", [binary, "-c", str(conf)])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and child.alive():
        if port_open(HOST, port):
            return Broker(HOST, port, "3.1.1")
        time.sleep(0.05)
    raise DemoError(f"the embedded amqtt broker did not start; its log says: {child.log_tail().strip()[-500:]}")


def start_mosquitto(demo: Demo) -> tuple[str, int]:
    """A private Mosquitto on a free loopback port, with a generated config."""
    binary = mosquitto_binary()
    if binary is None:
        raise DemoError(
            "Mosquitto is not installed: run `sudo apt-get install mosquitto` or use --embedded-broker amqtt"
        )
    last_error = ""
    for _ in range(3):  # a port taken between choosing and binding: choose again
        port = free_port()
        conf = demo.workdir / "mosquitto.conf"
        conf.write_text(mosquitto_config(port))  # loopback only, for one demo run; no persistence
        child = demo.spawn("mosquitto", [binary, "-c", str(conf)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and child.alive():
            if port_open(HOST, port):
                return HOST, port
            time.sleep(0.05)
        last_error = child.log_tail()
        child.stop()
        demo.children.remove(child)
    raise DemoError(f"the embedded Mosquitto did not start; its log says: {last_error.strip()[-500:]}")


def parse_broker(text: str) -> tuple[str, int]:
    """'HOST:PORT' or 'HOST' (port 1883)."""
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "1883")
    if not host or not port.isdigit():
        raise DemoError(f"--broker {text!r} is not HOST:PORT: pass for example --broker 127.0.0.1:1883")
    return host, int(port)
