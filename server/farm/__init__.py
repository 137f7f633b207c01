"""The render farm: `seamwise serve --cluster` fronts a Ray cluster of render actors.

The aiohttp server stays the front door and keeps the durable job store; Ray places the actors
(each with a model loaded) by its resource accounting, moves pixels through its object store and
restarts actors that die. Nothing here imports Ray at module import: only `--cluster` loads it.
"""
