"""The parts of an explanation: the run's story, duplicates, refusals, and answers."""
