"""``python -m tests.profiling.cli_shim ARGS``: the real ``tritonkit`` group, with this issue's commands
registered in case ``toolkit/cli.py``'s COMMANDS table does not list them yet."""

from toolkit.cli import COMMANDS, main

_MINE = {"profile": "profile", "profile-local": "profile_local", "report": "report", "tune": "tune"}

if __name__ == "__main__":
    from toolkit.commands import profile as commands

    for name, attr in _MINE.items():
        if name not in COMMANDS:
            main.add_command(getattr(commands, attr), name)
    main()
