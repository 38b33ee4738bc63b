class LoadError(Exception):
    """A model that cannot be loaded; the message is one line naming the file and the problem."""
