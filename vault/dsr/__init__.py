"""Data-subject rights (GDPR Arts. 12 to 21) and retention: export, erasure by key destruction,
restriction, objection, request deadlines, the retention job and the Art. 30 record.

See docs/dsr.md for the decisions. The functions every door (the DSR API, the self-service page,
the CLI) calls are keyword-only, never commit and raise :mod:`vault.errors` subclasses:
:mod:`vault.dsr.export` (Art. 15/20), :mod:`vault.dsr.erasure` (Art. 17), :mod:`vault.dsr.rights`
(restriction, objection, legal hold) and :mod:`vault.dsr.requests` (tracked requests and their
deadlines).
"""
