"""The ``featurestore`` command line.

One module per family of commands (:mod:`.data`, :mod:`.probe`, :mod:`.train`, :mod:`.share`),
registered here. Library errors (``FeatureStoreError``, ``ProbeInputError``) become one
``error: ...`` line on stderr and exit status 1; usage errors exit 2 (click's convention).
"""

from __future__ import annotations

import sys

import click
import typer

from featurestore.errors import FeatureStoreError
from featurestore_app.cli import data, probe, share, train
from featurestore_app.cli.common import err, error_line
from probes.errors import ProbeInputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Cache penultimate-layer features of ImageNet checkpoints and probe their transfer.",
    pretty_exceptions_enable=False,
)

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


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one clear line and a non-zero status for every library error."""
    try:
        # Non-standalone click returns the exit code of typer.Exit instead of raising it.
        rc = app(args=argv, standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        err.print("aborted")
        return 130
    except (FeatureStoreError, ProbeInputError) as e:
        error_line(str(e))
        return 1
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
