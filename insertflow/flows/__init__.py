"""jobflow Makers for studies; calculator-agnostic."""
