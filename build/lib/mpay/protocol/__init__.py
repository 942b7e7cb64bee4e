"""The escrow SMS protocol: messages, envelopes, certificates, the escrow state machine.

Pure and sans-IO: nothing here reads the clock, opens files or sockets, or imports
asyncio or a database. Time and randomness are arguments.
"""
