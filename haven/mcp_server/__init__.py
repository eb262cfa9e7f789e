"""``haven mcp``: a Model Context Protocol server, an AI assistant's safe window into the warehouse."""
