"""Teachers (loaded from the user's files) and students (built by edgekd's families)."""
