"""Each paper's system, one bundle: its policies' defaults, simulated world, live recipe,
experiment, demo and verdict."""
