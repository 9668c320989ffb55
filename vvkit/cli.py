"""The ``vvkit`` command line: one Typer app and its error boundary.

Each command lives in ``vvkit/commands/<name>.py`` and adds itself to ``app``
through its ``register`` function. ``main`` is the only place that turns
errors into exit codes: a ``VvkitError`` becomes one red line on stderr and
its ``exit_code``; Ctrl-C prints "stopped" and exits 130; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
from importlib import metadata
from typing import Annotated

import typer
from typer.exceptions import TyperException

from vvkit.console import err, fail, out
from vvkit.errors import VvkitError

app = typer.Typer(
    name="vvkit",
    help="Build, run and deploy microservices that talk over Redis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)

# Modules under vvkit.commands, in the order their commands appear in --help.
COMMAND_MODULES = ("init", "new", "list", "update", "sync", "run", "call", "doctor")


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"vvkit.commands.{name}").register(app)


_register_commands()


def _print_version(value: bool) -> None:
    if value:
        out.print(f"vvkit {metadata.version('vvkit')} (runtime {metadata.version('vvkit-runtime')})")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: Annotated[
        bool, typer.Option("--version", help="Print the versions of vvkit and its runtime, then exit.",
                           callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    """Build, run and deploy microservices that talk over Redis."""


def main() -> None:
    """Run the CLI and map errors to exit codes."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        # Without standalone mode, click returns the code of a typer.Exit
        # instead of exiting, and returns None when a command just returns.
        code = app(standalone_mode=False)
    except VvkitError as exc:
        fail(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("stopped")
        sys.exit(130)
    except typer.Abort:
        err.print("aborted")
        sys.exit(1)
    except TyperException as exc:
        # Usage errors (unknown option, invalid choice) from Typer's click.
        if hasattr(exc, "show"):
            exc.show()
        else:
            fail(exc.format_message())
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)

if __name__ == "__main__":
    main()
