"""The training application: run orchestration, callbacks, checkpoints, schedules."""
