"""Sensor readings' own layer, below :mod:`api.service`: the streams' SQLite store
(:mod:`.store`), readings checked and encoded (:mod:`.rows`, :mod:`.ingest`), and the MQTT worker
process that runs them (:mod:`.mqtt_worker`).

Kept out of :mod:`api.service` so that it imports light: the MQTT worker is a process of its own
(issue 27), and importing :mod:`api.service` pulls in the chain client, web3 and FastAPI (seconds
at start-up) that it never uses. Nothing here imports :mod:`api.service`.
"""
