"""Command implementations behind `explore` (thin: parse arguments, call the library, print)."""
