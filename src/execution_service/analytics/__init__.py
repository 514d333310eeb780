"""Trading performance: daily rows per connection, range summaries and equity curves."""
