"""Fault injectors, one module per fault family, and the schedule that combines them."""
