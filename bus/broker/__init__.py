"""AMQP plumbing that knows nothing about dossiers: connections, publishing, acks, topology."""
