"""``python -m itemctl``, and the ``itemctl`` command's entry point."""

import os


def run() -> int:
    # pydantic looks through every installed distribution's metadata for plugins when its
    # first model is built (about 15 ms); a command line loads none.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from itemctl.cli import main

    return main()


if __name__ == "__main__":
    raise SystemExit(run())
