"""The customer self-service page: magic links, sessions, consents, data, export and erasure.

See docs/selfservice.md for the decisions; :mod:`vault.selfservice.service` holds the logic,
:mod:`vault.selfservice.routes` the thin HTML routes and the one JSON route that issues links.
"""
