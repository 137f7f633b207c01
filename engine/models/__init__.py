"""Model definitions shipped with the engine: the bundled pixel model (`tiny`) and its weights."""
