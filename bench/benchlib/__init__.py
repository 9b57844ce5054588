"""bench/run's parts: statistics and processes, the harness modes, the targets and plots."""
