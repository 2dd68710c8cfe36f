"""The error a training run stops with: it diverged, or its folder holds a different run. The
commands report it as one line naming the setting or folder at fault."""


class TrainingError(RuntimeError):
    """A run that cannot go on (diverged, or its folder holds a different run)."""
