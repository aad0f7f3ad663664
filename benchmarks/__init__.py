"""Scripts that print figures (never timed tests); each one's docstring says how to run it."""
