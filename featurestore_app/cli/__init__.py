"""The ``featurestore`` command line.

One module per family of commands (:mod:`.data`, :mod:`.probe`, :mod:`.train`, :mod:`.share`),
registered here. Every failure ends as one line on stderr and a non-zero status, never a
traceback: usage errors print click's usage line and one ``error: ...`` line (exit 2, click's
convention); library errors (``FeatureStoreError``, ``ProbeInputError``) and operating-system
faults (disk full, read-only file system, permissions) print one ``error: ...`` line (exit 1).
Set ``FEATURESTORE_TRACEBACK=1`` to let unexpected exceptions through with their traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from typer._click import exceptions as click_exc  # typer bundles its own click: catch that one

from featurestore.errors import FeatureStoreError
from featurestore_app.cli import data, probe, rank, share, train, verify
from featurestore_app.cli.common import err, error_line, os_error_message
from featurestore_app.cli.duplicates import duplicates as duplicates_command
from probes.errors import ProbeInputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Cache penultimate-layer features of ImageNet checkpoints and probe their transfer.",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("featurestore")
        except PackageNotFoundError:  # run from a checkout that was never installed
            v = "unknown (not installed)"
        print(f"featurestore {v}")
        raise typer.Exit(0)


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True,
                     help="Print the version and exit."),
    ] = False,
) -> None:
    """Cache penultimate-layer features of ImageNet checkpoints and probe their transfer."""

app.command()(data.extract)
app.command("ls")(data.ls)
app.command()(data.ckpts)
app.command()(data.datasets)
app.command()(probe.probe)
app.command()(probe.sweep)
app.command()(probe.results)
app.command("finetune")(train.finetune_command)
app.command("logreg-aug")(train.logreg_aug_command)
app.command()(share.demo)
app.command("report")(share.report_cmd)
app.command()(share.serve)
app.command()(rank.rank)
app.command()(verify.verify)
app.command("duplicates")(duplicates_command)


def _usage_error(e: click_exc.UsageError) -> int:
    """Click's usage line, then one ``error:`` line that also says where help is."""
    if isinstance(e, click_exc.NoArgsIsHelpError):
        e.show()  # bare `featurestore`: the help text is the answer
        return e.exit_code
    hint = ""
    if e.ctx is not None:
        err.print(e.ctx.get_usage(), markup=False, highlight=False)
        hint = f" (see '{e.ctx.command_path} --help')"
    error_line(f"{e.format_message()}{hint}")
    return e.exit_code


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one clear line and a non-zero status for every failure."""
    try:
        # Non-standalone click returns the exit code of typer.Exit instead of raising it.
        rc = app(args=argv, standalone_mode=False)
    except click_exc.UsageError as e:
        return _usage_error(e)
    except click_exc.ClickException as e:
        error_line(e.format_message())
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        error_line("aborted")
        return 130
    except (FeatureStoreError, ProbeInputError) as e:
        error_line(str(e))
        return 1
    except OSError as e:  # disk full, read-only file system, permission denied...
        error_line(os_error_message(e))
        return 1
    except Exception as e:  # a bug: still one line, with the way to see the traceback
        if os.environ.get("FEATURESTORE_TRACEBACK"):
            raise
        error_line(f"internal error: {type(e).__name__}: {e} "
                   "(set FEATURESTORE_TRACEBACK=1 to see the traceback)")
        return 1
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
