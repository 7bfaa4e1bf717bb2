"""The synthetic cube↔sphere experiment: ``declaration`` (what the runner carries out), ``figures`` (drawn from its
tables) and the command ``python -m experiments.synthetic`` (``__main__``)."""
