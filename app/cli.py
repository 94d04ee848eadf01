"""The ``autodistiller`` command line. Each command group lives in ``app/commands/``.

Modules import torch lazily inside commands so ``autodistiller --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

cli = typer.Typer(
    name="autodistiller",
    help="Distil NLP transformers, with a meta-learner that recommends the KD pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# (module under app.commands, group name or None to merge its commands at the top level)
SUBCOMMANDS: list[tuple[str, str | None]] = [
    ("engine", None),
    ("assets", "assets"),
    ("datasets", "datasets"),
    ("service", None),
    ("meta", "meta"),
    ("sweep", None),
    ("search", None),
    ("kb", "kb"),
    ("export", None),
]

for _module, _group in SUBCOMMANDS:
    _sub = importlib.import_module(f"app.commands.{_module}").cli
    if _group is None:
        for _cmd in _sub.registered_commands:
            cli.registered_commands.append(_cmd)
        for _grp in _sub.registered_groups:
            cli.registered_groups.append(_grp)
    else:
        cli.add_typer(_sub, name=_group)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
