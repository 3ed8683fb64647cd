"""Help placeholders written as click writes them, not as typer 0.2x annotates them.

Typer prints an argument's Python type beside its name (`RUN_DIR <path>`, `RUN_DIR... <list[Path]>`),
wraps required arguments in braces on the usage line (`{CONFIG.yaml}`, `[[TEXT]...]...` for an optional
list) and shows an option without a metavar by its annotation (`<int range>`, `<str>`). Here an argument
shows its metavar alone, everywhere, and an option its metavar or, for a choice, `a|b|c`.
`clean_metavars` swaps the classes of a command's parameters (no new state, only how they print).
"""

from __future__ import annotations

import click
from typer.core import TyperArgument, TyperOption


class _Argument(TyperArgument):
    def display_type_rich(self, ctx: click.Context) -> None:
        return None  # the metavar says what the argument is; no `<path>` beside it

    def _usage_display_name(self) -> str:
        # The metavar is written as it should read (`CONFIG.yaml`, `[TEXT]...`, `RUN_DIR...`).
        if self.metavar is not None:
            return self.metavar
        name = self.name.upper()
        return (name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")


class _Option(TyperOption):
    def display_type_rich(self, ctx: click.Context) -> str | None:
        if self.metavar is not None:
            return self.metavar
        desc = self.type_descriptor
        if desc.is_choice:
            return "|".join(str(getattr(c, "value", c)) for c in desc.choices or ())
        return "PATH" if desc.is_path else "VALUE"  # every option names its own metavar; this is a fallback


def clean_metavars(command: click.Command) -> None:
    """Make `command`'s parameters (and, for a group, its subcommands') print clean placeholders."""
    for param in command.params:
        if type(param) is TyperArgument:
            param.__class__ = _Argument
        elif type(param) is TyperOption:
            param.__class__ = _Option
    for sub in getattr(command, "commands", {}).values():
        clean_metavars(sub)
