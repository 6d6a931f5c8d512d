"""The plan: typed changes (changes), and the pure function that computes them (planner)."""
