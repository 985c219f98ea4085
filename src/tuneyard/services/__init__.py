"""Use cases and rules. Routes call one service function; services raise ``tuneyard.errors``."""
