"""The paper's claims, checked numerically on our own runs: Figure 1 (figure1.py), Proposition 1
(proposition1.py) and Theorem 1 (theorem1.py). Each module runs as `python -m training.paper.<name>`."""
