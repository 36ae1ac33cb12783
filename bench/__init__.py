"""`make bench`: Paystream's figures measured beside this machine's own limits, in one run.

`python -m bench` boots the whole platform on a fresh Redis and PostgreSQL, drives it from separate
load-generator processes on loopback, and writes `bench/results/latest.json` and
`bench/results/latest.png` (latency over time). See `bench/__main__.py` for the flags and
`bench/scenarios/` for what each figure measures.
"""
