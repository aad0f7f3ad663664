"""`pmsync run`: the long-running daemon (scheduler, leases, signals, health and metrics).

Modules, one job each: `settings` ([daemon] table), `schedule` (when a stream is due),
`leases` / `pg_leases` (who owns a connector), `worker` (one thread per connector),
`metrics` and `health` (Prometheus and /healthz, /readyz), `notify` (systemd), `signals`,
`writeback` (the hook write-back cycles plug into) and `service` (the process around them).
Importing this package is cheap; the configuration imports `settings` from it.
"""
