"""Election candidates: the program each candidate container runs, its recipes, and its node plugin."""
