"""What every resumable dataset build shares: ``manifest`` (what was built, with which settings and hashes),
``worker_pool`` (spawned pools whose set-up can fail without hanging) and ``log_file`` (a build's log file)."""
