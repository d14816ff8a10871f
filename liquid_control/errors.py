"""User-facing errors: things a user can cause (bad path, bad file, bad parameter).

The CLI and the ROS nodes print these as one line; anything else is a programmer
error and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in what the user asked for or handed in; the message says what to do."""
