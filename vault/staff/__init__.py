"""The staff console at ``/staff``: accounts with password and TOTP, sessions, role checks, and
the pages of each role (store and call centre, privacy office, auditors). See docs/staff.md."""
