"""Subcommands of the ``minivae`` command line, one module each (see :mod:`minivae.cli`)."""
