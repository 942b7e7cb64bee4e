"""The parties of the protocol as asyncio actors; they reach the world only through ports."""
