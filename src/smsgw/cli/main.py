"""`smsgw`: the command line (spec/CONTRACT.md, "Operator CLI"). Each command's module is
imported only when that command runs, so that a client command (`smsgw balance`) does not
load the server, the store and their libraries to make one HTTP call."""

from __future__ import annotations

import importlib

import click

# command name -> "module:attribute", in the order --help lists them.
COMMANDS = {
    "serve": "smsgw.cli.serve:serve",
    "migrate": "smsgw.cli.operator:migrate",
    "status": "smsgw.cli.operator:status",
    "message": "smsgw.cli.operator:message_show",
    "partner": "smsgw.cli.operator:partner",
    "shortcode": "smsgw.cli.operator:shortcode",
    "optout": "smsgw.cli.operator:optout_group",
    "operator": "smsgw.cli.operator:operator_group",
    "send": "smsgw.cli.send:send_command",
    "balance": "smsgw.cli.send:balance_command",
    "dlr": "smsgw.cli.send:dlr_command",
    "smsc-sim": "smsgw.cli.smsc_sim:smsc_sim",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002 (click's signature)
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: ARG002
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        module, attribute = where.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command), where
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="smsgw")
def main() -> None:
    """smsgw: bulk SMS gateway. The store is chosen by SMSGW_DATABASE_URL
    (default sqlite:///./smsgw.db)."""
