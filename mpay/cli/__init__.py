"""The ``mpay`` command line: :mod:`mpay.cli.main` and one ``cmd_*`` module per subcommand."""
