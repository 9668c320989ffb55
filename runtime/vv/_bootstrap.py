"""``vv-start``: load a service class, connect it, serve until SIGTERM, then drain.

Every setting comes from its option, else its environment variable, else a
default (``vv._config.START_OPTIONS``). Exit status: 0 after a clean stop,
1 when Redis or PostgreSQL stayed unreachable or the service failed to
start, 2 for an invalid setting or a service that cannot be loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from vv import _log
from vv._config import START_OPTIONS, TransportSettings, resolve_start_options
from vv._errors import ConfigError, TransportError, VVError
from vv._service import Service, ServiceRunner, class_component_name
from vv._transport import Backoff, redacted, wait_until_reachable

__all__ = ["load_service_class", "main"]

logger = logging.getLogger(__name__)

EXIT_UNREACHABLE = 1
EXIT_CONFIG = 2
# In-flight work gets this long after SIGTERM; Docker's default grace period
# before SIGKILL is 10 s, Kubernetes' 30 s.
DRAIN_TIMEOUT_S = 8.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vv-start",
        description="Run one vvkit service until SIGTERM or SIGINT, then drain its in-flight work.",
        epilog="Each option falls back to the environment variable shown, then to the default.",
    )
    for option in START_OPTIONS:
        default = "" if option.default is None else f", default {option.default}"
        choices = f"one of {', '.join(option.choices)}; " if option.choices else ""
        help_text = f"{option.help} ({choices}env {option.env}{default})"
        if option.flag:
            parser.add_argument(option.option, dest=option.name, action="store_const", const=True,
                                default=None, help=help_text)
        else:
            parser.add_argument(option.option, dest=option.name, default=None, help=help_text,
                                metavar=option.env, type=option.cast)
    return parser


# --- loading the class -------------------------------------------------


def load_service_class(spec: str) -> tuple[type[Service], str | None, str | None]:
    """Load the class named by ``spec``; return it with the app and component its location implies.

    ``spec`` is ``module:Class`` or a component folder such as
    ``services/shop/machine`` (its ``service.py`` must define exactly one
    ``Service`` subclass). For a folder, the app is the parent folder's name
    and the component the folder's name.
    """
    if ":" in spec and not Path(spec).exists():
        return _load_from_module(spec), None, None
    folder = Path(spec)
    if not folder.exists() and Path("services", spec).exists():
        folder = Path("services", spec)
    path = folder / "service.py" if folder.is_dir() else folder
    if not path.is_file():
        raise ConfigError(f"service {spec!r} not found: give a component folder with a service.py, or module:Class")
    path = path.resolve()
    return _load_from_file(path), path.parent.parent.name, path.parent.name


def _load_from_module(spec: str) -> type[Service]:
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r} for service {spec!r}: {exc}; "
                          "check --library (LIBRARY)") from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Service)):
        raise ConfigError(f"{spec!r} is not a vv.Service subclass")
    return cls


def _load_from_file(path: Path) -> type[Service]:
    # Sibling modules of service.py must be importable, as in the container image.
    sys.path.insert(0, str(path.parent))
    module_name = f"vv_component_{path.parent.name.replace('-', '_')}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)
    classes = [value for value in vars(module).values()
               if isinstance(value, type) and issubclass(value, Service) and value.__module__ == module_name]
    if len(classes) != 1:
        names = ", ".join(cls.__name__ for cls in classes) or "none"
        raise ConfigError(f"{path} must define exactly one vv.Service subclass, found: {names}")
    return classes[0]


# --- running -----------------------------------------------------------


def _create_service(options: dict[str, Any]) -> Service:
    if not options["service"]:
        raise ConfigError("no service given: pass --service or set SERVICE_NAME")
    for folder in (options["library"] or "").split(os.pathsep):
        if folder:
            sys.path.insert(0, folder)
    cls, folder_app, folder_component = load_service_class(options["service"])
    app = options["app"] or folder_app
    if not app:
        raise ConfigError(f"no app given for {options['service']!r}: pass --app or set APP")
    component = options["component"] or folder_component or class_component_name(cls)
    settings = TransportSettings.from_env(max_concurrency=options["concurrency"])
    return cls(app=app, component=component, transport=options["transport"], cluster=options["redis_cluster"],
               database=options["database"], settings=settings)


async def _wait_for_database(url: str, timeout_s: float) -> None:
    import asyncpg

    deadline_s = asyncio.get_running_loop().time() + timeout_s
    backoff = Backoff(max_s=2.0)
    while True:
        try:
            connection = await asyncpg.connect(url, timeout=5)
            await connection.close()
            return
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            if asyncio.get_running_loop().time() >= deadline_s:
                raise TransportError(f"PostgreSQL did not accept connections within {timeout_s:.0f} s: {exc}") from exc
            logger.warning("PostgreSQL not reachable yet (%s); retrying", exc)
            await backoff.sleep()


async def serve(service: Service) -> None:
    """Start ``service``, serve until SIGTERM or SIGINT, then drain it."""
    runner = ServiceRunner(service)
    settings = service.settings
    await wait_until_reachable(runner.bus, redacted(service.transport), settings.connect_timeout_s,
                               settings.backoff_max_s)
    if service.database:
        await _wait_for_database(service.database, settings.connect_timeout_s)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_signal, signum, stop)
    await runner.start()
    try:
        await stop.wait()
    finally:
        await runner.drain(DRAIN_TIMEOUT_S)


def _on_signal(signum: int, stop: asyncio.Event) -> None:
    logger.info("received %s: draining", signal.Signals(signum).name)
    stop.set()


def _install_loop(name: str) -> None:
    try:
        from vv import loop as loops
    except ImportError:
        if name not in ("asyncio", "auto"):
            raise ConfigError(f"event loop {name!r} needs the vv.loop package, which is not installed") from None
        return
    resolved = loops.install(name)
    logger.info("event loop: %s", resolved)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        options = resolve_start_options(vars(args))
    except ConfigError as exc:
        print(f"vv-start: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    _log.configure(options["log_level"], options["log_format"])

    try:
        _install_loop(options["loop"])
        service = _create_service(options)
        asyncio.run(serve(service))
    except ConfigError as exc:
        logger.error("%s", exc)
        return EXIT_CONFIG
    except TransportError as exc:
        logger.error("%s", exc)
        return EXIT_UNREACHABLE
    except VVError as exc:
        # For example StorageUnavailable while opening the service's storage.
        logger.error("service failed to start: %s: %s", type(exc).__name__, exc)
        return EXIT_UNREACHABLE
    return 0


if __name__ == "__main__":
    sys.exit(main())
