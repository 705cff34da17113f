"""Pure analysis functions on entries and structures: no I/O, no calculators."""
