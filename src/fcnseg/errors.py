"""The one exception type for errors a user can cause."""


class FcnsegError(ValueError):
    """A problem with the user's input: a file, a value, an option.

    The message is one line that names the file or value and what was expected; the CLI prints
    it as it is, without a traceback.
    """
