"""The fault suite: bad inputs of every kind and real SIGKILLs, each ending in a result or one clear error."""
