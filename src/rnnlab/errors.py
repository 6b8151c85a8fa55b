"""The one exception type that reaches users as a one-line `error: ...` (exit status 2)."""


class RnnlabError(Exception):
    """A problem with the user's input, arguments or files, explained in one line.

    Raised anywhere in rnnlab; the CLI prints `error: <message>` and exits with status 2.
    Anything else escaping to the CLI is a bug in rnnlab, not in the user's input.
    """
