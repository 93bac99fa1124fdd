"""The `quorum` command line: parses, validates, then calls core in a line or two.

An outer door, like core.http: it may import every context, and nothing in core imports it.
"""

import argparse
from typing import TypeAlias

from core.permissions import Actor

# Who the command line acts as: whoever may run it on the server may act as the system.
CLI_ACTOR = Actor.system("cli")

# What each command module's `register` receives: the `quorum` parser's subcommands.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
