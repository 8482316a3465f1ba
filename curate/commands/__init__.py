"""The core sub-commands of ``curate``, a module each, and what :func:`curate.cli.main` reads from
the command line and prints around them. :mod:`curate.cli` holds the group and adds them."""
