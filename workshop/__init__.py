"""Support code for the Cello chat workshop: the runner, the test harness and the learner tools."""
