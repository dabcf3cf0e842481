"""Data-subject rights (GDPR Arts. 12 to 21) and retention: export, erasure by key destruction,
restriction, objection, request deadlines, the retention job and the Art. 30 record.

See docs/dsr.md for the decisions; :mod:`vault.dsr.service` for the functions every door
(the DSR API, the self-service page, the CLI) calls.
"""
