"""One module per command or group; each parses options and calls the core modules."""
