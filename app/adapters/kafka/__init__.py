"""Kafka reached directly with aiokafka, outside a Faust worker: the operator's commands."""
