"""Apply: carry out a plan in crash-safe batches and record the run."""
