"""Reference networks (zoo.py) and the published measurements (published.py) that the tests and benchmarks use.

Not part of the installed package: the explorer itself never needs them.
"""
