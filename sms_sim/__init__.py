"""A stand-in for Twilio's Messages REST API, for tests and for trying the platform without an
account: it takes texts as Twilio would, refuses what Twilio would refuse with Twilio's error
codes, keeps what it took, and has a ``/sim/`` control API to read them and plan failures."""
