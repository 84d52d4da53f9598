"""The simulated world: one device (``env``, scored by ``scoring``), policies compared on the
same frames (``compare``), a fleet sharing one edge (``fleet``, its clock ``fleet_clock``), and
tasks decided stage by stage (``stages``). The papers' worlds themselves are in ``systems``."""
