"""Places: areas in the frame or on the ground, and geofences placed from the flight's telemetry."""
