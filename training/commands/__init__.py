"""One module per `python -m training` command."""
