"""`ExchangeAdapter` over ccxt's async clients, for any ccxt exchange id.

ccxt stays inside this package: its exceptions are translated into base.py's hierarchy at the
boundary (errors.py), and its floats are turned into Decimal via `str()` (or, better, read from
the exchange's raw strings in `info`, parsing.py) so no binary noise reaches the service's money
columns. Nothing is imported here, so that importing the package does not import ccxt.
"""
