"""Customers: encrypted profiles, one row per (customer, attribute), blind-index lookup."""
