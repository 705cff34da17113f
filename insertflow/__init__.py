"""insertflow: first-principles studies of ion-insertion materials as jobflow workflows."""

__version__ = "0.1.0"
