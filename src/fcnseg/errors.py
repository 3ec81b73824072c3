"""The one exception type for errors a user can cause."""


class FcnsegError(ValueError):
    """A problem with the user's input: a file, a value, an option.

    The message is one line that names the file or value and what was expected; the CLI prints
    it as it is, without a traceback.
    """


class ConfigError(FcnsegError):
    """A configuration field whose value is out of its range.

    Attributes:
        field: the field's name (``lr``), so that a command can name the flag that set it
            (``--lr``) instead.
        problem: what is wrong with the value, without the name (``must be positive, got -1``).
        option: for a field that is a dict of options (``backbone``), the option at fault
            (``fc_width``), else None.
    """

    def __init__(self, field: str, problem: str, option: str | None = None) -> None:
        name = field if option is None else f"{field} {option}"
        super().__init__(f"{name} {problem}")
        self.field = field
        self.problem = problem
        self.option = option
