"""The subcommands of the ``distlda`` command line, one module each."""
