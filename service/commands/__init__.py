"""One module per `python -m service` command."""
