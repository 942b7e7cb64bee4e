"""The books: the double-entry ledger (SQLite), the chart of accounts of the payment center and
the bank, the payment center's durable state, credit, and the money invariants."""
