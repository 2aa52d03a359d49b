"""What a message is, with no broker: envelope, schemas, rejections, units, ids."""
