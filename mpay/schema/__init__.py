"""What a run is made of, as data: the scenario schema (pydantic) and the shipped scenarios."""
