"""The customer self-service page: magic links, sessions, consents, data, export and erasure.

See docs/selfservice.md for the decisions. :mod:`vault.selfservice.sessions` (links, sessions,
CSRF), :mod:`vault.selfservice.views` (what the pages show) and :mod:`vault.selfservice.actions`
(what they do) hold the logic; :mod:`vault.selfservice.pages` renders the pages;
:mod:`vault.selfservice.routes` has the thin HTML routes and the one JSON route that issues links.
"""
