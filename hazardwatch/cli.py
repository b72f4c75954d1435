"""The `hazardwatch` command. Subcommands import their side lazily, so `central` never loads the
edge runtime (OpenCV, ONNX Runtime) and a config check works on a box without them."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import signal
import sys
from pathlib import Path

from hazardwatch.configfile import ConfigError
from hazardwatch.manifest import ManifestError

SCHEMA_DIR = Path("configs/schemas")


def _edge(args: argparse.Namespace) -> int:
    from hazardwatch import sdnotify
    from hazardwatch.configfile import check_found, load_config
    from hazardwatch.edge.config import EdgeConfig, model_problems
    from hazardwatch.edge.engine import EdgeEngine, EngineSetupError
    from hazardwatch.edge.http_api import start_http
    from hazardwatch.edge.publish.outbox import OutboxError
    from hazardwatch.edge.sources import SourceError

    cfg = load_config(args.config, EdgeConfig)
    check_found(args.config, model_problems(cfg))
    try:
        engine = EdgeEngine(cfg)
    except (EngineSetupError, OutboxError, SourceError) as exc:
        raise SystemExit(f"error: {exc}") from None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runner, port = await start_http(engine)
        print(f"edge {cfg.edge_id}: {len(engine.cameras)} cameras, http://{cfg.http.host}:{port}/", flush=True)
        sdnotify.notify(f"READY=1\nSTATUS=patrolling {len(engine.cameras)} cameras")
        watchdog = asyncio.create_task(sdnotify.watchdog(stop))
        try:
            await engine.run(stop)
        finally:
            sdnotify.notify("STOPPING=1")
            watchdog.cancel()
            await runner.cleanup()

    asyncio.run(main())
    return 0


def _central(args: argparse.Namespace) -> int:
    from hazardwatch.central.config import CentralConfig
    from hazardwatch.central.service import CentralService
    from hazardwatch.central.store.database import StoreError
    from hazardwatch.configfile import load_config

    if args.config is None:
        raise SystemExit("error: hazardwatch central needs --config FILE")
    cfg = load_config(args.config, CentralConfig)
    try:
        service = CentralService(cfg)
    except (StoreError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None

    async def main() -> None:
        stop = asyncio.Event()
        ready = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.create_task(service.run(stop, ready))
        await asyncio.wait([task, asyncio.create_task(ready.wait())], return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set():
            print(f"central {cfg.instance_id}: http://{cfg.http.host}:{service.http_port}/", flush=True)
        await task

    asyncio.run(main())
    return 0


def _config_check(args: argparse.Namespace) -> int:
    from hazardwatch.configfile import check_found, load_config, read_yaml
    from hazardwatch.edge.config import EdgeConfig, model_problems, source_problems

    path = Path(args.file)
    doc, _ = read_yaml(path)
    if "edge_id" not in doc:
        from hazardwatch.central.config import CentralConfig

        central = load_config(path, CentralConfig)
        print(f"{path}: ok (central {central.instance_id}, {len(central.receivers)} receivers)")
        return 0
    cfg = load_config(path, EdgeConfig)
    check_found(path, model_problems(cfg) + source_problems(cfg))
    print(f"{path}: ok (edge {cfg.edge_id}, {len(cfg.cameras)} cameras, {len(cfg.models)} models)")
    return 0


def _schemas_export(args: argparse.Namespace) -> int:
    from hazardwatch.central.config import CentralConfig
    from hazardwatch.contract.messages import contract_json_schema
    from hazardwatch.edge.config import EdgeConfig
    from hazardwatch.manifest import ModelManifest

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    docs = {
        "edge-config.schema.json": _titled(EdgeConfig.model_json_schema(), "hazardwatch edge config"),
        "central-config.schema.json": _titled(CentralConfig.model_json_schema(), "hazardwatch central config"),
        "model-manifest.schema.json": _titled(ModelManifest.model_json_schema(), "hazardwatch model manifest"),
        "mqtt-contract.schema.json": contract_json_schema(),
    }
    for name, schema in docs.items():
        (out / name).write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(out / name)
    return 0


def _demo_frames(args: argparse.Namespace) -> int:
    from hazardwatch.edge.demo_scene import write_scene

    paths = write_scene(Path(args.out))
    print(f"wrote {len(paths)} frames to {args.out}")
    return 0


def _titled(schema: dict, title: str) -> dict:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": title}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hazardwatch", description=__doc__)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)

    edge = sub.add_parser("edge", help="run the edge worker")
    edge.add_argument("--config", required=True, type=Path, help="edge YAML config")
    edge.set_defaults(func=_edge)

    central = sub.add_parser("central", help="run the central aggregator (or: central export-dataset ...)")
    central.add_argument("--config", type=Path, help="central YAML config (required)")
    central.set_defaults(func=_central)
    from hazardwatch.central.cli import register as register_central  # argparse only
    from hazardwatch.models.dataset_cli import add_parser as add_export_dataset  # needs OpenCV only when run

    add_export_dataset(register_central(central))

    config = sub.add_parser("config", help="work with config files")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a config file and the models it names")
    check.add_argument("file", type=Path)
    check.set_defaults(func=_config_check)

    schemas = sub.add_parser("schemas", help="JSON Schemas of configs, manifests and the MQTT contract")
    schemas_sub = schemas.add_subparsers(dest="schemas_command", required=True)
    export = schemas_sub.add_parser("export", help="write the schemas (default: configs/schemas)")
    export.add_argument("--out", default=str(SCHEMA_DIR))
    export.set_defaults(func=_schemas_export)
    demo = sub.add_parser("demo-frames", help="render the project's own demo scene (a hillside fire)")
    demo.add_argument("--out", default="var/demo-frames", help="folder for the frames")
    demo.set_defaults(func=_demo_frames)

    from hazardwatch.demo import register as register_demo  # argparse only; runs its parts as processes
    from hazardwatch.models.cli import register as register_models  # argparse only; torch stays lazy

    register_demo(sub)
    register_models(sub)
    return parser


def _os_error_sentence(exc: OSError) -> str:
    """One sentence with what to do, for the failures a field engineer meets first."""
    if exc.errno == errno.EADDRINUSE:
        return f"{exc.strerror or exc}: stop the program using that port or change the port in the config"
    if isinstance(exc, ConnectionRefusedError) or exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH):
        return f"could not connect ({exc}): check that the broker or database runs and its host and port in the config"
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename or exc}: no such file: check the path (relative paths are relative to the config file)"
    if isinstance(exc, PermissionError):
        return f"{exc.filename or exc}: permission denied: run as a user that may read and write it"
    return f"{exc}: see the log above"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ConfigError as exc:
        if [p.reason for p in exc.problems] == ["file not found"]:
            print(f"error: config file {exc.path} not found: pass the path of an existing one "
                  "(examples in configs/)", file=sys.stderr)
        else:
            print(f"config error:\n{exc}", file=sys.stderr)
        return 2
    except ManifestError as exc:
        print(f"model error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {_os_error_sentence(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
