"""The command reference (docs/cli.md), generated from the commands' own --help.

    uv run python -m itemctl.cli.reference > docs/cli.md

A test fails when docs/cli.md differs from what this prints, so the reference cannot rot.
"""

from __future__ import annotations

WIDTH = 100


def _help(command, path: list[str], parent=None) -> str:
    import typer

    context = typer.Context(command, info_name=path[-1], parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)
    return context, command.get_help(context)


def render_reference() -> str:
    """Markdown: the root help, then every group and command in order."""
    from itemctl.cli import command_tree

    root = command_tree()
    root_context, root_help = _help(root, ["itemctl"])
    parts = [
        "# itemctl command reference",
        "",
        "Generated from `--help` by `uv run python -m itemctl.cli.reference > docs/cli.md`; do not edit.",
        "",
        "## itemctl",
        "",
        "```text",
        root_help.rstrip(),
        "```",
    ]
    for group_name, group in root.commands.items():
        group_context, group_help = _help(group, ["itemctl", group_name], root_context)
        parts += ["", f"## itemctl {group_name}", "", "```text", group_help.rstrip(), "```"]
        for name, command in getattr(group, "commands", {}).items():  # a root command has none
            _, text = _help(command, ["itemctl", group_name, name], group_context)
            parts += ["", f"### itemctl {group_name} {name}", "", "```text", text.rstrip(), "```"]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
