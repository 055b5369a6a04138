"""Redis through redis.asyncio: the customers' live views and the command replies."""
