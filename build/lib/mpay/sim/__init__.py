"""The simulation core: virtual time (kernel), the SMS network, the adversary, faults, the
trace writer and the world that wires a scenario's parties to them."""
