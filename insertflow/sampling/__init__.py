"""Structure sampling: orderings and defects (later issues)."""
