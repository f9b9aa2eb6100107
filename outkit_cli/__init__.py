"""outkit-cli: the command-line tool for the Outkit messaging API."""

__version__ = "0.1.0"
