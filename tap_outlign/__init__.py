"""Singer tap for Outlign."""
