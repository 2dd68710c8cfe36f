"""What the torch runner raises: a graph it cannot run, and an input value an operator does not handle."""


class GraphOpError(ValueError):
    """A graph that this runner cannot run; the message names the file, node and operator."""


class Unsupported(ValueError):
    """An input value (not an attribute: those are refused at load) that an operator here does not
    handle; forward() names the file and node."""
