"""Command-line interface: ``diagsim <command>``; each command lives in its own module here."""
