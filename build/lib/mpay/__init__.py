"""The mpay simulator: worlds, ports (ledger, SMS network, clock, credit), runs and the CLI."""

__version__ = "0.1.0"
