"""The one exception type the command line turns into a clean error line."""


class UserError(Exception):
    """A mistake in the user's input (arguments, files, data): reported as one line, exit code 2."""
